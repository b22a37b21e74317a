"""Committee stage: how much each finalist's thermo verdict depends on the model.

Every candidate that passed thermo (or the stage ``committee.take`` names) is re-judged by each model of
``committee.models``: the member relaxes the candidate and the reference phases of its systems with its own energies,
builds its own hulls and judges the candidate as the thermo stage does (:mod:`engine.committee.members`). One row per
candidate in ``committee/``: each member's E_hull, window and mixing energies (the run's own model first, read from
``thermo/``; the group's attribute ``models`` names them in order), the E_hull spread and standard deviation, and the
committee's verdict (:func:`engine.committee.verdict.committee_verdict`). The committee advises: later stages take
their candidates from thermo, whatever its verdict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.committee.members import Judging, judge, phases_for
from engine.committee.verdict import AGREED, REJECTED, SPLIT, UNJUDGED, committee_verdict
from engine.core.corrections import correction_of
from engine.core.rows import NAN, Row, Status, short_error
from engine.models import model_config
from engine.thermo.judgement import ThermoRow

VALUES = ("e_hull", "e_red", "e_ox", "e_rxn_electrolyte", "e_rxn_cathode")  # per member, from its thermo row


@dataclass
class CommitteeSettings:
    """``conf/committee/``: the members and the spread a verdict tolerates."""
    # names in conf/model/ (or model configs), judged besides the run's own model
    models: list = field(default_factory=lambda: ["chgnet", "m3gnet"],
                         metadata={"umlip": True, "doc": "names in conf/model/ or model configs"})
    take: str | None = None  # the stage whose passing candidates it judges (null: thermo, the stage table's feeder)
    max_spread: float = 0.1  # eV/atom: a larger E_hull spread between members makes the verdict split
    include_run_model: bool = True  # the run's model (its thermo row) is a member, though not of the jury
    chunk_size: int = 256  # candidates judged by every member before their rows are written

    def __post_init__(self):
        if not self.models:
            raise ValueError("committee.models: name at least one model (conf/model/)")
        if self.max_spread < 0 or self.chunk_size < 1:
            raise ValueError("committee.max_spread must be >= 0 eV/atom and committee.chunk_size >= 1")


@dataclass
class CommitteeRow(Row):
    """One candidate's verdicts by every member; the arrays are (n_members,), in the order of the ``models``
    attribute, NaN where a member could not judge (``member_reasons`` says why)."""
    verdict: str = ""  # agreed | split | rejected by committee | n/a
    e_hull: np.ndarray = field(default_factory=lambda: np.zeros(0))  # eV/atom, each on the member's own hull
    e_red: np.ndarray = field(default_factory=lambda: np.zeros(0))  # V vs Li/Li+
    e_ox: np.ndarray = field(default_factory=lambda: np.zeros(0))  # V vs Li/Li+
    e_rxn_electrolyte: np.ndarray = field(default_factory=lambda: np.zeros(0))  # eV/atom
    e_rxn_cathode: np.ndarray = field(default_factory=lambda: np.zeros(0))  # eV/atom
    passes: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # the member's thermo verdict is AC or CC
    e_hull_spread: float = NAN  # eV/atom, max - min over the members that judged
    e_hull_std: float = NAN  # eV/atom
    member_verdicts: str = ""  # "model: AC+CC; model: none (E_hull 0.31 >= 0.2 eV/atom); ..."


def member_labels(run) -> list[str]:
    """The members' names in row order: the run's model (its config's name, no model loaded for it) first."""
    own = [f"{run.cfg.model.name} (run)"] if run.cfg.committee.include_run_model else []
    return own + [m if isinstance(m, str) else str(m.get("name")) for m in run.cfg.committee.models]


def run_stage(run) -> None:
    """Judge every candidate that passed the stage before it (or ``committee.take``) with each member."""
    cfg, store = run.settings("committee"), run.store
    todo = run.pending("committee", cfg.take)
    if not todo:
        return
    labels = member_labels(run)
    store.set_attrs("committee", {"models": json.dumps(labels)})
    refs, sources = reference_structures(store)
    judging = Judging(run.cfg.thermo.electrolyte, run.cfg.thermo.cathode, float(run.cfg.thermo.below_hull_tolerance),
                      run.settings("criteria"), str(run.cfg.references.correction),
                      run.settings("relax"), Path(run.cfg.references.cache_dir) / "references",
                      str(store.attrs("references").get("reference_source", "?")),
                      run.cfg.references.prototype_edges == "all", float(run.cfg.references.min_formation_energy))
    formula = store.column_by_id("candidates", "formula")

    def compute(chunk):
        ids, crystals = run.input_crystals("committee", chunk)
        phases = phases_for([formula[c] for c in ids], judging, refs, sources)
        members = [own_rows(store, ids)] if cfg.include_run_model else []
        for spec in cfg.models:
            members.append(member_rows(run, spec, ids, crystals, phases, judging))
        return [committee_row(c, members, labels, cfg) for c in chunk]

    run.run_chunks("committee", todo, cfg.chunk_size, compute)


def reference_structures(store) -> tuple[dict, dict[str, str]]:
    """{phase id: structure} and {phase id: source} of the ``references/`` rows that have a structure."""
    if not store.has("references"):
        return {}, {}
    structures = store.structures("references")
    source = store.column_by_id("references", "source")
    return structures, {pid: str(source.get(pid, "")) for pid in structures}


def own_rows(store, ids) -> dict[str, ThermoRow]:
    """The run's model's verdicts: its ``thermo/`` rows (an empty row where it has none)."""
    status = store.column_by_id("thermo", "status")
    cols = {k: store.column_by_id("thermo", k) for k in (*VALUES, "verdict")}
    rows = {}
    for cid in ids:
        if cid not in status:
            rows[cid] = ThermoRow(cid, Status.ERROR, "no thermo row")
            continue
        rows[cid] = ThermoRow(cid, Status(status[cid]), **{k: v[cid] for k, v in cols.items()})
    return rows


def member_rows(run, spec, ids, crystals, phases, judging) -> dict[str, ThermoRow]:
    """One member's thermo rows; a model that cannot be loaded or fails gives every candidate a reason, not an
    error of the run."""
    try:
        correction = correction_of(model_config(spec), judging.correction)
        return judge(run.stage_model("committee", spec), ids, crystals, phases, judging, correction)
    except Exception as exc:  # noqa: BLE001 - one member's failure is a cell of the table, never the run's end
        return {cid: ThermoRow(cid, Status.ERROR, f"member failed: {short_error(exc)}") for cid in ids}


def committee_row(cid: str, members: list[dict[str, ThermoRow]], labels: list[str], cfg) -> CommitteeRow:
    own = 1 if cfg.include_run_model else 0
    rows = [m.get(cid) or ThermoRow(cid, Status.ERROR, "not relaxed (no structure)") for m in members]
    values = {k: np.array([float(getattr(r, k)) for r in rows]) for k in VALUES}
    for i, r in enumerate(rows):  # a member that erred judged nothing, whatever it computed before
        if r.status == Status.ERROR:
            values["e_hull"][i] = np.nan
    passes = np.array([r.status == Status.PASS for r in rows])
    jury = np.arange(len(rows)) >= own
    v = committee_verdict(values["e_hull"], passes, jury, cfg.max_spread, labels)
    status = {AGREED: Status.PASS, SPLIT: Status.FAIL, REJECTED: Status.FAIL, UNJUDGED: Status.ERROR}[v.verdict]
    said = "; ".join(f"{lab}: {r.verdict or r.status}" + (f" ({r.reason})" if r.reason else "")
                     for lab, r in zip(labels, rows))
    return CommitteeRow(cid, status, v.reason, verdict=v.verdict, passes=passes, e_hull_spread=v.e_hull_spread,
                        e_hull_std=v.e_hull_std, member_verdicts=said, **values)


def criteria_counts(store, cfg) -> tuple[str, list[tuple[str, int]]]:
    """The summary's title and how many candidates got each verdict."""
    verdict = list(store.column("committee", "verdict"))
    models = json.loads(store.attrs("committee").get("models", "[]"))
    return (f"committee ({', '.join(models)}; E_hull spread <= {cfg.committee.max_spread} eV/atom)",
            [("judged", len(verdict)), *((v, verdict.count(v)) for v in (AGREED, SPLIT, REJECTED, UNJUDGED))])


def coating_columns(store) -> list[tuple[str, dict[str, str]]]:
    """The report's coating-table columns: each jury member's E_hull, the spread and the verdict."""
    if not store.has("committee"):
        return []
    models = json.loads(store.attrs("committee").get("models", "[]"))
    ids, e_hull = store.ids("committee"), store.column("committee", "e_hull")
    spread, verdict = store.column("committee", "e_hull_spread"), store.column("committee", "verdict")
    columns = [(f"E_hull {m} (eV/atom)", {c: _num(e[k]) for c, e in zip(ids, e_hull)})
               for k, m in enumerate(models) if not m.endswith(" (run)")]
    return [*columns, ("E_hull spread (eV/atom)", {c: _num(x) for c, x in zip(ids, spread)}),
            ("committee", dict(zip(ids, map(str, verdict))))]


def _num(x: float) -> str:
    return f"{x:.3f}" if np.isfinite(x) else "–"
