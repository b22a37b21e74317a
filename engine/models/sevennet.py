"""SevenNet (Park et al., J. Chem. Theory Comput. 20, 4857 (2024)) through ``sevenn.torchsim.SevenNetModel``;
the pretrained weights (7net-0, 7net-l3i5, 7net-mf-0) ship inside the ``sevenn`` wheel.

Energy-only surgery: SevenNet computes forces and stress by autograd inside its module (``force_output``). Probe
grids need energies alone, so :func:`energy_only` swaps that module for one that returns zeros of the right shapes:
exact for energies, and the backward pass (about half the cost) is gone.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from engine.models.base import LoadedModel, ModelUnavailableError, sha256_of

_SEVENNET_NAMES = {"7net-0", "7net-0_11july2024", "7net-0_22may2024", "7net-l3i5", "7net-mf-0"}


def load_sevennet(cfg, device, dtype) -> LoadedModel:
    from sevenn.torchsim import SevenNetModel
    from sevenn.util import pretrained_name_to_path

    name = str(cfg.get("path") or cfg.name)
    try:
        path = name if Path(name).exists() else pretrained_name_to_path(name)
    except Exception as exc:
        raise ModelUnavailableError(
            f"SevenNet model {name!r} is neither a checkpoint file nor a pretrained name shipped with sevenn "
            f"({sorted(_SEVENNET_NAMES)}); pass model.path=/path/to/checkpoint.pth") from exc
    if dtype != torch.float32:
        raise ValueError("SevenNet runs in float32 only (sevenn's torch-sim wrapper and its e3nn constants); "
                         "set model.dtype=float32")
    model = SevenNetModel(path, modal=cfg.get("modal"), device=device, dtype=torch.float32)
    return LoadedModel(model, name, "sevennet", frozenset(int(z) for z in model.type_map),
                       float(model.cutoff), sha256_of(path), str(path))



def energy_only(loaded: LoadedModel):
    """A deep copy of a SevenNet model whose force/stress output is replaced by zeros (no autograd)."""
    model = copy.deepcopy(loaded.model)
    model.model._modules["force_output"] = _SevenNetNoForces()
    return model


class _SevenNetNoForces(torch.nn.Module):
    """Stands in for SevenNet's force/stress output: zeros of the right shapes (its torch-sim wrapper reads
    both keys), no autograd."""

    def forward(self, data):
        from sevenn import _keys as key

        data[key.PRED_FORCE] = torch.zeros_like(data[key.POS])
        data[key.PRED_STRESS] = data[key.PRED_TOTAL_ENERGY].new_zeros(data[key.PRED_TOTAL_ENERGY].shape[0], 6)
        return data
