"""The built-in reference phases: elements in their standard states and the known binaries and ternaries of the
default chemical systems, of Li–Ge–P–S (for LGPS) and of Li–Co–O (for LiCoO2).

Every structure is built from crystallographic facts — space group, Wyckoff positions, lattice parameters — with
pymatgen, and each builder names its source in one line. Where a phase's refined coordinates were not at hand,
the structure is *idealised*: its anion sublattice (hcp or ccp, as the structure type has it) with the cations in
the holes that type uses, ordered by the lowest Ewald energy (:func:`order_by_electrostatics`). The relaxation
with the stage's uMLIP afterwards moves the atoms into the nearest minimum; the thermo stage records each
reference's relaxed energy and its own E_hull, so a poorly built reference shows up in the HDF5 file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ase.build import bulk
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from engine.core.spacegroups import from_spacegroup
from engine.references.close_packed import ccp_anions, hcp_anions, order_by_electrostatics


@dataclass(frozen=True)
class BuiltinPhase:
    id: str  # "builtin:<formula>-<structure type>"
    build: Callable[[], Structure]
    source: str

    @property
    def formula(self) -> str:
        return self.id.split(":", 1)[1].split("-", 1)[0]

    @property
    def elements(self) -> set[str]:
        return {el.symbol for el in Composition(self.formula).elements}


def _element(symbol: str, structure: str, a: float, c: float | None = None) -> Callable[[], Structure]:
    def build() -> Structure:
        kw = {"a": a} if c is None else {"a": a, "c": c}
        return AseAtomsAdaptor.get_structure(bulk(symbol, structure, **kw))
    return build


def _ase_element(symbol: str) -> Callable[[], Structure]:
    """The element in ASE's reference state (``ase.data.reference_states``: structure type and lattice parameters)."""
    return lambda: AseAtomsAdaptor.get_structure(bulk(symbol))


def _sg(spacegroup: str, lattice: Lattice, species: list[str], coords: list[list[float]]) -> Callable[[], Structure]:
    return lambda: from_spacegroup(spacegroup, lattice, species, coords)


def _diatomic_molecular_crystal(symbol: str, a: float, b: float, c: float, bond: float) -> Callable[[], Structure]:
    """Molecular crystal of X2 in the solid-iodine type (Cmce, X on 8f (0, y, z)); the molecule's direction is
    iodine's, its bond length set to ``bond`` [Å]."""
    def build() -> Structure:
        # solid I2: a 7.18, b 4.71, c 9.81 Å, I at (0, 0.1543, 0.1174) (Wyckoff, Crystal Structures vol. 1)
        v = np.array([0.1543 * 4.71, 0.1174 * 9.81])
        y, z = v * (bond / 2) / np.linalg.norm(v) / np.array([b, c])
        return from_spacegroup("Cmce", Lattice.orthorhombic(a, b, c), [symbol], [[0, y, z]])
    return build


# ---- idealised structures: anion sublattice + cations ordered in its holes by electrostatics ------------------

def _ordered(anions: tuple[Structure, dict[str, np.ndarray]], hole_kinds: list[str], counts: dict[str, int],
             charges: dict[str, float], min_distance: float = 2.2) -> Callable[[], Structure]:
    def build() -> Structure:
        framework, holes = anions
        sites = np.vstack([holes[k] for k in hole_kinds])
        return order_by_electrostatics(framework, sites, counts, charges, min_distance)
    return build


# ---- LGPS ------------------------------------------------------------------------------------------------------

def _lgps() -> Structure:
    """Ordered Li10GeP2S12 (P4_2/nmc, 50 atoms). Framework of Kuhn, Köhler & Lotsch, PCCP 15, 11620 (2013) and
    Iwasaki et al., Acta Cryst. B (2016) (LGPS type, origin choice 1): (Ge,P) on 4d (0, 1/2, 0.6895) with Li2 on
    4d (0, 1/2, 0.9456) in edge-sharing chains along c, PS4 on 2a. Here Ge takes the 2a site and P the 4d site so
    that the cell keeps P4_2/nmc; the tetrahedra are regular (P–S 2.05 Å, Ge–S 2.22 Å); the 20 Li are ordered
    over the partly occupied Li sites 16h, 4d, 4c, 8f of those refinements by electrostatics."""
    a, c = 8.72, 12.64  # Å, Kamaya et al., Nat. Mater. 10, 682 (2011)
    d_ps, d_ges = 2.05, 2.22
    side, height = np.sqrt(2 / 3), 1 / np.sqrt(3)  # regular tetrahedron about a 2-fold axis along c
    z = 0.6895
    framework = from_spacegroup(
        "P4_2/nmc", Lattice.tetragonal(a, c), ["Ge", "P", "S", "S", "S"],
        [[0, 0, 0], [0, 0.5, z],
         [d_ps * side / a, 0.5, z + d_ps * height / c], [0, 0.5 + d_ps * side / a, z - d_ps * height / c],
         [d_ges * side / a, 0, d_ges * height / c]])
    li_sites = from_spacegroup(
        "P4_2/nmc", Lattice.tetragonal(a, c), ["Li"] * 4,
        [[0.2574, 0.2666, 0.1929], [0, 0.5, 0.9456], [0, 0, 0.2510], [0.2475, 0.2475, 0]])
    return order_by_electrostatics(framework, li_sites.frac_coords, {"Li": 20},
                                   {"Li": 1, "Ge": 4, "P": 5, "S": -2}, min_distance=2.3)


# ---- the table -------------------------------------------------------------------------------------------------
_HAL = {"F": -1, "Cl": -1, "Br": -1, "I": -1, "S": -2, "O": -2}


def _rocksalt(cation: str, anion: str, a: float) -> Callable[[], Structure]:
    return _sg("Fm-3m", Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _antifluorite(cation: str, anion: str, a: float) -> Callable[[], Structure]:
    return _sg("Fm-3m", Lattice.cubic(a), [cation, anion], [[0.25, 0.25, 0.25], [0, 0, 0]])


_N2_X = 1.10 / (2 * np.sqrt(3) * 5.661)  # alpha-N2: N on 8c (x, x, x), bond 2√3·x·a = 1.10 Å


def _charges(**extra) -> dict[str, float]:
    return {"Li": 1, **_HAL, **extra}


BUILTIN: tuple[BuiltinPhase, ...] = (
    # elements (lattice parameters: ASE's reference states / Kittel, Introduction to Solid State Physics)
    BuiltinPhase("builtin:Li-bcc", _element("Li", "bcc", 3.44), "bcc Li, a 3.44 Å (Kittel)"),
    BuiltinPhase("builtin:Al-fcc", _element("Al", "fcc", 4.05), "fcc Al, a 4.05 Å (Kittel)"),
    BuiltinPhase("builtin:Mg-hcp", _element("Mg", "hcp", 3.21, 5.21), "hcp Mg, a 3.21 c 5.21 Å (Kittel)"),
    BuiltinPhase("builtin:Ca-fcc", _element("Ca", "fcc", 5.58), "fcc Ca, a 5.58 Å (Kittel)"),
    BuiltinPhase("builtin:Y-hcp", _element("Y", "hcp", 3.65, 5.73), "hcp Y, a 3.65 c 5.73 Å (Kittel)"),
    BuiltinPhase("builtin:Zr-hcp", _element("Zr", "hcp", 3.23, 5.15), "hcp Zr, a 3.23 c 5.15 Å (Kittel)"),
    BuiltinPhase("builtin:Co-hcp", _element("Co", "hcp", 2.51, 4.07), "hcp Co, a 2.51 c 4.07 Å (Kittel)"),
    BuiltinPhase("builtin:Ge-diamond", _element("Ge", "diamond", 5.66), "diamond Ge, a 5.66 Å (Kittel)"),
    BuiltinPhase("builtin:P-black", _sg("Cmce", Lattice.orthorhombic(3.314, 10.478, 4.376), ["P"],
                                        [[0, 0.10168, 0.08056]]),
                 "black P, Cmce, P 8f; Brown & Rundqvist, Acta Cryst. 19, 684 (1965)"),
    BuiltinPhase("builtin:S-S6", _sg("R-3", Lattice.hexagonal(10.818, 4.280), ["S"], [[0.1454, 0.1882, 0.1055]]),
                 "rhombohedral cyclo-S6 (R-3, S 18f) standing in for the 128-atom alpha-S8; Donohue et al., "
                 "Acta Cryst. 14, 1212 (1961)"),
    BuiltinPhase("builtin:F2-molecular", _diatomic_molecular_crystal("F", 5.50, 3.28, 7.28, 1.42),
                 "solid F2 as an I2-type molecular crystal, bond 1.42 Å"),
    BuiltinPhase("builtin:Cl2-molecular", _diatomic_molecular_crystal("Cl", 6.24, 4.48, 8.26, 1.99),
                 "solid Cl2, Cmce; Powell et al., Mol. Phys. 51, 1193 (1984), bond 1.99 Å"),
    BuiltinPhase("builtin:Br2-molecular", _diatomic_molecular_crystal("Br", 6.67, 4.48, 8.72, 2.29),
                 "solid Br2, Cmce; Powell et al., Mol. Phys. 51, 1193 (1984), bond 2.29 Å"),
    BuiltinPhase("builtin:I2-molecular", _diatomic_molecular_crystal("I", 7.18, 4.71, 9.81, 2.72),
                 "solid I2, Cmce; Wyckoff, Crystal Structures vol. 1"),
    # the other elements a candidate may hold (engine.candidates.sampler.SEED_ALLOWED_ELEMENTS): ASE's reference states where
    # they are the ground state, the known structure otherwise
    *(BuiltinPhase(f"builtin:{el}-{kind}", _ase_element(el), f"{kind} {el}, ASE's reference state")
      for el, kind in (("Be", "hcp"), ("Si", "diamond"), ("Sc", "hcp"), ("Ti", "hcp"), ("Cu", "fcc"),
                       ("Zn", "hcp"), ("Sr", "fcc"), ("Nb", "bcc"), ("Ag", "fcc"), ("Cd", "hcp"), ("Ba", "bcc"),
                       ("Hf", "hcp"), ("Ta", "bcc"), ("W", "bcc"), ("Pb", "fcc"))),
    BuiltinPhase("builtin:C-diamond", _ase_element("C"), "diamond C, ASE's reference state"),
    BuiltinPhase("builtin:C-graphite", _sg("P6_3/mmc", Lattice.hexagonal(2.464, 6.711), ["C", "C"],
                                           [[0, 0, 1 / 4], [1 / 3, 2 / 3, 1 / 4]]),
                 "graphite, P6_3/mmc, a 2.464 c 6.711 Å (no van der Waals term in most uMLIPs: c may drift)"),
    BuiltinPhase("builtin:Sn-diamond", _element("Sn", "diamond", 6.49), "alpha-Sn (grey tin), diamond, a 6.49 Å"),
    BuiltinPhase("builtin:B-alphaB12", _sg("R-3m", Lattice.hexagonal(4.908, 12.567), ["B", "B"],
                                           [[0.11886, 0.88114, 0.89133], [0.19686, 0.80314, 0.02432]]),
                 "alpha-rhombohedral B12, R-3m, B 18h x2; Decker & Kasper, Acta Cryst. 12, 503 (1959)"),
    BuiltinPhase("builtin:Ga-alpha", _sg("Cmce", Lattice.orthorhombic(4.520, 7.663, 4.526), ["Ga"],
                                         [[0, 0.1549, 0.0810]]),
                 "alpha-Ga, Cmce, Ga 8f (Ga2 dimers); Sharma & Donohue, Z. Kristallogr. 117, 293 (1962)"),
    BuiltinPhase("builtin:In-bct", _sg("I4/mmm", Lattice.tetragonal(3.253, 4.947), ["In"], [[0, 0, 0]]),
                 "In, body-centred tetragonal, I4/mmm, a 3.253 c 4.947 Å (Wyckoff)"),
    BuiltinPhase("builtin:La-dhcp", _sg("P6_3/mmc", Lattice.hexagonal(3.770, 12.159), ["La", "La"],
                                        [[0, 0, 0], [1 / 3, 2 / 3, 1 / 4]]),
                 "alpha-La, double hcp (ABAC), P6_3/mmc, a 3.770 c 12.159 Å (Wyckoff)"),
    *(BuiltinPhase(f"builtin:{el}-A7", _sg("R-3m", Lattice.hexagonal(a, c), [el], [[0, 0, z]]),
                   f"{el}, A7 (grey arsenic) type, R-3m, a {a} c {c} Å, {el} 6c z {z} (Wyckoff)")
      for el, a, c, z in (("As", 3.760, 10.548, 0.2271), ("Sb", 4.307, 11.273, 0.2336),
                          ("Bi", 4.546, 11.862, 0.2339))),
    *(BuiltinPhase(f"builtin:{el}-trigonal", _sg("P3_121", Lattice.hexagonal(a, c), [el], [[x, 0, 1 / 3]]),
                   f"trigonal {el} (helical chains), P3_121, a {a} c {c} Å, {el} 3a x {x} (Wyckoff)")
      for el, a, c, x in (("Se", 4.366, 4.954, 0.2254), ("Te", 4.457, 5.929, 0.2636))),
    BuiltinPhase("builtin:N2-alpha", _sg("Pa-3", Lattice.cubic(5.661), ["N"], [[_N2_X] * 3]),
                 "alpha-N2, Pa-3, a 5.661 Å, N 8c on the 3-fold axes, bond 1.10 Å"),
    BuiltinPhase("builtin:H2-molecular", _diatomic_molecular_crystal("H", 5.55, 3.64, 7.58, 0.74),
                 "solid H2 as an I2-type molecular crystal, bond 0.74 Å, molar volume of solid H2 (23 cm3/mol)"),
    BuiltinPhase("builtin:O2-molecular", _diatomic_molecular_crystal("O", 5.40, 3.43, 5.09 * 1.35, 1.21),
                 "solid O2 as an I2-type molecular crystal, bond 1.21 Å, volume of alpha-O2"),
    # Li halides, chalcogenides, pnictide, alloy
    BuiltinPhase("builtin:LiF-rocksalt", _rocksalt("Li", "F", 4.03), "LiF, Fm-3m, a 4.03 Å"),
    BuiltinPhase("builtin:LiCl-rocksalt", _rocksalt("Li", "Cl", 5.13), "LiCl, Fm-3m, a 5.13 Å"),
    BuiltinPhase("builtin:LiBr-rocksalt", _rocksalt("Li", "Br", 5.50), "LiBr, Fm-3m, a 5.50 Å"),
    BuiltinPhase("builtin:LiI-rocksalt", _rocksalt("Li", "I", 6.00), "LiI, Fm-3m, a 6.00 Å"),
    BuiltinPhase("builtin:Li2O-antifluorite", _antifluorite("Li", "O", 4.61), "Li2O, Fm-3m, a 4.61 Å"),
    BuiltinPhase("builtin:Li2S-antifluorite", _antifluorite("Li", "S", 5.71), "Li2S, Fm-3m, a 5.71 Å"),
    BuiltinPhase("builtin:Li2O2-P63mmc", _sg("P6_3/mmc", Lattice.hexagonal(3.142, 7.650), ["Li", "Li", "O"],
                                             [[0, 0, 0], [1 / 3, 2 / 3, 1 / 4], [1 / 3, 2 / 3, 0.852]]),
                 "Li2O2, P6_3/mmc; Föppl, Z. Anorg. Allg. Chem. 291, 12 (1957)"),
    BuiltinPhase("builtin:Li3P-Na3As", _sg("P6_3/mmc", Lattice.hexagonal(4.273, 7.594), ["Li", "Li", "P"],
                                           [[0, 0, 1 / 4], [1 / 3, 2 / 3, 0.583], [1 / 3, 2 / 3, 1 / 4]]),
                 "Li3P, Na3As type, P6_3/mmc; Dong & DiSalvo, Acta Cryst. E 63, i97 (2007)"),
    BuiltinPhase("builtin:LiAl-NaTl", _sg("Fd-3m", Lattice.cubic(6.37), ["Li", "Al"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
                 "LiAl, NaTl type (B32), Fd-3m, a 6.37 Å"),
    # metal halides
    BuiltinPhase("builtin:AlF3-R-3c", _sg("R-3c", Lattice.hexagonal(4.9254, 12.4477), ["Al", "F"],
                                          [[0, 0, 0], [0.4197, 0, 0.25]]),
                 "alpha-AlF3, R-3c, Al 6b, F 18e; Daniel et al., J. Solid State Chem. 89, 139 (1990)"),
    BuiltinPhase("builtin:MgCl2-CdCl2", _sg("R-3m", Lattice.hexagonal(3.64, 17.67), ["Mg", "Cl"],
                                            [[0, 0, 0], [0, 0, 0.2578]]),
                 "MgCl2, CdCl2 type, R-3m; Partin & O'Keeffe, J. Solid State Chem. 95, 176 (1991)"),
    BuiltinPhase("builtin:CaI2-CdI2", _sg("P-3m1", Lattice.hexagonal(4.48, 6.96), ["Ca", "I"],
                                          [[0, 0, 0], [1 / 3, 2 / 3, 0.25]]),
                 "CaI2, CdI2 type, P-3m1; Wyckoff, Crystal Structures vol. 1"),
    BuiltinPhase("builtin:YCl3-layered",
                 _ordered(hcp_anions("Cl", 3.55, 5.85, [[2, 1, 0], [-1, 1, 0], [0, 0, 1]]), ["oct"], {"Y": 2},
                          _charges(Y=3), 3.5),
                 "YCl3, AlCl3-type layers of edge-sharing YCl6 octahedra (idealised on hcp Cl)"),
    BuiltinPhase("builtin:ZrCl4-chains",
                 _ordered(hcp_anions("Cl", 3.55, 5.85, [[2, 0, 0], [0, 2, 0], [0, 0, 1]]), ["oct"], {"Zr": 2},
                          _charges(Zr=4), 3.2),
                 "ZrCl4, chains of edge-sharing ZrCl6 octahedra (Krebs, Z. Anorg. Allg. Chem. 378, 263 (1970); "
                 "idealised on hcp Cl)"),
    # ternary halides (idealised on the hcp anion lattice of their structure types)
    BuiltinPhase("builtin:Li3YCl6-P-3m1",
                 _ordered(hcp_anions("Cl", 3.73, 6.03, [[3, 0, 0], [0, 3, 0], [0, 0, 1]]), ["oct"],
                          {"Y": 3, "Li": 9}, _charges(Y=3), 2.9),
                 "Li3YCl6, P-3m1, hcp Cl with Li and Y in octahedral holes; Asano et al., Adv. Mater. 30, "
                 "1803075 (2018) (idealised)"),
    BuiltinPhase("builtin:Li2ZrCl6-P-3m1",
                 _ordered(hcp_anions("Cl", 3.65, 5.93, [[2, 1, 0], [-1, 1, 0], [0, 0, 1]]), ["oct"],
                          {"Zr": 1, "Li": 2}, _charges(Zr=4), 2.9),
                 "Li2ZrCl6, trigonal, hcp Cl with Li and Zr in octahedral holes; Wang et al., Nat. Commun. "
                 "12, 4410 (2021) (idealised, Li2ZrF6-like ordering)"),
    BuiltinPhase("builtin:Li3AlF6-cryolite",
                 _ordered(hcp_anions("F", 2.85, 4.65, [[2, 1, 0], [-1, 1, 0], [0, 0, 2]]), ["oct"],
                          {"Al": 2, "Li": 6}, _charges(Al=3), 2.7),
                 "Li3AlF6, AlF6 and LiF6 octahedra on hcp F; Stinton et al., Inorg. Chem. 52, 11052 (2013) "
                 "(idealised)"),
    BuiltinPhase("builtin:Li2MgCl4-spinel",
                 _ordered(ccp_anions("Cl", 10.4 / 2, [[0, 1, 1], [1, 0, 1], [1, 1, 0]]), ["oct", "tet+"],
                          {"Mg": 2, "Li": 4}, _charges(Mg=2), 2.5),
                 "Li2MgCl4, inverse spinel, Fd-3m, a 10.4 Å; Kanno et al., J. Solid State Chem. 71, 196 (1987) "
                 "(idealised on ccp Cl)"),
    # Li–Ge–P–S
    BuiltinPhase("builtin:GeS2-tetrahedral",
                 _ordered(ccp_anions("S", 5.45), ["tet+"], {"Ge": 2}, _charges(Ge=4), 3.0),
                 "GeS2, GeS4 tetrahedra sharing corners on ccp S (idealised; 3D GeS2, Dittmar & Schäfer, "
                 "Acta Cryst. B 32, 1188 (1976))"),
    BuiltinPhase("builtin:Li3PS4-enargite",
                 _ordered(hcp_anions("S", 3.85, 6.20, [[2, 0, 0], [0, 2, 0], [0, 0, 1]]), ["tet+"],
                          {"P": 2, "Li": 6}, _charges(P=5), 2.5),
                 "gamma-Li3PS4, enargite type (Pmn2_1): Li and P in T+ holes of hcp S; Homma et al., Solid "
                 "State Ionics 182, 53 (2011) (idealised)"),
    BuiltinPhase("builtin:Li4GeS4-Pnma",
                 _ordered(hcp_anions("S", 3.95, 6.35, [[2, 0, 0], [0, 2, 0], [0, 0, 1]]), ["tet+", "oct"],
                          {"Ge": 2, "Li": 8}, _charges(Ge=4), 2.5),
                 "Li4GeS4, GeS4 tetrahedra with Li in tetrahedral and octahedral holes of hcp S; Murayama et "
                 "al., J. Solid State Chem. 168, 140 (2002) (idealised)"),
    BuiltinPhase("builtin:Li10GeP2S12-LGPS", _lgps, "see engine.references.builtin_phases._lgps"),
    # phases that only the mixing reactions reach (candidate system x LGPS or x LiCoO2)
    BuiltinPhase("builtin:MgS-rocksalt", _rocksalt("Mg", "S", 5.20), "MgS, Fm-3m, a 5.20 Å"),
    BuiltinPhase("builtin:CaS-rocksalt", _rocksalt("Ca", "S", 5.69), "CaS, Fm-3m, a 5.69 Å"),
    BuiltinPhase("builtin:MgO-rocksalt", _rocksalt("Mg", "O", 4.21), "MgO, Fm-3m, a 4.21 Å"),
    BuiltinPhase("builtin:CaO-rocksalt", _rocksalt("Ca", "O", 4.81), "CaO, Fm-3m, a 4.81 Å"),
    BuiltinPhase("builtin:ZrS2-CdI2", _sg("P-3m1", Lattice.hexagonal(3.66, 5.83), ["Zr", "S"],
                                          [[0, 0, 0], [1 / 3, 2 / 3, 0.25]]), "ZrS2, CdI2 type, P-3m1"),
    BuiltinPhase("builtin:ZrO2-fluorite", _sg("Fm-3m", Lattice.cubic(5.07), ["Zr", "O"],
                                              [[0, 0, 0], [0.25, 0.25, 0.25]]),
                 "ZrO2, cubic fluorite (the high-temperature form, standing in for monoclinic baddeleyite)"),
    BuiltinPhase("builtin:Al2O3-corundum", _sg("R-3c", Lattice.hexagonal(4.759, 12.991), ["Al", "O"],
                                               [[0, 0, 0.3523], [0.3064, 0, 0.25]]),
                 "alpha-Al2O3, corundum, R-3c; Lewis et al., Z. Kristallogr. 162, 11 (1982)"),
    BuiltinPhase("builtin:LiAlO2-R-3m", _sg("R-3m", Lattice.hexagonal(2.80, 14.22), ["Li", "Al", "O"],
                                            [[0, 0, 0.5], [0, 0, 0], [0, 0, 0.2389]]),
                 "alpha-LiAlO2, layered R-3m (alpha-NaFeO2 type); Marezio & Remeika, J. Chem. Phys. 44, 3143 (1966)"),
    BuiltinPhase("builtin:CoF2-rutile", _sg("P4_2/mnm", Lattice.tetragonal(4.695, 3.180), ["Co", "F"],
                                            [[0, 0, 0], [0.306, 0.306, 0]]), "CoF2, rutile type, P4_2/mnm"),
    BuiltinPhase("builtin:CoCl2-CdCl2", _sg("R-3m", Lattice.hexagonal(3.544, 17.43), ["Co", "Cl"],
                                            [[0, 0, 0], [0, 0, 0.2574]]), "CoCl2, CdCl2 type, R-3m"),
    BuiltinPhase("builtin:CoBr2-CdI2", _sg("P-3m1", Lattice.hexagonal(3.68, 6.12), ["Co", "Br"],
                                           [[0, 0, 0], [1 / 3, 2 / 3, 0.25]]), "CoBr2, CdI2 type, P-3m1"),
    BuiltinPhase("builtin:CoI2-CdI2", _sg("P-3m1", Lattice.hexagonal(3.96, 6.65), ["Co", "I"],
                                          [[0, 0, 0], [1 / 3, 2 / 3, 0.25]]), "CoI2, CdI2 type, P-3m1"),
    BuiltinPhase("builtin:CoS2-pyrite", _sg("Pa-3", Lattice.cubic(5.53), ["Co", "S"],
                                            [[0, 0, 0], [0.39, 0.39, 0.39]]), "CoS2, pyrite type, Pa-3"),
    # Li–Co–O
    BuiltinPhase("builtin:CoO-rocksalt", _rocksalt("Co", "O", 4.26), "CoO, Fm-3m, a 4.26 Å"),
    BuiltinPhase("builtin:Co3O4-spinel", _sg("Fd-3m", Lattice.cubic(8.08), ["Co", "Co", "O"],
                                             [[0, 0, 0], [0.625, 0.625, 0.625], [0.388, 0.388, 0.388]]),
                 "Co3O4, spinel, Fd-3m (origin 1), a 8.08 Å, u 0.263; Roth, J. Phys. Chem. Solids 25, 1 (1964)"),
    BuiltinPhase("builtin:LiCoO2-R-3m", _sg("R-3m", Lattice.hexagonal(2.816, 14.05), ["Li", "Co", "O"],
                                            [[0, 0, 0.5], [0, 0, 0], [0, 0, 0.2396]]),
                 "layered LiCoO2, R-3m; Akimoto et al., J. Solid State Chem. 141, 298 (1998)"),
)


def build_builtin(index: int) -> Structure:
    """The structure of ``BUILTIN[index]``: a host worker's job (this module imports in about a second, the
    references stage's in about four)."""
    return BUILTIN[index].build()
