"""Close-packed anion lattices with their holes, and cations ordered in those holes by electrostatics: how the
built-in references (:mod:`engine.references.builtin_phases`) and the prototype completion (:mod:`engine.references.prototypes`) build
structures whose refined coordinates are not at hand."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from math import comb

import numpy as np
from pymatgen.analysis.ewald import EwaldSummation
from pymatgen.core import Lattice, Structure


def order_by_electrostatics(fixed: Structure, sites: np.ndarray, counts: dict[str, int], charges: dict[str, float],
                            min_distance: float = 2.2, seed: int = 0, steps: int = 20000,
                            restarts: int = 4) -> Structure:
    """Place ``counts`` cations on the fractional ``sites`` of the anion framework ``fixed`` (no two closer
    than ``min_distance`` Å) with the lowest Ewald energy of formal point charges ``charges``.

    Exhaustive when the number of arrangements is small, otherwise the best of ``restarts`` seeded swap searches
    (simulated annealing)."""
    lattice = fixed.lattice
    n_fixed, n_sites = len(fixed), len(sites)
    unit = Structure(lattice, ["Li"] * (n_fixed + n_sites), np.vstack([fixed.frac_coords, sites]))
    unit.add_oxidation_state_by_element({"Li": 1})
    # rounded to 1e-8 eV: the Ewald sums differ in the last digits with the number of BLAS threads, and near-equal
    # arrangements would then be ordered differently on another machine or in a host worker
    energy_matrix = np.round(EwaldSummation(unit, compute_forces=False).total_energy_matrix, 8)
    q_fixed = np.array([charges[s.specie.symbol] for s in fixed])
    close = lattice.get_all_distances(sites, sites) < min_distance
    np.fill_diagonal(close, False)
    labels = [el for el, n in counts.items() for _ in range(n)]
    q_cation = np.array([charges[el] for el in labels])
    m_ss = energy_matrix[n_fixed:, n_fixed:]
    field = 2 * q_fixed @ energy_matrix[:n_fixed, n_fixed:]  # interaction of each site with the framework

    def energy(assign: np.ndarray) -> float:
        q = q_cation
        pairs = assign[:, None], assign  # np.ix_'s submatrix (C order, so the same sums) without np.ix_'s overhead
        e = q @ m_ss[pairs] @ q + field[assign] @ q
        return e + 1e3 * close[pairs].sum()

    n_arrangements = 1
    for k, n in enumerate(counts.values()):
        n_arrangements *= comb(n_sites - sum(list(counts.values())[:k]), n)
    if n_arrangements <= 50_000:
        best, best_e = None, np.inf
        for chosen in _arrangements(n_sites, list(counts.values())):
            e = energy(chosen)
            if e < best_e - 1e-9:
                best, best_e = chosen, e
    else:  # the lowest of a few seeded annealings: one run ends in a local minimum that depends on its seed
        best, best_e = None, np.inf
        for k in range(restarts):
            found, found_e = _anneal(energy, n_sites, len(labels), np.random.default_rng(seed + k), steps)
            if found_e < best_e:
                best, best_e = found, found_e
    out = fixed.copy()
    for el, site in zip(labels, best):
        out.append(el, sites[site])
    return out


def _anneal(energy, n_sites: int, n_cations: int, rng: np.random.Generator, steps: int) -> tuple[np.ndarray, float]:
    """Simulated annealing over the sites of ``n_cations`` cations (moves to empty sites and swaps); the best
    arrangement met and its energy [eV]."""
    cur = rng.permutation(n_sites)[:n_cations]
    cur_e = energy(cur)
    occupied = np.zeros(n_sites, bool)
    occupied[cur] = True
    best, best_e = cur.copy(), cur_e
    for step in range(steps):
        t = 5.0 * (1 - step / steps) + 1e-3  # eV
        trial = cur.copy()
        i = rng.integers(n_cations)
        move = rng.random() < 0.5
        if move:  # a cation to an empty site
            trial[i] = rng.choice(np.flatnonzero(~occupied))  # the empty sites in ascending order
        else:  # swap two cations of different kinds
            j = rng.integers(n_cations)
            trial[i], trial[j] = cur[j], cur[i]
        e = energy(trial)
        if e < cur_e or rng.random() < np.exp(-(e - cur_e) / t):
            if move:  # a swap leaves the occupied sites as they are
                occupied[cur[i]], occupied[trial[i]] = False, True
            cur, cur_e = trial, e
            if e < best_e:
                best, best_e = trial.copy(), e
    return best, best_e


def _arrangements(n_sites: int, counts: list[int]) -> Iterable[np.ndarray]:
    """Every way of putting counts[0] cations of kind 0, counts[1] of kind 1, … on distinct sites."""
    def rec(free: tuple[int, ...], k: int):
        if k == len(counts):
            yield ()
            return
        for chosen in itertools.combinations(free, counts[k]):
            rest = tuple(i for i in free if i not in chosen)
            for tail in rec(rest, k + 1):
                yield chosen + tail
    for arrangement in rec(tuple(range(n_sites)), 0):
        yield np.array(arrangement, dtype=int)


def hcp_anions(anion: str, a: float, c: float, supercell) -> tuple[Structure, dict[str, np.ndarray]]:
    """hcp anion sublattice (a, c of the two-layer cell) in a supercell, with its octahedral holes and the
    tetrahedral holes of one orientation (T+, the cation sites of wurtzite) and of the other (T-)."""
    cell = Structure(Lattice.hexagonal(a, c), [anion] * 2, [[1 / 3, 2 / 3, 1 / 4], [2 / 3, 1 / 3, 3 / 4]])
    holes = {"oct": [[0, 0, 0], [0, 0, 1 / 2]],
             "tet+": [[1 / 3, 2 / 3, 5 / 8], [2 / 3, 1 / 3, 1 / 8]],
             "tet-": [[1 / 3, 2 / 3, 7 / 8], [2 / 3, 1 / 3, 3 / 8]]}
    return _supercell_with_holes(cell, holes, supercell)


def ccp_anions(anion: str, a: float, supercell=1) -> tuple[Structure, dict[str, np.ndarray]]:
    """ccp (fcc) anion sublattice of cubic edge a, with its octahedral and T+ / T- tetrahedral holes."""
    fcc = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    cell = Structure(Lattice.cubic(a), [anion] * 4, fcc)
    holes = {"oct": (fcc + [.5, 0, 0]) % 1, "tet+": (fcc + .25) % 1, "tet-": (fcc + .75) % 1}
    return _supercell_with_holes(cell, holes, supercell)


def _supercell_with_holes(cell: Structure, holes: dict, supercell) -> tuple[Structure, dict[str, np.ndarray]]:
    big = cell.copy()
    big.make_supercell(supercell)
    out = {}
    for kind, frac in holes.items():
        marker = Structure(cell.lattice, ["H"] * len(frac), frac)
        marker.make_supercell(supercell)
        out[kind] = marker.frac_coords
    return big, out
