"""Refining a coarse probe grid where the percolation level is decided.

A coarse grid misses the saddle between two sites: two neighbouring points on either side of a ridge connect
below the ridge's height, and the barrier comes out low (LiF with SevenNet-0: 0.53 eV at 0.5 Å, 0.68 eV at 0.25 and
0.15 Å). Halving the spacing everywhere costs 8× the probes. Here the grid is halved, the coarse values are kept at
the points both grids share, every other fine point is estimated by the highest finite coarse value of the cell it
lies in, and only the fine points whose estimate lies within a band of the current percolation level of the
refined dimension (a ridge the coarse grid stepped over decides the level there) or of the minimum (a deeper well
between coarse points raises the barrier) are computed; the level is then taken again on the new map and the step
repeats until no point is left to compute. A point left out would change the result only if the landscape moved by
more than the band within half a coarse cell of its estimate (the band is the safety margin; 0.3 eV by default).
"""

from itertools import product

import numpy as np

from kernels.percolation import percolation_barriers


def upsampled_estimate(coarse: np.ndarray) -> np.ndarray:
    """The (2n_a, 2n_b, 2n_c) grid of a periodic (n_a, n_b, n_c) grid: the coarse value where the points coincide
    (even indices), elsewhere the largest finite coarse value among the 2, 4 or 8 coarse points around it (+inf when
    all of them are +inf)."""
    c = np.where(np.isfinite(coarse), coarse, -np.inf)
    fine = np.empty(tuple(2 * n for n in coarse.shape))
    for parity in product((0, 1), repeat=3):
        best = np.full(coarse.shape, -np.inf)
        for step in product(*[(0, 1) if p else (0,) for p in parity]):
            best = np.maximum(best, np.roll(c, shift=[-s for s in step], axis=(0, 1, 2)))
        fine[parity[0]::2, parity[1]::2, parity[2]::2] = best
    fine[np.isneginf(fine)] = np.inf
    return fine


def percolation_level(energy: np.ndarray, connectivity: int = 26, dimension: int = 1) -> float:
    """The absolute level [eV] at which the grid first percolates in ``dimension`` (1, 2 or 3) D: its minimum plus
    that dimension's barrier; NaN when it never does. Refinement works around the level of the barrier the verdict
    reads: the highest finite level (3D, often eV above the 1D one) leaves the 1D saddle at the coarse resolution."""
    barrier = percolation_barriers(energy, connectivity)[dimension - 1]
    if not np.isfinite(barrier):
        return float("nan")
    return float(np.min(energy) + barrier)


def points_to_refine(estimate: np.ndarray, computed: np.ndarray, excluded: np.ndarray, level: float,
                     band: float) -> np.ndarray:
    """Mask of the fine points still to compute: not computed, not excluded, and estimated within ``band`` of the
    percolation ``level`` (where a ridge the coarse grid stepped over decides it) or within ``band`` of the minimum
    (where a deeper well between coarse points would raise the barrier)."""
    if not np.isfinite(level):
        return np.zeros(estimate.shape, bool)
    lowest = np.min(estimate)
    near = (np.abs(estimate - level) <= band) | (estimate <= lowest + band)
    return ~computed & ~excluded & near
