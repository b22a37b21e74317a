"""Batched shortest interatomic distance with periodic images."""

import torch
from torch_sim.neighbors import torchsim_nl


def min_interatomic_distance(positions: torch.Tensor, row_cell: torch.Tensor, pbc: torch.Tensor,
                             system_idx: torch.Tensor, cutoff: float = 4.0) -> torch.Tensor:
    """Shortest distance [Å] between any two atoms (periodic images included) of each system.

    positions (n_atoms, 3) Å; row_cell (n_systems, 3, 3) with lattice vectors as rows; system_idx (n_atoms,).
    Systems with no pair closer than ``cutoff`` get +inf. An atom's own periodic image counts as a neighbour,
    so a cell shorter than ``cutoff`` along some axis is measured correctly.
    """
    n_systems = row_cell.shape[0]
    mapping, system_mapping, shifts = torchsim_nl(positions, row_cell, pbc, cutoff, system_idx)
    shift_vec = torch.einsum("pk,pkl->pl", shifts.to(positions.dtype), row_cell[system_mapping])
    d = (positions[mapping[1]] - positions[mapping[0]] + shift_vec).norm(dim=1)
    out = torch.full((n_systems,), float("inf"), dtype=positions.dtype, device=positions.device)
    return out.scatter_reduce(0, system_mapping, d, reduce="amin", include_self=True)
