"""Uniqueness and novelty stage.

A candidate is a duplicate when pymatgen's ``StructureMatcher`` (Ong et al., Comput. Mater. Sci. 68, 314 (2013))
matches it to an earlier candidate, and not novel when it matches a known structure: the reference phases of its
chemical system (the configured ``references`` source) and any user-given file of known structures. The matcher
only compares structures with the same reduced formula and space group (the ones the candidates stage records,
spglib at symprec 0.1 Å; known structures are keyed the same way); one dictionary look-up narrows 10^5 candidates
to the handful worth matching, which keeps the cost linear in the number of candidates.

Candidates are taken in input order: the first of a group of equivalent structures is kept as unique, the others
fail with "duplicate of <id>". A candidate that matches a known structure fails with "known: <name>". The run's
controls (:mod:`engine.controls`) are exempt: they pass, and take no part in the matching.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from engine.controls import control_ids, exempt_from_novelty
from engine.filters.matching import (  # noqa: F401 - the stage's row and matcher, importable from here too
    Key,
    KnownStructures,
    NoveltyRow,
    UniqueSet,
    classify,
    known_structures,
    make_matcher,
    prototype_key,
)

log = logging.getLogger(__name__)


@dataclass
class NoveltySettings:
    """Uniqueness and novelty (``conf/novelty/``): pymatgen StructureMatcher within formula and space group."""
    references: bool = True  # the reference phases of each candidate's chemical system count as known
    known_structures: list[str] = field(default_factory=list)  # files or CIF folders, read as candidates.path
    ltol: float = 0.2  # StructureMatcher fractional length tolerance
    stol: float = 0.3  # site tolerance (fraction of the average free length per atom)
    angle_tol: float = 5.0  # degrees
    chunk_size: int = 4096  # candidates per HDF5 append


def run_stage(run) -> None:
    """Classify every candidate that passed the stage before and is not yet in ``novelty/``, in input order."""
    cfg = run.cfg.novelty
    done = run.store.done_ids("novelty")
    passed = set(run.passed_input("novelty"))
    order = run.store.ids("candidates")
    controls = control_ids(run.store)
    todo = exempt_from_novelty(run, "novelty", [i for i in order if i in passed and i not in done], NoveltyRow,
                               controls)
    if not todo:
        return
    all_ids = [i for i in order if i in passed and i not in controls]
    structures = run.input_structures("novelty", all_ids)
    formula = run.store.column_by_id("candidates", "formula")
    spacegroup = run.store.column_by_id("candidates", "spacegroup")

    def key(cid: str) -> Key:
        return str(formula[cid]), int(spacegroup[cid])

    matcher = make_matcher(cfg)
    unique = UniqueSet(matcher)
    if done:  # a resumed run: earlier unique candidates stay the representatives
        dup_col = run.store.column_by_id("novelty", "duplicate_of")
        for cid in all_ids:
            if cid in done and not dup_col.get(cid):
                unique.seen[key(cid)].append((cid, structures[cid]))
    systems = {frozenset(el.symbol for el in structures[c].composition.elements) for c in todo}
    known = KnownStructures(known_structures(run, cfg, systems), matcher)
    log.info("novelty: %d candidates against %d known structures", len(todo), known.size)
    run.run_chunks("novelty", todo, cfg.chunk_size,
                   lambda ids: classify(ids, [key(c) for c in ids], [structures[c] for c in ids], unique, known))


def funnel(store, cfg) -> list[tuple[str, set[str] | None, str]]:
    """The report\'s funnel steps: (criterion, ids passing it or None for this stage\'s pass rows, note)."""
    dup = store.column_by_id("novelty", "duplicate_of")
    return [("unique", {i for i, d in dup.items() if not d}, ""), ("novel (no known structure matches)", None, "")]
