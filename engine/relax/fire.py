"""Batched FIRE relaxation on positions and cell with a uMLIP, structures entering and leaving the batch as they
finish; used by the relax stage, the references stage and the MD pre-relaxation.

The loop keeps one batched torch-sim FIRE state on the device. Step counters, volume ratios and verdicts are tensors;
each convergence check moves one boolean per system to the host, and the systems that finished leave the batch
together, their structures and numbers moved to the host as arrays (:class:`engine.core.crystals.Crystals`). New
structures are initialised into the batch (``fire_init``, ``concatenate_states``) once a tenth of the atom budget is
free: torch-sim's ``InFlightAutoBatcher`` swaps one ``SimState`` per structure, which costs more than a near-free
model's step at 10^4 structures (``benchmarks/bench_overhead.py``).

FIRE: Bitzek et al., Phys. Rev. Lett. 97, 170201 (2006), in torch-sim's ``ase_fire`` flavour with the Fréchet cell
filter, i.e. ``ase.optimize.FIRE`` on ``ase.filters.FrechetCellFilter``, a lone cell exponentiated as in a batch
(:mod:`engine.relax.reproducible`). A structure is converged when the largest atomic force and the largest cell
force are below ``fmax`` [eV/Å].

Every finished structure is handed to ``on_done`` at once (a stage writes it to the HDF5 file), so a killed run loses
only the structures still in flight. On an out-of-memory error the batch goes back to the queue at its current
geometry and the atom budget halves (:mod:`engine.core.batching`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch_sim as ts
from pymatgen.core import Structure
from torch_sim.optimizers import fire_init, fire_step

from engine.core.batching import AtomBudget, atom_budget, is_out_of_memory
from engine.core.crystals import Crystal, Crystals
from engine.core.rows import NAN, Row, Status, short_error
from engine.models import LoadedModel
from engine.relax.reproducible import batch_independent_cell_filter
from kernels.states import take_systems

log = logging.getLogger(__name__)


@dataclass
class RelaxResult(Row):
    """One structure's relaxation: the relax stage's row."""
    structure: Crystal | None = None  # relaxed
    energy_per_atom: float = NAN  # eV/atom
    stress: np.ndarray = field(default_factory=lambda: np.full((3, 3), np.nan))  # eV/Å³, (3, 3)
    fmax: float = NAN  # eV/Å, atoms and cell
    steps: int = 0
    converged: bool = False
    volume_ratio: float = NAN  # V_final / V_initial


@dataclass
class RelaxSettings:
    """Batched FIRE (ASE flavour) on positions and cell (``conf/relax/``)."""
    fmax: float = 0.05  # eV/Å
    max_steps: int = 500
    steps_between_checks: int | None = None  # None: 1 on a CPU, 5 on a GPU (see checks_every)
    max_volume_ratio: float = 3.0  # V/V0 outside [1/r, r] counts as exploded
    # eV/atom; below it the atoms have fallen into a hole of the model (no element's solid lies below -13 eV/atom)
    min_energy_per_atom: float = -25.0
    max_atoms_per_batch: int | None = None  # None: cpu_atoms_per_batch on a CPU, torch-sim's estimate on CUDA
    cpu_atoms_per_batch: int = 300  # SevenNet-0 on 2 cores: 5.5 ms/atom at 300 atoms per call, 10 at 750 (batching.py)
    init_chunk: int = 256  # structures whose optimizer state is initialised in one model call
    cell_filter: ts.CellFilter | None = ts.CellFilter.frechet  # torch-sim's frechet | unit; None: fixed cell

    def __post_init__(self):
        if self.fmax <= 0 or self.max_steps < 1:
            raise ValueError(f"relax.fmax ({self.fmax} eV/Å) must be > 0 and relax.max_steps ({self.max_steps}) >= 1")


def _system_fmax(state) -> torch.Tensor:
    atoms = ts.system_wise_max_force(state)
    if getattr(state, "cell_forces", None) is None:  # positions only (fixed cell)
        return atoms
    cell = state.cell_forces.norm(dim=2).max(dim=1).values
    return torch.maximum(atoms, cell)


def checks_every(settings: RelaxSettings, device: torch.device) -> int:
    """FIRE steps between convergence checks: 1 on a CPU (a check costs little beside a model call), 5 on a GPU."""
    if settings.steps_between_checks:
        return int(settings.steps_between_checks)
    return 1 if device.type == "cpu" else 5


@batch_independent_cell_filter()  # each structure relaxes as it would alone, whatever its batch mates
def relax(structures: Sequence[Structure] | Crystals, ids: Sequence[str], loaded: LoadedModel,
          settings: RelaxSettings, on_done: Callable[[list[RelaxResult]], None],
          progress: Callable[[int], None] | None = None) -> AtomBudget:
    """Relax ``structures``; ``on_done`` receives every structure's :class:`RelaxResult` as soon as it ends. Returns
    the atom budget with the batch sizes used (halved on each out-of-memory error)."""
    return _InFlightFire(Crystals.copy_of(structures), list(ids), loaded, settings, on_done, progress).run()


class _InFlightFire:
    """The in-flight loop: one batched FIRE state on the device, which systems leave and join (module docstring)."""

    def __init__(self, crystals: Crystals, ids: list[str], loaded: LoadedModel, settings: RelaxSettings,
                 on_done, progress):
        self.crystals, self.ids, self.loaded, self.settings = crystals, ids, loaded, settings
        self.on_done, self.progress = on_done, progress
        self.model = loaded.model
        self.init_kwargs = {"cell_filter": ts.CellFilter(settings.cell_filter) if settings.cell_filter else None,
                            "fire_flavor": "ase_fire"}
        self.v0 = crystals.volumes()
        self.steps_before = np.zeros(len(crystals), np.int64)  # steps of systems sent back by an out-of-memory error
        self.pending: deque[int] = deque()
        self.state = None
        self.order = np.zeros(0, np.int64)  # input index of each system of ``state``
        self.steps = self.v0_sys = None  # per system of ``state``, on the device

    def report(self, rows: list[RelaxResult]) -> None:
        if rows:
            self.on_done(rows)
            if self.progress:
                self.progress(len(rows))

    def run(self) -> AtomBudget:
        cr, dev, dtype = self.crystals, self.model.device, self.model.dtype
        lacking = missing_elements(cr, self.loaded)
        self.report([RelaxResult(self.ids[i], Status.ERROR, why) for i, why in lacking.items()])
        todo = [i for i in range(len(cr)) if i not in lacking]
        if not todo:
            return AtomBudget(0)
        sizes = cr.natoms[todo]
        extremes = [todo[int(np.argmin(sizes))], todo[int(np.argmax(sizes))]]
        self.budget = atom_budget(self.settings.max_atoms_per_batch, self.model, int(sizes.max()),
                                  sample=lambda: cr.take(extremes).to_state(dev, dtype),
                                  cpu_atoms=self.settings.cpu_atoms_per_batch)
        self.pending.extend(todo)
        every = checks_every(self.settings, dev)
        while self.pending or self.state is not None:
            if self.refill():
                self.check()  # the joining systems took their first step on their own (initialise)
            if self.state is None:
                continue
            try:
                for _ in range(every):
                    self.state = fire_step(state=self.state, model=self.model, fire_flavor="ase_fire")
                    self.steps += 1
            except Exception as exc:  # noqa: BLE001 - the batch goes back (out of memory) or is recorded
                self.batch_failed(exc)
                continue
            self.check()
        return self.budget

    # ---- systems in --------------------------------------------------------------------------------------
    def refill(self) -> bool:
        """Initialise pending structures into the batch while they fit the budget; a structure that does not fit
        even alone ends as a transient error. True when systems joined, each after its first step."""
        used = 0 if self.state is None else self.state.n_atoms
        free = self.budget.atoms - used
        if not self.pending or (self.state is not None and free < 0.1 * self.budget.atoms):
            return False
        take = []
        while self.pending and self.crystals.natoms[self.pending[0]] <= free:
            i = self.pending.popleft()
            take.append(i)
            free -= int(self.crystals.natoms[i])
        if not take:
            if self.state is None:  # the first pending structure is larger than the whole budget
                self.report([self.out_of_memory_alone(self.pending.popleft())])
            return False
        parts = [] if self.state is None else [self.state]
        orders, first_steps = [self.order], []
        for start in range(0, len(take), self.settings.init_chunk):
            chunk = np.asarray(take[start:start + self.settings.init_chunk])
            try:
                new, kept, stepped = self.initialise(chunk)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                if len(take) == 1 and self.state is None:  # alone on the device, and still too big
                    self.report([self.out_of_memory_alone(take[0])])
                    return False
                self.pending.extendleft(reversed(take[start:]))
                self.budget.halve()
                break
            if new is not None:
                parts.append(new)
                orders.append(kept)
                first_steps.append(stepped)
        if len(parts) > (self.state is not None):
            dev = self.model.device
            # systems already relaxing keep their counts; those joining start from theirs before any send-back
            counted = self.steps if self.state is not None else torch.zeros(0, dtype=torch.int64, device=dev)
            self.state = parts[0] if len(parts) == 1 else ts.concatenate_states(parts)
            self.order = np.concatenate(orders)
            first = np.concatenate(first_steps)
            joining = torch.as_tensor(self.steps_before[self.order[len(counted):]] + first, device=dev)
            self.steps = torch.cat([counted.to(joining.dtype), joining])
            self.v0_sys = torch.as_tensor(self.v0[self.order], dtype=self.model.dtype, device=dev)
            return bool(first.all())  # no check before a joiner's first step
        return False

    def initialise(self, chunk: np.ndarray):
        """FIRE state of ``chunk`` after its first step, taken here on the chunk alone (torch-sim's ASE FIRE takes a
        first step only when every system of the batch is new: a joiner's time step was halved). On a failure other
        than out of memory each structure is tried alone; one that still fails, or starts non-finite, is an error."""
        dev, dtype = self.model.device, self.model.dtype
        try:
            new = fire_init(model=self.model, state=self.crystals.take(chunk).to_state(dev, dtype), **self.init_kwargs)
        except Exception as exc:
            if is_out_of_memory(exc):
                raise
            if len(chunk) == 1:
                self.report([RelaxResult(self.ids[chunk[0]], Status.ERROR, f"model failed: {short_error(exc)}")])
                return None, chunk[:0], np.zeros(0, np.int64)
            singles = [self.initialise(chunk[k:k + 1]) for k in range(len(chunk))]
            singles = [single for single in singles if single[0] is not None]
            if not singles:
                return None, chunk[:0], np.zeros(0, np.int64)
            return (ts.concatenate_states([s for s, _, _ in singles]) if len(singles) > 1 else singles[0][0],
                    np.concatenate([k for _, k, _ in singles]), np.concatenate([n for _, _, n in singles]))
        ok = (torch.isfinite(new.energy) & torch.isfinite(_system_fmax(new))).cpu().numpy()  # as check() judges
        self.report([RelaxResult(self.ids[i], Status.ERROR, "non-finite energy or forces at the start")
                     for i in chunk[~ok]])
        if not ok.any():
            return None, chunk[:0], np.zeros(0, np.int64)
        new = new if ok.all() else new[torch.as_tensor(np.flatnonzero(ok), device=dev)]
        try:
            stepped = fire_step(state=new, model=self.model, fire_flavor="ase_fire")
            return stepped, chunk[ok], np.ones(ok.sum(), np.int64)
        except Exception as exc:
            if is_out_of_memory(exc):
                raise
            # a failed step (it may have moved the positions) is not counted; the next one's batch_failed records it
            return new, chunk[ok], np.zeros(ok.sum(), np.int64)

    # ---- systems out -------------------------------------------------------------------------------------
    def check(self) -> None:
        """Verdicts as tensors, one host transfer; finished systems leave the batch together."""
        s, st = self.settings, self.state
        fmax = _system_fmax(st).detach()
        energy = st.energy.detach()
        finite = torch.isfinite(energy) & torch.isfinite(fmax)
        vr = torch.linalg.det(st.row_vector_cell).abs().detach() / self.v0_sys
        exploded = (vr > s.max_volume_ratio) | (vr < 1 / s.max_volume_ratio)
        collapsed = energy / st.system_idx.bincount(minlength=len(energy)) < s.min_energy_per_atom
        converged = (fmax < s.fmax) & finite & ~collapsed
        done = converged | ~finite | exploded | collapsed | (self.steps >= s.max_steps)
        done_host = done.cpu().numpy()
        if not done_host.any():
            return
        idx = torch.as_tensor(np.flatnonzero(done_host), device=st.device)
        cols = torch.stack([fmax[idx].double(), energy[idx].double(), vr[idx].double(), self.steps[idx].double(),
                            converged[idx].double(), finite[idx].double(), exploded[idx].double(),
                            collapsed[idx].double()]).cpu().numpy()
        finished = take_systems(st, idx)
        relaxed = Crystals.from_state(finished)
        stress = finished.stress.detach().cpu().double().numpy()
        rows = []
        for j, i in enumerate(self.order[done_host]):
            f, e, v, n, conv, fin, expl, coll = cols[:, j]
            n = int(n)
            r = RelaxResult(self.ids[i], Status.PASS, fmax=float(f), steps=n, converged=bool(conv),
                            volume_ratio=float(v), energy_per_atom=float(e) / int(relaxed.natoms[j]))
            if not fin:
                r.status, r.reason = Status.ERROR, f"non-finite energy or forces after {n} steps"
            elif coll:
                r.status, r.reason = Status.ERROR, (f"collapsed: {r.energy_per_atom:.3g} eV/atom after {n} steps "
                                                    f"(below relax.min_energy_per_atom)")
            else:
                r.structure, r.stress = relaxed[j], stress[j]
                if expl:
                    r.status, r.reason = Status.FAIL, f"exploded: volume ratio {v:.2f} after {n} steps"
                elif not conv:
                    r.status, r.reason = Status.FAIL, f"not converged: fmax {f:.3f} eV/Å after {n} steps"
            rows.append(r)
        self.keep(~done_host)
        self.report(rows)

    def out_of_memory_alone(self, i: int) -> RelaxResult:
        return RelaxResult(self.ids[i], Status.ERROR, f"out of memory alone ({self.crystals.natoms[i]} atoms; budget "
                           f"{self.budget.atoms})", transient=True, steps=int(self.steps_before[i]))

    def keep(self, keep: np.ndarray) -> None:
        if not keep.any():
            self.state, self.order = None, self.order[:0]
            return
        idx = torch.as_tensor(np.flatnonzero(keep), device=self.model.device)
        self.state = take_systems(self.state, idx)
        self.order, self.steps, self.v0_sys = self.order[keep], self.steps[idx], self.v0_sys[idx]

    def batch_failed(self, exc: Exception) -> None:
        """Out of memory: the batch's systems go back to the queue at their current geometry (their steps kept) and
        the budget halves; a system alone in the batch ends as a transient error. Another failure: each system is
        tried alone at its current geometry; those that fail alone end as errors and the others go back to the queue.
        When none fails alone, every system of the batch ends as a transient error (the failure is the batch's)."""
        n = self.state.n_systems
        if is_out_of_memory(exc) and n == 1:
            self.report([self.out_of_memory_alone(int(self.order[0]))])
            self.state, self.order = None, self.order[:0]
            return
        if is_out_of_memory(exc):
            self.requeue(np.ones(n, bool))
            self.budget.halve()
            return
        reason = f"model failed during relaxation: {short_error(exc)}"
        alone = self.fails_alone() if n > 1 else {0: reason}
        if alone:
            rows = [RelaxResult(self.ids[self.order[k]], Status.ERROR, why, steps=int(self.steps[k]))
                    for k, why in alone.items()]
            keep = np.ones(n, bool)
            keep[list(alone)] = False
            self.requeue(keep)
            self.report(rows)
            return
        log.warning(reason)
        rows = [RelaxResult(self.ids[i], Status.ERROR, reason, transient=True, steps=int(k))
                for i, k in zip(self.order, self.steps.cpu().numpy())]
        self.state, self.order = None, self.order[:0]
        self.report(rows)

    def fails_alone(self) -> dict[int, str]:
        """{system: why} of the systems of the batch on which the model fails when called alone."""
        out = {}
        for k in range(self.state.n_systems):
            try:
                self.model(take_systems(self.state, torch.tensor([k], device=self.model.device)))
            except Exception as exc:  # noqa: BLE001 - this system's own failure
                if is_out_of_memory(exc):
                    raise
                out[k] = f"model failed during relaxation: {short_error(exc)}"
        return out

    def requeue(self, chosen: np.ndarray) -> None:
        """Systems ``chosen`` (bool each) to the queue's front, at their geometry and step counts; the batch empties."""
        order = self.order[chosen]
        if len(order):
            where = Crystals.from_state(take_systems(self.state, torch.as_tensor(np.flatnonzero(chosen),
                                                                                 device=self.model.device)))
            self.crystals.positions[self.crystals.atoms_of(order)] = where.positions
            self.crystals.cell[order] = where.cell
            self.steps_before[order] = self.steps.cpu().numpy()[chosen]
            self.pending.extendleft(reversed(order.tolist()))
        self.state, self.order = None, self.order[:0]


def missing_elements(crystals: Crystals, loaded: LoadedModel) -> dict[int, str]:
    """{index: why the model cannot compute it} of the structures with elements it lacks (one vectorised pass over
    the atoms, :meth:`engine.models.base.LoadedModel.lacks` for those it finds)."""
    known = np.zeros(119, bool)
    known[list(loaded.supported_z)] = True
    bad = crystals.per_structure(~known[crystals.numbers], np.logical_or)
    return {int(i): loaded.lacks(crystals[i].numbers) for i in np.flatnonzero(bad)}
