"""Structure matching shared by the novelty stages (before and after relaxation): pymatgen's ``StructureMatcher``
(Ong et al., Comput. Mater. Sci. 68, 314 (2013)) within a key (reduced formula, and the space group before
relaxation), against earlier candidates and against known structures."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from engine.candidates.readers import read_candidates
from engine.core.rows import Row, Status, short_error
from engine.core.structures import spacegroup_number
from engine.references.sources import collect_phases, reference_source

log = logging.getLogger(__name__)
Key = tuple[str, int]


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


def known_structures(run, cfg, systems: Iterable[Iterable[str]],
                     references: list[tuple[str, Structure]] | None = None) -> list[tuple[str, Structure]]:
    """The reference phases of ``systems`` (when ``cfg.references``; ``references`` when given, else the
    source's structures) and the structures of ``cfg.known_structures`` files."""
    named = []
    if cfg.references:
        named += references if references is not None else [
            (p.id, p.structure) for p in collect_phases(reference_source(run.cfg.references), systems, run.workers)
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


