"""Structures in and out of one batched torch-sim ``SimState`` (order preserved), and their space group."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch_sim as ts
from pymatgen.core import Structure


def spacegroup_number(structure: Structure, symprec: float = 0.1) -> int:
    """spglib's space-group number at ``symprec`` [Å] (0 when spglib finds none)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    if not (np.isfinite(structure.lattice.matrix).all() and np.isfinite(structure.cart_coords).all()):
        return 0  # spglib crashes the process on non-finite input
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return int(SpacegroupAnalyzer(structure, symprec=symprec).get_space_group_number())
    except Exception:  # noqa: BLE001
        return 0


def pack(structures: Sequence[Structure], device: torch.device | str = "cpu",
         dtype: torch.dtype = torch.float64) -> ts.SimState:
    """One batched ``SimState``; system ``i`` is ``structures[i]``."""
    return ts.io.structures_to_state(list(structures), device=torch.device(device), dtype=dtype)


def unpack(state: ts.SimState) -> list[Structure]:
    """Structures of a batched state in system order (the inverse of :func:`pack`)."""
    return ts.io.state_to_structures(state)
