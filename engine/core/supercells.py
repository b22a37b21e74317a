"""MD supercells: the smallest diagonal supercell of the Niggli-reduced cell that is large enough in atoms and in
every perpendicular width."""

from __future__ import annotations

import math

import numpy as np
from pymatgen.core import Lattice, Structure


def perpendicular_widths(matrix: np.ndarray) -> np.ndarray:
    """Distances [Å] between opposite faces of the cell spanned by the rows of ``matrix``: the (100), (010) and
    (001) interplanar spacings."""
    lattice = Lattice(matrix)
    return np.array([lattice.d_hkl(hkl) for hkl in np.eye(3, dtype=int)])


def width_supercell(matrix: np.ndarray, min_width: float) -> tuple[int, int, int]:
    """The repetitions (n_a, n_b, n_c) of the smallest diagonal supercell of the cell spanned by the rows of
    ``matrix`` whose perpendicular widths are all at least ``min_width`` [Å]."""
    return tuple(int(max(1, np.ceil(min_width / w - 1e-9))) for w in perpendicular_widths(matrix))


def md_supercell(structure: Structure, min_atoms: int, min_width: float) -> tuple[Structure, tuple[int, int, int]]:
    """Smallest diagonal supercell of the Niggli-reduced cell with ≥ ``min_atoms`` atoms and every perpendicular
    width ≥ ``min_width`` Å (it holds a sphere of diameter ``min_width``); ties go to the most isotropic one."""
    reduced = structure.get_reduced_structure("niggli")
    widths = perpendicular_widths(reduced.lattice.matrix)
    lower = np.maximum(1, np.ceil(min_width / widths - 1e-9)).astype(int)
    n = len(reduced)
    best = None
    span = math.ceil(max(1, min_atoms / n) ** (1 / 3)) + 1
    for i in range(lower[0], lower[0] + span + 1):
        for j in range(lower[1], lower[1] + span + 1):
            for k in range(lower[2], lower[2] + span + 1):
                if n * i * j * k < min_atoms:
                    continue
                w = widths * (i, j, k)
                key = (i * j * k, -w.min())
                if best is None or key < best[0]:
                    best = (key, (i, j, k))
    scale = best[1]
    return reduced.make_supercell(scale, in_place=False), scale
