"""How many atoms a batched stage puts into one model call, and what it does when the device runs out of memory.

The budget is the stage's ``max_atoms_per_batch`` when set (raised to the largest structure, so that one runs alone
instead of being refused). Unset (the default), on CUDA it is torch-sim's measured estimate
(``torch_sim.autobatching.estimate_max_memory_scaler``: the largest batch of copies of the smallest and of the
largest structure that fits, in atoms) times ``padding``; on a CPU, where memory is rarely the limit and bigger
batches do not run faster per atom, the stage's ``cpu_atoms_per_batch``.

:func:`evaluate_batched` is the one queue every batched stage but relax runs its model calls through (PES probes,
phonon supercells, MD replicas): batches cut to the budget; on an out-of-memory error the budget halves and what is
left is cut again; any other failure of a batch is retried owner by owner (a candidate's systems, a replica), so one
bad candidate costs only itself; an owner that still fails is reported with the reason, transient when it ran out of
memory (``Row.transient``: a rerun retries it). Relax keeps its own variant (engine.relax.fire): its batches live
for hundreds of steps, systems leave and join them, and a failure there is a step, not a call.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import torch
import torch_sim as ts

from engine.core.rows import short_error

log = logging.getLogger(__name__)
Unit = TypeVar("Unit")
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


@dataclass
class Failure:
    """Why an owner's model calls failed: the reason for its row, and whether a rerun should retry it."""
    reason: str
    transient: bool


def evaluate_batched(units: Sequence[Unit], owner: Callable[[Unit], Hashable],
                     cut: Callable[[Sequence[Unit], int], Iterable[list[Unit]]], call: Callable[[list[Unit]], None],
                     budget: AtomBudget, what: str) -> dict[Hashable, Failure]:
    """Run ``call`` on batches of ``units`` that ``cut(units, max_atoms)`` makes within ``budget``; returns the owners
    whose units failed even alone. Out of memory (while the budget can still halve): the budget halves and the failed
    batch is cut again (one cut to a budget larger than the present one is only cut again; queued batches that fit
    keep their size). Any other failure: the batch's owners are retried one by one (their
    units of that batch, cut again); an owner that still fails is left out of every later batch."""
    failures: dict[Hashable, Failure] = {}
    queue = deque((batch, budget.atoms) for batch in cut(units, budget.atoms))  # (batch, the budget it was cut to)
    while queue:
        batch, cut_to = queue.popleft()
        batch = [u for u in batch if owner(u) not in failures]
        if not batch:
            continue
        try:
            call(batch)
        except Exception as exc:  # noqa: BLE001 - out of memory: cut smaller; else isolate the owner that breaks
            if is_out_of_memory(exc) and (cut_to > budget.atoms or budget.atoms > 1):
                if cut_to <= budget.atoms:  # a batch cut to an older, larger budget is only cut again
                    budget.halve()
                queue.extendleft(reversed([(b, budget.atoms) for b in cut(batch, budget.atoms)]))
                continue
            log.warning("%s batch failed (%s); retrying it one candidate at a time", what, short_error(exc))
            for o in dict.fromkeys(owner(u) for u in batch):
                try:
                    for sub in cut([u for u in batch if owner(u) == o], budget.atoms):
                        call(sub)
                except Exception as exc_o:  # noqa: BLE001
                    failures[o] = Failure(f"model failed: {short_error(exc_o)}", is_out_of_memory(exc_o))
    return failures


def greedy_batches(units: Sequence[Unit], size: Callable[[Unit], int], max_atoms: int) -> list[list[Unit]]:
    """``units`` in order, a new batch whenever the next would take this one over ``max_atoms`` atoms."""
    out, batch, atoms = [], [], 0
    for u in units:
        n = size(u)
        if batch and atoms + n > max_atoms:
            out.append(batch)
            batch, atoms = [], 0
        batch.append(u)
        atoms += n
    return out + ([batch] if batch else [])
