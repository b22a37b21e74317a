"""What every model adapter returns: the torch-sim model plus what the engine needs around it."""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from ase.data import chemical_symbols
from torch_sim.models.interface import ModelInterface
from torch_sim.neighbors import torch_nl_linked_cell, torchsim_nl

from engine.core.corrections import Correction

try:  # torch-sim's fastest neighbour list, when nvalchemiops is installed
    from nvalchemiops.neighborlist.neighbor_utils import NeighborOverflowError
except ImportError:  # then torch-sim never uses it, and nothing raises this
    class NeighborOverflowError(RuntimeError):
        pass

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class ModelSettings:
    """One uMLIP (``conf/model/*.yaml``)."""
    kind: str = "sevennet"  # sevennet | chgnet | matgl | mace
    name: str = "7net-0"  # a package name of the weights (downloaded when online, or shipped in the package)
    path: str | None = None  # local weights (a file, or matgl's model folder); overrides name for loading
    modal: str | None = None  # multi-fidelity heads (SevenNet-MF: PBE | R2SCAN)
    dtype: str = "float64"  # float32 | float64 (SevenNet and CHGNet: float32 only)
    # the energy correction its energies need (engine.core.corrections.Correction): mp2020 for raw MPtrj energies,
    # mp2020_anions for pure PBE (MatPES), none for energies corrected already (CHGNet); null: references.correction
    correction: Correction | None = None


def umlip_setting(doc: str = "null: the run's model; a name in conf/model/; or a model config"):
    """A stage setting that names a uMLIP other than the run's (checked before any work, engine.config.model_specs)."""
    return field(default=None, metadata={"umlip": True, "doc": doc})


class ModelUnavailableError(RuntimeError):
    """A model's weights cannot be found or loaded; the message says how to get them."""


def hub_reachable(host: str = "huggingface.co", timeout_s: float = 3.0) -> bool:
    """Whether the model hub can be reached: not with ``HF_HUB_OFFLINE=1``, nor when a direct connection fails
    within ``timeout_s`` (behind an HTTPS proxy the hub client is trusted to find its way)."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


@dataclass
class LoadedModel:
    model: ModelInterface
    name: str
    kind: str
    supported_z: frozenset[int]
    cutoff: float
    checksum: str
    source: str
    # what the engine changed in the loaded model beyond its weights (e.g. "DGL message convention"): part of
    # every cache key, so that results of the unchanged model are never reused
    variant: str = ""

    def unsupported_elements(self, atomic_numbers) -> list[str]:
        return sorted({chemical_symbols[int(z)] for z in set(np.asarray(atomic_numbers).tolist())
                       if int(z) not in self.supported_z})

    def lacks(self, atomic_numbers) -> str:
        """The reason a structure of ``atomic_numbers`` cannot be computed with this model ("" when it can)."""
        missing = self.unsupported_elements(atomic_numbers)
        return f"elements not in model: {' '.join(missing)} ({self.name})" if missing else ""

    def provenance(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "source": self.source, "sha256": self.checksum,
                **({"variant": self.variant} if self.variant else {})}


def neighbour_list(positions, cell, pbc, cutoff, system_idx):
    """torch-sim's ``torchsim_nl`` (every ordered pair within ``cutoff`` [Å]: pairs, system of each pair, image
    shifts). Its fastest backend (nvalchemiops) sizes its buffers from an estimated density and overflows on dense
    cells — built-in hydride prototypes with 200-450 neighbours within 5 Å — so an overflow falls back to torch-sim's
    exact pure-torch cell list for that call."""
    try:
        return torchsim_nl(positions, cell, pbc, cutoff, system_idx)
    except NeighborOverflowError:
        return torch_nl_linked_cell(positions, cell, pbc, cutoff, system_idx)


def graph_cell(state) -> torch.Tensor:
    """The (n_systems, 3, 3) row cell [Å] a graph-building adapter works in. A molecule (``pbc`` all False) has no
    cell (ASE gives zeros): it gets the unit cell, matgl's ``Molecule2Graph`` convention, so fractional coordinates are
    Cartesian ones and, with no periodic direction, the neighbour list makes no images. A periodic system whose cell
    is singular is refused, naming it."""
    cell = state.row_vector_cell
    pbc = state.pbc if torch.is_tensor(state.pbc) else torch.tensor([state.pbc] * 3, device=cell.device)
    singular = torch.linalg.det(cell.double()).abs() < 1e-9
    if not bool(singular.any()):
        return cell
    if bool(pbc.any()):
        bad = torch.nonzero(singular).flatten().tolist()
        raise ValueError(f"systems {bad} are periodic along {pbc.tolist()} but their cell is singular (zero volume); "
                         "give each periodic direction a lattice vector, or pbc=False for a molecule")
    unit = torch.eye(3, dtype=cell.dtype, device=cell.device).expand_as(cell)
    return torch.where(singular[:, None, None], unit, cell)


def is_molecular(state) -> bool:
    """Whether no direction of the state is periodic (a molecule: its stress is undefined and given as zero)."""
    return not bool(torch.as_tensor(state.pbc).any())


def sha256_of(path: str | Path) -> str:
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for p in files:
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) in ("auto", "None"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
