"""Batched FIRE relaxation on positions and cell with a uMLIP, structures entering and leaving the batch as they
finish (torch-sim's ``InFlightAutoBatcher``); used by the relax stage, the references stage and the MD
pre-relaxation.

FIRE: Bitzek et al., Phys. Rev. Lett. 97, 170201 (2006), in torch-sim's ``ase_fire`` flavour with the Fréchet
cell filter, i.e. the same algorithm as ``ase.optimize.FIRE`` on ``ase.filters.FrechetCellFilter``. A structure
is converged when the largest atomic force and the largest cell force are below ``fmax`` [eV/Å].

Every finished structure is handed to ``on_done`` at once (a stage writes it to the HDF5 file), so a killed
run loses only the structures still in flight.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch_sim as ts
from pymatgen.core import Structure
from torch_sim.optimizers import fire_init, fire_step

from engine.models import LoadedModel
from engine.rows import NAN, Row, Status
from engine.structures import pack, short_error

log = logging.getLogger(__name__)


@dataclass
class RelaxResult(Row):
    """One structure's relaxation: the relax stage's row."""
    structure: Structure | None = None  # relaxed
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
    max_atoms_per_batch: int | None = 2000  # None: let torch-sim estimate from GPU memory
    init_chunk: int = 64  # structures whose optimizer state is initialised in one model call
    cell_filter: str | None = "frechet"  # None: positions only, at fixed cell


def _system_fmax(state) -> torch.Tensor:
    atoms = ts.system_wise_max_force(state)
    if getattr(state, "cell_forces", None) is None:  # positions only (fixed cell)
        return atoms
    cell = state.cell_forces.norm(dim=2).max(dim=1).values
    return torch.maximum(atoms, cell)


def checks_every(settings: RelaxSettings, device: torch.device) -> int:
    """FIRE steps between convergence checks. On a CPU a model call costs far more than a check, so every step is
    checked and a converged structure leaves at once; on a GPU each check synchronises the device, so it is rarer."""
    if settings.steps_between_checks:
        return int(settings.steps_between_checks)
    return 1 if device.type == "cpu" else 5


def atom_limit(max_atoms: int | None, structures: Sequence[Structure]) -> int | None:
    """Atoms per batch: the configured limit, raised to the largest structure so that one runs alone instead of
    being refused by torch-sim's batcher (None: torch-sim estimates from GPU memory)."""
    if not max_atoms:
        return None
    return max(max_atoms, *(len(s) for s in structures))


def relax(structures: Sequence[Structure], ids: Sequence[str], loaded: LoadedModel, settings: RelaxSettings,
          on_done: Callable[[list[RelaxResult]], None], progress: Callable[[int], None] | None = None) -> None:
    """Relax ``structures``; ``on_done`` receives every structure's :class:`RelaxResult` as soon as it ends."""
    model = loaded.model
    dtype, device = model.dtype, model.device
    init_kwargs = {"cell_filter": ts.CellFilter(settings.cell_filter) if settings.cell_filter else None,
                   "fire_flavor": "ase_fire"}

    def report(results: list[RelaxResult]) -> None:
        if results:
            on_done(results)
            if progress:
                progress(len(results))

    todo = []
    early = []
    for s, cid in zip(structures, ids):
        missing = loaded.unsupported_elements(s.atomic_numbers)
        if missing:
            early.append(RelaxResult(cid, Status.ERROR, f"elements not in model: {' '.join(missing)} ({loaded.name})"))
        else:
            todo.append((cid, s))
    report(early)
    if not todo:
        return

    entered: list[str] = []  # id of the k-th state handed to the batcher
    v0: dict[str, float] = {}

    def initialised() -> Iterator[ts.SimState]:
        """FIRE states initialised in chunks (one model call each); a chunk that fails is retried one by one."""
        for start in range(0, len(todo), settings.init_chunk):
            chunk = todo[start:start + settings.init_chunk]
            try:
                states = fire_init(model=model, state=pack([s for _, s in chunk], device, dtype), **init_kwargs)
                singles = list(zip(chunk, states.split()))
            except Exception:  # noqa: BLE001 - isolate the structure that breaks the model
                singles = []
                for item in chunk:
                    try:
                        singles.append((item, fire_init(model=model, state=pack([item[1]], device, dtype),
                                                        **init_kwargs)))
                    except Exception as exc:  # noqa: BLE001
                        report([RelaxResult(item[0], Status.ERROR, f"model failed: {short_error(exc)}")])
            for (cid, s), st in singles:
                if not (torch.isfinite(st.energy).all() and torch.isfinite(st.forces).all()):
                    report([RelaxResult(cid, Status.ERROR, "non-finite energy or forces at the start")])
                    continue
                entered.append(cid)
                v0[cid] = float(s.volume)
                yield st

    batcher = ts.InFlightAutoBatcher(
        model, memory_scales_with="n_atoms" if settings.max_atoms_per_batch else model.memory_scales_with,
        max_memory_scaler=atom_limit(settings.max_atoms_per_batch, [s for _, s in todo]))
    stream = initialised()
    try:
        batcher.load_states(stream)
    except StopIteration:  # every structure failed to initialise
        return
    steps: defaultdict[int, int] = defaultdict(int)  # FIRE steps per batcher index
    every = checks_every(settings, device)
    state, _ = batcher.next_batch(None, None)
    while state is not None:
        failure = None
        try:
            for _ in range(every):
                state = fire_step(state=state, model=model, fire_flavor="ase_fire")
                for k in batcher.current_idx:
                    steps[k] += 1
        except Exception as exc:  # noqa: BLE001 - the batch is lost; its members are recorded, the run goes on
            failure = f"model failed during relaxation: {short_error(exc)}"
            log.warning(failure)

        current = list(batcher.current_idx)
        n_sys = state.n_systems
        fmax = _system_fmax(state).detach()
        energy = state.energy.detach()
        finite = torch.isfinite(energy) & torch.isfinite(fmax)
        volume = torch.linalg.det(state.row_vector_cell).abs().detach()
        vr = torch.tensor([volume[i].item() / v0[entered[k]] for i, k in enumerate(current)])
        exploded = (vr > settings.max_volume_ratio) | (vr < 1 / settings.max_volume_ratio)
        converged = (fmax < settings.fmax).cpu() & finite.cpu()
        maxed = torch.tensor([steps[k] >= settings.max_steps for k in current])
        done = converged | ~finite.cpu() | exploded | maxed
        if failure:
            done = torch.ones(n_sys, dtype=torch.bool)
        verdicts = {}
        for i, k in enumerate(current):
            if not done[i]:
                continue
            cid = entered[k]
            r = RelaxResult(cid, Status.PASS, fmax=float(fmax[i]), steps=steps[k], converged=bool(converged[i]),
                            volume_ratio=float(vr[i]), energy_per_atom=float(energy[i]) / int(state.n_atoms_per_system[i]))
            if failure:
                r.status, r.reason = Status.ERROR, failure
            elif not finite[i]:
                r.status, r.reason = Status.ERROR, f"non-finite energy or forces after {steps[k]} steps"
            elif exploded[i]:
                r.status, r.reason = Status.FAIL, f"exploded: volume ratio {float(vr[i]):.2f} after {steps[k]} steps"
            elif not converged[i]:
                r.status, r.reason = Status.FAIL, f"not converged: fmax {float(fmax[i]):.3f} eV/Å after {steps[k]} steps"
            verdicts[k] = r
        # InFlightAutoBatcher returns the finished states in the order of completed_idx_og_order's new tail.
        n_before = len(batcher.completed_idx_og_order)
        state, finished = batcher.next_batch(state, done.to(device))
        order = batcher.completed_idx_og_order[n_before:]
        results = []
        for k, fstate in zip(order, finished):
            r = verdicts[k]
            if r.status != Status.ERROR:
                r.structure = ts.io.state_to_structures(fstate)[0]
                r.stress = fstate.stress[0].detach().cpu().double().numpy()
            results.append(r)
        report(results)
