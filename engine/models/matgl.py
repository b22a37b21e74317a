"""matgl potentials (TensorNet-MatPES-PBE, M3GNet) as torch-sim models, and matgl's loader with a hub check.

matgl >= 2 runs on PyG and sums each edge's message into the edge's *source* node; the shipped M3GNet-MP-2021.2.8
and TensorNet-MatPES-PBE weights were trained under DGL, which summed into the *destination* node. Where a message
takes the two end nodes in order (M3GNet's node update (v_src, v_dst, e); TensorNet's embedding of the pair) the two
are different networks: as shipped, matgl 4.1.2 puts Li2O 3.4 eV/atom (M3GNet) and 1.6 eV/atom (TensorNet) above the
Materials Project's energy, while elemental Li and O2 come out right. :func:`trained_aggregation` restores the
trained convention on the loaded instance (the same defect and fix as MEGNet's in
:mod:`engine.filters.bandgap_models`), and every load checks the model against MP's Li2O (:func:`li2o_deviation`).
"""

from __future__ import annotations

import copy
import functools
import logging
from pathlib import Path

import torch
import torch_sim as ts
from ase import units
from ase.data import chemical_symbols
from torch_sim.models.interface import ModelInterface

from engine.models.base import (
    LoadedModel,
    ModelUnavailableError,
    graph_cell,
    hub_reachable,
    is_molecular,
    neighbour_list,
    sha256_of,
)

SHIPPED = Path(__file__).parent / "weights" / "matgl"  # matgl's small pretrained models, shipped (README there)
log = logging.getLogger(__name__)
# Li2O (antifluorite, Fm-3m), the Materials Project's PBE-relaxed conventional cell and raw GGA energy: mp-1960
# (entry mp-1960-GGA, uncorrected; in the MP Li-Co-Ni-O entry set the tests use)
LI2O_A = 4.658842  # Å
LI2O_MP_EV_PER_ATOM = -4.754533  # eV/atom
LI2O_TOLERANCE = 0.3  # eV/atom: far above a uMLIP's error on a training-set binary, far below the defect's 3.4


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


@functools.cache
def trained_classes() -> dict[type, type]:
    """{matgl's layer class: the same layer with the DGL-era convention its shipped weights were trained with}."""
    from matgl.layers._embedding import TensorEmbedding
    from matgl.layers._graph_convolution import M3GNetGraphConv
    from torch_geometric.utils import scatter

    class DestinationSumConv(M3GNetGraphConv):
        """M3GNet convolution whose node update sums the messages of the edges that end at a node (DGL's
        ``update_all(..., sum)`` on destination nodes)."""

        def node_update_(self, edge_index, edge_feat, node_feat, rbf, u_per_edge, num_nodes):
            vi, vj = node_feat[edge_index[0]], node_feat[edge_index[1]]
            parts = [vi, vj, edge_feat, u_per_edge] if self.include_state else [vi, vj, edge_feat]
            mess = self.node_update_func(torch.hstack(parts)) * self.node_weight_func(rbf)
            return scatter(mess, edge_index[1].long(), dim=0, dim_size=num_nodes, reduce="sum")

    class NeighbourFirstEmbedding(TensorEmbedding):
        """TensorNet embedding whose edge message embeds (neighbour, centre) — each node sums the messages of its
        edges with the neighbour's features first, as when DGL summed them into the destination node."""

        def message(self, x_i, x_j, **kwargs):
            return super().message(x_i=x_j, x_j=x_i, **kwargs)

    classes = {M3GNetGraphConv: DestinationSumConv, TensorEmbedding: NeighbourFirstEmbedding}
    try:
        from matgl.layers._embedding_warp import TensorEmbedding as WarpTensorEmbedding
    except ImportError:  # matgl without its Warp kernels
        return classes

    class NeighbourFirstWarpEmbedding(WarpTensorEmbedding):
        """The same for matgl's Warp kernels: there the edge index serves only to pair the node features
        (centre, neighbour), so the flipped index pairs them (neighbour, centre)."""

        def forward(self, z, edge_index, *args, **kwargs):
            return super().forward(z, edge_index.flip(0), *args, **kwargs)

    classes[WarpTensorEmbedding] = NeighbourFirstWarpEmbedding
    return classes


def trained_aggregation(potential) -> int:
    """Give the M3GNet convolutions and TensorNet embeddings of ``potential`` (a loaded instance; matgl itself is not
    patched) the message convention the weights were trained with; returns how many layers changed (0 for others)."""
    classes = trained_classes()
    layers = [m for m in potential.modules() if type(m) in classes]
    for layer in layers:
        layer.__class__ = classes[type(layer)]
    return len(layers)


def li2o_deviation(model: ModelInterface, device, dtype) -> float:
    """The model's energy of Li2O at the Materials Project's geometry minus MP's (mp-1960) [eV/atom]."""
    from pymatgen.core import Lattice, Structure

    li2o = Structure.from_spacegroup("Fm-3m", Lattice.cubic(LI2O_A), ["Li", "O"], [[0.25, 0.25, 0.25], [0, 0, 0]])
    state = ts.io.structures_to_state([li2o.get_primitive_structure()], device=device, dtype=dtype)
    return float(model(state)["energy"][0]) / state.n_atoms - LI2O_MP_EV_PER_ATOM


def batched_graph(state: ts.SimState, element_index: torch.Tensor, cutoff: float):
    """matgl's PyG graph of a whole batch, built where the state lives: edges and their periodic images from torch-sim's
    neighbour list (every ordered pair within ``cutoff`` [Å], as matgl's ``Atoms2Graph`` makes them), node types from
    ``element_index`` (atomic number -> index into the model's element list), fractional coordinates, and the batch
    vector. A molecule works in the unit cell (:func:`engine.models.base.graph_cell`). Returns (graph, lattice
    (n_systems, 3, 3) [Å, rows])."""
    from torch_geometric.data import Batch

    row_cell = graph_cell(state)
    pbc = state.pbc if torch.is_tensor(state.pbc) else torch.tensor([state.pbc] * 3, device=state.device)
    edges, _, images = neighbour_list(state.positions, row_cell, pbc, torch.tensor(cutoff, dtype=row_cell.dtype),
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
    restored = trained_aggregation(potential)
    model = MatGLModel(potential, device, dtype)
    if {"Li", "O"} <= set(symbols):
        off = li2o_deviation(model, device, dtype)
        if abs(off) > LI2O_TOLERANCE and restored:
            raise ModelUnavailableError(
                f"matgl model {source!r}: Li2O lies {off:+.2f} eV/atom from the Materials Project's energy (mp-1960) "
                "after restoring its trained message aggregation; this matgl version computes it differently")
        if abs(off) > LI2O_TOLERANCE:
            log.warning("matgl model %s: Li2O lies %+.2f eV/atom from the Materials Project's energy (mp-1960); its "
                        "formation energies are suspect with this matgl version (docs/validation.md)", source, off)
    return LoadedModel(model, Path(str(cfg.name)).name, "matgl",
                       frozenset(chemical_symbols.index(s) for s in symbols), float(potential.model.cutoff),
                       checksum, source, "DGL message convention" if restored else "")
