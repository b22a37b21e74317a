"""MD trajectories in the run file: per replica, unwrapped positions [Å] (frames, atoms, 3) as float32, streamed in
chunks of frames, under ``md/trajectories/<id>/<T>K`` with the atomic numbers and the cell."""

from __future__ import annotations

import numpy as np

from engine.md_replicas import Replica

TRAJECTORIES = "md/trajectories"


class TrajectorySink:
    """Per-replica datasets of unwrapped positions [Å] (frames, atoms, 3) in a :class:`engine.store.ResultStore`."""

    def __init__(self, store, frame_interval_ps: float, chunk_frames: int):
        self.store, self.dt, self.chunk = store, frame_interval_ps, chunk_frames

    @staticmethod
    def path(cid: str) -> str:
        return f"{TRAJECTORIES}/{cid.replace('/', '_')}"

    def group(self, replica: Replica) -> str:
        return f"{self.path(replica.cid)}/{replica.temperature:g}K"

    def open(self, replica: Replica) -> None:
        """A fresh, empty trajectory for ``replica`` (one left by a killed run is replaced)."""
        g = self.group(replica)
        self.store.delete(g)
        n = len(replica.structure)
        self.store.write_array(f"{g}/positions", np.zeros((0, n, 3), np.float32), growable=True,
                               chunk_rows=min(self.chunk, (1 << 20) // (12 * n)))
        self.store.write_array(f"{g}/numbers", np.asarray(replica.structure.atomic_numbers, dtype=np.int64))
        self.store.write_array(f"{g}/cell", replica.structure.lattice.matrix)
        self.store.set_attrs(g, {"temperature_K": replica.temperature, "frame_interval_ps": self.dt})

    def append(self, replica: Replica, positions: np.ndarray) -> None:
        """Append frames (n_frames, n_atoms, 3) [Å]."""
        self.store.extend_array(f"{self.group(replica)}/positions", positions)

    def read(self, replica: Replica) -> np.ndarray:
        return self.store.read_array(f"{self.group(replica)}/positions")

    def discard(self, cid: str) -> None:
        self.store.delete(self.path(cid))
