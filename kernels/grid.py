"""Regular probe grids over a periodic cell, with excluded points and space-group reduction.

A grid has ``shape = (n1, n2, n3)`` points at fractional coordinates ``origin + (i/n1, j/n2, k/n3)``; point ``(i, j, k)``
has the flat index ``(i * n2 + j) * n3 + k`` (C order, so ``energies.reshape(shape)`` is the 3D map).

Symmetry reduction: for a frozen structure the energy of a probe is invariant under the structure's space group,
``E(W x + w) = E(x)``. spglib gives the operations ``(W, w)`` in the cell's own fractional basis; an operation maps
the grid onto itself when ``w * n`` is integral and every axis it mixes has the same ``n`` — the grid shape is
chosen so that this holds for as many operations as possible, and operations that still do not map it are simply
not used (the reduction is then smaller, never wrong). Each point's orbit is named by its smallest flat index;
only one point per orbit is evaluated and the energy is copied to the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import spglib


@dataclass
class ProbeGrid:
    """A periodic grid of N = n_a·n_b·n_c probe points over a frozen cell, reduced to M symmetry orbits."""
    shape: tuple[int, int, int]
    origin: np.ndarray  # (3,) fractional coordinates of grid point (0, 0, 0)
    orbit: np.ndarray  # (N,) index into ``representatives`` of each grid point's orbit
    representatives: np.ndarray  # (M,) flat index of one point per orbit
    excluded: np.ndarray  # (M,) True where the representative lies closer than the cutoff to an atom
    n_operations: int  # symmetry operations used (1 = no reduction)

    @property
    def n_points(self) -> int:
        return int(np.prod(self.shape))

    @property
    def n_evaluated(self) -> int:
        """Points whose energy must be computed: one per orbit, excluded orbits left out."""
        return int((~self.excluded).sum())

    def frac_coords(self, flat_index: np.ndarray | None = None) -> np.ndarray:
        """Fractional coordinates of the given points (default: the representatives that must be evaluated)."""
        if flat_index is None:
            flat_index = self.representatives[~self.excluded]
        index = np.stack(np.unravel_index(flat_index, self.shape), axis=1)
        return (index / np.array(self.shape, dtype=float) + self.origin) % 1.0

    def expand(self, evaluated_energy: np.ndarray) -> np.ndarray:
        """The full 3D energy map from the energies of :meth:`frac_coords`'s points; excluded points get +inf."""
        per_orbit = np.full(len(self.representatives), np.inf)
        per_orbit[~self.excluded] = evaluated_energy
        return per_orbit[self.orbit].reshape(self.shape)


def symmetry_operations(lattice: np.ndarray, frac_coords: np.ndarray, numbers: np.ndarray,
                        symprec: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Space-group operations of a structure from spglib, in its own fractional basis but about the origin of the
    space group's standard setting: (rotations (k, 3, 3) integer, translations (k, 3), origin (3,) fractional).

    Relative to that origin the translations are the tabulated rational ones (1/2, 1/3, 1/4, ...), so a grid
    started there can be mapped onto itself; relative to an arbitrary origin (an inversion centre at a generic
    point, say) they need not be. Identity only when spglib finds no symmetry."""
    cell = (np.asarray(lattice), np.asarray(frac_coords), np.asarray(numbers))
    data = spglib.get_symmetry_dataset(cell, symprec=symprec)
    if data is None:
        return np.eye(3, dtype=int)[None], np.zeros((1, 3)), np.zeros(3)
    rotations = np.asarray(data.rotations, dtype=int)
    # x_std = P x + p: the standard origin (x_std = 0) sits at x0 = -P^-1 p in the input basis
    origin = (-np.linalg.solve(np.asarray(data.transformation_matrix), np.asarray(data.origin_shift))) % 1.0
    # y = x - x0:  y' = W y + (W x0 + w - x0)
    translations = (np.asarray(data.translations) + rotations @ origin - origin) % 1.0
    return rotations, translations, origin


def compatible_shape(lattice: np.ndarray, spacing: float, rotations: np.ndarray,
                     translations: np.ndarray) -> tuple[int, int, int]:
    """The smallest grid with spacing at most ``spacing`` [Å] along each lattice vector that the operations map
    onto itself: axes mixed by a rotation get the same ``n``, and ``n`` is a multiple of the denominators of the
    fractional translations along that axis."""
    lengths = np.linalg.norm(np.asarray(lattice), axis=1)
    n = [max(1, math.ceil(length / spacing - 1e-9)) for length in lengths]
    step = [1, 1, 1]
    for w in translations:
        for ax in range(3):
            den = Fraction(float(w[ax]) % 1.0).limit_denominator(12).denominator
            step[ax] = math.lcm(step[ax], den)
    group = list(range(3))  # axes that must share n (tiny union-find over 3 axes)

    def root(a: int) -> int:
        while group[a] != a:
            a = group[a]
        return a

    for rot in rotations:
        for i in range(3):
            for j in range(3):
                if i != j and rot[i, j] != 0:
                    group[root(i)] = root(j)
    shape = [0, 0, 0]
    for r in {root(a) for a in range(3)}:
        members = [a for a in range(3) if root(a) == r]
        s = math.lcm(*(step[a] for a in members))
        size = max(n[a] for a in members)
        for a in members:
            shape[a] = s * math.ceil(size / s)
    return tuple(shape)


def _grid_operations(shape, rotations, translations, tol: float = 1e-4):
    """(rotations, integer translations in grid steps) of the operations that map the grid onto itself."""
    n = np.array(shape)
    keep_w, keep_t = [], []
    for rot, w in zip(rotations, translations):
        t = w * n
        if np.abs(t - np.round(t)).max() > tol:
            continue
        # W maps grid index i to n * W (i / n): integral iff W_ab * n_a / n_b is integral for all a, b
        ratio = rot * n[:, None] / n[None, :]
        if np.abs(ratio - np.round(ratio)).max() > tol:
            continue
        keep_w.append(np.round(ratio).astype(np.int64))
        keep_t.append(np.round(t).astype(np.int64))
    return keep_w, keep_t


def orbits(shape: tuple[int, int, int], rotations: np.ndarray, translations: np.ndarray) -> tuple[np.ndarray, int]:
    """Smallest flat index in each grid point's orbit, and the number of operations used."""
    n = np.array(shape, dtype=np.int64)
    idx = np.stack(np.unravel_index(np.arange(int(np.prod(n))), shape), axis=1).astype(np.int64)
    ops_w, ops_t = _grid_operations(shape, rotations, translations)
    rep = np.ravel_multi_index(idx.T, shape)
    for rot, t in zip(ops_w, ops_t):
        image = (idx @ rot.T + t) % n
        np.minimum(rep, np.ravel_multi_index(image.T, shape), out=rep)
    return rep, max(1, len(ops_w))


def points_near_atoms(lattice: np.ndarray, atom_frac: np.ndarray, point_frac: np.ndarray,
                      radius: float | np.ndarray) -> np.ndarray:
    """True for every point closer than ``radius`` [Å] to some atom (one radius, or one per atom), periodic images
    included."""
    radii = np.broadcast_to(np.asarray(radius, dtype=float), (len(atom_frac),))
    if len(point_frac) == 0 or len(atom_frac) == 0 or radii.max() <= 0:
        return np.zeros(len(point_frac), dtype=bool)
    from pymatgen.optimization.neighbors import find_points_in_spheres

    lattice = np.ascontiguousarray(lattice, dtype=float)
    atoms_cart = np.ascontiguousarray(np.asarray(atom_frac) @ lattice, dtype=float)
    points_cart = np.ascontiguousarray(np.asarray(point_frac) @ lattice, dtype=float)
    centers, atoms, _, distances = find_points_in_spheres(
        atoms_cart, points_cart, r=float(radii.max()), pbc=np.array([1, 1, 1], dtype=np.int64), lattice=lattice,
        tol=1e-8)
    inside = np.asarray(distances) < radii[np.asarray(atoms, dtype=np.int64)]
    near = np.zeros(len(point_frac), dtype=bool)
    near[np.asarray(centers, dtype=np.int64)[inside]] = True
    return near


def probe_grid(lattice: np.ndarray, frac_coords: np.ndarray, numbers: np.ndarray, spacing: float = 0.25,
               exclusion_radius: float | np.ndarray = 1.2, use_symmetry: bool = True, symprec: float = 1e-3,
               shape: tuple[int, int, int] | None = None, origin: np.ndarray | None = None) -> ProbeGrid:
    """Probe grid over a frozen structure (lattice rows in Å, fractional atom coordinates, atomic numbers):
    spacing at most ``spacing`` [Å], points within ``exclusion_radius`` [Å] (one, or one per atom) of an atom
    excluded, and (optionally)
    one point per orbit of the structure's space group. ``shape`` and ``origin`` force the grid (e.g. to compare a
    reduced and a full grid point by point)."""
    if use_symmetry:
        if origin is not None:
            raise ValueError("a forced origin is only for grids without symmetry reduction")
        rotations, translations, origin = symmetry_operations(lattice, frac_coords, numbers, symprec)
    else:
        rotations, translations = np.eye(3, dtype=int)[None], np.zeros((1, 3))
        origin = np.zeros(3) if origin is None else np.asarray(origin, dtype=float)
    if shape is None:
        shape = compatible_shape(lattice, spacing, rotations, translations)
    shape = tuple(int(v) for v in shape)
    rep_of_point, n_ops = orbits(shape, rotations, translations)
    representatives, orbit = np.unique(rep_of_point, return_inverse=True)
    grid = ProbeGrid(shape, origin, orbit.astype(np.int64), representatives, np.zeros(len(representatives), bool),
                     n_ops)
    grid.excluded = points_near_atoms(lattice, frac_coords, grid.frac_coords(representatives), exclusion_radius)
    return grid
