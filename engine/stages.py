"""The stage table: the funnel in one place.

Each stage is declared once: its name, the function that runs it, the stages whose passing candidates it may take
(its feeders, nearest first: it takes the last of them configured before it), the group its input structures come
from, its row type (the columns it writes), the stages that must have run before it, and what it contributes to
the run's summary and to the report's funnel. ``engine.screen`` and ``engine.io.report`` iterate over this table; no
stage module names another stage's module.

Adding a stage means one module (its ``run_stage``, row dataclass and settings dataclass), one conf group (registered
in :mod:`engine.config`) and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.candidates import stage as candidates
from engine.core.rows import Row
from engine.filters import bandgap, novelty, relaxed_novelty
from engine.md import stage as md
from engine.pes import stage as pes
from engine.references import stage as references
from engine.relax import stage as relax
from engine.stability import phonons, plausibility
from engine.thermo import stage as thermo


@dataclass(frozen=True)
class Stage:
    """One line of the stage table."""
    name: str
    run: Callable  # run(run: engine.run.Run) -> None
    feeders: tuple[str, ...]  # stages whose passing candidates it may take, nearest first
    structures: str | None  # group its input structures come from
    row: type[Row]  # the columns it writes
    requires: tuple[str, ...] = ()  # stages that must have run before it (in this run or on the file)
    criteria: Callable | None = None  # (store, config) -> (title, [(criterion, candidates passing)])
    funnel: Callable | None = None  # (store, config) -> [(criterion, ids passing or None = its pass rows, note)]


STAGES: tuple[Stage, ...] = (
    Stage("candidates", candidates.run_stage, (), None, candidates.CandidateRow, funnel=candidates.funnel),
    Stage("bandgap", bandgap.run_stage, ("candidates",), "candidates", bandgap.BandGapRow, funnel=bandgap.funnel),
    Stage("novelty", novelty.run_stage, ("bandgap", "candidates"), "candidates", novelty.NoveltyRow,
          funnel=novelty.funnel),
    Stage("relax", relax.run_stage, ("novelty", "bandgap", "candidates"), "candidates", relax.RelaxRow,
          funnel=relax.funnel),
    Stage("references", references.run_stage, ("relax",), "relax", references.ReferenceRow),
    Stage("relaxed_novelty", relaxed_novelty.run_stage, ("relax",), "relax", relaxed_novelty.NoveltyRow,
          funnel=relaxed_novelty.funnel),
    Stage("thermo", thermo.run_stage, ("relaxed_novelty", "relax"), "relax", thermo.ThermoRow,
          requires=("references",),
          criteria=thermo.criteria_counts, funnel=thermo.funnel),
    Stage("plausibility", plausibility.run_stage, ("thermo", "relaxed_novelty", "relax"), "relax",
          plausibility.PlausibilityRow, funnel=plausibility.funnel),
    Stage("phonons", phonons.run_stage, ("plausibility", "thermo", "relaxed_novelty", "relax"), "relax",
          phonons.PhononRow, funnel=phonons.funnel),
    Stage("pes", pes.run_stage, ("phonons", "plausibility", "thermo", "relaxed_novelty", "relax"), "relax", pes.PesRow,
          criteria=pes.criteria_counts,
          funnel=pes.funnel),
    Stage("md", md.run_stage, ("pes", "phonons", "plausibility", "thermo", "relaxed_novelty", "relax"), "relax",
          md.MdRow,
          criteria=md.criteria_counts,
          funnel=md.funnel),
)
BY_NAME = {s.name: s for s in STAGES}
