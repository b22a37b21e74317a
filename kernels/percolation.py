"""Percolation (migration) barriers of a mobile ion on a periodic potential-energy grid.

The barrier for ``d``-dimensional percolation is the lowest level ``E*`` above the grid minimum at which one
connected region of ``{E <= E*}`` reaches its own periodic images along ``d`` independent lattice directions
(``d = 1``: a channel, ``2``: a sheet, ``3``: a 3D network). Points with ``E = +inf`` (excluded, too close to an
atom) are never part of a region.

Algorithm. Picture adding grid points in order of energy with a union-find whose nodes remember their offset
(in whole cells) to their root: an edge between two points of one cluster whose offsets disagree closes a loop
around the torus, and the loop's lattice vector joins the cluster's *wrap lattice*; the cluster percolates in as
many dimensions as that lattice has rank. Done point by point in Python this is far too slow for 10^6 points, so
the same thing is computed level-set by level-set, vectorised:

* inside the cell, ``scipy.ndimage.label`` finds the clusters of ``{E <= level}`` (no edge crosses a cell face,
  so all offsets inside a label are zero);
* only the edges that cross a cell face (precomputed once per grid shape, with their lattice shift) go into
  the union-find with offsets, now between labels — a few thousand nodes instead of 10^6 points;
* the dimensionality can only grow with the level (regions only grow and merge), so the level at which it first
  reaches 1, 2 and 3 is found by bisection over the sorted grid energies: exactly the level the point-by-point
  union-find would stop at, in about 20 labellings per dimension.

Connectivity: 26 neighbours (faces, edges and corners of the grid cell; the convention of Maevskiy et al.'s
reference code) or 6 (faces only).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage


def half_offsets(connectivity: int) -> list[tuple[int, int, int]]:
    """One of each pair ``±d`` of neighbour steps."""
    if connectivity == 6:
        return [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
    if connectivity == 26:
        steps = [d for d in itertools.product((-1, 0, 1), repeat=3) if d != (0, 0, 0)]
        return [d for d in steps if next(x for x in d if x != 0) > 0]
    raise ValueError(f"connectivity must be 6 or 26, not {connectivity}")


class PeriodicClusters:
    """Clusters of a boolean mask on a periodic grid of one shape, and how many independent directions the
    best-connected one wraps around."""

    def __init__(self, shape: tuple[int, int, int], connectivity: int = 26):
        self.shape = tuple(int(n) for n in shape)
        self.structure = ndimage.generate_binary_structure(3, 1 if connectivity == 6 else 3)
        n = np.array(self.shape)
        idx = np.indices(self.shape).reshape(3, -1).T
        p, q, shift = [], [], []
        for d in half_offsets(connectivity):
            nb = idx + np.array(d)
            s = np.floor_divide(nb, n)
            crossing = (s != 0).any(axis=1)
            p.append(np.ravel_multi_index(idx[crossing].T, self.shape))
            q.append(np.ravel_multi_index((nb[crossing] % n).T, self.shape))
            shift.append(s[crossing])
        self.p, self.q = np.concatenate(p), np.concatenate(q)
        # each edge's lattice shift s (components -1, 0, 1) as the base-3 code of s + 1, 0..26
        self.shift_code = ((np.concatenate(shift).astype(np.int64) + 1) * np.array([9, 3, 1])).sum(axis=1)

    def dimensionality(self, mask: np.ndarray) -> int:
        """Largest number of independent lattice directions along which one cluster of ``mask`` percolates."""
        labels, n_labels = ndimage.label(mask, structure=self.structure)
        if n_labels == 0:
            return 0
        flat = labels.ravel()
        la, lb = flat[self.p], flat[self.q]
        both = (la > 0) & (lb > 0)
        if not both.any():
            return 0
        # distinct (label a, label b, shift) triples, deduplicated as one int64 key (np.unique on rows is slow)
        key = np.unique((la[both] * (n_labels + 1) + lb[both]) * 27 + self.shift_code[both])
        code, pair = key % 27, key // 27
        shift = np.stack([code // 9, code // 3 % 3, code % 3], axis=1) - 1
        edges = np.column_stack([pair // (n_labels + 1), pair % (n_labels + 1), shift])
        return wrap_rank(edges)


def wrap_rank(edges: np.ndarray) -> int:
    """Largest rank of a cluster's wrap lattice, from edges ``(a, b, s1, s2, s3)``: node ``b`` shifted by the
    lattice vector ``s`` touches node ``a``. A union-find whose nodes keep their offset to their root."""
    parent: dict[int, int] = {}
    offset: dict[int, tuple[int, int, int]] = {}  # position of a node relative to its parent [cells]
    basis: dict[int, list[tuple[int, int, int]]] = {}

    def find(x: int) -> tuple[int, tuple[int, int, int]]:
        chain = []
        while parent.setdefault(x, x) != x:
            chain.append(x)
            x = parent[x]
        acc = (0, 0, 0)
        for node in reversed(chain):  # path compression; offsets summed from the root down
            o = offset[node]
            acc = (acc[0] + o[0], acc[1] + o[1], acc[2] + o[2])
            offset[node], parent[node] = acc, x
        return x, (offset[chain[0]] if chain else (0, 0, 0))

    def add(root: int, vectors) -> int:
        vecs = basis.setdefault(root, [])
        for v in vectors:
            if len(vecs) < 3 and any(v) and np.linalg.matrix_rank(np.array([*vecs, v])) > len(vecs):
                vecs.append(v)
        return len(vecs)

    best = 0
    for a, b, s1, s2, s3 in edges.tolist():
        ra, oa = find(a)
        rb, ob = find(b)
        loop = (oa[0] + s1 - ob[0], oa[1] + s2 - ob[1], oa[2] + s3 - ob[2])
        if ra == rb:
            best = max(best, add(ra, [loop]))
        else:
            parent[rb], offset[rb] = ra, loop
            best = max(best, add(ra, basis.pop(rb, [])))
        if best == 3:
            break
    return best


def percolation_barriers(energy: np.ndarray, connectivity: int = 26) -> np.ndarray:
    """Barriers [eV, relative to the grid minimum] for 1D, 2D and 3D percolation of a periodic energy grid
    ``energy[i, j, k]`` (eV; +inf for excluded points); +inf where the landscape never percolates so."""
    energy = np.asarray(energy, dtype=float)
    barriers = np.full(3, np.inf)
    finite = np.isfinite(energy)
    if not finite.any():
        return barriers
    levels = np.unique(energy[finite])
    clusters = PeriodicClusters(energy.shape, connectivity)
    known: dict[int, int] = {}

    def dim_at(i: int) -> int:
        if i not in known:
            known[i] = clusters.dimensionality(energy <= levels[i])
        return known[i]

    top = dim_at(len(levels) - 1)
    lo = 0
    for k in range(1, top + 1):
        hi = len(levels) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if dim_at(mid) >= k:
                hi = mid
            else:
                lo = mid + 1
        barriers[k - 1] = levels[lo] - levels[0]
    return barriers
