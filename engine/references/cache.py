"""Reference phases relaxed with a model, cached on disk.

One JSON-lines file per model (name + weight checksum) and relaxation setting, keyed by a hash of the input
structure: a second run relaxes nothing again, and a killed run keeps every reference it finished. Runs that share
the cache (the shards of one screen) relax what it lacks one at a time under a file lock: the first relaxes, the
others wait and read its results. Each phase is
relaxed in its primitive cell, batched through the relax stage's code.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from engine.core.crystals import Crystal
from engine.references.sources import ReferencePhase
from engine.relax.fire import relax

log = logging.getLogger(__name__)


def structure_key(structure: Structure) -> str:
    """Hash of a structure's lattice, species and fractional coordinates (rounded to 1e-6)."""
    payload = json.dumps([np.round(structure.lattice.matrix, 6).tolist(),
                          [s.species_string for s in structure],
                          np.round(structure.frac_coords % 1.0, 6).tolist()])
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


@dataclass
class RelaxedReference:
    id: str
    status: str  # pass | fail | error (relax stage's meaning)
    reason: str
    energy: float  # eV, total, uncorrected
    structure: Structure | None

    @property
    def usable(self) -> bool:
        """Converged, or stopped at max_steps: its energy is still an upper bound of the relaxed one."""
        return self.structure is not None and np.isfinite(self.energy) and (
            self.status == "pass" or self.reason.startswith("not converged"))


class RelaxedReferenceCache:
    """JSON-lines file of relaxed references for one model and one relaxation setting."""

    def __init__(self, cache_dir: str | Path, model_name: str, checksum: str, settings_tag: str):
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model_name)
        self.path = Path(cache_dir).expanduser() / f"{safe}-{checksum[:16]}-{settings_tag}.jsonl"
        self.records: dict[str, dict] = {}
        self.reload()

    def reload(self) -> None:
        """Read what the file holds now (another process may have added records)."""
        if self.path.is_file():
            with open(self.path) as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:  # a line cut by a kill
                        continue
                    self.records[rec["key"]] = rec

    @contextlib.contextmanager
    def locked(self):
        """Hold an exclusive lock on the cache (a ``.lock`` file beside it) across processes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield self
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def get(self, key: str) -> RelaxedReference | None:
        rec = self.records.get(key)
        if rec is None:
            return None
        if rec.get("crystal"):
            c = rec["crystal"]
            structure = Crystal(np.array(c["numbers"], np.int64), np.array(c["positions"], float),
                                np.array(c["cell"], float), np.array(c["pbc"], bool)).to_structure()
        else:  # a cache written before 2026-12-02: pymatgen's dict (positions rounded by an ulp on the way)
            structure = Structure.from_dict(rec["structure"]) if rec.get("structure") else None
        return RelaxedReference(rec["id"], rec["status"], rec["reason"], rec["energy"], structure)

    def put(self, key: str, ref: RelaxedReference, crystal: Crystal | None) -> None:
        """Store ``ref``, whose structure is ``crystal`` (the relaxation's arrays): a reference read back is the
        one the relaxation gave, bit for bit, so that a run's rows do not depend on a warm cache."""
        rec = {"key": key, "id": ref.id, "status": ref.status, "reason": ref.reason, "energy": ref.energy,
               "crystal": None if crystal is None else {
                   "numbers": crystal.numbers.tolist(), "positions": crystal.positions.tolist(),
                   "cell": crystal.cell.tolist(), "pbc": np.asarray(crystal.pbc, bool).tolist()}}
        self.records[key] = rec
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
            fh.flush()


def relax_references(phases: Sequence[ReferencePhase], loaded, settings, cache_dir: str | Path,
                     progress: Callable[[int], None] | None = None) -> dict[str, RelaxedReference]:
    """Relax the phases' structures, each in its primitive cell, with ``loaded`` (batched, through the relax stage's
    code) unless the cache already holds them; returns {phase id: RelaxedReference}."""
    tag = f"fmax{settings.fmax:g}-steps{settings.max_steps}"
    checksum = loaded.checksum or "nochecksum"
    if loaded.variant:
        checksum = hashlib.sha256(f"{checksum}:{loaded.variant}".encode()).hexdigest()
    cache = RelaxedReferenceCache(cache_dir, loaded.name, checksum, tag)
    out: dict[str, RelaxedReference] = {}
    keys = {p.id: structure_key(p.structure) for p in phases if p.structure is not None}

    def from_cache(candidates: Sequence[ReferencePhase]) -> list[ReferencePhase]:
        """Fill ``out`` from the cache; the phases it lacks."""
        missing = []
        for p in candidates:
            if p.structure is None:
                out[p.id] = RelaxedReference(p.id, "error", "no structure in the reference source", np.nan, None)
            elif (cached := cache.get(keys[p.id])) is not None:
                cached.id = p.id
                out[p.id] = cached
            else:
                missing.append(p)
        if progress and len(missing) < len(candidates):
            progress(len(candidates) - len(missing))
        return missing

    if not from_cache(phases):
        return out
    with cache.locked():
        cache.reload()  # another shard may have relaxed them while this one waited for the lock
        todo = from_cache([p for p in phases if p.id not in out])
        if todo:
            _relax_into(cache, todo, keys, loaded, settings, out, progress)
    return out


def _relax_into(cache, todo, keys, loaded, settings, out, progress) -> None:
    """Relax ``todo`` in their primitive cells; each result goes to the cache and to ``out`` as it finishes."""
    def done(results) -> None:
        for r in results:
            n = len(r.structure) if r.structure is not None else 0
            ref = RelaxedReference(r.id, r.status, r.reason, r.energy_per_atom * n if n else np.nan,
                                   r.structure.to_structure() if r.structure is not None else None)
            if not r.transient:  # out of memory or a whole batch's failure: tried again by the next run
                cache.put(keys[r.id], ref, r.structure)
            out[r.id] = ref
        if progress:
            progress(len(results))

    log.info("relaxing %d reference structures with %s", len(todo), loaded.name)
    relax([primitive_cell(p.structure) for p in todo], [p.id for p in todo], loaded, settings, done)


def primitive_cell(structure: Structure, tolerance: float = 0.01) -> Structure:
    """The primitive cell of a reference crystal (``tolerance`` in Å). A phase's energy per atom does not depend on
    the cell it is computed in, and relaxing rock salt in 2 atoms instead of 8 (spinel Co3O4 in 14 instead of 56)
    cuts the reference relaxation's cost by the same factor."""
    try:
        return structure.get_primitive_structure(tolerance=tolerance)
    except Exception:  # noqa: BLE001 - a degenerate input is relaxed as given; the relaxation records any failure
        return structure
