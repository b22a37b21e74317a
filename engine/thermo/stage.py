"""Thermo stage: E_hull, Li stability window, mixing energies with the electrolyte and the cathode, and the anode-
and cathode-coating verdicts of every relaxed candidate, on uMLIP energies with pymatgen (:mod:`engine.thermo.hulls`,
:mod:`engine.thermo.criteria`).

The hulls are built from the ``references/`` rows the references stage wrote (their corrected energies), and the
candidates are corrected with the same scheme (``references.correction``, read back from the file). With
``include_candidates`` every candidate of the run joins the hulls, so candidates are judged against each other.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from functools import partial

import numpy as np
from pymatgen.core import Composition

from engine.core.corrections import apply_correction, chemsys, model_entry
from engine.core.rows import NAN, Status
from engine.core.workers import WorkerError, map_isolated
from engine.references.sources import stored_references
from engine.thermo.electrolyte import advice, window_warning
from engine.thermo.hulls import Hulls
from engine.thermo.judgement import ThermoRow, evaluate_candidate, partner_window

__all__ = ["Partners", "ThermoRow", "ThermoSettings", "criteria_counts", "evaluate_candidate", "funnel", "run_stage",
           "stored_partners"]

log = logging.getLogger(__name__)
MIN_PARALLEL_SYSTEMS = 4  # a system's hulls (several with 6 elements, with a partner) take 0.1-1 s


@dataclass
class ThermoSettings:
    """``conf/thermo/``; the coating criteria are ``conf/criteria/`` (:class:`engine.thermo.criteria.CoatingCriteria`)."""
    include_candidates: bool = False  # true: every candidate of the run joins the hulls
    electrolyte: str = "Li10GeP2S12"  # its window enters the AC/CC criteria; mixing energy with every candidate
    cathode: str = "LiCoO2"  # mixing energy with every candidate (used by the CC criterion)
    # eV/atom: a candidate further below the references' hull fails as below_hull, never a coating: a uMLIP rarely
    # places a new phase that far below a complete set of references, so the references lack a phase or the model errs
    below_hull_tolerance: float = 0.05
    chunk_size: int = 32  # chemical systems judged (in parallel) between two writes to the run file


@dataclass
class Partners:
    """The electrolyte's and the cathode's windows [V vs Li/Li+] from the run's references, the electrolyte window
    the criteria used and why the run's own should not be trusted (engine.thermo.electrolyte), as ``thermo/``
    attributes."""
    electrolyte: str
    electrolyte_e_red_V: float
    electrolyte_e_ox_V: float
    cathode: str
    cathode_e_red_V: float
    cathode_e_ox_V: float
    reference_source: str
    judged_e_red_V: float = NAN  # the electrolyte window the AC/CC criteria used
    judged_e_ox_V: float = NAN
    window_pinned: bool = False  # criteria.electrolyte_window set it
    window_warning: str = ""  # "" or why the run's own electrolyte window is off

    def lines(self) -> list[str]:
        """The summary's and the report's lines on the electrolyte's window."""
        own = f"{self.electrolyte} window: {self.electrolyte_e_red_V:.2f} - {self.electrolyte_e_ox_V:.2f} V vs Li/Li+"
        out = [own + ("" if self.window_pinned else " (the criteria use it)")]
        if self.window_pinned:
            out.append(f"the criteria use {self.judged_e_red_V:.2f} - {self.judged_e_ox_V:.2f} V "
                       "(criteria.electrolyte_window)")
        if self.window_warning:
            out.append(f"WARNING: {self.window_warning}" + ("" if self.window_pinned else
                                                              f"; {advice(self.electrolyte)}"))
        return out


def stored_partners(store) -> Partners | None:
    """The partners' windows a thermo stage wrote to the file (None before it ran)."""
    attrs = store.attrs("thermo")
    if "electrolyte" not in attrs:
        return None
    return Partners(**{f.name: attrs[f.name] for f in fields(Partners) if f.name in attrs})


def run_stage(run) -> None:
    """E_hull, stability window, mixing energies and the AC / CC verdict of every relaxed candidate."""
    cfg, store = run.cfg.thermo, run.store
    criteria = run.settings("criteria")
    relaxed_ids = run.passed_input("thermo")
    todo = run.pending("thermo")
    if not todo:
        return
    ref_attrs = store.attrs("references")
    source_name = str(ref_attrs.get("reference_source", "?"))
    structures = run.input_structures("thermo", relaxed_ids)
    energy_pa = store.column_by_id("relax", "energy_per_atom")
    raw_candidates = [model_entry(structures[i], energy_pa[i] * len(structures[i]), i) for i in relaxed_ids]
    candidates, rejected = apply_correction(raw_candidates, str(ref_attrs.get("correction", "mp2020")))
    candidate_by_id = {e.entry_id: e for e in candidates}

    ref_entries = stored_references(store)
    all_edges = run.cfg.references.prototype_edges == "all"
    hulls = Hulls([*ref_entries, *candidates] if cfg.include_candidates else ref_entries, all_edges)
    electrolyte, cathode = Composition(cfg.electrolyte), Composition(cfg.cathode)

    el_entry, el_window, el_problem = partner_window(ref_entries, hulls, electrolyte, "electrolyte", source_name)
    ca_entry, ca_window, ca_problem = partner_window(ref_entries, hulls, cathode, "cathode", source_name)
    pinned = criteria.electrolyte_window is not None
    window_used = tuple(float(v) for v in criteria.electrolyte_window) if pinned else el_window
    partners = Partners(cfg.electrolyte, *el_window, cfg.cathode, *ca_window, source_name, *window_used, pinned,
                        "" if el_problem else window_warning(cfg.electrolyte, el_window))
    store.set_attrs("thermo", asdict(partners))
    if partners.window_warning:
        log.warning("; ".join(partners.lines()[1:]))
    el_window = window_used

    # one chemical system per host worker, with the entries of its hulls (its own, and with each partner's)
    groups: dict[frozenset, list[str]] = {}
    for cid in todo:
        entry = candidate_by_id.get(cid)
        groups.setdefault(chemsys(entry.composition) if entry else frozenset(), []).append(cid)
    partners_elements = chemsys(electrolyte) | chemsys(cathode)
    judge_system = partial(_judge_system, criteria=criteria, electrolyte=(electrolyte, el_entry, el_window, el_problem),
                           cathode=(cathode, ca_entry, ca_problem), source_name=source_name,
                           below_hull_tolerance=float(cfg.below_hull_tolerance), all_edges=all_edges)
    order = {cid: k for k, cid in enumerate(todo)}

    def compute(chunk):
        items = [([(cid, candidate_by_id.get(cid), rejected.get(cid)) for cid in ids],
                  hulls.entries_in(system | partners_elements)) for system, ids in chunk]
        rows = []
        for (_, ids), judged in zip(chunk, map_isolated(judge_system, items, run.workers,
                                                        min_items=MIN_PARALLEL_SYSTEMS)):
            if isinstance(judged, WorkerError):
                judged = [ThermoRow(cid, Status.ERROR, f"hull analysis failed: {judged}") for cid in ids]
            rows += judged
        return sorted(rows, key=lambda r: order[r.id])

    run.run_chunks("thermo", list(groups.items()), cfg.chunk_size, compute, total=len(todo))


def _judge_system(item: tuple, criteria, electrolyte, cathode, source_name: str, below_hull_tolerance: float,
                  all_edges: bool) -> list[ThermoRow]:
    """The rows of one chemical system's candidates ((id, corrected entry or None, why not)), on the hulls of
    ``entries`` (every reference, and with ``include_candidates`` every candidate, inside the system and its
    partners): the same hulls as the run's, as each is built from the same entries in the same order."""
    candidates, entries = item
    hulls = Hulls(entries, all_edges)
    return [evaluate_candidate(cid, entry, why, hulls, criteria, electrolyte, cathode, source_name,
                               below_hull_tolerance) for cid, entry, why in candidates]


def criteria_counts(store, cfg) -> tuple[str, list[tuple[str, int]]]:
    """The summary's title and how many candidates pass each criterion, from the thermo columns."""
    criteria = cfg.criteria
    partners = stored_partners(store)
    title = f"thermo criteria ({partners.reference_source if partners else '?'} references)"
    lines = []
    if partners:
        lines += [(line, None) for line in partners.lines()]
    col = {k: store.column("thermo", k) for k in ("e_hull", "e_rxn_electrolyte", "anode_coating", "cathode_coating")}
    with np.errstate(invalid="ignore"):
        tolerance = getattr(cfg.thermo, "below_hull_tolerance", 0.05)
        lines += [("evaluated", len(col["e_hull"])),
                  (f"E_hull < {criteria.e_hull_max} eV/atom", int((col["e_hull"] < criteria.e_hull_max).sum())),
                  (f"below the hull by > {tolerance} eV/atom (not judged)",
                   int((col["e_hull"] < -tolerance).sum())),
                  (f"E_rxn(electrolyte) > {criteria.e_rxn_min} eV/atom",
                   int((col["e_rxn_electrolyte"] > criteria.e_rxn_min).sum())),
                  ("anode coating (AC)", int(col["anode_coating"].sum())),
                  ("cathode coating (CC)", int(col["cathode_coating"].sum()))]
    return title, lines


def funnel(store, cfg) -> list[tuple[str, set[str] | None, str]]:
    """The report\'s funnel steps: (criterion, ids passing it or None for this stage\'s pass rows, note)."""
    e_hull_max, tolerance = cfg.criteria.e_hull_max, getattr(cfg.thermo, "below_hull_tolerance", 0.05)
    e_hull = store.column_by_id("thermo", "e_hull")
    return [(f"E_hull < {e_hull_max} eV/atom", {i for i, e in e_hull.items() if e < e_hull_max}, ""),
            (f"not below the reference hull by > {tolerance} eV/atom", {i for i, e in e_hull.items() if e >= -tolerance},
             "those are listed apart"),
            ("anode (AC) or cathode (CC) coating criteria", None, "")]
