"""Hydra entry point: ``python -m engine.screen`` runs the configured stages in order on one HDF5 file.

Each stage reads what passed the stage before it from the file, skips what it already finished, and appends its
results as they come; rerunning the same command after a crash or a kill resumes the run.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import hydra
import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from engine import bandgap, candidates, md, novelty, pes, relax, report, thermo
from engine.models import LoadedModel, ModelUnavailableError, load_model, resolve_device
from engine.references import ReferenceUnavailableError
from engine.store import ResultStore

log = logging.getLogger("engine.screen")
MODEL_CONF = Path(__file__).resolve().parents[1] / "conf" / "model"

STAGES = {"candidates": candidates.run_stage, "bandgap": bandgap.run_stage, "novelty": novelty.run_stage,
          "relax": relax.run_stage, "thermo": thermo.run_stage,
          "pes": pes.run_stage, "md": md.run_stage}
# Config sections that must not change when a run is resumed: they define what is already in the file.
FROZEN_ON_RESUME = ("model", "candidates", "bandgap", "novelty", "relax", "thermo", "references", "criteria", "pes", "md")
PACKAGES = ("torch", "torch-sim-atomistic", "sevenn", "matgl", "chgnet", "mace-torch", "e3nn", "pymatgen",
            "ase", "spglib", "pyxtal", "wyckoff-transformer", "h5py", "hydra-core", "numpy")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


class Run:
    """What the stages share: the config, the store, the device and the loaded models."""

    def __init__(self, cfg: DictConfig, store: ResultStore):
        self.cfg, self.store = cfg, store
        self.device = resolve_device(cfg.device)
        self._models: dict[str, LoadedModel] = {}

    def model(self, role: str, model_cfg) -> LoadedModel:
        key = OmegaConf.to_yaml(model_cfg)
        if key not in self._models:
            self._models[key] = load_model(model_cfg, self.device)
            self.store.record_models({role: self._models[key].provenance()})
        return self._models[key]

    def stage_model(self, stage: str, spec) -> LoadedModel:
        """The model a stage's config names: null = the run's model; a name of a file in conf/model/; or a
        model config."""
        if spec is None:
            return self.model("relax", self.cfg.model)
        cfg = OmegaConf.load(MODEL_CONF / f"{spec}.yaml") if isinstance(spec, str) else OmegaConf.create(spec)
        return self.model(f"{stage}:{cfg.get('name', spec)}", cfg)

    def input_stage(self, stage: str, feeders: tuple[str, ...], default: str) -> str:
        """The last of ``feeders`` configured before ``stage``: the stage whose passing candidates it takes
        (``default`` when none is)."""
        stages = list(self.cfg.stages)
        before = stages[:stages.index(stage)] if stage in stages else stages
        return next((s for s in reversed(before) if s in feeders), default)

    @contextlib.contextmanager
    def progress(self, stage: str, total: int):
        bar = tqdm(total=total, desc=stage, unit="structure", file=sys.stderr, dynamic_ncols=True)
        try:
            yield bar
        finally:
            bar.close()


def check_resumable(store: ResultStore, cfg: DictConfig) -> None:
    stored = store.metadata()["config"]
    if not stored:
        return
    old = yaml.safe_load(stored) or {}
    new = OmegaConf.to_container(cfg, resolve=True)
    changed = [k for k in FROZEN_ON_RESUME if k in old and old.get(k) != new.get(k)]
    if changed:
        raise SystemExit(f"{store.path} holds a run made with different {', '.join(changed)} settings; "
                         "rerun with those settings to resume it, or choose a new output=...")


def summary_table(store: ResultStore, stages, timings: dict[str, float]) -> str:
    lines = [f"{'stage':<12}{'in':>6}{'pass':>6}{'fail':>6}{'error':>6}{'time/s':>9}  top reasons"]
    for name in stages:
        s = store.summary(name)
        reasons = "; ".join(f"{r} ({n})" for r, n in s["top_reasons"]) or "-"
        lines.append(f"{name:<12}{s['n']:>6}{s['pass']:>6}{s['fail']:>6}{s['error']:>6}"
                     f"{timings.get(name, 0.0):>9.1f}  {reasons}")
    return "\n".join(lines)


def count_lines(counts: list[tuple[str, int]]) -> list[str]:
    """One aligned line per (criterion, candidates passing it)."""
    return [f"  {name:<48}{n:>6}" for name, n in counts]


def thermo_table(store: ResultStore, cfg: DictConfig) -> str:
    criteria = thermo.CoatingCriteria(**cfg.criteria)
    attrs = store.h5["thermo"].attrs if "thermo" in store.h5 else {}
    lines = [f"\nthermo criteria ({attrs.get('reference_source', '?')} references)"]
    if "electrolyte" in attrs:
        lines.append(f"  {attrs['electrolyte']} window: {attrs['electrolyte_e_red_V']:.2f} - "
                     f"{attrs['electrolyte_e_ox_V']:.2f} V vs Li/Li+")
    lines += count_lines(thermo.criteria_counts(store, criteria))
    return "\n".join(lines)


def pes_table(store: ResultStore, cfg: DictConfig) -> str:
    settings = pes.PesSettings.from_config(cfg.pes)
    lines = ["\nLi-transport criteria (probe grids)"]
    lines += count_lines(pes.pes_counts(store, settings))
    return "\n".join(lines)


def md_table(store: ResultStore, cfg: DictConfig) -> str:
    settings = md.MdSettings.from_config(cfg.md)
    lines = ["\nMD criteria (multi-replica NVT)"]
    lines += count_lines(md.md_counts(store, settings))
    return "\n".join(lines)


def run(cfg: DictConfig) -> dict[str, float]:
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    unknown = [s for s in cfg.stages if s not in STAGES]
    if unknown:
        raise SystemExit(f"unknown stages {unknown}; available: {list(STAGES)}")
    timings: dict[str, float] = {}
    with ResultStore(cfg.output) as store:
        check_resumable(store, cfg)
        store.write_metadata(OmegaConf.to_yaml(cfg, resolve=True), package_versions(), {})
        ctx = Run(cfg, store)
        for name in cfg.stages:
            t0 = time.perf_counter()
            try:
                STAGES[name](ctx)
            except (ModelUnavailableError, ReferenceUnavailableError, candidates.CsxError, FileNotFoundError) as exc:  # configuration errors, not bad candidates
                raise SystemExit(f"stage {name}: {exc}") from None
            timings[name] = time.perf_counter() - t0
        print(f"\n{cfg.output}\n" + summary_table(store, cfg.stages, timings))
        if "thermo" in cfg.stages:
            print(thermo_table(store, cfg))
        if "pes" in cfg.stages:
            print(pes_table(store, cfg))
        if "md" in cfg.stages:
            print(md_table(store, cfg))
    try:
        paths = report.write_report(cfg.output)
        print(f"\nreport: {paths['report']} (+ funnel.png, transport.png, windows.png)")
    except Exception:  # a plotting problem must not cost the run its exit status
        log.exception("the report of %s could not be written; python -m engine.report %s retries", cfg.output,
                      cfg.output)
    return timings


@hydra.main(config_path="../conf", config_name="screen", version_base=None)
def main(cfg: DictConfig) -> None:
    logging.getLogger("torch_sim").setLevel(logging.WARNING)  # per-swap INFO lines drown the progress bars
    run(cfg)


if __name__ == "__main__":
    main()
