"""The thermo verdict of one candidate on a set of hulls: E_hull, stability window, mixing energies with the
electrolyte and the cathode, and the anode- and cathode-coating criteria (:mod:`engine.thermo.criteria`). Used by the
thermo stage on the run's model and by the committee stage on each of its models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from pymatgen.core import Composition
from pymatgen.entries.computed_entries import ComputedEntry

from engine.core.corrections import chemsys
from engine.core.rows import NAN, Row, Status
from engine.thermo.criteria import CoatingCriteria, classify
from engine.thermo.hulls import Hulls, MissingReferencesError, e_above_hull, mixing_energy, pd_with, window_of


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


def lowest_entry(entries: Sequence[ComputedEntry], composition: Composition) -> ComputedEntry | None:
    """The lowest-energy entry of ``composition``'s reduced formula among ``entries`` (None: there is none)."""
    same = [e for e in entries if e.composition.reduced_formula == composition.reduced_formula]
    return min(same, key=lambda e: e.energy_per_atom) if same else None


def partner_window(ref_entries: Sequence[ComputedEntry], hulls: Hulls, comp: Composition, name: str,
                   source_name: str) -> tuple[ComputedEntry | None, tuple[float, float], str]:
    """(entry, stability window [V vs Li/Li+], problem) of a partner (the electrolyte or the cathode) among the
    references; a partner the references lack has no entry and a problem in words."""
    entry = lowest_entry(ref_entries, comp)
    if entry is None:
        return None, (np.nan, np.nan), f"no {comp.reduced_formula} among the {source_name} references"
    try:
        return entry, window_of(entry, hulls[chemsys(comp)]), ""
    except MissingReferencesError as exc:
        return None, (np.nan, np.nan), f"{name}: {exc}"


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
            pd_mix = pd_with(hulls.mixing(cs, chemsys(partner)), [entry])
            e, x, reaction = mixing_energy(pd_mix, entry.composition, partner)
            setattr(row, f"e_rxn_{key}", e), setattr(row, f"x_{key}", x), setattr(row, f"reaction_{key}", reaction)
    except MissingReferencesError as exc:
        row.status, row.reason = Status.ERROR, f"no references: {exc} ({source_name})"
        return
    verdict = classify(row.e_red, row.e_ox, row.e_rxn_electrolyte, row.e_rxn_cathode, el_window, criteria)
    row.anode_coating, row.cathode_coating, row.verdict = verdict.anode, verdict.cathode, verdict.label
    if not (verdict.anode or verdict.cathode):
        row.status, row.reason = Status.FAIL, "no coating verdict: " + "; ".join(verdict.reasons)
