"""MD trajectories in the run file, one block per batch of replicas:

    md/trajectories/<block>/positions    (frames, atoms of the batch, 3) float32, unwrapped [Å], streamed in chunks
                           /numbers      (atoms of the batch,) Z
                           /cell         (replicas, 3, 3) [Å, rows]
                           /id, /temperature_K, /offset, /natoms    (replicas,): who owns which atoms

Block names start with a counter, so a later block wins when a rerun simulates a replica again. A replica stopped
early has NaN positions from then on. One block per batch keeps the number of HDF5 objects independent of the number
of replicas (per-replica datasets cost about a millisecond each to create, more than a thousand MD steps of a
near-free model at 10^4 replicas). Positions are stored uncompressed: gzip would cost more than the MD steps of a
fast model, and unwrapped float32 coordinates shrink little. :func:`read_trajectory` reads one replica's frames.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np

TRAJECTORIES = "md/trajectories"
ATOMS_PER_CHUNK = 256  # per-replica reads touch only the chunks of that replica's atoms


class TrajectorySink:
    """Writes trajectory blocks to a :class:`engine.io.store.ResultStore` and reads replicas back."""

    def __init__(self, store, frame_interval_ps: float, chunk_frames: int):
        self.store, self.dt, self.chunk = store, frame_interval_ps, chunk_frames

    def open_block(self, replicas: Sequence, temperatures: Sequence[float]) -> str:
        """A new empty block for ``replicas`` (objects with ``cid`` and a :class:`Crystal` ``structure``) at ``temperatures``
        [K]; sets each replica's ``block`` and ``offset`` (its first atom in the block's frames)."""
        natoms = np.array([len(r.structure) for r in replicas], np.int64)
        offset = np.concatenate([[0], np.cumsum(natoms)[:-1]]).astype(np.int64)
        existing = self.store.children(TRAJECTORIES)
        block = f"{TRAJECTORIES}/b{len(existing):06d}-{uuid.uuid4().hex[:8]}"
        n = int(natoms.sum())
        self.store.write_array(f"{block}/positions", np.zeros((0, n, 3), np.float32), growable=True,
                               chunk_rows=self.chunk, chunk_cols=min(n, ATOMS_PER_CHUNK), compress=False)
        self.store.write_array(f"{block}/numbers",
                               np.concatenate([r.structure.numbers for r in replicas]))
        self.store.write_array(f"{block}/cell", np.stack([r.structure.cell for r in replicas]))
        self.store.write_array(f"{block}/id", np.array([r.cid for r in replicas], dtype=object))
        self.store.write_array(f"{block}/temperature_K", np.asarray(temperatures, float))
        self.store.write_array(f"{block}/offset", offset)
        self.store.write_array(f"{block}/natoms", natoms)
        self.store.set_attrs(block, {"frame_interval_ps": self.dt})
        for r, a in zip(replicas, offset):
            r.block, r.offset = block, int(a)
        return block

    def append(self, block: str, frames: np.ndarray) -> None:
        """Append frames (n_frames, atoms of the block, 3) [Å]."""
        self.store.extend_array(f"{block}/positions", frames.astype(np.float32, copy=False))

    def read(self, replica) -> np.ndarray:
        """The frames (n_frames, n_atoms, 3) [Å] of one replica, up to where it was stopped."""
        return _replica_frames(self.store, replica.block, replica.offset, len(replica.structure))

    def discard_block(self, block: str) -> None:
        """Delete a block whose batch is run again (after an out-of-memory error)."""
        self.store.delete(block)

    def prune(self, finished_ids: set[str]) -> None:
        """Delete the blocks of which no replica's candidate has a row (left by a killed run)."""
        for name in self.store.children(TRAJECTORIES):
            ids = self.store.read_array(f"{TRAJECTORIES}/{name}/id")
            if not any(str(i) in finished_ids for i in ids):
                self.store.delete(f"{TRAJECTORIES}/{name}")


def _replica_frames(store, block: str, offset: int, natoms: int) -> np.ndarray:
    pos = store.read_slice(f"{block}/positions", (slice(None), slice(offset, offset + natoms)))
    stopped = ~np.isfinite(pos).all(axis=(1, 2))
    return pos[:np.argmax(stopped)] if stopped.any() else pos


def read_trajectory(store, cid: str, temperature: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unwrapped positions (frames, atoms, 3) [Å], atomic numbers (atoms,), cell (3, 3) [Å]) of candidate ``cid``
    at ``temperature`` [K], from the latest block that holds it; KeyError when none does."""
    for name in sorted(store.children(TRAJECTORIES), reverse=True):
        block = f"{TRAJECTORIES}/{name}"
        ids = [str(i) for i in store.read_array(f"{block}/id")]
        temps = store.read_array(f"{block}/temperature_K")
        hits = [k for k, (i, t) in enumerate(zip(ids, temps)) if i == cid and np.isclose(t, temperature)]
        if hits:
            k = hits[0]
            offset, natoms = (int(store.read_array(f"{block}/{c}")[k]) for c in ("offset", "natoms"))
            numbers = store.read_array(f"{block}/numbers")[offset:offset + natoms]
            return _replica_frames(store, block, offset, natoms), numbers, store.read_array(f"{block}/cell")[k]
    raise KeyError(f"no trajectory of {cid} at {temperature:g} K")
