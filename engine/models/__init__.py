"""Universal ML potentials by configuration: one function from a model config to a torch-sim model.

``load_model(cfg, device)`` returns a :class:`LoadedModel`: the torch-sim ``ModelInterface`` (energy [eV],
forces [eV/Å], stress [eV/Å³, ASE sign convention]) plus what the engine needs around it: the elements the
model knows, its cutoff and a checksum of its weights for the run's provenance. One module per package family:

- ``sevennet``: SevenNet through ``sevenn.torchsim.SevenNetModel`` (``7net-0``, ``7net-l3i5``, ``7net-mf-0``
  with ``modal``); weights ship inside ``sevenn``; energy-only surgery for probe grids.
- ``chgnet``: CHGNet 0.3.0 (float32 only), one batched graph built on the device.
- ``matgl``: matgl potentials (TensorNet-MatPES-PBE, M3GNet-MP-2021.2.8-PES), one batched graph built on the
  device; a name (downloaded by matgl when online) or a local model folder.
- ``mace``: torch-sim's ``MaceModel`` on a local ``.model`` file or a mace-mp name, with the e3nn 0.4.4 shim.
- ``analytic``: a near-free harmonic-well potential, for overhead benchmarks and closed-form tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch_sim.models.interface import ModelInterface

from engine.models.base import (
    DTYPES,
    LoadedModel,
    ModelSettings,
    ModelUnavailableError,
    resolve_device,
    sha256_of,
)

__all__ = ["LoadedModel", "ModelSettings", "ModelUnavailableError", "energy_only", "load_model", "model_config",
           "resolve_device", "sha256_of"]
MODEL_CONF = Path(__file__).resolve().parents[2] / "conf" / "model"


def model_config(spec) -> DictConfig:
    """A model config from a name in ``conf/model/`` or a mapping, checked against :class:`ModelSettings` (an unknown
    key stops here, naming it)."""
    if isinstance(spec, str):
        if not (MODEL_CONF / f"{spec}.yaml").is_file():
            known = sorted(p.stem for p in MODEL_CONF.glob("*.yaml"))
            raise FileNotFoundError(f"no model config {spec!r}; one of {known}")
        raw = OmegaConf.load(MODEL_CONF / f"{spec}.yaml")
    else:
        raw = OmegaConf.create(spec)
    return OmegaConf.merge(OmegaConf.structured(ModelSettings), raw)


def _loader(kind: str):
    if kind == "sevennet":
        from engine.models.sevennet import load_sevennet
        return load_sevennet
    if kind == "chgnet":
        from engine.models.chgnet import load_chgnet
        return load_chgnet
    if kind == "matgl":
        from engine.models.matgl import load_matgl_model
        return load_matgl_model
    if kind == "mace":
        from engine.models.mace import load_mace
        return load_mace
    if kind == "analytic":
        from engine.models.analytic import load_analytic
        return load_analytic
    raise ValueError(f"unknown model kind {kind!r}; one of ['analytic', 'chgnet', 'mace', 'matgl', 'sevennet']")


def load_model(cfg: Any, device: str | torch.device = "cpu") -> LoadedModel:
    """Model config (``kind``, ``name``, optional ``path``, ``dtype``, ``modal``) -> :class:`LoadedModel`."""
    loader = _loader(str(cfg.kind))
    dtype = DTYPES[str(cfg.get("dtype", "float64"))]
    return loader(cfg, resolve_device(device), dtype)


def energy_only(loaded: LoadedModel) -> tuple[ModelInterface, bool]:
    """A model for energies alone (probe grids need no forces) and whether it may run under ``torch.no_grad``.

    SevenNet gets its force/stress backward pass removed (:func:`engine.models.sevennet.energy_only`), matgl
    potentials their force and stress flags turned off, MACE its force and stress outputs
    (:func:`engine.models.mace.energy_only`), CHGNet its autograd pass; other models (the analytic one) are returned
    unchanged."""
    if loaded.kind == "sevennet":
        from engine.models.sevennet import energy_only as sevennet_energy_only

        return sevennet_energy_only(loaded), True
    if loaded.kind == "matgl":
        from engine.models.matgl import MatGLModel

        return MatGLModel(loaded.model.potential, loaded.model.device, loaded.model.dtype, energy_only=True), True
    if loaded.kind == "mace":
        from engine.models.mace import energy_only as mace_energy_only

        return mace_energy_only(loaded), True
    if loaded.kind == "chgnet":
        from engine.models.chgnet import CHGNetModel

        return CHGNetModel(loaded.model.model, loaded.model.device, loaded.model.dtype, energy_only=True), True
    return loaded.model, False
