"""Bond-valence sums and the global instability index.

The bond valence of a cation–anion pair at distance R is exp((R0 − R)/B) (Brown & Altermatt, Acta Cryst. B41,
244 (1985)), with R0 and B of the pair and its oxidation states from the IUCr table bvparm2020 (I. D. Brown,
shipped and read by matminer's ``IUCrBondValenceData``); for a pair the table lacks, Brese & O'Keeffe's element
parameters (Acta Cryst. B47, 192 (1991); pymatgen's ``BV_PARAMS``) with B = 0.37 Å. The bond-valence sum of a site
is the sum over its counter-ions within ``cutoff``. The global instability index is
GII = sqrt(<(|BVS_i| − |V_i|)²>) over all sites of the cell (Salinas-Sanchez et al., J. Solid State Chem. 100,
201 (1992)): below about 0.1 v.u. for unstrained structures, above about 0.2 v.u. for structures too strained to
be stable. Relaxed uMLIP (PBE-like) structures have bonds a few hundredths of an Å long, which raises the GII of
real compounds; the threshold in ``conf/plausibility/`` is set on the relaxed reference phases.
"""

from __future__ import annotations

import functools
import math
import operator
from collections import defaultdict
from dataclasses import dataclass
from functools import cache

import numpy as np
from pymatgen.analysis.bond_valence import BV_PARAMS, BVAnalyzer
from pymatgen.core import Composition, Element, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer


class NoOxidationStatesError(ValueError):
    pass


def with_oxidation_states(structure: Structure) -> Structure:
    """``structure`` with oxidation states: pymatgen's ``BVAnalyzer`` (from the bond valences), else the most
    probable charge-balanced guess from the composition (``Composition.oxi_state_guesses``). Raises
    :class:`NoOxidationStatesError` when there is none, or no cation–anion pair (an intermetallic)."""
    if all(getattr(sp, "oxi_state", None) is not None for sp in structure.species):
        decorated = structure
    else:
        try:
            decorated = QuickBVAnalyzer().get_oxi_state_decorated_structure(structure)
        except ValueError:
            guess = likeliest_oxidation_states(structure.composition)
            if guess is None:
                raise NoOxidationStatesError(f"no charge-balanced oxidation states for "
                                             f"{structure.composition.reduced_formula}") from None
            decorated = structure.copy()
            decorated.add_oxidation_state_by_element(guess)
    states = [sp.oxi_state for sp in decorated.species]
    if not (max(states) > 0 > min(states)):
        raise NoOxidationStatesError(f"no cation-anion pair in {structure.composition.reduced_formula}")
    return decorated


class QuickBVAnalyzer(BVAnalyzer):
    """pymatgen's ``BVAnalyzer`` (O'Keeffe & Brese, J. Am. Chem. Soc. 113, 3226 (1991); the valence probabilities of
    its ICSD statistics), with the search over valence assignments of an ordered structure in plain integer
    arithmetic. pymatgen walks the same depth-first tree with numpy arrays at every node: 2 million nodes (up to 1 s)
    for a low-symmetry candidate of three elements, most of the plausibility stage. Same tree, same order, same
    ``max_permutations`` cut-off, same product of probabilities: the same valences (tests/stability)."""

    def get_valences(self, structure: Structure):
        if not structure.is_ordered:
            return super().get_valences(structure)
        if diff := {Element(el.symbol) for el in structure.elements} - set(BV_PARAMS):
            raise ValueError(f"Structure contains elements not in set of BV parameters: {diff}")
        if self.symm_tol:
            symmetrized = SpacegroupAnalyzer(structure, self.symm_tol).get_symmetrized_structure()
            groups = list(zip(symmetrized.equivalent_sites, symmetrized.equivalent_indices, strict=True))
        else:
            groups = [([site], [i]) for i, site in enumerate(structure)]
        groups.sort(key=lambda g: -g[0][0].species.average_electroneg)  # stable, as pymatgen's sort
        valences, probabilities = [], []
        for sites, _ in groups:
            prob = self._calc_site_probabilities(sites[0], structure.get_neighbors(sites[0], self.max_radius))
            ranked = sorted(prob, key=lambda v: -prob[v])
            valences.append([v for v in ranked if prob[v] > 0.01 * prob[ranked[0]]])
            probabilities.append(prob)
        best = best_valence_assignment(valences, probabilities, [len(s) for s, _ in groups],
                                       [s[0].specie.symbol for s, _ in groups], self.max_permutations)
        if not best:
            raise ValueError("Valences cannot be assigned!")
        out = [0] * len(structure)
        for value, (_, indices) in zip(best, groups, strict=True):
            for i in indices:
                out[i] = int(value)
        return out


def best_valence_assignment(valences: list[list[float]], probabilities: list[dict], multiplicities: list[int],
                            elements: list[str], max_permutations: int) -> list[float] | None:
    """The charge-neutral assignment of one valence per group of equivalent sites (each from ``valences``, the
    likeliest first) with the largest product of probabilities, the valences of one element at most 1 apart: the
    depth-first walk of pymatgen's ``BVAnalyzer.get_valences``, which stops after ``max_permutations`` leaves and
    pruned branches. Valences are whole numbers, so the charge sums are exact in any order."""
    depth = len(valences)
    least = [min(v) * n for v, n in zip(valences, multiplicities)]  # min() first: pymatgen's error for no valence
    most = [max(v) * n for v, n in zip(valences, multiplicities)]
    most_after = [sum(most[i:]) for i in range(depth + 1)]
    least_after = [sum(least[i:]) for i in range(depth + 1)]
    visited, best, best_score = 0, None, 0

    def evaluate(assigned):
        nonlocal best, best_score
        by_element = defaultdict(list)
        for element, value in zip(elements, assigned):
            by_element[element].append(value)
        if max(max(v) - min(v) for v in by_element.values()) > 1:
            return
        score = functools.reduce(operator.mul, [probabilities[i][v] for i, v in enumerate(assigned)])
        if score > best_score:
            best, best_score = assigned, score

    def walk(assigned, charge):
        nonlocal visited
        if visited > max_permutations:
            return
        i = len(assigned)
        if charge + most_after[i] < 0 or charge + least_after[i] > 0:
            visited += 1
            return
        if i == depth:
            evaluate(assigned)
            visited += 1
            return
        for v in valences[i]:
            walk([*assigned, v], charge + v * multiplicities[i])

    walk([], 0)
    return best


@cache
def likeliest_oxidation_states(composition: Composition) -> dict[str, float] | None:
    """The most probable charge-balanced oxidation state per element (pymatgen's ``oxi_state_guesses`` on up to 50
    sites of the formula), or None. Kept per composition: a screen meets each formula many times, and one guess costs
    about 50 ms."""
    guesses = composition.oxi_state_guesses(max_sites=-50)
    return dict(guesses[0]) if guesses else None


@cache
def _iucr_table():
    from matminer.utils.data import IUCrBondValenceData

    return IUCrBondValenceData()


@cache
def bond_valence_parameters(cation: str, cation_valence: int, anion: str, anion_valence: int) -> tuple[float, float]:
    """(R0 [Å], B [Å]) of a cation–anion pair: the IUCr table's first entry for the pair and its oxidation states,
    else Brese & O'Keeffe's element parameters."""
    try:
        row = _iucr_table().get_bv_params(cation, anion, int(cation_valence), int(anion_valence))
        return float(row["Ro"]), float(row["B"])
    except IndexError:
        c, a = BV_PARAMS[Element(cation)], BV_PARAMS[Element(anion)]
        r0 = c["r"] + a["r"] - c["r"] * a["r"] * (math.sqrt(c["c"]) - math.sqrt(a["c"])) ** 2 / (c["c"] * c["r"] + a["c"] * a["r"])
        return r0, 0.37


@dataclass
class BondValences:
    bvs: np.ndarray  # per site, valence units (v.u.), signed like the oxidation state
    valence: np.ndarray  # oxidation state per site
    worst_site: str  # element and index of the largest |deviation|

    @property
    def deviation(self) -> np.ndarray:
        """|BVS| − |V| per site [v.u.]: negative underbonded, positive overbonded."""
        return np.abs(self.bvs) - np.abs(self.valence)

    @property
    def gii(self) -> float:
        """Global instability index [v.u.]."""
        return float(np.sqrt(np.mean(self.deviation ** 2)))

    @property
    def max_deviation(self) -> float:
        """The largest |BVS − V| over the sites [v.u.]."""
        return float(np.max(np.abs(self.deviation)))


def bond_valences(structure: Structure, cutoff: float = 4.0) -> BondValences:
    """Bond-valence sums of every site of an oxidation-state-decorated ``structure``, counting only counter-ions
    (cation–anion pairs) within ``cutoff`` [Å]."""
    valence = np.array([sp.oxi_state for sp in structure.species], float)
    symbols = [sp.symbol for sp in structure.species]
    bvs = np.zeros(len(structure))
    centres, others, _, distances = structure.get_neighbor_list(cutoff)
    for i, j, d in zip(centres, others, distances):
        if valence[i] * valence[j] >= 0:
            continue
        cat, an = (i, j) if valence[i] > 0 else (j, i)
        r0, b = bond_valence_parameters(symbols[cat], round(valence[cat]), symbols[an], round(valence[an]))
        bvs[i] += np.sign(valence[i]) * math.exp((r0 - d) / b)
    dev = np.abs(np.abs(bvs) - np.abs(valence))
    worst = int(np.flatnonzero(dev >= dev.max() - 1e-3)[0])  # the first of the sites that tie up to noise
    return BondValences(bvs, valence, f"{structure[worst].specie.symbol}{worst}")
