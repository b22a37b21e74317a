"""Plausibility stage: crystal-chemistry filters between thermodynamics and the expensive transport stages.

Candidates that pass every thermodynamic criterion can still have chemistry no known compound shows: square-planar
LiO4, trigonal-planar LiF3, a composition on the tie line between two stable phases. Three filters, each with a
score, a verdict ("ok", "flag", "n/a") and a reason in the row, and each with its action in
``conf/plausibility/`` ("flag": the candidate goes on, flagged; "reject": it fails here; "off"):

- coordination (:mod:`engine.stability.coordination`): the environment of every cation site against those the relaxed
  reference phases of the candidate's own chemical system show (so that a verdict depends neither on the other
  candidates of the run nor on the shard); score = the sites' mean typicality;
- bond valence (:mod:`engine.stability.bond_valence`): global instability index (GII) [v.u.]; flagged above ``gii_max``;
- tie line (:mod:`engine.stability.tie_lines`): a candidate above the reference hull whose decomposition is two phases;
  score = its E_hull [eV/atom].
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

from pymatgen.core import Composition, Structure

from engine.core.corrections import chemsys
from engine.core.rows import NAN, Row, Status, short_error
from engine.core.workers import WorkerError, map_isolated
from engine.references.sources import stored_references
from engine.stability.bond_valence import NoOxidationStatesError, bond_valences, with_oxidation_states
from engine.stability.coordination import ReferenceEnvironments, cation_environments, judge_coordination
from engine.stability.tie_lines import tie_line
from engine.thermo.hulls import Hulls, MissingReferencesError

log = logging.getLogger(__name__)
STAGE = "plausibility"
FILTERS = ("coordination", "bond_valence", "tie_line")


class FilterAction(StrEnum):
    """What a filter does with a flagged candidate; an unknown value stops the run before any work."""
    flag = "flag"  # the candidate goes on, flagged
    reject = "reject"  # it fails here
    off = "off"  # the filter does not run


@dataclass
class PlausibilitySettings:
    """``conf/plausibility/``: what each filter does with a flagged candidate (flag | reject | off), and its
    thresholds."""
    coordination: FilterAction = FilterAction.flag
    bond_valence: FilterAction = FilterAction.flag
    tie_line: FilterAction = FilterAction.flag
    min_typicality: float = 0.0  # flag an environment shown by fewer than this fraction of the references with its pair
    cn_gap: int = 2  # flag a cation whose CN is this far from every CN of its (cation, anions) pair in the references
    gii_max: float = 0.5  # v.u.; relaxed built-in references: median 0.14, 90 % below 0.33
    bv_cutoff: float = 4.0  # Å, counter-ions counted in a bond-valence sum
    tie_line_e_hull_min: float = 0.0  # eV/atom; a candidate on a tie line above this is flagged
    symprec: float = 0.1  # Å, symmetry-distinct sites (spglib)
    chunk_size: int = 256  # candidates judged (in parallel) between two writes to the run file


@dataclass
class PlausibilityRow(Row):
    """One candidate's crystal-chemistry verdicts."""
    environments: str = ""  # every cation environment, "Li-O 4-fold tetrahedral x8; ..."
    coordination_score: float = NAN  # 0-1, mean typicality of the cation sites (multiplicity-weighted)
    coordination_verdict: str = ""  # ok | flag | n/a (every filter)
    coordination_reason: str = ""
    gii: float = NAN  # v.u., global instability index
    bvs_max_deviation: float = NAN  # v.u., the largest |BVS - V| of a site
    bond_valence_verdict: str = ""
    bond_valence_reason: str = ""
    tie_line: str = ""  # "LiF + MgF2": the two phases whose tie line the composition lies on
    tie_line_e_hull: float = NAN  # eV/atom above the references' hull (score of the tie-line filter)
    tie_line_verdict: str = ""
    tie_line_reason: str = ""


def _environments_of(structure: Structure, symprec: float):
    try:
        return cation_environments(with_oxidation_states(structure), symprec)
    except Exception as exc:  # noqa: BLE001 - an intermetallic or an odd cell says nothing about candidates
        log.debug("no environments for %s: %s", structure.composition.reduced_formula, short_error(exc))
        return None


def reference_environments(structures: dict[str, Structure], symprec: float = 0.1,
                           workers: int = 1) -> ReferenceEnvironments:
    """The cation environments of reference phases (those without oxidation states are left out), one phase per
    host worker."""
    every = frozenset().union(*(chemsys(s.composition) for s in structures.values()))
    return environments_by_system(structures, [every], symprec, workers)[every]


def environments_by_system(structures: dict[str, Structure], systems: list[frozenset[str]], symprec: float = 0.1,
                           workers: int = 1) -> dict[frozenset[str], ReferenceEnvironments]:
    """{chemical system: the cation environments of the reference phases within it}, each phase analysed once, on
    the host workers."""
    phases = [s for s in structures.values() if len(s.composition.elements) >= 2]
    found = map_isolated(partial(_environments_of, symprec=symprec), phases, workers)
    analysed = [(chemsys(p.composition), e) for p, e in zip(phases, found)
                if e is not None and not isinstance(e, WorkerError)]
    return {system: ReferenceEnvironments.of([e for elements, e in analysed if elements <= system])
            for system in set(systems)}


def judge(cid: str, structure: Structure, cfg: PlausibilitySettings, reference: ReferenceEnvironments,
          hull: tuple | None) -> PlausibilityRow:
    """The row of one relaxed candidate; ``hull`` is (PhaseDiagram, E_hull [eV/atom]) when thermo ran, else None."""
    row = PlausibilityRow(cid, Status.PASS)
    decorated, problem = None, ""
    try:
        decorated = with_oxidation_states(structure)
    except NoOxidationStatesError as exc:
        problem = str(exc)
    except Exception as exc:  # noqa: BLE001 - pymatgen's oxidation-state search can fail on odd cells
        problem = f"oxidation states failed: {short_error(exc)}"
    for name, analyse in (("coordination", _coordination), ("bond_valence", _bond_valence), ("tie_line", _tie_line)):
        if getattr(cfg, name) == "off":
            continue
        try:
            analyse(row, structure, decorated, problem, cfg, reference, hull)
        except Exception as exc:  # noqa: BLE001 - a failed analysis says nothing about the candidate: n/a, it goes on
            setattr(row, f"{name}_verdict", "n/a")
            setattr(row, f"{name}_reason", f"analysis failed: {short_error(exc)}")
    rejected = [f for f in FILTERS if getattr(cfg, f) == "reject" and getattr(row, f"{f}_verdict") == "flag"]
    flagged = [getattr(row, f"{f}_reason") for f in FILTERS if getattr(row, f"{f}_verdict") == "flag"]
    if rejected:
        row.status = Status.FAIL
    row.reason = "; ".join(flagged)
    return row


def _coordination(row, structure, decorated, problem, cfg, reference, hull) -> None:
    if decorated is None:
        row.coordination_verdict, row.coordination_reason = "n/a", problem
        return
    envs = cation_environments(decorated, cfg.symprec)
    v = judge_coordination(envs, reference, cfg.min_typicality, cfg.cn_gap)
    row.environments, row.coordination_score = v.summary, v.score
    row.coordination_verdict = "flag" if v.flags else "ok"
    typical = f"mean typicality {v.score:.2f}" if not math.isnan(v.score) else "no reference with these pairs"
    row.coordination_reason = "; ".join(v.flags) or f"no flag; {typical}"


def _bond_valence(row, structure, decorated, problem, cfg, reference, hull) -> None:
    if decorated is None:
        row.bond_valence_verdict, row.bond_valence_reason = "n/a", problem
        return
    bv = bond_valences(decorated, cfg.bv_cutoff)
    row.gii, row.bvs_max_deviation = bv.gii, bv.max_deviation
    bad = bv.gii > cfg.gii_max
    row.bond_valence_verdict = "flag" if bad else "ok"
    row.bond_valence_reason = (f"GII {bv.gii:.2f} {'>' if bad else '<='} {cfg.gii_max} v.u. (worst site "
                               f"{bv.worst_site}, |BVS - V| {bv.max_deviation:.2f})")


def _tie_line(row, structure, decorated, problem, cfg, reference, hull) -> None:
    if hull is None:
        row.tie_line_verdict, row.tie_line_reason = "n/a", "no thermo row"
        return
    pd, e_hull = hull
    pair = tie_line(pd, structure.composition)
    row.tie_line_e_hull = e_hull
    row.tie_line = " + ".join(pair) if pair else ""
    bad = pair is not None and e_hull > cfg.tie_line_e_hull_min
    row.tie_line_verdict = "flag" if bad else "ok"
    row.tie_line_reason = (f"on the {row.tie_line} tie line, {e_hull:.3f} eV/atom above the hull: expected to "
                           f"phase-separate" if bad else f"on the {row.tie_line} tie line, on or below the hull"
                           if pair else "not between exactly two hull phases")


def _hulls(run, todo: list[str]) -> dict[str, tuple]:
    """(PhaseDiagram of the references, E_hull) of each candidate with a thermo row."""
    store = run.store
    if not store.has("thermo"):
        return {}
    e_hull = store.column_by_id("thermo", "e_hull")
    formula = store.column_by_id("candidates", "formula")
    hulls = Hulls(stored_references(store))
    out = {}
    for cid in todo:
        if cid in e_hull and not math.isnan(e_hull[cid]):
            try:
                out[cid] = (hulls[chemsys(Composition(formula[cid]))], float(e_hull[cid]))
            except MissingReferencesError:
                pass
    return out


def run_stage(run) -> None:
    cfg: PlausibilitySettings = run.settings(STAGE)
    todo = run.pending(STAGE)
    if not todo:
        return
    structures = run.input_structures(STAGE, todo)
    system_of = {cid: chemsys(s.composition) for cid, s in structures.items()}
    by_system: dict[frozenset[str], ReferenceEnvironments] = {}
    if cfg.coordination != "off" and run.store.has("references"):
        ref_ids = run.store.ids("references", status="pass")
        refs = run.store.structures("references", ref_ids)
        refs = {i: s for i, s in refs.items()
                if any(chemsys(s.composition) <= cs for cs in system_of.values())}
        by_system = environments_by_system(refs, list(system_of.values()), cfg.symprec, run.workers)
        log.info("%s: cation environments of %d reference phases", STAGE, len(refs))
    hulls = _hulls(run, todo) if cfg.tie_line != "off" else {}
    judge_one = partial(_judge_item, cfg=cfg)

    def compute(ids):
        have = [cid for cid in ids if cid in structures]
        items = [(c, structures[c], hulls.get(c), by_system.get(system_of[c], ReferenceEnvironments())) for c in have]
        judged = dict(zip(have, map_isolated(judge_one, items, run.workers)))
        rows = []
        for cid in ids:
            row = judged.get(cid)
            if row is None:
                row = PlausibilityRow(cid, Status.ERROR, "no relaxed structure")
            elif isinstance(row, WorkerError):
                row = PlausibilityRow(cid, Status.ERROR, f"analysis failed: {row}")
            rows.append(row)
        return rows

    run.run_chunks(STAGE, todo, cfg.chunk_size, compute)


def _judge_item(item: tuple, cfg: PlausibilitySettings) -> PlausibilityRow:
    """:func:`judge` of one (id, structure, hull, reference environments of its system) in a host worker; a failure
    is that candidate's error row."""
    cid, structure, hull, reference = item
    try:
        return judge(cid, structure, cfg, reference, hull)
    except Exception as exc:  # noqa: BLE001 - one odd structure must not stop the run
        return PlausibilityRow(cid, Status.ERROR, f"analysis failed: {short_error(exc)}")


def funnel(store, cfg) -> list[tuple[str, set[str] | None, str]]:
    """One funnel step per filter that is on. A rejecting filter passes the candidates it did not flag; a flag-only
    filter passes every candidate it judged, and its note says how many it flagged."""
    settings = cfg.plausibility
    status = store.column_by_id(STAGE, "status")
    judged = {i for i, s in status.items() if s != Status.ERROR}
    titles = {"coordination": "typical cation coordination", "bond_valence": f"GII <= {settings.gii_max} v.u.",
              "tie_line": "not on a tie line above the hull"}
    steps = []
    for f in FILTERS:
        action = getattr(settings, f)
        if action == "off":
            continue
        flagged = {i for i, v in store.column_by_id(STAGE, f"{f}_verdict").items() if v == "flag"}
        if action == "reject":
            steps.append((titles[f], judged - flagged, f"rejects ({len(flagged)})"))
        else:
            steps.append((titles[f], judged, f"flag only: {len(flagged)} flagged, they go on"))
    return steps


def coating_columns(store) -> list[tuple[str, dict[str, str]]]:
    """The report's coating-table column: the filters that flagged each judged candidate ("none" if none did)."""
    verdicts = {f: store.column_by_id(STAGE, f"{f}_verdict") for f in FILTERS}
    return [("plausibility flags", {
        cid: ", ".join(f.replace("_", " ") for f, v in verdicts.items() if v.get(cid) == "flag") or "none"
        for cid in store.column_by_id(STAGE, "status")})]
