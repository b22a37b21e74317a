"""One committee member's thermo verdicts: the candidates and the reference phases of their systems relaxed with the
member's model (batched FIRE, :mod:`engine.relax.fire`; the references cached on disk per model,
:mod:`engine.references.cache`), the member's own hulls from its own energies, and each candidate judged on them
exactly as the thermo stage judges the run's model (:func:`engine.thermo.judgement.evaluate_candidate`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pymatgen.core import Composition, Structure

from engine.core.corrections import apply_correction, chemsys, corrected_references, model_entry
from engine.core.crystals import Crystals
from engine.core.rows import Status
from engine.references.cache import relax_references
from engine.references.sources import ReferencePhase
from engine.relax.fire import RelaxResult, RelaxSettings, relax
from engine.thermo.criteria import CoatingCriteria
from engine.thermo.hulls import Hulls, needed_systems
from engine.thermo.judgement import ThermoRow, evaluate_candidate, partner_window


@dataclass(frozen=True)
class Judging:
    """What every member judges with: the thermo stage's partners and tolerance, the run's criteria, correction
    scheme and relaxation settings, and where relaxed references are cached."""
    electrolyte: str
    cathode: str
    below_hull_tolerance: float  # eV/atom
    criteria: CoatingCriteria
    correction: str  # the run's scheme (engine.core.corrections.Correction); a member's config may name its own
    relax: RelaxSettings
    cache_dir: Path
    source_name: str
    all_prototype_edges: bool = False  # references.prototype_edges == all (engine.thermo.hulls.Hulls)
    min_formation_energy: float = -5.0  # eV/atom: references.min_formation_energy (a model's hole, left out)


def phases_for(formulas: Sequence[str], judging: Judging, references: dict[str, Structure],
               sources: dict[str, str]) -> list[ReferencePhase]:
    """The reference phases (``references``: {phase id: structure} of the run's ``references/`` rows) that the hulls
    of ``formulas`` and of their mixtures with the partners need."""
    systems = needed_systems(formulas, [judging.electrolyte, judging.cathode])
    return [ReferencePhase(pid, s, sources.get(pid, "")) for pid, s in references.items()
            if any(chemsys(s.composition) <= system for system in systems)]


def usable(r: RelaxResult) -> bool:
    """Converged, or stopped at max_steps (its energy an upper bound of the relaxed one), as the references count."""
    return r.structure is not None and (r.status == Status.PASS or r.reason.startswith("not converged"))


def judge(loaded, ids: Sequence[str], crystals: Crystals, phases: Sequence[ReferencePhase],
          judging: Judging, correction: str) -> dict[str, ThermoRow]:
    """{candidate id: the member's thermo row}, its energies corrected with ``correction``; a candidate the member
    cannot relax (an element it lacks, a failed relaxation) gets an error row saying why."""
    relaxed: dict[str, RelaxResult] = {}
    relax(crystals, ids, loaded, judging.relax, lambda rows: relaxed.update({r.id: r for r in rows}))
    refs = relax_references(phases, loaded, judging.relax, judging.cache_dir)
    ref_entries, _ = corrected_references([model_entry(r.structure, r.energy, pid) for pid, r in refs.items()
                                           if r.usable], correction, judging.min_formation_energy)
    raw = []
    for cid in ids:
        r = relaxed[cid]
        if usable(r):
            s = r.structure.to_structure()
            raw.append(model_entry(s, r.energy_per_atom * len(s), cid))
    entries, rejected = apply_correction(raw, correction)
    by_id = {e.entry_id: e for e in entries}
    hulls = Hulls(ref_entries, judging.all_prototype_edges)
    electrolyte, cathode = Composition(judging.electrolyte), Composition(judging.cathode)
    el = partner_window(ref_entries, hulls, electrolyte, "electrolyte", judging.source_name)
    ca = partner_window(ref_entries, hulls, cathode, "cathode", judging.source_name)
    rows = {}
    for cid in ids:
        r = relaxed[cid]
        if not usable(r):
            rows[cid] = ThermoRow(cid, Status.ERROR, f"relax: {r.reason}")
            continue
        rows[cid] = evaluate_candidate(cid, by_id.get(cid), rejected.get(cid), hulls, judging.criteria,
                                       (electrolyte, *el), (cathode, ca[0], ca[2]), judging.source_name,
                                       judging.below_hull_tolerance)
        if r.status != Status.PASS:
            rows[cid].reason = "; ".join(filter(None, [rows[cid].reason, f"relax {r.reason}"]))
    return rows
