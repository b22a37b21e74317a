"""Hydra entry point: ``python -m engine.screen`` runs the configured stages of the stage table (:mod:`engine.stages`)
in order on one HDF5 file.

Each stage reads what passed the stage before it from the file, skips what it already finished, and appends its
results as they come; rerunning the same command after a crash or a kill resumes the run.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import sys
import time
from collections import Counter
from importlib.metadata import PackageNotFoundError, version

from threadpoolctl import threadpool_limits

from engine.terminal import hold_library_warnings, native_stderr_held, warnings_to_log_file

_AS_COMMAND = __name__ == "__main__"  # imported (tests, benchmarks), it leaves warnings alone
if _AS_COMMAND:
    hold_library_warnings()
# the packages' import-time notices (Warp's CUDA-driver line) go to the log file
with native_stderr_held() if _AS_COMMAND else contextlib.nullcontext():
    import hydra
    import torch
    import yaml
    from omegaconf import DictConfig, OmegaConf

    from engine import controls
    from engine.candidates.sampler import CsxError
    from engine.config import (
        BATCHING_KEYS,
        frozen_on_resume,
        marked_settings,
        one_line,
        register,
        stored_config,
        validated,
    )
    from engine.controls import control_ids
    from engine.core.stopping import RunStopped, stop_on_signals
    from engine.core.workers import shutdown_workers
    from engine.io import report
    from engine.io.store import STATUSES, ResultStore
    from engine.io.views import RowsExcept
    from engine.models import ModelUnavailableError
    from engine.models.base import resolve_device
    from engine.references.sources import ReferenceUnavailableError
    from engine.run import Run
    from engine.stages import STAGES, Stage, by_name, default_stages

log = logging.getLogger("engine.screen")

PACKAGES = ("torch", "torch-sim-atomistic", "sevenn", "matgl", "chgnet", "mace-torch", "e3nn", "pymatgen",
            "ase", "spglib", "pyxtal", "wyckoff-transformer", "h5py", "hydra-core", "numpy")
# configuration errors, not bad candidates: they stop the run with their message
CONFIG_ERRORS = (ModelUnavailableError, ReferenceUnavailableError, CsxError, FileNotFoundError)

register()


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def results_defining(section, ignored: set[str] = frozenset()):
    """A config section without the settings that only say how work is batched (a run that ran out of memory
    resumes with smaller batches; one started on a CPU resumes on a GPU) and without ``ignored`` ones (secrets,
    paths on this machine)."""
    if not isinstance(section, dict):
        return section
    return {k: v for k, v in section.items() if k not in BATCHING_KEYS and k not in ignored}


def check_resumable(store: ResultStore, cfg: DictConfig, table: tuple[Stage, ...] = STAGES) -> None:
    stored = store.metadata()["config"]
    if not stored:
        return
    old = yaml.safe_load(stored) or {}
    new = OmegaConf.to_container(cfg, resolve=True)
    secret, local = marked_settings("secret", table), marked_settings("local", table)
    ignored = {k: secret.get(k, set()) | local.get(k, set()) for k in frozen_on_resume(table)}
    changed = [k for k in frozen_on_resume(table)
               if k in old and results_defining(old.get(k), ignored[k]) != results_defining(new.get(k), ignored[k])]
    if changed:
        raise SystemExit(f"{store.path} holds a run made with different {', '.join(changed)} settings; "
                         "rerun with those settings to resume it, or choose a new output=...")


def check_stages(stages: list[str], store: ResultStore, table: tuple[Stage, ...] = STAGES) -> None:
    """Each configured stage's required stages run before it (or already ran on the file)."""
    known = by_name(table)
    for i, name in enumerate(stages):
        for needed in known[name].requires:
            if needed not in stages[:i] and not store.has(needed):
                raise SystemExit(f"stage {name} needs stage {needed} before it: stages=[..., {needed}, {name}, ...]")


def stage_summary(store: ResultStore, group_name: str, top: int = 3) -> dict:
    """Counts per status and the most frequent reasons of non-passing rows of one stage."""
    if not store.has(group_name):
        return {"n": 0, **{s: 0 for s in STATUSES}, "top_reasons": []}
    status, reason = store.column(group_name, "status"), store.column(group_name, "reason")
    counts = Counter(status.tolist())
    reasons = Counter(r.split(":")[0] for s, r in zip(status, reason) if s != "pass")
    return {"n": len(status), **{s: counts.get(s, 0) for s in STATUSES}, "top_reasons": reasons.most_common(top)}


def summary_table(store: ResultStore, stages, timings: dict[str, float]) -> str:
    lines = [f"{'stage':<12}{'in':>6}{'pass':>6}{'fail':>6}{'error':>6}{'time/s':>9}  top reasons"]
    for name in stages:
        s = stage_summary(store, name)
        reasons = "; ".join(f"{r} ({n})" for r, n in s["top_reasons"]) or "-"
        lines.append(f"{name:<12}{s['n']:>6}{s['pass']:>6}{s['fail']:>6}{s['error']:>6}"
                     f"{timings.get(name, 0.0):>9.1f}  {reasons}")
    return "\n".join(lines)


def criteria_tables(store: ResultStore, stages, settings, table: tuple[Stage, ...] = STAGES) -> str:
    """Each stage's criteria counts (stages that declare them and have rows)."""
    out = []
    for name in stages:
        stage = by_name(table)[name]
        if stage.criteria is None or not store.has(name):
            continue
        title, counts = stage.criteria(store, settings)
        out.append(f"\n{title}")
        out += [f"  {label}" if n is None else f"  {label:<48}{n:>6}" for label, n in counts]
    return "\n".join(out)


def left_out_line(stages, table: tuple[Stage, ...] = STAGES) -> str:
    """Which stages of the table this run left out, and how to run them ("" when none)."""
    left = [s.name for s in table if s.name not in stages]
    if not left:
        return ""
    return (f"\nstages left out: {', '.join(left)} (more than this device affords by default). To run them: a "
            "GPU, where the default takes them; preset=smoke (every stage, a short MD that checks the chain); "
            "preset=paper (the reference pipeline's MD); or stages=[...] naming them (the file resumes)")


def run(cfg: DictConfig, table: tuple[Stage, ...] = STAGES) -> dict[str, float]:
    """Run the configured stages of ``table`` in order on the configured file; every setting is validated first."""
    try:
        typed = validated(cfg, table)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    if cfg.stages is None:  # every stage the device affords, resolved before anything reads or stores the list
        cfg.stages = typed.stages = default_stages(table, gpu=resolve_device(cfg.device).type == "cuda")
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    timings: dict[str, float] = {}
    stages = list(typed.stages)
    known = by_name(table)
    # host-side numpy here works on 3x3 to 100x100 matrices: OpenBLAS threads only spin against torch's own
    # (phonons and plausibility ran 1.4x slower with them on 2 cores); host parallelism is the workers' business
    with ResultStore(cfg.output) as store, threadpool_limits(limits=1, user_api="blas"):
        check_stages(stages, store, table)
        check_resumable(store, cfg, table)
        store.write_metadata(stored_config(cfg, table), package_versions(), {})
        ctx, name = Run(cfg, store, known), stages[0] if stages else "-"
        try:
            with stop_on_signals():
                for name in stages:
                    t0 = time.perf_counter()
                    try:
                        known[name].run(ctx)
                    except CONFIG_ERRORS as exc:
                        raise SystemExit(f"stage {name}: {exc}") from None
                    timings[name] = time.perf_counter() - t0
        except RunStopped as stop:
            print(f"\nstopped by {stop} in stage {name}: {cfg.output} holds every row finished before it; rerun the "
                  f"same command to resume (exit status {stop.exit_status})", file=sys.stderr, flush=True)
            raise SystemExit(stop.exit_status) from None
        finally:
            shutdown_workers()  # on every way out: no worker outlives its run
        counted = RowsExcept(store, control_ids(store))  # the controls are not candidates: counted apart
        print(f"\n{cfg.output}\n" + summary_table(counted, stages, timings))
        print(criteria_tables(counted, stages, typed, table))
        print("\n".join(["", *controls.summary_lines(controls.outcomes(store, table))]))
        print(left_out_line(stages, table))
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
    if _AS_COMMAND:
        warnings_to_log_file()
    run(cfg)


def composition_error_line(exc: BaseException) -> str:
    """Hydra's composition error (an unknown key, a value outside its type or choices, on the command line or in a
    file) in one line naming the key: the messages of the exception and of its causes, without omegaconf's trailers."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = one_line(exc)
        if text and "$" not in text and not any(text in p for p in parts):
            parts.append(text.removesuffix(":").strip())
        exc = exc.__cause__ or exc.__context__
    return ": ".join(parts)


if __name__ == "__main__":
    import os

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # Hydra's composition errors reach the line below, not its printer
    try:
        main()
    except (HydraException, OmegaConfBaseException) as exc:
        sys.exit(composition_error_line(exc))
