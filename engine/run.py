"""What the stages of one run share: the config, the store, the device, the loaded models, and which candidates
each stage takes (from the stage table's feeders)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf
from pymatgen.core import Structure
from tqdm import tqdm

from engine.core.crystals import Crystals
from engine.core.workers import worker_count
from engine.io.store import ResultStore
from engine.models import LoadedModel, load_model, model_config, resolve_device
from engine.stages import feeders as stage_feeders


class Run:
    """One run: ``cfg`` (the Hydra config), ``store`` (its HDF5 file) and ``stages`` (the stage table by name)."""

    def __init__(self, cfg: DictConfig, store: ResultStore, stages: Mapping):
        self.cfg, self.store, self.stages = cfg, store, stages
        self.device = resolve_device(cfg.device)
        self._models: dict[str, LoadedModel] = {}

    @property
    def workers(self) -> int:
        """Processes for host-side work (``workers``; null = every core this process may use)."""
        return worker_count(self.cfg.get("workers"))

    def settings(self, section: str):
        """The typed settings dataclass of a config section (e.g. ``RelaxSettings`` for ``relax``)."""
        return OmegaConf.to_object(self.cfg[section])

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
        cfg = model_config(spec)
        return self.model(f"{stage}:{cfg.name if cfg.name else spec}", cfg)

    # ---- which candidates a stage takes -------------------------------------------------------------------
    def input_stage(self, name: str) -> str:
        """The stage whose passing candidates ``name`` takes: the last of its feeders configured before it, else
        the first feeder the file already holds, else its last feeder."""
        feeders = stage_feeders(name, tuple(self.stages.values()))
        stages = list(self.cfg.stages or [])
        before = stages[:stages.index(name)] if name in stages else stages
        configured = [s for s in reversed(before) if s in feeders]
        if configured:
            return configured[0]
        return next((s for s in feeders if self.store.has(s)), feeders[-1])

    def passed_input(self, name: str) -> list[str]:
        """Ids that passed the stage before ``name``, in that stage's row order."""
        return self.store.ids(self.input_stage(name), status="pass")

    def pending(self, name: str) -> list[str]:
        """Ids that passed the stage before ``name`` and have no row in ``name`` yet."""
        done = self.store.done_ids(name)
        return [i for i in self.passed_input(name) if i not in done]

    def input_crystals(self, name: str, ids) -> tuple[list[str], Crystals]:
        """(ids found, their structures as ragged arrays) from the group the stage table names as ``name``'s
        structures, in row order: what the batched loops take, with no pymatgen object per structure."""
        return self.store.crystals(self.stages[name].structures, ids)

    def input_structures(self, name: str, ids) -> dict[str, Structure]:
        """{id: structure} of ``ids`` from the group the stage table names as ``name``'s structures."""
        return self.store.structures(self.stages[name].structures, ids)

    @contextlib.contextmanager
    def progress(self, stage: str, total: int | None, unit: str = "structure"):
        """A progress bar for ``stage``; stages call ``update(n)`` as results are reported."""
        bar = tqdm(total=total, desc=stage, unit=unit, file=sys.stderr, dynamic_ncols=True)
        kill_at = _kill_point(stage)
        if kill_at is not None:
            update = bar.update

            def update_then_maybe_die(n=1):
                update(n)
                if bar.n >= kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            bar.update = update_then_maybe_die
        try:
            yield bar
        finally:
            bar.close()


KILL_AT = "COATING_KILL_AT"


def _kill_point(stage: str) -> int | None:
    """Fault injection for the kill-and-resume tests: ``COATING_KILL_AT=<stage>:<n>`` SIGKILLs the process once
    ``stage`` has reported ``n`` results (never set in a real run)."""
    name, _, n = os.environ.get(KILL_AT, "").partition(":")
    return int(n) if name == stage and n else None
