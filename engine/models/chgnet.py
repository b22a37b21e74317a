"""CHGNet (Deng et al., Nat. Mach. Intell. 5, 1031 (2023)) as a torch-sim model; weights ship in ``chgnet``.

The whole batch is one CHGNet ``BatchedGraph`` built where the state lives, with no per-structure graph: the atom
graph (every directed edge within ``atom_graph_cutoff``, with its periodic image) from torch-sim's neighbour list;
each directed edge paired with its reverse into an undirected bond; the bond graph (angles: two directed edges of one
centre atom, both shorter than ``bond_graph_cutoff``) from a sort of the edges by centre. These are the graphs
``chgnet.graph.CrystalGraphConverter`` makes structure by structure (a test compares them); the package's own layers
(``_compute``) then give energies, forces (−dE/dr) and stresses (dE/dε / V).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch_sim as ts
from ase import units
from torch_sim.models.interface import ModelInterface

from engine.models.base import LoadedModel, graph_cell, is_molecular, neighbour_list, sha256_of

GPA_PER_EV_A3 = 1 / units.GPa  # CHGNet's stress unit conversion (eV/Å³ -> GPa), undone below


def undirected_bonds(edges: torch.Tensor, images: torch.Tensor, n_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(directed2undirected (n_edges,), undirected2directed (n_bonds,)): directed edge i→j through image n and its
    reverse j→i through −n are one undirected bond; ``undirected2directed`` names the first of the two."""
    shift = images.long() + 64  # image components stay well within ±64 cells
    forward = ((edges[0] * n_atoms + edges[1]) * 128 + shift[:, 0]) * 128 ** 2 + shift[:, 1] * 128 + shift[:, 2]
    back_shift = 128 - shift
    backward = ((edges[1] * n_atoms + edges[0]) * 128 + back_shift[:, 0]) * 128 ** 2 + back_shift[:, 1] * 128 \
        + back_shift[:, 2]
    keys, directed2undirected = torch.unique(torch.minimum(forward, backward), return_inverse=True)
    first = torch.full((len(keys),), len(forward), dtype=torch.long, device=edges.device)
    first.scatter_reduce_(0, directed2undirected, torch.arange(len(forward), device=edges.device), reduce="amin")
    return directed2undirected, first


def angle_graph(centres: torch.Tensor, lengths: torch.Tensor, cutoff: float) -> torch.Tensor:
    """(n_angles, 2) pairs of directed edges (d1, d2), d1 ≠ d2, that share their centre atom, both shorter than
    ``cutoff`` [Å] (CHGNet's bond graph: its angles)."""
    short = torch.nonzero(lengths < cutoff).flatten()
    order = short[torch.argsort(centres[short], stable=True)]
    c = centres[order]
    counts = torch.bincount(c)
    counts = counts[counts > 0]
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    per = torch.repeat_interleave(counts, counts)  # partners of each edge, itself included
    first = torch.repeat_interleave(torch.arange(len(order), device=c.device), per)
    offset = torch.arange(int(per.sum()), device=c.device) - torch.repeat_interleave(torch.cumsum(per, 0) - per, per)
    second = torch.repeat_interleave(starts, per) + offset
    keep = first != second
    return torch.stack([order[first[keep]], order[second[keep]]], dim=1)


def batched_graph(model, state: ts.SimState, lattice: torch.Tensor, positions: torch.Tensor):
    """CHGNet's ``BatchedGraph`` of a whole batch: ``lattice`` (n_systems, 3, 3) [Å, rows] and Cartesian
    ``positions`` (n_atoms, 3) [Å] may carry the strain and position gradients."""
    from chgnet.model.model import BatchedGraph

    converter = model.graph_converter
    pbc = state.pbc if torch.is_tensor(state.pbc) else torch.tensor([state.pbc] * 3, device=state.device)
    edges, edge_system, images = neighbour_list(state.positions.detach(), graph_cell(state).detach(), pbc,
                                             torch.tensor(converter.atom_graph_cutoff), state.system_idx)
    images = images.to(positions.dtype)
    neighbour = positions[edges[1]] + torch.einsum("ek,ekl->el", images, lattice[edge_system])
    directed2undirected, undirected2directed = undirected_bonds(edges, images, state.n_atoms)
    bases_ag, bases_bg, bond_vectors = model.bond_basis_expansion(
        center=positions[edges[0]], neighbor=neighbour, undirected2directed=undirected2directed,
        image=torch.zeros_like(images), lattice=torch.eye(3, dtype=positions.dtype, device=positions.device))
    lengths = (positions[edges[0]] - neighbour).norm(dim=1).detach()
    angles = angle_graph(edges[0], lengths, converter.bond_graph_cutoff)
    angle_bases = model.angle_basis_expansion(bond_vectors[angles[:, 0]], bond_vectors[angles[:, 1]])
    bond_graph = torch.stack([edges[0][angles[:, 0]], directed2undirected[angles[:, 0]],
                              directed2undirected[angles[:, 1]]], dim=1)
    return BatchedGraph(
        atomic_numbers=state.atomic_numbers, bond_bases_ag=bases_ag, bond_bases_bg=bases_bg,
        angle_bases=angle_bases, batched_atom_graph=edges.T.contiguous(), batched_bond_graph=bond_graph,
        atom_owners=state.system_idx.to(torch.int32), directed2undirected=directed2undirected,
        atom_positions=[positions], strains=[], volumes=torch.linalg.det(lattice))


class CHGNetModel(ModelInterface):
    """torch-sim adapter for CHGNet: one batched graph per call, built on the device (:func:`batched_graph`), through
    the package's own layers; forces −dE/dr [eV/Å], stresses dE/dε / V [eV/Å³] (as ``CHGNetCalculator`` gives them,
    in eV/Å³). With ``energy_only``, energies alone without autograd (probe grids)."""

    def __init__(self, model, device: torch.device, dtype: torch.dtype = torch.float32, energy_only: bool = False):
        if dtype != torch.float32:
            raise ValueError("CHGNet runs in float32 only (its graph code hard-codes torch.float32)")
        super().__init__()
        self._device, self._dtype = device, dtype
        self._compute_stress = self._compute_forces = not energy_only
        self._memory_scales_with = "n_atoms_x_density"
        self.model = model.to(device).eval()

    def forward(self, state: ts.SimState, **kwargs) -> dict[str, torch.Tensor]:
        m = self.model
        n_systems = state.row_vector_cell.shape[0]
        if not self._compute_forces:  # energies alone (probe grids): no strain, no autograd
            with torch.no_grad():
                graph = batched_graph(m, state, graph_cell(state), state.positions)
                energy = m._compute(graph)["e"]
                if m.composition_model is not None:
                    energy = energy + self.composition_energy(state, n_systems)
                return {"energy": energy * state.n_atoms_per_system.to(self._dtype) if m.is_intensive else energy}
        with torch.enable_grad():
            strain = torch.zeros(n_systems, 3, 3, dtype=self._dtype, device=self._device, requires_grad=True)
            cell = graph_cell(state).detach()  # a molecule works in the unit cell
            lattice = cell @ (torch.eye(3, dtype=self._dtype, device=self._device) + strain)
            frac = torch.einsum("ni,nij->nj", state.positions.detach().double(),
                                torch.linalg.inv(cell.double())[state.system_idx]).to(self._dtype)
            positions = torch.einsum("ni,nij->nj", frac, lattice[state.system_idx])
            graph = batched_graph(m, state, lattice, positions)
            n_atoms = state.n_atoms_per_system.to(self._dtype)
            energy = m._compute(graph)["e"]
            if m.composition_model is not None:
                energy = energy + self.composition_energy(state, n_systems)
            if m.is_intensive:
                energy = energy * n_atoms
            d_pos, d_strain = torch.autograd.grad(energy.sum(), [positions, strain])
        volume = torch.linalg.det(lattice).detach().abs()
        stress = torch.zeros_like(d_strain) if is_molecular(state) else d_strain / volume[:, None, None]
        return {"energy": energy.detach(), "forces": -d_pos, "stress": stress}

    def composition_energy(self, state: ts.SimState, n_systems: int) -> torch.Tensor:
        """CHGNet's composition model (``AtomRef``: a linear function of the element counts, per atom when it is
        intensive), for the whole batch at once."""
        ref = self.model.composition_model
        counts = torch.zeros(n_systems, ref.max_num_elements, dtype=self._dtype, device=self._device)
        counts.index_put_((state.system_idx, state.atomic_numbers - 1),
                          torch.ones(state.n_atoms, dtype=self._dtype, device=self._device), accumulate=True)
        if ref.is_intensive:
            counts = counts / state.n_atoms_per_system.to(self._dtype)[:, None]
        return ref.fc(counts).view(-1)


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
