"""Universal ML potentials by configuration: one function from a model config to a torch-sim model.

``load_model(cfg, device)`` returns a :class:`LoadedModel`: the torch-sim ``ModelInterface`` (energy [eV],
forces [eV/Å], stress [eV/Å³, ASE sign convention]) plus what the engine needs around it: the elements the
model knows, its cutoff and a checksum of its weights for the run's provenance.

Supported ``kind`` values (see ``conf/model/``):

- ``sevennet``: SevenNet through ``sevenn.torchsim.SevenNetModel`` (``7net-0``, ``7net-l3i5``, ``7net-mf-0``
  with ``modal``). Weights ship inside the ``sevenn`` wheel.
- ``chgnet``: CHGNet (``0.3.0``), adapter below; float32 only (CHGNet's graph code hard-codes float32).
- ``matgl``: matgl potentials (TensorNet-MatPES-PBE, M3GNet-MP-2021.2.8-PES), adapter below; a name (downloaded
  by matgl when online) or a local model folder.
- ``mace``: torch-sim's ``MaceModel`` on a local ``.model`` file or a mace-mp name (downloaded when online).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch_sim as ts
from ase import units
from ase.data import chemical_symbols
from torch_sim.models.interface import ModelInterface

DTYPES = {"float32": torch.float32, "float64": torch.float64}


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


@dataclass
class LoadedModel:
    model: ModelInterface
    name: str
    kind: str
    supported_z: frozenset[int]
    cutoff: float
    checksum: str
    source: str

    def unsupported_elements(self, atomic_numbers) -> list[str]:
        return sorted({chemical_symbols[int(z)] for z in set(np.asarray(atomic_numbers).tolist())
                       if int(z) not in self.supported_z})

    def provenance(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind, "source": self.source, "sha256": self.checksum}


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


class _StructureBatchModel(ModelInterface):
    """Base for adapters whose package builds graphs from one structure at a time: the batched state is split
    into systems, each converted with the package's own converter, and the graphs evaluated in one call."""

    def __init__(self, device: torch.device, dtype: torch.dtype):
        super().__init__()
        self._device, self._dtype = device, dtype
        self._compute_stress = self._compute_forces = True
        self._memory_scales_with = "n_atoms_x_density"

    @staticmethod
    def _systems(state: ts.SimState):
        pos, cell = state.positions.detach().cpu().numpy(), state.row_vector_cell.detach().cpu().numpy()
        z = state.atomic_numbers.detach().cpu().numpy()
        bounds = np.concatenate([[0], np.cumsum(state.n_atoms_per_system.cpu().numpy())])
        pbc = state.pbc.detach().cpu().numpy() if torch.is_tensor(state.pbc) else np.array([state.pbc] * 3)
        for i in range(state.n_systems):
            sl = slice(bounds[i], bounds[i + 1])
            yield z[sl], pos[sl], cell[i], np.broadcast_to(pbc, (3,))


class CHGNetModel(_StructureBatchModel):
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


class MatGLModel(_StructureBatchModel):
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


# ---- loaders ---------------------------------------------------------------------------------------
_SEVENNET_NAMES = {"7net-0", "7net-0_11july2024", "7net-0_22may2024", "7net-l3i5", "7net-mf-0"}


def _load_sevennet(cfg, device, dtype) -> LoadedModel:
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


def _load_chgnet(cfg, device, dtype) -> LoadedModel:
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


def _load_matgl(cfg, device, dtype) -> LoadedModel:
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


@contextlib.contextmanager
def e3nn_044_pickle_compat():
    """Unpickle modules saved under e3nn 0.4.4 with e3nn >= 0.5 installed.

    e3nn 0.4.4's ``CodeGenMixin.__getstate__`` stored each generated submodule as bare TorchScript bytes;
    e3nn >= 0.5 stores ``(buffer_type, bytes)`` and fails to unpack the old form ("too many values to
    unpack"). While this context is active, old entries are read as ``("torchscript", bytes)``.
    """
    from e3nn.util.codegen._mixin import CodeGenMixin

    original = CodeGenMixin.__setstate__

    def setstate(self, d):
        codegen = d.get("__codegen__")
        if codegen and any(isinstance(v, bytes) for v in codegen.values()):
            d = {**d, "__codegen__": {k: ("torchscript", v) if isinstance(v, bytes) else v
                                      for k, v in codegen.items()}}
        original(self, d)

    CodeGenMixin.__setstate__ = setstate
    try:
        yield
    finally:
        CodeGenMixin.__setstate__ = original


def load_mace_module(source: str, device: torch.device) -> torch.nn.Module:
    """Load a MACE ``.model`` file and rebuild it under the installed e3nn.

    MACE foundation checkpoints are whole pickled modules made under e3nn 0.4.4, whose pickled form e3nn >= 0.5
    cannot read (see :func:`e3nn_044_pickle_compat`). We unpickle through that shim, read the architecture with
    mace's own ``extract_config_mace_model``, construct a fresh module of the same class under the installed
    e3nn and copy the weights (the route mace itself takes when converting between backends), so no code
    generated by the old e3nn is run.
    """
    from mace.tools.scripts_utils import extract_config_mace_model

    try:
        with e3nn_044_pickle_compat():
            pickled = torch.load(source, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelUnavailableError(
            f"MACE checkpoint {source} could not be unpickled with e3nn in this environment "
            f"({type(exc).__name__}: {str(exc)[:200]}). Re-export it as a state dict under mace-torch with "
            "e3nn==0.4.4 (torch.save(model.state_dict())) or convert it with mace's own tools.") from exc
    try:
        config = extract_config_mace_model(pickled)
        if "error" in config:
            raise ValueError(config["error"])
        fresh = type(pickled)(**config)
        missing, unexpected = fresh.load_state_dict(pickled.state_dict(), strict=False)
        if [k for k in missing if not k.endswith("weights_out")] or unexpected:
            raise ValueError(f"weights do not fit the rebuilt model: missing={missing}, unexpected={unexpected}")
        model = fresh
    except Exception:  # noqa: BLE001 - fall back to the pickled module when it cannot be rebuilt
        model = pickled
    return model.to(device)


def _load_mace(cfg, device, dtype) -> LoadedModel:
    try:
        from torch_sim.models.mace import MaceModel
    except ImportError as exc:
        raise ModelUnavailableError("mace-torch is not installed; run setup.sh (it installs mace-torch "
                                    "without its e3nn pin)") from exc
    source = cfg.get("path")
    if not source:
        from mace.calculators.foundations_models import download_mace_mp_checkpoint

        if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("MACE_OFFLINE") == "1":
            raise ModelUnavailableError(
                f"MACE model {cfg.name!r} must be downloaded and this run is offline; download it on a machine "
                "with internet (mace.calculators.foundations_models.download_mace_mp_checkpoint) and pass "
                "model.path=/path/to/file.model")
        try:
            source = download_mace_mp_checkpoint(str(cfg.name))
        except Exception as exc:
            raise ModelUnavailableError(
                f"MACE model {cfg.name!r} could not be downloaded ({type(exc).__name__}); download it where "
                "there is internet and pass model.path=/path/to/file.model") from exc
    if not Path(source).exists():
        raise ModelUnavailableError(f"MACE model file {source} does not exist")
    module = load_mace_module(str(source), device)
    model = MaceModel(model=module, device=device, dtype=dtype, compute_forces=True, compute_stress=True)
    return LoadedModel(model, str(cfg.name), "mace", frozenset(int(z) for z in module.atomic_numbers),
                       float(module.r_max), sha256_of(source), str(source))


def energy_only(loaded: LoadedModel) -> tuple[ModelInterface, bool]:
    """A model for energies alone (probe grids need no forces) and whether it may run under ``torch.no_grad``.

    SevenNet computes forces and stress by autograd inside its module; a copy without its ``force_output``
    module skips that backward pass (about half the cost). Other models are returned unchanged (their forces
    may need autograd, so no ``no_grad``)."""
    if loaded.kind == "sevennet":
        model = copy.deepcopy(loaded.model)
        model.model._modules["force_output"] = _SevenNetNoForces()
        return model, True
    return loaded.model, False


class _SevenNetNoForces(torch.nn.Module):
    """Stands in for SevenNet's force/stress output: zeros of the right shapes (its torch-sim wrapper reads
    both keys), no autograd."""

    def forward(self, data):
        from sevenn import _keys as key

        data[key.PRED_FORCE] = torch.zeros_like(data[key.POS])
        data[key.PRED_STRESS] = data[key.PRED_TOTAL_ENERGY].new_zeros(data[key.PRED_TOTAL_ENERGY].shape[0], 6)
        return data


LOADERS = {"sevennet": _load_sevennet, "chgnet": _load_chgnet, "matgl": _load_matgl, "mace": _load_mace}


def load_model(cfg: Any, device: str | torch.device = "cpu") -> LoadedModel:
    """Model config (``kind``, ``name``, optional ``path``, ``dtype``, ``modal``) -> :class:`LoadedModel`."""
    kind = str(cfg.kind)
    if kind not in LOADERS:
        raise ValueError(f"unknown model kind {kind!r}; one of {sorted(LOADERS)}")
    dtype = DTYPES[str(cfg.get("dtype", "float64"))]
    return LOADERS[kind](cfg, resolve_device(device), dtype)
