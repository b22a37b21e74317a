"""Uniqueness and novelty stage.

A candidate is a duplicate when pymatgen's ``StructureMatcher`` (Ong et al., Comput. Mater. Sci. 68, 314 (2013))
matches it to an earlier candidate, and not novel when it matches a known structure: the reference phases of its
chemical system (the configured ``references`` source) and any user-given file of known structures. The matcher
only compares structures with the same reduced formula and space group (the ones the candidates stage records,
spglib at symprec 0.1 Å; known structures are keyed the same way); one dictionary look-up narrows 10^5 candidates
to the handful worth matching, which keeps the cost linear in the number of candidates.

Candidates are taken in input order: the first of a group of equivalent structures is kept as unique, the others
fail with "duplicate of <id>". A candidate that matches a known structure fails with "known: <name>".
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from engine.reference_sources import collect_phases, reference_source
from engine.rows import Row, Status
from engine.structures import read_candidates, short_error, spacegroup_number

log = logging.getLogger(__name__)
Key = tuple[str, int]


@dataclass
class NoveltySettings:
    """Uniqueness and novelty (``conf/novelty/``): pymatgen StructureMatcher within formula and space group."""
    references: bool = True  # the reference phases of each candidate's chemical system count as known
    known_structures: list[str] = field(default_factory=list)  # files or CIF folders, read as candidates.path
    ltol: float = 0.2  # StructureMatcher fractional length tolerance
    stol: float = 0.3  # site tolerance (fraction of the average free length per atom)
    angle_tol: float = 5.0  # degrees
    chunk_size: int = 4096  # candidates per HDF5 append


@dataclass
class NoveltyRow(Row):
    """One candidate at the uniqueness and novelty filter."""
    duplicate_of: str = ""  # id of the earlier equivalent candidate
    known_as: str = ""  # name of the known structure it matches


def prototype_key(structure: Structure) -> Key:
    """(reduced formula, space-group number), as the candidates stage records them: structures with different keys
    are never compared."""
    return structure.composition.reduced_formula, spacegroup_number(structure)


class KnownStructures:
    """Known structures indexed by :func:`prototype_key`; ``match`` names the first known structure equal to
    a candidate."""

    def __init__(self, named: Iterable[tuple[str, Structure]], matcher: StructureMatcher,
                 key: Callable[[Structure], Key] = prototype_key):
        self.matcher = matcher
        self.index: dict[Key, list[tuple[str, Structure]]] = defaultdict(list)
        self.size = 0
        for name, s in named:
            self.index[key(s)].append((name, s))
            self.size += 1

    def match(self, key: Key, structure: Structure) -> str:
        return next((name for name, known in self.index.get(key, ()) if self.matcher.fit(structure, known)), "")


class UniqueSet:
    """Structures seen so far, by key; ``add`` returns the id of an equal structure already seen, or "" (and
    keeps the new one as a representative)."""

    def __init__(self, matcher: StructureMatcher):
        self.matcher = matcher
        self.seen: dict[Key, list[tuple[str, Structure]]] = defaultdict(list)

    def add(self, cid: str, key: Key, structure: Structure) -> str:
        for other_id, other in self.seen[key]:
            if self.matcher.fit(structure, other):
                return other_id
        self.seen[key].append((cid, structure))
        return ""


def make_matcher(cfg) -> StructureMatcher:
    return StructureMatcher(ltol=float(cfg.ltol), stol=float(cfg.stol), angle_tol=float(cfg.angle_tol),
                            primitive_cell=True, scale=True, attempt_supercell=False)


def known_structures(run, systems: Iterable[Iterable[str]],
                     references: list[tuple[str, Structure]] | None = None) -> list[tuple[str, Structure]]:
    """The reference phases of ``systems`` (when ``novelty.references``; ``references`` when given, else the
    source's structures) and the structures of ``novelty.known_structures`` files."""
    cfg = run.cfg.novelty
    named = []
    if cfg.references:
        named += references if references is not None else [
            (p.id, p.structure) for p in collect_phases(reference_source(run.cfg.references), systems)
            if p.structure is not None]
    for path in cfg.get("known_structures") or []:
        for c in read_candidates(path):
            if c.structure is None:
                log.warning("known structure %s unreadable: %s", c.id, c.reason)
            else:
                named.append((c.id, c.structure))
    return named


def classify(ids: Sequence[str], keys: Sequence[Key], structures: Sequence[Structure], unique: UniqueSet,
             known: KnownStructures) -> list[NoveltyRow]:
    """One row per candidate, in order; ``unique`` grows as it goes. A candidate the matcher fails on is an
    ``error`` with the reason; the others go on."""
    rows = []
    for cid, key, s in zip(ids, keys, structures):
        try:
            dup = unique.add(cid, key, s)
            name = "" if dup else known.match(key, s)
        except Exception as exc:  # noqa: BLE001 - StructureMatcher on a structure it cannot handle
            rows.append(NoveltyRow(cid, Status.ERROR, f"structure matcher: {short_error(exc)}"))
            continue
        if dup:
            rows.append(NoveltyRow(cid, Status.FAIL, f"duplicate of {dup}", duplicate_of=dup))
        elif name:
            rows.append(NoveltyRow(cid, Status.FAIL, f"known: {name}", known_as=name))
        else:
            rows.append(NoveltyRow(cid, Status.PASS))
    return rows


def run_stage(run) -> None:
    """Classify every candidate that passed the stage before and is not yet in ``novelty/``, in input order."""
    cfg = run.cfg.novelty
    done = run.store.done_ids("novelty")
    passed = set(run.passed_input("novelty"))
    order = run.store.ids("candidates")
    todo = [i for i in order if i in passed and i not in done]
    if not todo:
        return
    all_ids = [i for i in order if i in passed]
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
    known = KnownStructures(known_structures(run, systems), matcher)
    log.info("novelty: %d candidates against %d known structures", len(todo), known.size)
    chunk = int(cfg.chunk_size)
    with run.progress("novelty", len(todo)) as bar:
        for start in range(0, len(todo), chunk):
            ids = todo[start:start + chunk]
            run.store.append_rows("novelty", classify(ids, [key(c) for c in ids], [structures[c] for c in ids],
                                                      unique, known))
            bar.update(len(ids))


def funnel(store, cfg) -> list[tuple[str, set[str] | None, str]]:
    """The report\'s funnel steps: (criterion, ids passing it or None for this stage\'s pass rows, note)."""
    dup = store.column_by_id("novelty", "duplicate_of")
    return [("unique", {i for i, d in dup.items() if not d}, ""), ("novel (no known structure matches)", None, "")]
