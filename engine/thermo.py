"""Thermodynamic and electrochemical screening on uMLIP energies with pymatgen.

- E_hull: distance to the convex hull (pymatgen ``PhaseDiagram``) of the candidate's chemical system, built from
  the reference phases and, optionally, all candidates of the run.
- Electrochemical stability window vs Li/Li+: the grand-potential method of Ong, Wang, Kang & Ceder, Chem. Mater.
  20, 1798 (2008), as pymatgen implements it (``PhaseDiagram.get_element_profile``): the range of Li chemical
  potential over which the composition takes up or releases no Li.
- Chemical mixing energy: Richards, Miara, Wang, Kim & Ceder, Chem. Mater. 28, 266 (2016), with pymatgen's
  ``InterfacialReactivity``: the most negative reaction energy per atom over all mixing ratios.

Energy corrections (``correction`` in conf/thermo/): ``mp2020`` applies pymatgen's
``MaterialsProject2020Compatibility`` to references and candidates alike. A uMLIP trained on MPtrj reproduces raw
MP energies, i.e. GGA or GGA+U depending on the composition, so each entry gets the run type and Hubbard U values
MP would have used (``MPRelaxSet``: U on Co, Cr, Fe, Mn, Mo, Ni, V, W in oxides and fluorides). ``none`` uses the
raw energies. Entries that carry their own corrections (``energies: source`` with MP data) are taken as they are.

Windows and mixing energies of a phase above its hull (a candidate that passed the E_hull cut, or LGPS whose
model energy may lie slightly above Li4GeS4 + 2 Li3PS4) are computed with the phase placed on the hull, 0.1 meV/atom
below it: the window is then that of the phase if it is stable, and the mixing energy measures its reaction with
the partner rather than its own decomposition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from pymatgen.analysis.interface_reactions import InterfacialReactivity
from pymatgen.analysis.phase_diagram import PhaseDiagram
from pymatgen.core import Composition, Element, Structure
from pymatgen.entries.compatibility import (
    CompatibilityError,
    MaterialsProject2020Compatibility,
)
from pymatgen.entries.computed_entries import ComputedEntry, ComputedStructureEntry
from pymatgen.io.vasp.sets import MPRelaxSet

ON_HULL_MARGIN = 1e-4  # eV/atom below the hull for a phase "placed on the hull"
CORRECTIONS = ("mp2020", "none")


# ---- entries and corrections ---------------------------------------------------------------------------------

def mp_run_parameters(composition: Composition) -> dict:
    """The run type and Hubbard U values the Materials Project would have used for ``composition``."""
    u_table = MPRelaxSet.CONFIG["INCAR"]["LDAUU"]  # {"O": {"Co": 3.32, ...}, "F": {...}}
    symbols = {el.symbol for el in composition.elements}
    hubbards = {}
    for anion in ("F", "O"):  # MP: O takes precedence over F
        if anion in symbols:
            hubbards = {el: u for el, u in u_table[anion].items() if el in symbols}
            if hubbards:
                break
    return {"run_type": "GGA+U" if hubbards else "GGA", "is_hubbard": bool(hubbards), "hubbards": hubbards}


def model_entry(structure: Structure, energy: float, entry_id: str) -> ComputedStructureEntry:
    """An entry for a uMLIP total energy [eV] with the MP run parameters its composition implies."""
    return ComputedStructureEntry(structure, energy, parameters=mp_run_parameters(structure.composition),
                                  entry_id=entry_id)


def apply_correction(entries: Sequence[ComputedEntry], scheme: str) -> tuple[list[ComputedEntry], dict[str, str]]:
    """Corrected copies of ``entries``; those the scheme rejects come back in the second value with a reason."""
    if scheme not in CORRECTIONS:
        raise ValueError(f"unknown correction {scheme!r}; use one of {CORRECTIONS}")
    if scheme == "none":
        return list(entries), {}
    compat = MaterialsProject2020Compatibility(check_potcar=False)
    kept, dropped = [], {}
    for e in entries:
        e = e.copy()
        try:
            kept.append(compat.process_entry(e, clean=True, on_error="raise"))
        except CompatibilityError as exc:
            dropped[e.entry_id] = f"MP2020 correction: {exc}"
    return kept, dropped


def chemsys(composition: Composition) -> frozenset[str]:
    return frozenset(el.symbol for el in composition.elements)


# ---- hulls, windows, mixing ------------------------------------------------------------------------------------

def missing_elements(entries: Iterable[ComputedEntry], elements: Iterable[str]) -> list[str]:
    """Elements of ``elements`` that have no elemental reference among ``entries``."""
    have = {e.composition.elements[0].symbol for e in entries if len(e.composition.elements) == 1}
    return sorted(set(elements) - have)


class Hulls:
    """One ``PhaseDiagram`` per chemical system, built once from the entries that lie inside it."""

    def __init__(self, entries: Sequence[ComputedEntry]):
        self.entries = list(entries)
        self._pds: dict[frozenset[str], PhaseDiagram] = {}

    def entries_in(self, elements: Iterable[str]) -> list[ComputedEntry]:
        allowed = set(elements)
        return [e for e in self.entries if chemsys(e.composition) <= allowed]

    def __getitem__(self, elements: Iterable[str]) -> PhaseDiagram:
        key = frozenset(elements)
        if key not in self._pds:
            missing = missing_elements(self.entries_in(key), key)
            if missing:
                raise MissingReferencesError(key, missing)
            self._pds[key] = PhaseDiagram(self.entries_in(key), elements=[Element(e) for e in sorted(key)])
        return self._pds[key]


class MissingReferencesError(KeyError):
    def __init__(self, system: Iterable[str], missing: Sequence[str]):
        self.system, self.missing = "-".join(sorted(system)), list(missing)
        super().__init__(f"no reference for {' '.join(self.missing)} in {self.system}")


def e_above_hull(pd: PhaseDiagram, entry: ComputedEntry) -> tuple[float, str]:
    """E_hull [eV/atom] (negative: below the references' hull) and the decomposition products, e.g.
    "0.667 LiF + 0.333 AlF3" (atom fractions)."""
    decomp, e_hull = pd.get_decomp_and_e_above_hull(entry, allow_negative=True)
    products = " + ".join(f"{amt:.3g} {e.composition.reduced_formula}"
                          for e, amt in sorted(decomp.items(), key=lambda kv: -kv[1]))
    return float(e_hull), products


def placed_on_hull(entry: ComputedEntry, pd: PhaseDiagram, margin: float = ON_HULL_MARGIN) -> ComputedEntry:
    """``entry`` itself if it lies below the hull of ``pd`` by more than ``margin`` eV/atom, else a copy whose
    energy is ``margin`` eV/atom below the hull."""
    hull = pd.get_hull_energy_per_atom(entry.composition)
    if entry.energy_per_atom <= hull - margin:
        return entry
    n = entry.composition.num_atoms
    return ComputedEntry(entry.composition, (hull - margin) * n, entry_id=f"{entry.entry_id}:on-hull")


def stability_window(pd: PhaseDiagram, composition: Composition, element: str = "Li") -> tuple[float, float]:
    """(E_red, E_ox) [V vs the element's metal] of ``composition``: the chemical-potential range over which it
    neither takes up nor releases ``element`` (Ong et al. 2008). NaN, NaN where it does so at every potential
    (it is not stable in ``pd``)."""
    el = Element(element)
    mu0 = pd.el_refs[el].energy_per_atom
    profile = pd.get_element_profile(el, composition)
    # profile[k]: decomposition at the k-th critical composition, valid for mu between profile[k+1]["chempot"]
    # (below) and profile[k]["chempot"] (above); chempots decrease with k, the last range is open below.
    for k, step in enumerate(profile):
        if abs(step["evolution"]) < 1e-6:
            mu_high = step["chempot"]
            mu_low = profile[k + 1]["chempot"] if k + 1 < len(profile) else -np.inf
            return float(-(mu_high - mu0)), float(-(mu_low - mu0))
    return np.nan, np.nan


def window_of(entry: ComputedEntry, pd: PhaseDiagram, element: str = "Li") -> tuple[float, float]:
    """Stability window of ``entry`` placed on the hull of ``pd``."""
    placed = placed_on_hull(entry, pd)
    if placed is entry and entry in pd.all_entries:
        return stability_window(pd, entry.composition, element)
    pd_with = PhaseDiagram([*pd.all_entries, placed], elements=pd.elements)
    return stability_window(pd_with, entry.composition, element)


def mixing_energy(pd: PhaseDiagram, a: Composition, b: Composition) -> tuple[float, float, str]:
    """Most negative reaction energy [eV/atom of the mixture] of ``a`` with ``b`` over all mixing ratios, the
    molar fraction of ``a`` where it occurs, and the reaction (Richards et al. 2016). Both reactants at their
    hull energies in ``pd`` (a phase below the references' hull must be among ``pd``'s entries)."""
    ir = InterfacialReactivity(a, b, pd, norm=True, use_hull_energy=True)
    x, energy = ir.minimum
    reaction = ""
    for _, kx, kenergy, rxn, *_ in ir.get_kinks():
        if abs(kx - x) < 1e-9:
            reaction = str(rxn)
            break
    return float(energy), float(x), reaction


def pd_with(pd: PhaseDiagram, entries: Sequence[ComputedEntry]) -> PhaseDiagram:
    """``pd`` with ``entries`` added (only those below its hull change it)."""
    below = [e for e in entries if pd.get_hull_energy_per_atom(e.composition) - e.energy_per_atom > 1e-9]
    if not below:
        return pd
    return PhaseDiagram([*pd.all_entries, *below], elements=pd.elements)


# ---- criteria --------------------------------------------------------------------------------------------------

@dataclass
class CoatingCriteria:
    """The seed pipeline's criteria [eV/atom, V vs Li/Li+]."""
    e_hull_max: float = 0.2
    ac_e_red_max: float = 0.3  # anode coating: E_red below this and E_ox above E_red(electrolyte)
    cc_e_ox_min: float = 4.5  # cathode coating: E_ox above this and E_red below E_ox(electrolyte)
    e_rxn_min: float = -0.2  # mixing energy with the electrolyte (and the cathode, for CC) above this


@dataclass
class Verdict:
    anode: bool
    cathode: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return {(True, True): "AC+CC", (True, False): "AC", (False, True): "CC"}.get((self.anode, self.cathode),
                                                                                   "none")


def classify(e_red: float, e_ox: float, e_rxn_electrolyte: float, e_rxn_cathode: float,
             electrolyte_window: tuple[float, float], c: CoatingCriteria) -> Verdict:
    """Anode-coating (AC) and cathode-coating (CC) verdicts of a candidate that passed E_hull; ``reasons`` says
    which criterion each failed verdict missed."""
    el_red, el_ox = electrolyte_window
    reasons = []
    mix_ok = e_rxn_electrolyte > c.e_rxn_min
    if not mix_ok:
        reasons.append(f"E_rxn with the electrolyte {e_rxn_electrolyte:.3f} <= {c.e_rxn_min} eV/atom")
    anode = mix_ok and e_red < c.ac_e_red_max and e_ox > el_red
    if not anode and mix_ok:
        reasons.append(f"AC needs E_red < {c.ac_e_red_max} V and E_ox > {el_red:.2f} V"
                       f" (has {e_red:.2f}, {e_ox:.2f})")
    cathode_mix_ok = e_rxn_cathode > c.e_rxn_min
    cathode = mix_ok and cathode_mix_ok and e_ox > c.cc_e_ox_min and e_red < el_ox
    if mix_ok and not cathode:
        if not (e_ox > c.cc_e_ox_min and e_red < el_ox):
            reasons.append(f"CC needs E_ox > {c.cc_e_ox_min} V and E_red < {el_ox:.2f} V"
                           f" (has {e_red:.2f}, {e_ox:.2f})")
        if not cathode_mix_ok:
            reasons.append(f"CC needs E_rxn with the cathode > {c.e_rxn_min} eV/atom (has {e_rxn_cathode:.3f})")
    return Verdict(anode, cathode, reasons)


# ---- the stage -------------------------------------------------------------------------------------------------

THERMO_COLUMNS = ("corrected_energy_per_atom", "e_hull", "decomposition", "e_red", "e_ox", "e_rxn_electrolyte",
                  "x_electrolyte", "reaction_electrolyte", "e_rxn_cathode", "x_cathode", "reaction_cathode",
                  "anode_coating", "cathode_coating", "verdict")
TEXT_COLUMNS = ("decomposition", "reaction_electrolyte", "reaction_cathode", "verdict")


def _reference_entries(run, phases, cfg) -> tuple[list[ComputedEntry], dict]:
    """Entries of the reference phases (relaxed with the stage's model, or the source's own) and the rows that
    describe each reference for the HDF5 file."""
    from engine.references import relax_references
    from engine.relax import RelaxSettings

    rows = {}
    if cfg.energies == "source":
        entries = []
        for p in phases:
            if p.entry is None:
                raise ValueError(f"thermo.energies=source needs a source with energies; {p.source} has none")
            entries.append(p.entry)
            rows[p.id] = {"status": "pass", "reason": "", "structure": p.structure,
                          "energy_per_atom": p.entry.uncorrected_energy_per_atom}
        return entries, rows
    if cfg.energies != "model":
        raise ValueError(f"thermo.energies must be model or source, not {cfg.energies!r}")
    loaded = run.model("relax", run.cfg.model)
    with run.progress("references", len(phases)) as bar:
        relaxed = relax_references(phases, loaded, RelaxSettings(**run.cfg.relax), cfg.cache_dir, bar.update)
    raw = []
    for p in phases:
        r = relaxed[p.id]
        n = len(r.structure) if r.structure is not None else 1
        rows[p.id] = {"status": r.status, "reason": r.reason, "structure": r.structure,
                      "energy_per_atom": r.energy / n}
        if r.usable:
            raw.append(model_entry(r.structure, r.energy, p.id))
    entries, dropped = apply_correction(raw, cfg.correction)
    for pid, why in dropped.items():
        rows[pid].update(status="error", reason=why)
    return entries, rows


def _write_references(store, phases, entries, rows, hulls: Hulls) -> None:
    done = store.done_ids("references")
    by_id = {e.entry_id: e for e in entries}
    new = [p for p in phases if p.id not in done]
    if not new:
        return
    cols = {"formula": [], "source": [], "energy_per_atom": [], "corrected_energy_per_atom": [], "e_hull": []}
    status, reason = [], []
    for p in new:
        row, e = rows[p.id], by_id.get(p.id)
        e_hull = np.nan
        if e is not None:
            try:
                e_hull = e_above_hull(hulls[chemsys(e.composition)], e)[0]
            except MissingReferencesError as exc:
                row = {**row, "status": "error", "reason": str(exc)}
        status.append("pass" if e is not None and row["status"] != "error" else
                      ("error" if row["status"] == "error" else "fail"))
        reason.append(row["reason"])
        cols["formula"].append((e.composition if e else p.structure.composition).reduced_formula)
        cols["source"].append(p.source)
        cols["energy_per_atom"].append(row["energy_per_atom"])
        cols["corrected_energy_per_atom"].append(e.energy_per_atom if e else np.nan)
        cols["e_hull"].append(e_hull)
    store.append("references", [p.id for p in new], status, reason,
                 columns={k: np.asarray(v, dtype=float) if k not in ("formula", "source") else v
                          for k, v in cols.items()},
                 structures=[rows[p.id]["structure"] for p in new])


def _lowest(entries: Sequence[ComputedEntry], composition: Composition) -> ComputedEntry | None:
    same = [e for e in entries if e.composition.reduced_formula == composition.reduced_formula]
    return min(same, key=lambda e: e.energy_per_atom) if same else None


def run_stage(run) -> None:
    """E_hull, stability window, mixing energies and the AC / CC verdict of every relaxed candidate."""
    from engine.references import collect_phases, reference_source

    cfg, store = run.cfg.thermo, run.store
    criteria = CoatingCriteria(**run.cfg.criteria)
    relaxed_ids = store.ids("relax", status="pass")
    done = store.done_ids("thermo")
    todo = [i for i in relaxed_ids if i not in done]
    if not todo:
        return
    structures = store.structures("relax", relaxed_ids)
    energy_pa = store.column_by_id("relax", "energy_per_atom")
    raw_candidates = [model_entry(structures[i], energy_pa[i] * len(structures[i]), i) for i in relaxed_ids]
    candidates, rejected = apply_correction(raw_candidates, cfg.correction)
    candidate_by_id = {e.entry_id: e for e in candidates}

    electrolyte, cathode = Composition(cfg.electrolyte), Composition(cfg.cathode)
    systems = {chemsys(electrolyte), chemsys(cathode)}
    for e in candidates:
        cs = chemsys(e.composition)
        systems |= {cs, cs | chemsys(electrolyte), cs | chemsys(cathode)}
    source = reference_source(run.cfg.references)
    phases = collect_phases(source, systems)
    ref_entries, ref_rows = _reference_entries(run, phases, cfg)
    ref_hulls = Hulls(ref_entries)
    _write_references(store, phases, ref_entries, ref_rows, ref_hulls)
    hulls = Hulls([*ref_entries, *candidates]) if cfg.include_candidates else ref_hulls

    def partner_window(comp: Composition, name: str) -> tuple[ComputedEntry | None, tuple[float, float], str]:
        entry = _lowest(ref_entries, comp)
        if entry is None:
            return None, (np.nan, np.nan), f"no {comp.reduced_formula} among the {source.name} references"
        try:
            return entry, window_of(entry, hulls[chemsys(comp)]), ""
        except MissingReferencesError as exc:
            return None, (np.nan, np.nan), f"{name}: {exc}"

    el_entry, el_window, el_problem = partner_window(electrolyte, "electrolyte")
    ca_entry, ca_window, ca_problem = partner_window(cathode, "cathode")
    thermo_group = store.h5.require_group("thermo")
    thermo_group.attrs.update({"electrolyte": cfg.electrolyte, "electrolyte_e_red_V": el_window[0],
                               "electrolyte_e_ox_V": el_window[1], "cathode": cfg.cathode,
                               "cathode_e_red_V": ca_window[0], "cathode_e_ox_V": ca_window[1],
                               "reference_source": source.name})

    rows: list[tuple[str, str, str, dict]] = []

    def flush() -> None:
        if not rows:
            return
        cols = {}
        for k in THERMO_COLUMNS:
            if k in TEXT_COLUMNS:
                cols[k] = [r[3].get(k, "") for r in rows]
            elif k.endswith("coating"):
                cols[k] = np.array([r[3].get(k, False) for r in rows], dtype=bool)
            else:
                cols[k] = np.array([r[3].get(k, np.nan) for r in rows], dtype=float)
        store.append("thermo", [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], columns=cols)
        rows.clear()

    with run.progress("thermo", len(todo)) as bar:
        for cid in todo:
            rows.append(evaluate_candidate(cid, candidate_by_id.get(cid), rejected.get(cid), hulls, criteria,
                                           (electrolyte, el_entry, el_window, el_problem),
                                           (cathode, ca_entry, ca_problem), source.name))
            bar.update(1)
            if len(rows) >= 64:
                flush()
        flush()


# eV/atom: a uMLIP rarely places a new phase this far below a complete set of references; more likely a
# competing phase is missing from them (a built-in set covers only the common binaries), so the reason says so
BELOW_HULL_NOTE = -0.1


def evaluate_candidate(cid, entry, rejected, hulls: Hulls, criteria: CoatingCriteria, electrolyte, cathode,
                       source_name: str) -> tuple[str, str, str, dict]:
    """(id, status, reason, columns) of one candidate."""
    if entry is None:
        return cid, "error", rejected or "no corrected entry", {}
    cs = chemsys(entry.composition)
    try:
        pd = hulls[cs]
    except MissingReferencesError as exc:
        return cid, "error", f"no references: {exc} ({source_name})", {}
    e_hull, products = e_above_hull(pd, entry)
    out = {"corrected_energy_per_atom": entry.energy_per_atom, "e_hull": e_hull, "decomposition": products}
    status, reason, out = _judge(entry, e_hull, out, pd, cs, hulls, criteria, electrolyte, cathode, source_name)
    if e_hull < BELOW_HULL_NOTE:
        note = (f"E_hull {e_hull:.3f} eV/atom: far below the reference hull; the references of {'-'.join(sorted(cs))} "
                f"may miss phases ({source_name})")
        reason = f"{reason}; {note}" if reason else note
    return cid, status, reason, out


def _judge(entry, e_hull, out, pd, cs, hulls, criteria, electrolyte, cathode, source_name) -> tuple[str, str, dict]:
    """(status, reason, columns) of a candidate whose E_hull is known: window, mixing energies, AC/CC verdict."""
    el_comp, el_entry, el_window, el_problem = electrolyte
    ca_comp, ca_entry, ca_problem = cathode
    if e_hull >= criteria.e_hull_max:
        return "fail", f"E_hull {e_hull:.3f} >= {criteria.e_hull_max} eV/atom", {**out, "verdict": "none"}
    out["e_red"], out["e_ox"] = window_of(entry, pd)
    if el_entry is None or ca_entry is None:
        return "error", el_problem or ca_problem, out
    try:
        for partner, key in ((el_comp, "electrolyte"), (ca_comp, "cathode")):
            pd_mix = pd_with(hulls[cs | chemsys(partner)], [entry])
            out[f"e_rxn_{key}"], out[f"x_{key}"], out[f"reaction_{key}"] = mixing_energy(
                pd_mix, entry.composition, partner)
    except MissingReferencesError as exc:
        return "error", f"no references: {exc} ({source_name})", out
    verdict = classify(out["e_red"], out["e_ox"], out["e_rxn_electrolyte"], out["e_rxn_cathode"], el_window,
                       criteria)
    out.update(anode_coating=verdict.anode, cathode_coating=verdict.cathode, verdict=verdict.label)
    if verdict.anode or verdict.cathode:
        return "pass", "", out
    return "fail", "no coating verdict: " + "; ".join(verdict.reasons), out


def criteria_counts(store, criteria: CoatingCriteria) -> list[tuple[str, int]]:
    """How many candidates pass each criterion, from the thermo columns."""
    if not store.has("thermo"):
        return []
    col = {k: store.column("thermo", k) for k in ("e_hull", "e_rxn_electrolyte", "anode_coating",
                                                  "cathode_coating")}
    with np.errstate(invalid="ignore"):
        return [("evaluated", len(col["e_hull"])),
                (f"E_hull < {criteria.e_hull_max} eV/atom", int((col["e_hull"] < criteria.e_hull_max).sum())),
                (f"E_rxn(electrolyte) > {criteria.e_rxn_min} eV/atom",
                 int((col["e_rxn_electrolyte"] > criteria.e_rxn_min).sum())),
                ("anode coating (AC)", int(col["anode_coating"].sum())),
                ("cathode coating (CC)", int(col["cathode_coating"].sum()))]
