"""Shared benchmark helpers: the test structures, the package's own ASE calculator for a loaded model, JSON out."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from pymatgen.core import Lattice, Structure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.screen import package_versions


def timed(fn, device: str = "cpu") -> float:
    """Wall time [s] of ``fn()``, with the GPU synchronised before and after on CUDA."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def model_config(name: str):
    return OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml")


def ase_calculator(loaded, device: str):
    """The model package's own ASE calculator around the same weights."""
    if loaded.kind == "sevennet":
        from sevenn.calculator import SevenNetCalculator

        return SevenNetCalculator(loaded.source, device=device)
    if loaded.kind == "chgnet":
        from chgnet.model.dynamics import CHGNetCalculator

        return CHGNetCalculator(model=loaded.model.model, use_device=device)
    if loaded.kind == "matgl":
        from matgl.ext.ase import PESCalculator

        return PESCalculator(loaded.model.potential, stress_unit="eV/A3")
    if loaded.kind == "mace":
        from mace.calculators import MACECalculator

        return MACECalculator(model_paths=loaded.source, device=device,
                              default_dtype="float64" if loaded.model.dtype == torch.float64 else "float32")
    raise ValueError(loaded.kind)


def mixed_size_structures(n: int, min_atoms: int = 8, max_atoms: int = 80, seed: int = 0) -> list[Structure]:
    """Strained, rattled supercells of simple Li compounds with sizes spread over [min_atoms, max_atoms]."""
    rng = np.random.default_rng(seed)
    bases = [
        Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.03), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.13), ["Li", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.62), ["Li", "O"], [[0.25, 0.25, 0.25], [0, 0, 0]]),
        Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    ]
    shapes = [(1, 1, 1), (2, 1, 1), (2, 2, 1), (3, 2, 1), (2, 2, 2), (3, 2, 2), (3, 3, 2), (4, 3, 2)]
    out = []
    for i, target in enumerate(np.linspace(min_atoms, max_atoms, n)):
        base = bases[i % len(bases)]
        dims = min(shapes, key=lambda d: abs(np.prod(d) * len(base) - target))
        s = base * dims
        s.apply_strain(rng.uniform(-0.03, 0.03, 3))
        s = Structure(s.lattice, s.species, s.cart_coords + rng.normal(scale=0.05, size=(len(s), 3)),
                      coords_are_cartesian=True)
        out.append(s)
    return out


def write_json(name: str, payload: dict, out_dir: Path | None = None) -> Path:
    """``benchmarks/results/<name>.json`` (or under ``$BENCH_RESULTS``: ``run_all.sh`` puts a GPU's figures apart)."""
    out_dir = out_dir or Path(os.environ.get("BENCH_RESULTS") or ROOT / "benchmarks" / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {**payload, "machine": platform.node(), "processor": platform.processor(),
               "torch_threads": torch.get_num_threads(),
               "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
               "versions": package_versions()}
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float))
    return path
