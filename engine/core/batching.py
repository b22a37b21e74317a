"""How many atoms a batched stage puts into one model call, and what it does when the device runs out of memory.

The budget is the stage's ``max_atoms_per_batch`` when set (raised to the largest structure, so that one runs alone
instead of being refused). Unset (the default), on CUDA it is torch-sim's measured estimate
(``torch_sim.autobatching.estimate_max_memory_scaler``: the largest batch of copies of the smallest and of the
largest structure that fits, in atoms) times ``padding``; on a CPU, where memory is rarely the limit and bigger
batches do not run faster per atom, the stage's ``cpu_atoms_per_batch``.

On an out-of-memory error a stage halves its budget and retries the same systems (:class:`AtomBudget`); a system that
does not fit even alone ends as a transient error, which a rerun retries (``Row.transient``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch_sim as ts

log = logging.getLogger(__name__)
OOM_MESSAGES = ("out of memory", "Failed to allocate")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is the device running out of memory (CUDA's error, or an allocator's message)."""
    return isinstance(exc, torch.OutOfMemoryError) or any(m in str(exc) for m in OOM_MESSAGES)


@dataclass
class AtomBudget:
    """Atoms per model call; ``halve()`` on an out-of-memory error. ``history`` is every budget used, for the run file."""
    atoms: int
    history: list[int] = field(default_factory=list)

    def __post_init__(self):
        self.history.append(self.atoms)

    def halve(self) -> int:
        self.atoms = max(1, self.atoms // 2)
        self.history.append(self.atoms)
        log.warning("out of device memory: batches now take at most %d atoms", self.atoms)
        return self.atoms


def atom_budget(configured: int | None, model, largest: int, sample: Callable[[], ts.SimState] | None = None,
                cpu_atoms: int = 2000, padding: float = 0.8) -> AtomBudget:
    """The budget of a stage: ``configured`` (at least ``largest`` atoms), else torch-sim's estimate on CUDA from
    ``sample()`` (a batched state of the stage's smallest and largest system), else ``cpu_atoms``."""
    if configured:
        return AtomBudget(max(int(configured), largest))
    if model.device.type != "cuda" or sample is None:
        return AtomBudget(max(int(cpu_atoms), largest))
    from torch_sim.autobatching import calculate_memory_scalers, estimate_max_memory_scaler

    state = sample()
    atoms = estimate_max_memory_scaler(state, model, calculate_memory_scalers(state, "n_atoms"))
    log.info("torch-sim's memory estimate: %.0f atoms per batch (× %.2f padding)", atoms, padding)
    return AtomBudget(max(int(atoms * padding), largest))
