"""Published PBE band gaps for validating the band-gap filter: 60 compounds — halides, oxides, sulfides, nitrides of
the allowed elements, semiconductors and metals.

Each gap [eV] is the Materials Project's PBE (GGA/GGA+U) value of the named material id
(https://materialsproject.org/materials/<id>), rounded to 0.1 eV; metals are 0. Structures are built from their
prototypes with experimental room-temperature lattice parameters (Wyckoff, Crystal Structures; CRC Handbook of
Chemistry and Physics), not MP's relaxed cells, so a predictor sees the kind of input a screen gives it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ase.build import bulk
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor


@dataclass(frozen=True)
class GapReference:
    formula: str
    mp_id: str
    pbe_gap: float  # eV, Materials Project PBE, rounded to 0.1 eV
    prototype: str
    a: float  # Å
    c: float | None = None  # Å (hexagonal and tetragonal cells)
    u: float | None = None  # internal coordinate (wurtzite u, rutile x)

    def structure(self) -> Structure:
        return BUILDERS[self.prototype](self)


def _split(formula: str) -> list[str]:
    return [e.symbol for e in Composition(formula).elements]


def _cubic(crystalstructure: str, anti: bool = False) -> callable:
    """ASE's conventional cubic cell of the prototype (pymatgen's ``from_spacegroup`` takes 0.2-0.8 s per cubic cell
    here); ``anti``: the anion on the cation's sites (antifluorite Li2O is ASE's fluorite "OLi2")."""
    def build(r: GapReference) -> Structure:
        amounts = Composition(r.formula).reduced_composition
        order = _split(r.formula)[::-1] if anti else _split(r.formula)
        formula = "".join(f"{el}{int(amounts[el]) if amounts[el] != 1 else ''}" for el in order)
        return AseAtomsAdaptor.get_structure(bulk(formula, crystalstructure, a=r.a, cubic=True))
    return build


def _hcp(r: GapReference) -> Structure:
    return Structure.from_spacegroup("P6_3/mmc", Lattice.hexagonal(r.a, r.c), [r.formula], [[1 / 3, 2 / 3, 0.25]])


def _wurtzite(r: GapReference) -> Structure:
    cation, anion = _split(r.formula)
    return Structure.from_spacegroup("P6_3mc", Lattice.hexagonal(r.a, r.c), [cation, anion],
                                     [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, r.u]])


def _rutile(r: GapReference) -> Structure:
    cation, anion = _split(r.formula)
    return Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(r.a, r.c), [cation, anion],
                                     [[0, 0, 0], [r.u, r.u, 0]])


def _perovskite(r: GapReference) -> Structure:
    a_site, b_site, x = "Sr", "Ti", "O"  # only SrTiO3 uses it
    return Structure.from_spacegroup("Pm-3m", Lattice.cubic(r.a), [a_site, b_site, x],
                                     [[0, 0, 0], [0.5] * 3, [0.5, 0.5, 0]])


def _li3n(r: GapReference) -> Structure:
    return Structure.from_spacegroup("P6/mmm", Lattice.hexagonal(r.a, r.c), ["N", "Li", "Li"],
                                     [[0, 0, 0], [0, 0, 0.5], [1 / 3, 2 / 3, 0]])


def _corundum(r: GapReference) -> Structure:
    return Structure.from_spacegroup("R-3c", Lattice.hexagonal(r.a, r.c), ["Al", "O"],
                                     [[0, 0, 0.3522], [0.3064, 0, 0.25]])


BUILDERS = {
    "rocksalt": _cubic("rocksalt"),
    "cscl": _cubic("cesiumchloride"),
    "zincblende": _cubic("zincblende"),
    "fluorite": _cubic("fluorite"),
    "antifluorite": _cubic("fluorite", anti=True),
    "diamond": _cubic("diamond"),
    "fcc": _cubic("fcc"),
    "bcc": _cubic("bcc"),
    "hcp": _hcp,
    "wurtzite": _wurtzite,
    "rutile": _rutile,
    "perovskite": _perovskite,
    "li3n": _li3n,
    "corundum": _corundum,
}

R = GapReference
REFERENCES: tuple[GapReference, ...] = (
    # alkali and alkaline-earth halides
    R("LiF", "mp-1138", 8.7, "rocksalt", 4.03),
    R("LiCl", "mp-22905", 6.3, "rocksalt", 5.13),
    R("LiBr", "mp-23259", 5.0, "rocksalt", 5.50),
    R("LiI", "mp-22899", 4.2, "rocksalt", 6.00),
    R("NaF", "mp-682", 6.1, "rocksalt", 4.63),
    R("NaCl", "mp-22862", 5.0, "rocksalt", 5.64),
    R("NaBr", "mp-22916", 4.1, "rocksalt", 5.97),
    R("KCl", "mp-23193", 5.0, "rocksalt", 6.29),
    R("KBr", "mp-23251", 4.3, "rocksalt", 6.60),
    R("CsCl", "mp-22865", 5.0, "cscl", 4.12),
    R("CaF2", "mp-2741", 7.3, "fluorite", 5.46),
    R("SrF2", "mp-981", 6.9, "fluorite", 5.80),
    R("BaF2", "mp-1029", 6.5, "fluorite", 6.20),
    R("MgF2", "mp-1249", 6.8, "rutile", 4.62, 3.05, 0.303),
    # oxides
    R("MgO", "mp-1265", 4.4, "rocksalt", 4.21),
    R("CaO", "mp-2605", 3.6, "rocksalt", 4.81),
    R("SrO", "mp-2472", 3.3, "rocksalt", 5.16),
    R("BaO", "mp-1342", 2.1, "rocksalt", 5.52),
    R("Li2O", "mp-1960", 5.0, "antifluorite", 4.61),
    R("Na2O", "mp-2352", 1.9, "antifluorite", 5.55),
    R("Al2O3", "mp-1143", 5.9, "corundum", 4.76, 12.99),
    R("TiO2", "mp-2657", 1.8, "rutile", 4.59, 2.96, 0.305),
    R("SrTiO3", "mp-5229", 1.8, "perovskite", 3.905),
    R("ZnO", "mp-2133", 0.7, "wurtzite", 3.25, 5.21, 0.382),
    R("SnO2", "mp-856", 0.7, "rutile", 4.74, 3.19, 0.307),
    # sulfides and selenides
    R("Li2S", "mp-1153", 3.4, "antifluorite", 5.71),
    R("Na2S", "mp-648", 2.4, "antifluorite", 6.54),
    R("MgS", "mp-1315", 2.7, "rocksalt", 5.20),
    R("CaS", "mp-1672", 2.4, "rocksalt", 5.69),
    R("ZnS", "mp-10695", 2.0, "zincblende", 5.41),
    R("ZnSe", "mp-1190", 1.2, "zincblende", 5.67),
    # nitrides
    R("Li3N", "mp-2251", 1.0, "li3n", 3.65, 3.87),
    R("AlN", "mp-661", 4.1, "wurtzite", 3.11, 4.98, 0.382),
    R("GaN", "mp-804", 1.7, "wurtzite", 3.19, 5.19, 0.377),
    # semiconductors
    R("C", "mp-66", 4.4, "diamond", 3.567),
    R("Si", "mp-149", 0.6, "diamond", 5.431),
    R("Ge", "mp-32", 0.0, "diamond", 5.658),
    R("SiC", "mp-8062", 1.4, "zincblende", 4.36),
    R("AlP", "mp-1550", 1.6, "zincblende", 5.46),
    R("AlAs", "mp-2172", 1.5, "zincblende", 5.66),
    R("GaP", "mp-2490", 1.6, "zincblende", 5.45),
    R("GaAs", "mp-2534", 0.2, "zincblende", 5.65),
    # metals and intermetallics
    R("Li", "mp-135", 0.0, "bcc", 3.51),
    R("Na", "mp-127", 0.0, "bcc", 4.29),
    R("K", "mp-58", 0.0, "bcc", 5.23),
    R("Fe", "mp-13", 0.0, "bcc", 2.87),
    R("W", "mp-91", 0.0, "bcc", 3.165),
    R("Al", "mp-134", 0.0, "fcc", 4.05),
    R("Cu", "mp-30", 0.0, "fcc", 3.61),
    R("Ag", "mp-124", 0.0, "fcc", 4.09),
    R("Au", "mp-81", 0.0, "fcc", 4.08),
    R("Ni", "mp-23", 0.0, "fcc", 3.52),
    R("Ca", "mp-45", 0.0, "fcc", 5.58),
    R("Pb", "mp-20483", 0.0, "fcc", 4.95),
    R("Mg", "mp-153", 0.0, "hcp", 3.21, 5.21),
    R("Zr", "mp-131", 0.0, "hcp", 3.23, 5.15),
    R("TiN", "mp-492", 0.0, "rocksalt", 4.24),
    R("ZrN", "mp-1352", 0.0, "rocksalt", 4.58),
    R("NiAl", "mp-1487", 0.0, "cscl", 2.88),
    R("CuZn", "mp-987", 0.0, "cscl", 2.95),
)


# the group oxidation state of the cations the band-gap acceptance names (alkali, alkaline-earth, group-3 and
# group-13 metals, Zr, Hf, Si, Ge), and the halide and oxide anions
IONIC_CATIONS = {**{el: 1 for el in ("Li", "Na", "K", "Rb", "Cs")}, **{el: 2 for el in ("Be", "Mg", "Ca", "Sr", "Ba")},
                 **{el: 3 for el in ("Sc", "Y", "La", "B", "Al", "Ga", "In")},
                 **{el: 4 for el in ("Zr", "Hf", "Si", "Ge")}}
IONIC_ANIONS = {"F": -1, "Cl": -1, "Br": -1, "I": -1, "O": -2}


def acceptance_ionic_insulator(composition: Composition) -> bool:
    """Whether a compound is made of those cations at their group valence and those anions, charge-balanced: an
    ionic insulator (ZrCl3, with Zr(III) d1, is not one; neither is Li2O2, a peroxide, O at -1)."""
    els = [e.symbol for e in composition.elements]
    if not any(e in IONIC_CATIONS for e in els) or not any(e in IONIC_ANIONS for e in els):
        return False
    if not all(e in IONIC_CATIONS or e in IONIC_ANIONS for e in els):
        return False
    charge = sum(n * {**IONIC_CATIONS, **IONIC_ANIONS}[el.symbol] for el, n in composition.items())
    return abs(charge) < 1e-6
