"""matgl potentials (TensorNet-MatPES-PBE, M3GNet) as torch-sim models, and matgl's loader with a hub check."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch_sim as ts
from ase import units
from ase.data import chemical_symbols
from torch_sim.models.interface import ModelInterface
from torch_sim.neighbors import torchsim_nl

from engine.models.base import (
    LoadedModel,
    ModelUnavailableError,
    graph_cell,
    hub_reachable,
    is_molecular,
    sha256_of,
)

SHIPPED = Path(__file__).parent / "weights" / "matgl"  # matgl's small pretrained models, shipped (README there)


def shipped_folder(source: str) -> Path | None:
    """The shipped copy of the matgl model named ``source`` (engine/models/weights/matgl/), if there is one."""
    folder = SHIPPED / Path(source).name
    return folder if not Path(source).is_dir() and (folder / "model.json").is_file() else None


def load_matgl(source: str, what: str, how: str):
    """``matgl.load_model(source)``: a folder; a name of a shipped model (its shipped folder); or another name, which
    matgl downloads. ``what`` and ``how`` word the error. A name with the hub out of reach fails at once: matgl's hub
    client would retry for about 45 s first."""
    import matgl

    source = str(shipped_folder(source) or source)
    if not Path(source).is_dir() and not hub_reachable():
        raise ModelUnavailableError(f"{what} {source!r} is no local folder and the model hub is out of reach. {how}")
    try:
        return matgl.load_model(source)
    except Exception as exc:  # matgl raises assorted errors when offline
        raise ModelUnavailableError(f"{what} {source!r} could not be loaded ({type(exc).__name__}). {how}") from exc


def batched_graph(state: ts.SimState, element_index: torch.Tensor, cutoff: float):
    """matgl's PyG graph of a whole batch, built where the state lives: edges and their periodic images from torch-sim's
    neighbour list (every ordered pair within ``cutoff`` [Å], as matgl's ``Atoms2Graph`` makes them), node types from
    ``element_index`` (atomic number -> index into the model's element list), fractional coordinates, and the batch
    vector. A molecule works in the unit cell (:func:`engine.models.base.graph_cell`). Returns (graph, lattice
    (n_systems, 3, 3) [Å, rows])."""
    from torch_geometric.data import Batch

    row_cell = graph_cell(state)
    pbc = state.pbc if torch.is_tensor(state.pbc) else torch.tensor([state.pbc] * 3, device=state.device)
    edges, _, images = torchsim_nl(state.positions, row_cell, pbc, torch.tensor(cutoff, dtype=row_cell.dtype),
                                   state.system_idx)
    frac = torch.einsum("ni,nij->nj", state.positions, torch.linalg.inv(row_cell)[state.system_idx])
    counts = state.n_atoms_per_system
    graph = Batch(edge_index=edges, pbc_offset=images.to(row_cell.dtype), node_type=element_index[state.atomic_numbers],
                  frac_coords=frac, batch=state.system_idx, num_nodes=state.n_atoms,
                  ptr=torch.cat([counts.new_zeros(1), counts.cumsum(0)]))
    graph._num_graphs = int(row_cell.shape[0])
    return graph, row_cell


class MatGLModel(ModelInterface):
    """torch-sim adapter for matgl potentials (``matgl.apps.pes.Potential``: M3GNet, TensorNet, CHGNet-matgl): one
    batched graph per call, built on the device (:func:`batched_graph`), fed to the package's own ``Potential``.
    Stresses are converted from GPa to eV/Å³ as in ``matgl.ext.ase.PESCalculator(stress_unit="eV/A3")``. With
    ``energy_only`` the potential computes no forces or stresses and runs without autograd (probe grids)."""

    def __init__(self, potential, device: torch.device, dtype: torch.dtype = torch.float32, energy_only: bool = False):
        super().__init__()
        self._device, self._dtype = device, dtype
        self._compute_stress = self._compute_forces = not energy_only
        self._memory_scales_with = "n_atoms_x_density"
        if energy_only:
            potential = copy.copy(potential)  # shares the weights; only the flags differ
            potential.calc_forces = potential.calc_stresses = False
        self.potential = potential.to(device=device, dtype=dtype).eval()
        self.cutoff = float(potential.model.cutoff)
        index = torch.full((119,), -1, dtype=torch.long)
        for k, symbol in enumerate(potential.model.element_types):
            index[chemical_symbols.index(symbol)] = k
        self.element_index = index.to(device)

    def forward(self, state: ts.SimState, **kwargs) -> dict[str, torch.Tensor]:
        graph, lattice = batched_graph(state, self.element_index, self.cutoff)
        state_attr = lattice.new_zeros(lattice.shape[0], 2)  # matgl's default state attributes
        if not self._compute_forces:
            with torch.no_grad():
                return {"energy": self.potential(graph, lattice, state_attr)[0].reshape(-1)}
        with torch.enable_grad():
            energy, forces, stress, *_ = self.potential(graph, lattice, state_attr)
        stress = stress.detach().reshape(-1, 3, 3) * units.GPa
        return {"energy": energy.detach().reshape(-1), "forces": forces.detach(),
                "stress": torch.zeros_like(stress) if is_molecular(state) else stress}


def load_matgl_model(cfg, device, dtype) -> LoadedModel:
    source = str(cfg.get("path") or cfg.name)
    how = ("Offline, give a local folder: model.path=/path/to/<NAME>/ holding model.pt, state.pt and model.json "
           "(the files of matgl's pretrained_models/<NAME>, which matgl.load_model(NAME) downloads when online).")
    if cfg.get("path") and not Path(source).is_dir():
        raise ModelUnavailableError(f"matgl model folder {source} does not exist. {how}")
    potential = load_matgl(source, "matgl model", how)
    source = str(shipped_folder(source) or source)
    symbols = potential.model.element_types
    checksum = sha256_of(source) if Path(source).exists() else ""
    return LoadedModel(MatGLModel(potential, device, dtype), Path(str(cfg.name)).name, "matgl",
                       frozenset(chemical_symbols.index(s) for s in symbols), float(potential.model.cutoff),
                       checksum, source)
