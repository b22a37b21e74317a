"""Thermo stage: E_hull, Li stability window, mixing energies with the electrolyte and the cathode, and the anode-
and cathode-coating verdicts of every relaxed candidate, on uMLIP energies with pymatgen (:mod:`engine.thermo.hulls`,
:mod:`engine.thermo.criteria`).

The hulls are built from the ``references/`` rows the references stage wrote (their corrected energies), and the
candidates are corrected with the same scheme (``references.correction``, read back from the file). With
``include_candidates`` every candidate of the run joins the hulls, so candidates are judged against each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from itertools import combinations

import numpy as np
from pymatgen.core import Composition
from pymatgen.entries.computed_entries import ComputedEntry

from engine.core.rows import NAN, Row, Status
from engine.references.sources import stored_references
from engine.thermo.criteria import CoatingCriteria, classify
from engine.thermo.hulls import (
    Hulls,
    MissingReferencesError,
    apply_correction,
    chemsys,
    e_above_hull,
    mixing_energy,
    model_entry,
    pd_with,
    window_of,
)


@dataclass
class ThermoSettings:
    """``conf/thermo/``; the coating criteria are ``conf/criteria/`` (:class:`engine.thermo.criteria.CoatingCriteria`)."""
    include_candidates: bool = False  # true: every candidate of the run joins the hulls
    electrolyte: str = "Li10GeP2S12"  # its window enters the AC/CC criteria; mixing energy with every candidate
    cathode: str = "LiCoO2"  # mixing energy with every candidate (used by the CC criterion)
    # eV/atom: a candidate further below the references' hull fails as below_hull, never a coating: a uMLIP rarely
    # places a new phase that far below a complete set of references, so the references lack a phase or the model errs
    below_hull_tolerance: float = 0.05


@dataclass
class ThermoRow(Row):
    """One candidate's thermodynamics and coating verdict."""
    corrected_energy_per_atom: float = NAN  # eV/atom
    e_hull: float = NAN  # eV/atom above the hull (negative: below the references' hull)
    decomposition: str = ""  # products at the hull, atom fractions
    e_red: float = NAN  # V vs Li/Li+, lower end of the stability window
    e_ox: float = NAN  # V vs Li/Li+, upper end
    e_rxn_electrolyte: float = NAN  # eV/atom of the mixture, most negative over mixing ratios
    x_electrolyte: float = NAN  # molar fraction of the candidate where it occurs
    reaction_electrolyte: str = ""
    e_rxn_cathode: float = NAN  # eV/atom
    x_cathode: float = NAN
    reaction_cathode: str = ""
    anode_coating: bool = False
    cathode_coating: bool = False
    verdict: str = ""  # AC, CC, AC+CC, none
    below_hull: bool = False  # more than thermo.below_hull_tolerance below the references' hull: not judged
    hull_lacks: str = ""  # binary edges of the candidate's system without any reference phase, e.g. "Br-S"


@dataclass
class Partners:
    """The electrolyte's and the cathode's windows [V vs Li/Li+], written as ``thermo/`` attributes."""
    electrolyte: str
    electrolyte_e_red_V: float
    electrolyte_e_ox_V: float
    cathode: str
    cathode_e_red_V: float
    cathode_e_ox_V: float
    reference_source: str


def stored_partners(store) -> Partners | None:
    """The partners' windows a thermo stage wrote to the file (None before it ran)."""
    attrs = store.attrs("thermo")
    if "electrolyte" not in attrs:
        return None
    return Partners(**{f.name: attrs.get(f.name) for f in fields(Partners)})


def _lowest(entries: Sequence[ComputedEntry], composition: Composition) -> ComputedEntry | None:
    same = [e for e in entries if e.composition.reduced_formula == composition.reduced_formula]
    return min(same, key=lambda e: e.energy_per_atom) if same else None


def run_stage(run) -> None:
    """E_hull, stability window, mixing energies and the AC / CC verdict of every relaxed candidate."""
    cfg, store = run.cfg.thermo, run.store
    criteria = run.settings("criteria")
    relaxed_ids = run.passed_input("thermo")
    done = store.done_ids("thermo")
    todo = [i for i in relaxed_ids if i not in done]
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
    hulls = Hulls([*ref_entries, *candidates]) if cfg.include_candidates else Hulls(ref_entries)
    electrolyte, cathode = Composition(cfg.electrolyte), Composition(cfg.cathode)

    def partner_window(comp: Composition, name: str) -> tuple[ComputedEntry | None, tuple[float, float], str]:
        entry = _lowest(ref_entries, comp)
        if entry is None:
            return None, (np.nan, np.nan), f"no {comp.reduced_formula} among the {source_name} references"
        try:
            return entry, window_of(entry, hulls[chemsys(comp)]), ""
        except MissingReferencesError as exc:
            return None, (np.nan, np.nan), f"{name}: {exc}"

    el_entry, el_window, el_problem = partner_window(electrolyte, "electrolyte")
    ca_entry, ca_window, ca_problem = partner_window(cathode, "cathode")
    store.set_attrs("thermo", asdict(Partners(cfg.electrolyte, *el_window, cfg.cathode, *ca_window, source_name)))

    rows: list[ThermoRow] = []
    with run.progress("thermo", len(todo)) as bar:
        for cid in todo:
            rows.append(evaluate_candidate(cid, candidate_by_id.get(cid), rejected.get(cid), hulls, criteria,
                                           (electrolyte, el_entry, el_window, el_problem),
                                           (cathode, ca_entry, ca_problem), source_name,
                                           float(cfg.below_hull_tolerance)))
            bar.update(1)
            if len(rows) >= 64:
                store.append_rows("thermo", rows)
                rows.clear()
        store.append_rows("thermo", rows)


def evaluate_candidate(cid, entry, rejected, hulls: Hulls, criteria: CoatingCriteria, electrolyte, cathode,
                       source_name: str, below_hull_tolerance: float = 0.05) -> ThermoRow:
    """The row of one candidate: ``entry`` its corrected entry [eV] (None: ``rejected`` says why), ``electrolyte``
    (composition, entry, window [V], problem) and ``cathode`` (composition, entry, problem). A candidate more than
    ``below_hull_tolerance`` [eV/atom] below the hull fails as ``below_hull``, with the edges its hull lacks."""
    if entry is None:
        return ThermoRow(cid, Status.ERROR, rejected or "no corrected entry")
    cs = chemsys(entry.composition)
    try:
        pd = hulls[cs]
    except MissingReferencesError as exc:
        return ThermoRow(cid, Status.ERROR, f"no references: {exc} ({source_name})")
    e_hull, products = e_above_hull(pd, entry)
    row = ThermoRow(cid, Status.PASS, corrected_energy_per_atom=entry.energy_per_atom, e_hull=e_hull,
                    decomposition=products)
    _judge(row, entry, pd, cs, hulls, criteria, electrolyte, cathode, source_name)
    if e_hull < -below_hull_tolerance:
        row.below_hull, row.hull_lacks = True, " ".join(empty_edges(pd, cs))
        lacks = f"no reference phase on {row.hull_lacks}" if row.hull_lacks else "no empty edge"
        row.status, row.verdict, row.anode_coating, row.cathode_coating = Status.FAIL, "none", False, False
        row.reason = (f"below the reference hull: E_hull {e_hull:.3f} < -{below_hull_tolerance} eV/atom; the "
                      f"{'-'.join(sorted(cs))} references are incomplete ({lacks}; {source_name}) or the model errs")
    return row


def empty_edges(pd, cs) -> list[str]:
    """The binary edges (element pairs) of ``cs`` on which ``pd`` holds no phase, e.g. ["Br-S"]."""
    present = {frozenset(e.composition.chemical_system.split("-")) for e in pd.all_entries}
    return ["-".join(pair) for pair in combinations(sorted(cs), 2) if frozenset(pair) not in present]


def _judge(row: ThermoRow, entry, pd, cs, hulls, criteria, electrolyte, cathode, source_name) -> None:
    """Status, reason, window, mixing energies and AC/CC verdict of a candidate whose E_hull is known."""
    el_comp, el_entry, el_window, el_problem = electrolyte
    ca_comp, ca_entry, ca_problem = cathode
    if row.e_hull >= criteria.e_hull_max:
        row.status, row.verdict = Status.FAIL, "none"
        row.reason = f"E_hull {row.e_hull:.3f} >= {criteria.e_hull_max} eV/atom"
        return
    row.e_red, row.e_ox = window_of(entry, pd)
    if el_entry is None or ca_entry is None:
        row.status, row.reason = Status.ERROR, el_problem or ca_problem
        return
    try:
        for partner, key in ((el_comp, "electrolyte"), (ca_comp, "cathode")):
            pd_mix = pd_with(hulls[cs | chemsys(partner)], [entry])
            e, x, reaction = mixing_energy(pd_mix, entry.composition, partner)
            setattr(row, f"e_rxn_{key}", e), setattr(row, f"x_{key}", x), setattr(row, f"reaction_{key}", reaction)
    except MissingReferencesError as exc:
        row.status, row.reason = Status.ERROR, f"no references: {exc} ({source_name})"
        return
    verdict = classify(row.e_red, row.e_ox, row.e_rxn_electrolyte, row.e_rxn_cathode, el_window, criteria)
    row.anode_coating, row.cathode_coating, row.verdict = verdict.anode, verdict.cathode, verdict.label
    if not (verdict.anode or verdict.cathode):
        row.status, row.reason = Status.FAIL, "no coating verdict: " + "; ".join(verdict.reasons)


def criteria_counts(store, cfg) -> tuple[str, list[tuple[str, int]]]:
    """The summary's title and how many candidates pass each criterion, from the thermo columns."""
    criteria = cfg.criteria
    partners = stored_partners(store)
    title = f"thermo criteria ({partners.reference_source if partners else '?'} references)"
    lines = []
    if partners:
        lines.append((f"{partners.electrolyte} window: {partners.electrolyte_e_red_V:.2f} - "
                      f"{partners.electrolyte_e_ox_V:.2f} V vs Li/Li+", None))
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
