"""CHGNet (Deng et al., Nat. Mach. Intell. 5, 1031 (2023)) as a torch-sim model; weights ship in ``chgnet``."""

from __future__ import annotations

from pathlib import Path

import torch
import torch_sim as ts
from ase import units

from engine.models.base import LoadedModel, sha256_of
from engine.models.host_graphs import StructureBatchModel


class CHGNetModel(StructureBatchModel):
    """torch-sim adapter for CHGNet (Deng et al., Nat. Mach. Intell. 5, 1031 (2023)); stresses converted from
    CHGNet's GPa to eV/Å³ exactly as ``chgnet.model.dynamics.CHGNetCalculator`` does."""

    def __init__(self, model, device: torch.device, dtype: torch.dtype = torch.float32):
        if dtype != torch.float32:
            raise ValueError("CHGNet runs in float32 only (its graph code hard-codes torch.float32)")
        super().__init__(device, dtype)
        self.model = model.to(device).eval()

    def forward(self, state: ts.SimState, **kwargs) -> dict[str, torch.Tensor]:
        from pymatgen.core import Lattice, Structure

        graphs = []
        for z, pos, cell, _ in self._systems(state):
            structure = Structure(Lattice(cell), z, pos, coords_are_cartesian=True)
            graphs.append(self.model.graph_converter(structure).to(self._device))
        out = self.model(graphs, task="efs")
        n_atoms = state.n_atoms_per_system.to(self._device)
        energy = out["e"] * n_atoms if self.model.is_intensive else out["e"]
        return {
            "energy": energy.detach().to(self._dtype),
            "forces": torch.cat(out["f"]).detach().to(self._dtype),
            "stress": (torch.stack(list(out["s"])) * units.GPa).detach().to(self._dtype),
        }


def load_chgnet(cfg, device, dtype) -> LoadedModel:
    import chgnet
    from chgnet.model import CHGNet

    version = str(cfg.name).removeprefix("chgnet-").removeprefix("CHGNet-")
    if cfg.get("path"):
        raw = CHGNet.from_file(cfg.path, verbose=False)
        source = str(cfg.path)
    else:
        raw = CHGNet.load(model_name=version, use_device="cpu", verbose=False)
        source = str(Path(chgnet.__file__).parent / "pretrained" / version)
    n_elements = raw.atom_embedding.embedding.weight.shape[0]
    checksum = sha256_of(source) if Path(source).exists() else ""
    return LoadedModel(CHGNetModel(raw, device, dtype), f"CHGNet-{version}", "chgnet",
                       frozenset(range(1, n_elements + 1)), float(raw.graph_converter.atom_graph_cutoff),
                       checksum, source)
