"""matgl potentials (TensorNet-MatPES-PBE, M3GNet) as torch-sim models, and matgl's loader with a hub check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch_sim as ts
from ase import units
from ase.data import chemical_symbols

from engine.models.base import (
    LoadedModel,
    ModelUnavailableError,
    hub_reachable,
    sha256_of,
)
from engine.models.host_graphs import StructureBatchModel


def load_matgl(source: str, what: str, how: str):
    """``matgl.load_model(source)`` (a folder, or a name matgl downloads); ``what`` and ``how`` word the error. A
    name with the hub out of reach fails at once: matgl's hub client would retry for about 45 s first."""
    import matgl

    if not Path(source).is_dir() and not hub_reachable():
        raise ModelUnavailableError(f"{what} {source!r} is no local folder and the model hub is out of reach. {how}")
    try:
        return matgl.load_model(source)
    except Exception as exc:  # matgl raises assorted errors when offline
        raise ModelUnavailableError(f"{what} {source!r} could not be loaded ({type(exc).__name__}). {how}") from exc


class MatGLModel(StructureBatchModel):
    """torch-sim adapter for matgl potentials (``matgl.apps.pes.Potential``: M3GNet, TensorNet, CHGNet-matgl).
    Graphs come from matgl's own ``Atoms2Graph``; stresses are converted from GPa to eV/Å³ as in
    ``matgl.ext.ase.PESCalculator(stress_unit="eV/A3")``."""

    def __init__(self, potential, device: torch.device, dtype: torch.dtype = torch.float32):
        from matgl.ext.ase import Atoms2Graph

        super().__init__(device, dtype)
        self.potential = potential.to(device=device, dtype=dtype).eval()
        self.converter = Atoms2Graph(potential.model.element_types, potential.model.cutoff)

    def forward(self, state: ts.SimState, **kwargs) -> dict[str, torch.Tensor]:
        from ase import Atoms
        from torch_geometric.data import Batch

        graphs, lattices, state_attrs = [], [], []
        for z, pos, cell, pbc in self._systems(state):
            g, lat, state_attr = self.converter.get_graph(Atoms(numbers=z, positions=pos, cell=cell, pbc=pbc))
            # matgl's converter keeps fractional coordinates in float32; recompute them at the model's precision
            g.frac_coords = torch.as_tensor(np.linalg.solve(cell.T, pos.T).T, dtype=self._dtype)
            graphs.append(g)
            lattices.append(torch.as_tensor(cell, dtype=self._dtype).reshape(1, 3, 3))
            state_attrs.append(torch.as_tensor(np.asarray(state_attr), dtype=self._dtype).reshape(1, -1))
        batch = Batch.from_data_list(graphs).to(self._device)
        lat = torch.cat(lattices).to(self._device)
        state_attr = torch.cat(state_attrs).to(self._device)
        with torch.enable_grad():
            energy, forces, stress, *_ = self.potential(batch, lat, state_attr)
        return {
            "energy": energy.detach().reshape(-1),
            "forces": forces.detach(),
            "stress": (stress.detach().reshape(-1, 3, 3) * units.GPa),
        }


def load_matgl_model(cfg, device, dtype) -> LoadedModel:
    source = str(cfg.get("path") or cfg.name)
    how = ("Offline, give a local folder: model.path=/path/to/<NAME>/ holding model.pt, state.pt and model.json "
           "(the files of matgl's pretrained_models/<NAME>, which matgl.load_model(NAME) downloads when online).")
    if cfg.get("path") and not Path(source).is_dir():
        raise ModelUnavailableError(f"matgl model folder {source} does not exist. {how}")
    potential = load_matgl(source, "matgl model", how)
    symbols = potential.model.element_types
    checksum = sha256_of(source) if Path(source).exists() else ""
    return LoadedModel(MatGLModel(potential, device, dtype), Path(str(cfg.name)).name, "matgl",
                       frozenset(chemical_symbols.index(s) for s in symbols), float(potential.model.cutoff),
                       checksum, source)
