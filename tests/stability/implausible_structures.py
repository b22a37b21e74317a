"""Built test structures with implausible Li environments (issue 18's examples), made from geometry alone."""

from __future__ import annotations

import numpy as np
from pymatgen.core import Lattice, Structure


def li2so4_square_planar() -> Structure:
    """Li2SO4 in I4_1/amd (origin choice 2) with S on 4b, O on 16h (0, y, z), Li on 8c (0, 0, 0): Li sits on an
    inversion centre between four O at 1.96 Å, so its LiO4 unit is planar. a, c, y, z were fitted (once, by least
    squares) to S–O 1.48 Å, Li–O 1.96 Å, next Li–O ≥ 2.9 Å; the result has square-planar LiO4 and regular SO4."""
    from pyxtal.symmetry import Group

    a, c, y, z = 5.22409, 10.24457, 0.016736, 0.293015
    wyckoff = {wp.get_label(): wp for wp in Group(141).Wyckoff_positions}
    species, coords = [], []
    for element, label, xyz in (("S", "4b", (0, 0.25, 0.375)), ("O", "16h", (0, y, z)), ("Li", "8c", (0, 0, 0))):
        orbit: list[np.ndarray] = []
        for p in np.mod(wyckoff[label].apply_ops(np.array(xyz, float)), 1.0):
            if not any(np.allclose(np.mod(p - q + 0.5, 1) - 0.5, 0, atol=1e-6) for q in orbit):
                orbit.append(p)
        species += [element] * len(orbit)
        coords += orbit
    return Structure(Lattice.tetragonal(a, c), species, coords)


def li3mgf5_trigonal() -> Structure:
    """A Li3MgF5 cell with trigonal-planar LiF3: three h-BN-like LiF sheets (Li–F 1.85 Å, 3.2 Å apart) and one
    CdI2-like MgF2 layer (Mg–F 2.0 Å) stacked along c in a hexagonal cell."""
    d_lif = 1.85
    a = np.sqrt(3) * d_lif
    gap, half = 3.2, 0.8  # Å between layers; F of the MgF2 layer above/below Mg
    c = 3 * gap + 2 * half + gap
    sites = []
    for k, shift in enumerate(((1 / 3, 2 / 3), (2 / 3, 1 / 3), (1 / 3, 2 / 3))):
        other = (shift[1], shift[0])
        sites += [("Li", (*shift, k * gap / c)), ("F", (*other, k * gap / c))]
    zm = (2 * gap + gap + half) / c
    sites += [("Mg", (0, 0, zm)), ("F", (1 / 3, 2 / 3, zm + half / c)), ("F", (2 / 3, 1 / 3, zm - half / c))]
    return Structure(Lattice.hexagonal(a, c), [s for s, _ in sites], [p for _, p in sites])
