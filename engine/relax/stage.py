"""Relax stage: every candidate that passed the filters before it, relaxed with the run's uMLIP by batched FIRE
on positions and cell (:mod:`engine.relax.fire`); one row per candidate in ``relax/`` with the relaxed structure."""

from __future__ import annotations

from engine.relax.fire import RelaxResult, relax

RelaxRow = RelaxResult  # the stage's row: one relaxation (energy, stress, fmax, steps, relaxed structure)


def run_stage(run) -> None:
    """Relax every candidate that passed the filters before it and is not yet in ``relax/``."""
    todo = run.pending("relax")
    if not todo:
        return
    ids, crystals = run.input_crystals("relax", todo)
    loaded = run.model("relax", run.cfg.model)
    with run.progress("relax", len(todo)) as bar:
        budget = relax(crystals, ids, loaded, run.settings("relax"), lambda rows: run.store.append_rows("relax", rows),
                       progress=bar.update)
    run.store.set_attrs("relax", {"atoms_per_batch": budget.history})


def funnel(store, cfg) -> list[tuple[str, set[str] | None, str]]:
    """The report\'s funnel steps: (criterion, ids passing it or None for this stage\'s pass rows, note)."""
    return [("relaxed (FIRE converged)", None, "")]
