"""Base of the adapters whose package builds graphs from one structure at a time on the host (CHGNet).

The batched state is copied to the host, split into systems, each converted with the package's own converter, and
the graphs evaluated in one model call. This is the host-side bottleneck that batched on-device graphs remove.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch_sim as ts
from torch_sim.models.interface import ModelInterface


class StructureBatchModel(ModelInterface):
    """Base for adapters whose package builds graphs from one structure at a time: the batched state is split
    into systems, each converted with the package's own converter, and the graphs evaluated in one call."""

    def __init__(self, device: torch.device, dtype: torch.dtype):
        super().__init__()
        self._device, self._dtype = device, dtype
        self._compute_stress = self._compute_forces = True
        self._memory_scales_with = "n_atoms_x_density"

    @staticmethod
    def _systems(state: ts.SimState) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per system: atomic numbers (n,), Cartesian positions (n, 3) [Å], cell rows (3, 3) [Å], pbc (3,)."""
        pos, cell = state.positions.detach().cpu().numpy(), state.row_vector_cell.detach().cpu().numpy()
        z = state.atomic_numbers.detach().cpu().numpy()
        bounds = np.concatenate([[0], np.cumsum(state.n_atoms_per_system.cpu().numpy())])
        pbc = state.pbc.detach().cpu().numpy() if torch.is_tensor(state.pbc) else np.array([state.pbc] * 3)
        for i in range(state.n_systems):
            sl = slice(bounds[i], bounds[i + 1])
            yield z[sl], pos[sl], cell[i], np.broadcast_to(pbc, (3,))
