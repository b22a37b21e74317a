"""Prototype completion of binary edges: competing phases of every binary edge of a run's chemical systems, built
in common binary structure types where the built-in set knows no phase.

A hull built only from the phases one happens to know lies too high wherever an edge lacks its compounds, and a
candidate then looks stable (or below the hull) for that reason alone. The remedy of high-throughput practice is
to populate every binary edge with the charge-balanced stoichiometries of common oxidation states in common
prototypes and let the relaxation decide which is lowest (as in the prototype decoration of Hautier et al.,
Inorg. Chem. 50, 656 (2011), without their learned substitution probabilities).

For an edge A–X, X the more electronegative element:

- **ionic** when X is a non-metal with a negative common oxidation state: for every positive oxidation state of A
  (pymatgen's common and ICSD states) the charge-balanced A_mX_n in every prototype of that ratio in
  :data:`IONIC`; a ratio no named prototype has gets A in the holes of a close-packed X lattice, ordered by
  electrostatics (:func:`engine.references.close_packed.order_by_electrostatics`);
- **intermetallic** otherwise (or when no charge-balanced ratio can be built): AB in the CsCl (B2) type and A3B,
  AB3 in the Cu3Au (L1_2) type.

Every structure is built at an arbitrary scale and then scaled so that its shortest A–X distance is the sum of the
two radii (Shannon ionic radii of the oxidation states; metallic radii for intermetallics); the relaxation with the
stage's model does the rest. The set is a search space, not a list of known compounds: phases that do not exist
relax to high energies and stay off the hull.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from math import gcd

import numpy as np
from pymatgen.core import Composition, Element, Lattice, Species, Structure

from engine.core.spacegroups import from_spacegroup
from engine.references.close_packed import ccp_anions, hcp_anions, order_by_electrostatics

log = logging.getLogger(__name__)

Builder = Callable[[str, str], Structure]  # (cation, anion) -> structure at an arbitrary scale


@dataclass(frozen=True)
class Prototype:
    name: str
    ratio: tuple[int, int]  # cations : anions (A : X) of the formula unit
    build: Builder


def _sg(spacegroup: str, lattice: Lattice, cation_coords, anion_coords) -> Builder:
    def build(a: str, x: str) -> Structure:
        return from_spacegroup(spacegroup, lattice, [a] * len(cation_coords) + [x] * len(anion_coords),
                                         list(cation_coords) + list(anion_coords))
    return build


def _cuprite(a: str, x: str) -> Structure:
    """Cu2O (Pn-3m): X on a bcc lattice, A linearly coordinated between two X."""
    return Structure(Lattice.cubic(4.27), [a] * 4 + [x] * 2,
                     [[.25, .25, .25], [.75, .75, .25], [.75, .25, .75], [.25, .75, .75], [0, 0, 0], [.5, .5, .5]])


def _ordered(ratio: tuple[int, int], packing: str) -> Builder:
    """A in the holes of an hcp or ccp X lattice (octahedral holes when A ≤ X, octahedral and tetrahedral when A
    > X), in the smallest supercell that holds a whole number of formula units, ordered by the Ewald energy of
    formal charges. Raises ValueError when no supercell of :func:`_supercells` fits the ratio."""
    m, n = ratio

    def build(a: str, x: str) -> Structure:
        d = 3.0  # X–X distance at the build scale [Å]; rescaled afterwards
        holes = ["oct"] if m <= n else ["oct", "tet+", "tet-"]
        for cells in _supercells(packing):
            framework, sites = (hcp_anions(x, d, d * np.sqrt(8 / 3), cells) if packing == "hcp"
                                else ccp_anions(x, d * np.sqrt(2), cells))
            if len(framework) % n == 0:
                break
        else:
            raise ValueError(f"no {packing} supercell holds {a}{m}{x}{n}")
        site_coords = np.vstack([sites[k] for k in holes])
        spacing = 0.95 * d if m <= n else 0.6 * d  # octahedra may share edges, not faces
        return order_by_electrostatics(framework, site_coords, {a: len(framework) // n * m}, {a: n / m, x: -1.0},
                                       min_distance=spacing)
    return build


def _supercells(packing: str) -> Iterable:
    if packing == "hcp":  # 2, 6, 8, 10, 12, 14, 16, 18 X
        yield from (1, [[2, 1, 0], [-1, 1, 0], [0, 0, 1]], [[2, 0, 0], [0, 2, 0], [0, 0, 1]],
                    [[5, 0, 0], [0, 1, 0], [0, 0, 1]], [[2, 1, 0], [-1, 1, 0], [0, 0, 2]],
                    [[7, 0, 0], [0, 1, 0], [0, 0, 1]], [[2, 0, 0], [0, 2, 0], [0, 0, 2]],
                    [[3, 0, 0], [0, 3, 0], [0, 0, 1]])
    else:  # 4, 8, 12, 16 X (conventional cubic cell and its supercells)
        yield from (1, [[2, 0, 0], [0, 1, 0], [0, 0, 1]], [[3, 0, 0], [0, 1, 0], [0, 0, 1]], [[2, 0, 0], [0, 2, 0], [0, 0, 1]])


HEX = Lattice.hexagonal
# ratio -> the named prototypes of that ratio (fractional coordinates of the structure type; the scale is set later)
IONIC: dict[tuple[int, int], tuple[Prototype, ...]] = {
    (1, 1): (Prototype("rocksalt", (1, 1), _sg("Fm-3m", Lattice.cubic(5), [[0, 0, 0]], [[.5, .5, .5]])),
             Prototype("CsCl", (1, 1), _sg("Pm-3m", Lattice.cubic(3), [[0, 0, 0]], [[.5, .5, .5]])),
             Prototype("zincblende", (1, 1), _sg("F-43m", Lattice.cubic(5), [[0, 0, 0]], [[.25, .25, .25]])),
             Prototype("wurtzite", (1, 1), _sg("P6_3mc", HEX(3.5, 5.7), [[1 / 3, 2 / 3, 0]], [[1 / 3, 2 / 3, .375]])),
             Prototype("NiAs", (1, 1), _sg("P6_3/mmc", HEX(3.5, 5.0), [[0, 0, 0]], [[1 / 3, 2 / 3, .25]]))),
    (1, 2): (Prototype("fluorite", (1, 2), _sg("Fm-3m", Lattice.cubic(5), [[0, 0, 0]], [[.25, .25, .25]])),
             Prototype("rutile", (1, 2), _sg("P4_2/mnm", Lattice.tetragonal(4.6, 3.0), [[0, 0, 0]], [[.305, .305, 0]])),
             Prototype("CdI2", (1, 2), _sg("P-3m1", HEX(3.6, 5.8), [[0, 0, 0]], [[1 / 3, 2 / 3, .25]])),
             Prototype("CdCl2", (1, 2), _sg("R-3m", HEX(3.6, 17.5), [[0, 0, 0]], [[0, 0, .2578]]))),
    (2, 1): (Prototype("antifluorite", (2, 1), _sg("Fm-3m", Lattice.cubic(5), [[.25, .25, .25]], [[0, 0, 0]])),
             Prototype("antiCdI2", (2, 1), _sg("P-3m1", HEX(3.6, 5.8), [[1 / 3, 2 / 3, .25]], [[0, 0, 0]])),
             Prototype("cuprite", (2, 1), _cuprite)),
    (1, 3): (Prototype("ReO3", (1, 3), _sg("Pm-3m", Lattice.cubic(4), [[0, 0, 0]], [[.5, 0, 0]])),
             Prototype("BiI3", (1, 3), _ordered((1, 3), "hcp")),
             Prototype("AlCl3", (1, 3), _ordered((1, 3), "ccp"))),
    (3, 1): (Prototype("Li3Bi", (3, 1), _sg("Fm-3m", Lattice.cubic(6), [[.5, .5, .5], [.25, .25, .25]], [[0, 0, 0]])),
             Prototype("Li3N", (3, 1), _sg("P6/mmm", HEX(3.6, 3.9), [[0, 0, .5], [1 / 3, 2 / 3, 0]], [[0, 0, 0]])),
             Prototype("Na3As", (3, 1), _sg("P6_3/mmc", HEX(4.3, 7.6), [[0, 0, .25], [1 / 3, 2 / 3, .583]],
                                            [[1 / 3, 2 / 3, .25]]))),
    (2, 3): (Prototype("corundum", (2, 3), _sg("R-3c", HEX(4.76, 12.99), [[0, 0, .3523]], [[.3064, 0, .25]])),),
}
INTERMETALLIC: tuple[Prototype, ...] = (
    Prototype("CsCl", (1, 1), _sg("Pm-3m", Lattice.cubic(3), [[0, 0, 0]], [[.5, .5, .5]])),
    Prototype("Cu3Au", (3, 1), _sg("Pm-3m", Lattice.cubic(4), [[0, .5, .5]], [[0, 0, 0]])),
    Prototype("Cu3Au", (1, 3), _sg("Pm-3m", Lattice.cubic(4), [[0, 0, 0]], [[0, .5, .5]])),
)
MAX_ORDERED_IONS = 3  # cations per anion that the holes of a close-packed lattice can hold


def oxidation_states(element: Element) -> list[int]:
    """Positive oxidation states of ``element`` that pymatgen lists as common or seen in the ICSD."""
    return sorted({q for q in (*element.common_oxidation_states, *element.icsd_oxidation_states) if q > 0})


def _anion_charge(element: Element) -> int | None:
    negative = [q for q in element.common_oxidation_states if q < 0]
    return -min(negative) if negative and not element.is_metal else None


def stoichiometries(a: str, b: str) -> list[tuple[str, str, int, int, int]]:
    """Charge-balanced (cation, anion, m, n, cation charge) of the edge a–b: A_mX_n with formal charges; empty when
    the more electronegative element is a metal or has no negative common oxidation state."""
    cation, anion = sorted((Element(a), Element(b)), key=lambda el: el.X)
    p = _anion_charge(anion)
    if p is None:
        return []
    out = []
    for q in oxidation_states(cation):
        g = gcd(p, q)
        out.append((cation.symbol, anion.symbol, p // g, q // g, q))
    return out


def _radius(symbol: str, charge: int | None) -> float:
    """Shannon ionic radius [Å] of the ion (the mean over coordinations pymatgen lists), else the element's
    average ionic radius, else its atomic radius."""
    el = Element(symbol)
    if charge is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                r = Species(symbol, charge).ionic_radius
            except (ValueError, KeyError):
                r = None
        if r:
            return float(r)
        avg = el.average_anionic_radius if charge < 0 else el.average_cationic_radius
        if avg:
            return float(avg)
    return float(el.atomic_radius or 1.5)


def scaled(structure: Structure, a: str, x: str, distance: float) -> Structure:
    """``structure`` scaled so that its shortest a–x distance [Å] is ``distance``."""
    dm = structure.distance_matrix
    is_a = np.array([s.specie.symbol == a for s in structure])
    shortest = dm[np.ix_(is_a, ~is_a)].min()
    out = structure.copy()
    out.scale_lattice(structure.volume * (distance / shortest) ** 3)
    return out


ID_PREFIX = "proto:"  # the id of every prototype phase, in the references group and its entries


def is_prototype(phase_id: str) -> bool:
    return str(phase_id).startswith(ID_PREFIX)


@dataclass(frozen=True)
class PrototypePhase:
    id: str  # "proto:<formula>-<prototype>" (ID_PREFIX)
    structure: Structure


def phases_of_edge(edge: list[str]) -> tuple[PrototypePhase, ...]:
    """:func:`edge_phases` of ``edge = [a, b]``: a host worker's job."""
    return edge_phases(*edge)


@cache
def edge_phases(a: str, b: str) -> tuple[PrototypePhase, ...]:
    """The prototype phases of the binary edge a–b (built once per process; copy a structure before changing it)."""
    out = []
    ionic = stoichiometries(a, b)
    built = False
    for cation, anion, m, n, q in ionic:
        if m > MAX_ORDERED_IONS * n:
            continue  # A4X and richer: no close-packed X lattice holds them
        protos = IONIC.get((m, n)) or (Prototype(f"ordered-{'hcp' if m <= n else 'ccp'}", (m, n),
                                                 _ordered((m, n), "hcp" if m <= n else "ccp")),)
        distance = _radius(cation, q) + _radius(anion, -(q * m // n))
        for proto in protos:
            try:
                s = proto.build(cation, anion)
            except ValueError as exc:
                log.info("prototype completion skips %s: %s", proto.name, exc)
                continue
            formula = Composition({cation: m, anion: n}).reduced_formula
            out.append(PrototypePhase(f"{ID_PREFIX}{formula}-{proto.name}", scaled(s, cation, anion, distance)))
            built = True
    if not built:
        first, second = sorted((a, b), key=lambda el: Element(el).X)
        distance = _radius(first, None) + _radius(second, None)
        for proto in INTERMETALLIC:
            s = proto.build(first, second)
            formula = Composition({first: proto.ratio[0], second: proto.ratio[1]}).reduced_formula
            out.append(PrototypePhase(f"{ID_PREFIX}{formula}-{proto.name}", scaled(s, first, second, distance)))
    return tuple(out)


def binary_edges(systems: Iterable[Iterable[str]]) -> set[frozenset[str]]:
    """Every pair of elements that shares one of ``systems``."""
    return {frozenset(pair) for s in systems for pair in itertools.combinations(sorted(set(s)), 2)}
