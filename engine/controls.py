"""Controls: known materials screened beside the candidates, so that a run can tell "nothing good here" from "the
pipeline is broken".

A control is a built-in reference phase (:mod:`engine.references.builtin_phases`) that enters the run as a candidate
(id ``control-<name>``, the candidates stage's ``control`` column says its role) and goes through the same stages:
exempt from novelty (it is known by definition), left out of the funnel counts and the coating tables, and reported
in a table of its own, each stage's outcome beside the one the literature expects. A control that comes out wrong
(a swapped model, a broken stage) is said in the run's summary.

Expected outcomes: a control passes every stage up to ``fails_at`` (None: every stage), fails there, and is not taken
by the stages after it; ``details`` adds an expected column value (e.g. the thermo verdict) to a stage's status.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.core.rows import Status
from engine.references.builtin_phases import BUILTIN

PREFIX = "control-"
NOT_REACHED = "not reached"
ADVISORY = "advisory"  # a stage whose verdict decides nothing (the committee): shown, never expected


@dataclass(frozen=True)
class Control:
    name: str  # the id is control-<name>
    phase: str  # its built-in phase (engine.references.builtin_phases)
    role: str  # positive: should pass the whole funnel; negative: should fail at ``fails_at``
    fails_at: str | None  # the stage where it should fail (None: none)
    why: str  # what is known of it, cited
    details: dict[str, tuple[str, str]] = field(default_factory=dict)  # stage: (column, expected value)

    @property
    def id(self) -> str:
        return PREFIX + self.name

    def expected(self, stages: list[str], advisory: frozenset[str] = frozenset()) -> dict[str, str]:
        """{stage: expected outcome} over ``stages`` (in funnel order): pass, fail, not reached, or advisory for the
        stages in ``advisory``."""
        out, failed = {}, False
        for name in stages:
            out[name] = ADVISORY if name in advisory else NOT_REACHED if failed else (
                "fail" if name == self.fails_at else "pass")
            failed = failed or name == self.fails_at
        return out


KNOWN: dict[str, Control] = {c.name: c for c in (
    Control("Li3YCl6", "builtin:Li3YCl6-P-3m1", "positive", None,
            "fast Li conductor, 0.51 mS/cm at 25 °C (Asano et al., Adv. Mater. 30, 1803075 (2018)); oxidation-"
            "stable cathode coating, DFT window 0.62-4.21 V (Wang et al., Angew. Chem. Int. Ed. 58, 8039 (2019))",
            {"thermo": ("verdict", "CC")}),
    Control("LiF", "builtin:LiF-rocksalt", "negative", "pes",
            "stable, wide-gap, window 0-6.4 V (a known AC and CC coating), but a poor Li conductor: Li diffusion "
            "in doped LiF crystals has an activation energy of 0.74-0.92 eV, far below 1e-6 S/cm at 300 K",
            {"thermo": ("verdict", "AC+CC")}),
)}


def check_names(names) -> None:
    """Raises ValueError naming an unknown control."""
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise ValueError(f"controls: unknown {unknown}; known: {sorted(KNOWN)}")


def control_structures(names) -> list[tuple[Control, object]]:
    """(control, its built structure) of each name, in order."""
    phases = {p.id: p for p in BUILTIN}
    return [(KNOWN[n], phases[KNOWN[n].phase].build()) for n in names]


def control_ids(store) -> set[str]:
    """Ids of the run's controls: the candidates with a role in the ``control`` column (none in older files)."""
    if not store.has("candidates") or "control" not in store.column_names("candidates"):
        return set()
    return {cid for cid, role in store.column_by_id("candidates", "control").items() if role}


def exempt_from_novelty(run, stage: str, todo: list[str], row_type, controls: set[str]) -> list[str]:
    """Writes the pass rows of the ``controls`` among ``todo`` (known by definition, they are never matched, nor do
    they make a candidate a duplicate) and returns the candidates left to classify."""
    exempt = [cid for cid in todo if cid in controls]
    if exempt:
        run.store.append_rows(stage, [row_type(cid, Status.PASS, "control: exempt from novelty") for cid in exempt])
    return [cid for cid in todo if cid not in controls]


def formulas(store) -> dict[str, str]:
    """{id: reduced formula} of every candidate, a control's marked "(control)": the labels of a plot."""
    formula = store.column_by_id("candidates", "formula")
    return {**formula, **{cid: f"{formula.get(cid, cid)} (control)" for cid in control_ids(store)}}


@dataclass
class ControlOutcome:
    control: Control
    observed: dict[str, str]  # stage: pass / fail / error / not reached, with the detail in parentheses
    expected: dict[str, str]

    @property
    def wrong(self) -> list[str]:
        """The stages where the outcome differs from the expected one."""
        return [s for s in self.expected if self.expected[s] != ADVISORY and self.observed.get(s) != self.expected[s]]


def outcomes(store, stages) -> list[ControlOutcome]:
    """Each control of the run, at every stage of ``stages`` (the stage table's entries that write one row per
    candidate) that the file holds, against what it should give."""
    ran = [s for s in stages if s.per_candidate and store.has(s.name)]
    ids = control_ids(store)
    status_of = {s.name: store.column_by_id(s.name, "status") for s in ran} if ids else {}
    out = []
    for cid in sorted(ids):
        control = KNOWN.get(cid.removeprefix(PREFIX))
        if control is None:
            continue
        expected = control.expected([s.name for s in ran], frozenset(s.name for s in ran if not s.gate))
        observed = {}
        for s in ran:
            status = status_of[s.name].get(cid)
            observed[s.name] = NOT_REACHED if status is None else str(status)
            if s.name in control.details and status is not None:
                column, value = control.details[s.name]
                observed[s.name] += f" ({store.column_by_id(s.name, column).get(cid, '')})"
                expected[s.name] += f" ({value})" if expected[s.name] not in (NOT_REACHED, ADVISORY) else ""
        out.append(ControlOutcome(control, observed, expected))
    return out


def summary_lines(results: list[ControlOutcome]) -> list[str]:
    """The terminal's lines: one per control, and a WARNING for each that came out wrong."""
    lines = []
    for r in results:
        wrong = r.wrong
        if not wrong:
            lines.append(f"control {r.control.name} ({r.control.role}): as expected at every stage")
            continue
        said = "; ".join(f"{s}: {r.observed[s]}, expected {r.expected[s]}" for s in wrong)
        lines.append(f"WARNING: control {r.control.name} ({r.control.role}) came out wrong: {said}. The verdicts of "
                     "this run may not be trusted (model, settings or references); see the report's Controls table")
    return lines


def markdown_lines(results: list[ControlOutcome]) -> list[str]:
    """The report's Controls section: each control's outcome at every stage beside the expected one."""
    if not results:
        return []
    stages = list(results[0].expected)
    lines = ["", "## Controls", "",
             ("Known materials screened beside the candidates (`controls=[...]`; left out of the funnel and the "
              "coating tables). Each cell: the outcome; **outcome / expected** where they differ. Advisory stages (the "
              "committee) decide nothing and have no expected outcome."), "",
             "| control | role | " + " | ".join(stages) + " |", "|---|---|" + "---|" * len(stages)]
    for r in results:
        cells = [f"**{r.observed.get(s, '–')} / {r.expected[s]}**" if s in r.wrong
                 else f"{r.observed.get(s, '–')}" for s in stages]
        lines.append(f"| {r.control.name} | {r.control.role} | " + " | ".join(cells) + " |")
    lines += [""] + [f"- {r.control.name}: {r.control.why}." for r in results]
    return lines
