"""A near-free analytic potential for measuring the engine's own cost, and for tests that need a model whose answer is
known in closed form.

Every atom sits in an isotropic harmonic well at the nearest point of a cubic lattice of spacing ``a`` [Å]:

    E = ½ k Σ_i |r_i − a·round(r_i / a)|²,   F_i = −k (r_i − a·round(r_i / a)),   σ = 0.

A few elementwise operations per atom: on any device its cost is negligible beside the engine's work around it, so a
run with it measures exactly what would dominate on a GPU where a uMLIP step takes milliseconds.
"""

from __future__ import annotations

import torch
import torch_sim as ts
from torch_sim.models.interface import ModelInterface

from engine.models.base import LoadedModel


class LatticeWellModel(ModelInterface):
    """Harmonic wells [k in eV/Å²] at the points of a cubic lattice of spacing ``spacing`` [Å]; zero stress."""

    def __init__(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64,
                 spring: float = 10.0, spacing: float = 1.0):
        super().__init__()
        self._device, self._dtype = torch.device(device), dtype
        self._compute_stress = self._compute_forces = True
        self._memory_scales_with = "n_atoms"
        self.spring, self.spacing = spring, spacing

    def forward(self, state: ts.SimState, **kwargs) -> dict[str, torch.Tensor]:
        d = state.positions - self.spacing * torch.round(state.positions / self.spacing)
        per_atom = 0.5 * self.spring * (d * d).sum(dim=1)
        n_systems = state.cell.shape[0]  # state.n_systems would run torch.unique over every atom
        energy = torch.zeros(n_systems, dtype=per_atom.dtype, device=per_atom.device)
        energy.index_add_(0, state.system_idx, per_atom)
        return {"energy": energy, "forces": -self.spring * d,
                "stress": torch.zeros(n_systems, 3, 3, dtype=d.dtype, device=d.device)}


def load_analytic(cfg, device, dtype) -> LoadedModel:
    """``kind: analytic`` (``name`` is free): :class:`LatticeWellModel` with k = 10 eV/Å², a = 1 Å (hops between wells cost 1.25 eV), every element."""
    return LoadedModel(LatticeWellModel(device, dtype), str(cfg.name), "analytic", frozenset(range(1, 119)), 0.0, "",
                       "engine.models.analytic")
