"""References stage: the reference phases of every chemical system the thermo stage will need, with their energies.

The systems are those of the relaxed candidates, of the partners (the electrolyte and the cathode) and of each
candidate joined with each partner (for the mixing energies). Their phases come from the configured source
(:mod:`engine.references.sources`); with ``energies: model`` they are relaxed with the run's model (cached on disk,
:mod:`engine.references.cache`), corrected with ``correction`` (:mod:`engine.core.corrections`) and a compound below
``min_formation_energy`` (a hole of the model) is left out with its reason; with ``energies: source``
the source's own energies are taken as they are. One row per phase goes to ``references/``, with its raw and
corrected energy and its own E_hull against the other references, so that a poorly built reference shows up in the
file; the thermo stage builds its hulls from these rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pymatgen.core import Composition, Structure
from pymatgen.entries.computed_entries import ComputedEntry

from engine.core.corrections import chemsys, corrected_references, correction_of, model_entry
from engine.core.rows import NAN, Row, Status
from engine.references.cache import relax_references
from engine.references.prototypes import binary_edges
from engine.references.sources import ReferencePhase, collect_phases, prototype_phases, reference_source
from engine.thermo.hulls import Hulls, MissingReferencesError, e_above_hull, needed_systems


@dataclass
class ReferenceRow(Row):
    """One reference phase with its energies."""
    formula: str = ""  # reduced formula
    source: str = ""  # the reference source (builtin, file:<name>, mp_api)
    energy_per_atom: float = NAN  # eV/atom, raw (model or source)
    corrected_energy_per_atom: float = NAN  # eV/atom, after the correction scheme (NaN: not usable)
    e_hull: float = NAN  # eV/atom, against the other references
    structure: Structure | None = None  # relaxed (or the source's)


def completed_edges(formulas: Sequence[str], partners: Sequence[str], systems: set[frozenset[str]],
                    scope: str) -> set[frozenset[str]]:
    """The binary edges prototype completion fills: those of the candidates' and the partners' own chemical systems
    (``scope="candidates"``) or of every needed system, the mixing systems included (``"all"``)."""
    if scope == "all":
        return binary_edges(systems)
    if scope != "candidates":
        raise ValueError(f"references.prototype_edges must be candidates or all, not {scope!r}")
    return binary_edges([chemsys(Composition(f)) for f in {*formulas, *partners}])


def reference_entries(run, phases: Sequence[ReferencePhase], cfg
                      ) -> tuple[list[ComputedEntry], dict[str, ReferenceRow]]:
    """Corrected entries of the usable phases and one row per phase (E_hull still NaN)."""
    rows: dict[str, ReferenceRow] = {}
    if cfg.energies == "source":
        entries = []
        for p in phases:
            if p.entry is None:
                raise ValueError(f"references.energies=source needs a source with energies; {p.source} has none")
            entries.append(p.entry)
            rows[p.id] = ReferenceRow(p.id, Status.PASS, structure=p.structure,
                                      energy_per_atom=p.entry.uncorrected_energy_per_atom)
        return entries, rows
    if cfg.energies != "model":
        raise ValueError(f"references.energies must be model or source, not {cfg.energies!r}")
    loaded = run.model("relax", run.cfg.model)
    with run.progress("references", len(phases)) as bar:
        relaxed = relax_references(phases, loaded, run.settings("relax"), Path(cfg.cache_dir) / "references",
                                   bar.update)
    raw = []
    for p in phases:
        r = relaxed[p.id]
        n = len(r.structure) if r.structure is not None else 1
        rows[p.id] = ReferenceRow(p.id, Status(r.status), r.reason, structure=r.structure,
                                  energy_per_atom=r.energy / n)
        if r.usable:
            raw.append(model_entry(r.structure, r.energy, p.id))
    entries, dropped = corrected_references(raw, correction_of(run.cfg.model, cfg.correction),
                                            float(cfg.min_formation_energy))
    for pid, why in dropped.items():
        rows[pid].status, rows[pid].reason = Status.ERROR, why
    return entries, rows


def run_stage(run) -> None:
    """Relax (or read) the reference phases the relaxed candidates need; one row per phase not yet in the file."""
    cfg = run.cfg.references
    passed = run.passed_input("references")
    if not passed:
        return
    formula = run.store.column_by_id("candidates", "formula")
    source = reference_source(cfg)
    formulas = [formula[c] for c in passed]
    systems = needed_systems(formulas, list(cfg.partners))
    edges = completed_edges(formulas, list(cfg.partners), systems, cfg.prototype_edges) \
        if cfg.source == "builtin" and cfg.prototypes else set()
    coverage = sorted({"-".join(sorted(s)) for s in systems} | {"edge:" + "-".join(sorted(e)) for e in edges})
    covered = set(json.loads(run.store.attrs("references").get("covered", "[]")))
    if covered.issuperset(coverage):  # a resume: every phase of these systems is in the file already
        return
    phases = collect_phases(source, systems, run.workers)
    if edges:
        phases += prototype_phases(edges, phases, run.workers)
    run.store.set_attrs("references", {"reference_source": source.name, "energies": cfg.energies,
                                       "correction": correction_of(run.cfg.model, cfg.correction)})
    done = run.store.done_ids("references")
    new = [p for p in phases if p.id not in done]
    if new:
        _append_rows(run, phases, new, cfg)
    # after the rows: a run killed before this line builds the phases again and finds them done
    run.store.set_attrs("references", {"covered": json.dumps(sorted(covered | set(coverage)))})


def _append_rows(run, phases: Sequence[ReferencePhase], new: Sequence[ReferencePhase], cfg) -> None:
    """Relax (or read) every phase (the hulls need them all), and append the rows of the ``new`` ones."""
    entries, rows = reference_entries(run, phases, cfg)
    by_id = {e.entry_id: e for e in entries}
    hulls = Hulls(entries)
    out = []
    for p in new:
        row, e = rows[p.id], by_id.get(p.id)
        row.source = p.source
        row.formula = (e.composition if e else p.structure.composition).reduced_formula
        if e is None:
            row.status = Status.ERROR if row.status == Status.ERROR else Status.FAIL
        else:
            row.corrected_energy_per_atom = e.energy_per_atom
            if row.status != Status.ERROR:
                row.status = Status.PASS
            try:
                row.e_hull = e_above_hull(hulls[chemsys(e.composition)], e)[0]
            except MissingReferencesError as exc:
                row.status, row.reason = Status.ERROR, str(exc)
        out.append(row)
    run.store.append_rows("references", out)
