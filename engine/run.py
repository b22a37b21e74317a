"""What the stages of one run share: the config, the store, the device, the loaded models, and which candidates
each stage takes (from the stage table's feeders)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf
from pymatgen.core import Structure
from tqdm import tqdm

from engine.core.crystals import Crystals
from engine.core.rows import ChunkResult
from engine.core.workers import Ahead, worker_count
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

    def pending(self, name: str, take: str | None = None) -> list[str]:
        """Ids that passed the stage before ``name`` (or the stage ``take``) and have no row in ``name`` yet."""
        done = self.store.done_ids(name)
        passed = self.store.ids(take, status="pass") if take else self.passed_input(name)
        return [i for i in passed if i not in done]

    def input_crystals(self, name: str, ids) -> tuple[list[str], Crystals]:
        """(ids found, their structures as ragged arrays) from the group the stage table names as ``name``'s
        structures, in row order: what the batched loops take, with no pymatgen object per structure."""
        return self.store.crystals(self.stages[name].structures, ids)

    def input_structures(self, name: str, ids) -> dict[str, Structure]:
        """{id: structure} of ``ids`` from the group the stage table names as ``name``'s structures."""
        return self.store.structures(self.stages[name].structures, ids)

    def run_chunks(self, stage: str, items: Sequence, size: int, compute: Callable, ahead: Callable | None = None,
                   total: int | None = None, unit: str = "structure") -> Ahead:
        """The engine's one chunk loop. ``items`` (ids, or what the stage groups them by) go ``size`` at a time to
        ``compute(chunk)``, which returns the chunk's rows (or a :class:`ChunkResult`); they are appended to
        ``stage``'s group before the next chunk starts, so a killed run loses at most one chunk. With ``ahead``,
        ``ahead(next chunk)`` runs on a background thread while ``compute(chunk, ahead(chunk))`` runs (host work
        beside the model's). The progress bar counts rows, out of ``total`` (default: one per item). Returns the
        :class:`Ahead` (its ``work_s``/``waited_s`` say how much host work the model hid)."""
        size = max(1, int(size))
        chunks = [list(items[i:i + size]) for i in range(0, len(items), size)]
        with self.progress(stage, len(items) if total is None else total, unit) as bar, Ahead() as pool:
            pending = pool.submit(ahead, chunks[0]) if ahead and chunks else None
            for k, chunk in enumerate(chunks):
                if ahead:
                    prepared = pending.result()
                    if k + 1 < len(chunks):
                        pending = pool.submit(ahead, chunks[k + 1])
                    out = compute(chunk, prepared)
                else:
                    out = compute(chunk)
                out = out if isinstance(out, ChunkResult) else ChunkResult(out)
                for path, array in out.arrays.items():
                    self.store.write_array(path, array)
                self.store.append_rows(stage, out.rows)
                bar.update(len(out.rows))
        return pool

    @contextlib.contextmanager
    def progress(self, stage: str, total: int | None, unit: str = "structure"):
        """A progress bar for ``stage``; stages call ``update(n)`` as results are reported."""
        bar = tqdm(total=total, desc=stage, unit=unit, file=sys.stderr, dynamic_ncols=True)
        try:
            yield bar
        finally:
            bar.close()
