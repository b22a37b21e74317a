"""The stage table: the funnel in one place, and the only list of stages there is.

Each stage is one line: its name (= its config section and conf group), the function that runs it, its row type
(the columns it writes), its settings dataclass, the group its input structures come from, and what it contributes
to the run's summary, the report's funnel and the report's coating tables. Everything else is derived from the
table: the config schema (:mod:`engine.config`), the default stage list (``default``), the sections a resume must not
change (every stage's settings), and each stage's feeders (:func:`feeders`). ``engine.screen`` and ``engine.io.report``
iterate over it; no stage module names another stage's module.

Adding a stage means one module (its ``run_stage``, row and settings dataclasses), one conf group (``conf/<name>/``
with a ``default.yaml``) and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.candidates import stage as candidates
from engine.committee import stage as committee
from engine.committee.plots import plot_committee
from engine.core.rows import Row
from engine.filters import bandgap, novelty, relaxed_novelty
from engine.md import stage as md
from engine.md.protocol import MdSettings
from engine.pes import stage as pes
from engine.references import stage as references
from engine.references.sources import ReferencesSettings
from engine.relax import stage as relax
from engine.relax.fire import RelaxSettings
from engine.stability import phonons, plausibility
from engine.thermo import stage as thermo
from engine.thermo.criteria import CoatingCriteria

Coating = Callable  # (store) -> [(column header, {candidate id: text})]: what a stage says about a coating candidate


@dataclass(frozen=True)
class Stage:
    """One line of the stage table."""
    name: str
    run: Callable  # run_stage(run: engine.run.Run) -> None
    row: type[Row]  # the columns it writes
    settings: type | None  # its config section ``name`` (None: the section is chosen by its conf group)
    structures: str | None  # group its input structures come from (the stage that wrote them)
    conf: str = "default"  # its default option in conf/<name>/ (a file there, or "schema": the dataclass's defaults)
    gate: bool = True  # its passing rows are candidates later stages may take (False: it writes other rows)
    default: bool | str = True  # in the default stage list ("gpu": in it where the run has a GPU)
    requires: tuple[str, ...] = ()  # stages that must have run before it (in this run or on the file)
    sections: tuple[tuple[str, type, str], ...] = ()  # further config sections it owns (name, dataclass, option)
    criteria: Callable | None = None  # (store, config) -> (title, [(criterion, candidates passing)])
    funnel: Callable | None = None  # (store, config) -> [(criterion, ids passing or None = its pass rows, note)]
    coating: Coating | None = field(default=None)  # its columns in the report's coating tables
    plot: tuple[str, Callable] | None = None  # (file stem, (store, config, path) -> None): its plot in the report
    per_candidate: bool = True  # writes one row per candidate it takes (False: rows of something else)


STAGES: tuple[Stage, ...] = (
    Stage("candidates", candidates.run_stage, candidates.CandidateRow, None, None, conf="builtin",
          funnel=candidates.funnel),
    Stage("bandgap", bandgap.run_stage, bandgap.BandGapRow, bandgap.BandGapSettings, "candidates",
          conf="committee", funnel=bandgap.funnel),
    Stage("novelty", novelty.run_stage, novelty.NoveltyRow, novelty.NoveltySettings, "candidates",
          funnel=novelty.funnel),
    Stage("relax", relax.run_stage, relax.RelaxRow, RelaxSettings, "candidates", funnel=relax.funnel),
    Stage("references", references.run_stage, references.ReferenceRow, ReferencesSettings, "relax", conf="builtin",
          gate=False, per_candidate=False),
    Stage("relaxed_novelty", relaxed_novelty.run_stage, relaxed_novelty.NoveltyRow,
          relaxed_novelty.RelaxedNoveltySettings, "relax", funnel=relaxed_novelty.funnel),
    Stage("thermo", thermo.run_stage, thermo.ThermoRow, thermo.ThermoSettings, "relax", requires=("references",),
          sections=(("criteria", CoatingCriteria, "seed"),), criteria=thermo.criteria_counts, funnel=thermo.funnel),
    Stage("committee", committee.run_stage, committee.CommitteeRow, committee.CommitteeSettings, "relax",
          gate=False, requires=("references", "thermo"), criteria=committee.criteria_counts,
          coating=committee.coating_columns,
          plot=("committee", plot_committee)),
    Stage("plausibility", plausibility.run_stage, plausibility.PlausibilityRow, plausibility.PlausibilitySettings,
          "relax", funnel=plausibility.funnel, coating=plausibility.coating_columns),
    Stage("phonons", phonons.run_stage, phonons.PhononRow, phonons.PhononSettings, "relax", funnel=phonons.funnel,
          coating=phonons.coating_columns),
    Stage("pes", pes.run_stage, pes.PesRow, pes.PesSettings, "relax", conf="quick", criteria=pes.criteria_counts,
          funnel=pes.funnel, coating=pes.coating_columns),
    Stage("md", md.run_stage, md.MdRow, MdSettings, "relax", conf="paper", default="gpu", criteria=md.criteria_counts,
          funnel=md.funnel, coating=md.coating_columns),
)


def by_name(stages: tuple[Stage, ...] = STAGES) -> dict[str, Stage]:
    return {s.name: s for s in stages}


BY_NAME = by_name()


def default_stages(stages: tuple[Stage, ...] = STAGES, gpu: bool = False) -> list[str]:
    """The stages a run takes when none are given: every stage the device affords (md's MD only on a GPU)."""
    return [s.name for s in stages if s.default is True or (gpu and s.default == "gpu")]


def feeders(name: str, stages: tuple[Stage, ...] = STAGES) -> tuple[str, ...]:
    """The stages whose passing candidates ``name`` may take, nearest first: the gates before it in table order, back
    to the stage that wrote its input structures (a stage on relaxed structures takes nothing from before relax)."""
    table = by_name(stages)
    before = [s for s in stages[:list(table).index(name)] if s.gate]
    out = []
    for s in reversed(before):
        out.append(s.name)
        if s.name == table[name].structures:
            break
    return tuple(out)
