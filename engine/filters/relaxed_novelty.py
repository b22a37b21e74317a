"""Uniqueness and novelty after relaxation.

The novelty stage compares the generated structures; two candidates that relax into the same minimum, or into a
known phase, pass it both. This stage compares the relaxed structures with pymatgen's ``StructureMatcher`` (Ong et
al., Comput. Mater. Sci. 68, 314 (2013); ``engine.filters.matching``) within each reduced formula (a
relaxation may change the space group, so it is not part of the key): among relaxed candidates, in the relax
stage's row order, and against the relaxed reference phases of the run file (the source's structures when the
file has none) and the ``relaxed_novelty.known_structures`` files. A candidate that matches fails with "duplicate of <id>"
or "known: <name>" before thermodynamics. The run's controls (:mod:`engine.controls`) are exempt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pymatgen.core import Structure

from engine.controls import control_ids, exempt_from_novelty
from engine.filters.matching import KnownStructures, NoveltyRow, UniqueSet, classify, known_structures, make_matcher

log = logging.getLogger(__name__)
STAGE = "relaxed_novelty"


@dataclass
class RelaxedNoveltySettings:
    """Uniqueness and novelty after relaxation (``conf/relaxed_novelty/``): StructureMatcher within formula."""
    references: bool = True  # the relaxed reference phases of the run file count as known
    known_structures: list[str] = field(default_factory=list)  # files or CIF folders, read as candidates.path
    ltol: float = 0.2  # StructureMatcher fractional length tolerance
    stol: float = 0.3  # site tolerance (fraction of the average free length per atom)
    angle_tol: float = 5.0  # degrees
    chunk_size: int = 4096  # candidates per HDF5 append (each is matched against the representatives chosen before it)


def formula_key(structure: Structure) -> tuple[str, int]:
    return structure.composition.reduced_formula, 0


def relaxed_references(run) -> list[tuple[str, Structure]] | None:
    """(id, relaxed structure) of the reference phases that relaxed, or None when the file has no references."""
    if not run.store.has("references"):
        return None
    ids = run.store.ids("references", status="pass")
    return list(run.store.structures("references", ids).items())


def run_stage(run) -> None:
    cfg = run.cfg.relaxed_novelty
    done = run.store.done_ids(STAGE)
    controls, passed = control_ids(run.store), run.passed_input(STAGE)
    order = [i for i in passed if i not in controls]
    todo = exempt_from_novelty(run, STAGE, run.pending(STAGE), NoveltyRow, controls)
    if not todo:
        return
    structures = run.input_structures(STAGE, order)
    matcher = make_matcher(cfg)
    unique = UniqueSet(matcher)
    if done:  # a resumed run: earlier unique candidates stay the representatives
        dup_col = run.store.column_by_id(STAGE, "duplicate_of")
        for cid in order:
            if cid in done and not dup_col.get(cid):
                unique.seen[formula_key(structures[cid])].append((cid, structures[cid]))
    systems = {frozenset(el.symbol for el in structures[c].composition.elements) for c in todo}
    known = KnownStructures(known_structures(run, cfg, systems, relaxed_references(run)), matcher, formula_key)
    log.info("%s: %d relaxed candidates against %d known structures", STAGE, len(todo), known.size)
    run.run_chunks(STAGE, todo, cfg.chunk_size, lambda ids: classify(ids, [formula_key(structures[c]) for c in ids],
                                                                [structures[c] for c in ids], unique, known))


def funnel(store, cfg) -> list[tuple[str, set[str] | None, str]]:
    """The report's funnel step."""
    return [("unique and novel after relaxation", None, "StructureMatcher on relaxed structures")]
