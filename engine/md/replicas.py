"""The multi-replica MD runner: all replicas (candidates × temperatures) as systems of batched torch-sim states with
per-system temperatures and thermostat state, binned by atoms with torch-sim's ``to_constant_volume_bins``; Berendsen
thermalisation (``kernels/thermostats.py``), then torch-sim's Nosé–Hoover chain. A replica that explodes leaves its
batch with a reason; the others go on. Health checks are tensors with one host transfer; sampled frames go to the
run file as one array per flush over the whole batch (:mod:`engine.md.trajectories`)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from ase import units
from pymatgen.core import Structure
from torch_sim.autobatching import to_constant_volume_bins
from torch_sim.integrators.md import NoseHooverChain
from torch_sim.integrators.nvt import nvt_nose_hoover_init, nvt_nose_hoover_step

from engine.core.batching import AtomBudget, atom_budget, evaluate_batched
from engine.core.crystals import Crystal, Crystals, concatenated_ranges
from engine.md.protocol import MdSettings
from kernels.distances import min_interatomic_distance
from kernels.states import take_systems
from kernels.thermostats import nvt_berendsen_init, nvt_berendsen_step, system_kT

log = logging.getLogger(__name__)


@dataclass
class Replica:
    """One candidate at one temperature."""
    cid: str
    temperature: float  # K
    structure: Crystal  # the supercell, positions pre-relaxed (a pymatgen Structure is converted)
    error: str = ""
    transient: bool = False  # the error is the batch's (out of memory, model failure), not this replica's
    temperatures: list = field(default_factory=list)  # K, instantaneous, at every sampled frame
    block: str = ""  # its trajectory block in the run file, and its first atom there (engine/md_trajectories.py)
    offset: int = 0

    def __post_init__(self):
        if isinstance(self.structure, Structure):
            self.structure = Crystal.from_structure(self.structure)

    @property
    def key(self) -> str:
        return f"{self.cid}/{self.temperature:g}K"


def _drop_systems(state, keep: torch.Tensor):
    """``state`` without the systems not in ``keep`` (bool per system).

    Why this exists: torch-sim 0.6 keeps the Nosé–Hoover chain as a global attribute of the state, which its
    indexing does not cut; the chain's per-system tensors are cut here so that each survivor keeps its own
    thermostat."""
    idx = torch.nonzero(keep).flatten()
    chain = getattr(state, "chain", None)
    out = take_systems(state, idx)
    if chain is not None:
        out.chain = NoseHooverChain(chain.positions[idx], chain.momenta[idx], chain.masses[idx],
                                    chain.tau[idx] if chain.tau.ndim else chain.tau,
                                    chain.kinetic_energy[idx], chain.degrees_of_freedom[idx])
    return out


def _health(state, kT_target: torch.Tensor, settings: MdSettings) -> dict[int, str]:
    """{system: why the replica is stopped} of the systems that must stop (one host transfer when none)."""
    atom_ok = torch.isfinite(state.positions).all(dim=1) & torch.isfinite(state.forces).all(dim=1) \
        & torch.isfinite(state.momenta).all(dim=1)
    bad_atoms = torch.zeros(state.n_systems, dtype=torch.long, device=state.device).index_add_(
        0, state.system_idx, (~atom_ok).long())
    finite = torch.isfinite(state.energy) & (bad_atoms == 0)
    kT = system_kT(state)
    hot = (kT > settings.runaway_factor * kT_target) & finite
    d_min = min_interatomic_distance(torch.where(atom_ok[:, None], state.positions, 0.0), state.row_vector_cell,
                                     state.pbc, state.system_idx, cutoff=settings.min_distance * 1.5)
    close = (d_min < settings.min_distance) & finite & ~hot
    flags = torch.stack([~finite, hot, close])
    if not flags.any():
        return {}
    flags, temperature, d_min = flags.cpu().numpy(), (kT / units.kB).cpu().numpy(), d_min.cpu().numpy()
    reasons = {int(i): "non-finite energy, forces or positions" for i in np.flatnonzero(flags[0])}
    reasons |= {int(i): f"temperature runaway: {temperature[i]:.0f} K" for i in np.flatnonzero(flags[1])}
    reasons |= {int(i): f"atoms overlapping: {d_min[i]:.2f} Å" for i in np.flatnonzero(flags[2])}
    return reasons


def initial_momenta(members: Sequence[Replica], seed: int, masses: torch.Tensor,
                    system_idx: torch.Tensor) -> torch.Tensor:
    """Maxwell–Boltzmann momenta (n_atoms, 3) [ASE units] of a batch of replicas, each at its temperature, with each
    replica's centre-of-mass motion removed. Each replica's normal deviates come from a generator seeded by (``seed``,
    id, temperature): a replica starts the same whichever batch it shares, so a resumed run repeats what an
    uninterrupted one computes. ``masses`` [amu] and ``system_idx`` are the batch's, (n_atoms,)."""
    deviates = np.concatenate([np.random.default_rng(_replica_key(seed, m)).standard_normal((len(m.structure), 3))
                               for m in members])
    kT = torch.tensor([units.kB * m.temperature for m in members], dtype=masses.dtype, device=masses.device)
    p = torch.as_tensor(deviates, dtype=masses.dtype, device=masses.device) \
        * torch.sqrt(masses * kT[system_idx])[:, None]
    total = torch.zeros(len(members), 3, dtype=p.dtype, device=p.device).index_add_(0, system_idx, p)
    count = torch.bincount(system_idx, minlength=len(members)).to(p.dtype)
    drift = torch.where(count[:, None] > 1, total / count[:, None], 0.0)  # a lone atom keeps its momentum
    return p - drift[system_idx]


def _replica_key(seed: int, replica: Replica) -> int:
    return int(hashlib.sha256(f"{seed}:{replica.cid}:{replica.temperature:g}".encode()).hexdigest()[:15], 16)


def run_replicas(replicas: Sequence[Replica], model, settings: MdSettings, sink,
                 on_done: Callable[[list[Replica]], None],
                 progress: Callable[[int], None] | None = None) -> AtomBudget | None:
    """Thermalise and run production for every replica, batched; ``on_done`` gets the replicas of each batch once
    they end (``error`` set for those that were stopped), their trajectories already in ``sink``. Batches are bins of
    at most the atom budget (torch-sim's ``to_constant_volume_bins``) run through
    :func:`engine.core.batching.evaluate_batched` (out of memory: the budget halves and the batch is rerun in smaller
    bins; another failure: its replicas one by one). Returns the atom budget with the batch sizes used (None: no replicas)."""
    if not replicas:
        return None
    dtype, device = model.dtype, model.device
    crystals = Crystals.from_structures([r.structure for r in replicas])  # Crystal views: no pymatgen
    extremes = [int(np.argmin(crystals.natoms)), int(np.argmax(crystals.natoms))]
    budget = atom_budget(settings.max_atoms_per_batch, model, int(crystals.natoms.max()),
                         sample=lambda: crystals.take(extremes).to_state(device, dtype),
                         cpu_atoms=settings.cpu_atoms_per_batch)

    def run(indices: list[int]) -> None:
        members = [replicas[i] for i in indices]
        try:
            _run_batch(crystals.take(indices).to_state(device, dtype), members, model, settings, sink)
        except Exception:
            for block in {m.block for m in members if m.block}:  # what the lost batch wrote, gone with it
                sink.discard_block(block)
            for m in members:
                m.error, m.temperatures, m.block = "", [], ""
            raise
        on_done(members)
        if progress:
            progress(len(members))

    failed = evaluate_batched(range(len(replicas)), lambda i: i,
                              lambda units, atoms: _bins(crystals.natoms, units, atoms), run, budget, "MD")
    for i, failure in failed.items():
        m = replicas[i]
        m.error = failure.reason.replace("model failed", "model failed during MD", 1)
        m.transient = failure.transient
        on_done([m])
        if progress:
            progress(1)
    return budget


def _bins(natoms: np.ndarray, indices, max_atoms: int) -> list[list[int]]:
    """Replica indices packed into bins of at most ``max_atoms`` atoms, in input order within each bin."""
    indices = list(indices)
    bins = to_constant_volume_bins({k: int(natoms[i]) for k, i in enumerate(indices)}, max_volume=max_atoms)
    return [sorted(indices[k] for k in b) for b in bins]


def _run_batch(state, members: list[Replica], model, settings: MdSettings, sink) -> None:
    """Berendsen thermalisation then Nosé–Hoover production of one batch; stopped replicas get ``error``."""
    device, dtype = model.device, model.dtype
    dt = settings.timestep_fs * units.fs
    tau_b = settings.berendsen_tau_ps * 1000.0 * units.fs
    tau_nh = settings.nose_hoover_tau_fs * units.fs
    n_therm, n_prod = settings.steps(settings.thermalisation_ps), settings.steps(settings.production_ps)
    check_every = max(1, round(settings.check_interval_fs / settings.timestep_fs))
    alive = list(range(len(members)))  # members[alive[s]] is system s of the state
    kT = torch.tensor([units.kB * m.temperature for m in members], dtype=dtype, device=device)
    buffer: list[tuple[list[int], torch.Tensor, torch.Tensor]] = []  # (who, positions, T [K]) per sampled frame

    def check(st, kT_now, phase: str):
        nonlocal alive
        reasons = _health(st, kT_now, settings)
        if not reasons:
            return st, kT_now
        for k, r in reasons.items():
            members[alive[k]].error = f"{r} ({phase})"
        keep = np.ones(len(alive), bool)
        keep[list(reasons)] = False
        alive = [a for a, k in zip(alive, keep) if k]
        if not alive:
            return None, kT_now
        keep_t = torch.as_tensor(keep, device=device)
        return _drop_systems(st, keep_t), kT_now[keep_t]

    def sample(st) -> None:
        buffer.append((list(alive), st.positions.detach().clone(), system_kT(st) / units.kB))

    def flush() -> None:
        """The buffered frames as one array over the block's atoms (NaN for replicas stopped since)."""
        if not buffer:
            return
        frames = np.full((len(buffer), int(block_natoms.sum()), 3), np.nan, np.float32)
        temps = np.full((len(buffer), len(block_members)), np.nan)
        for k, (who, pos, temp) in enumerate(buffer):
            slots = np.array([slot[w] for w in who])
            frames[k, block_atoms_of(slots)] = pos.float().cpu().numpy()
            temps[k, slots] = temp.cpu().numpy()
        stopped = [slot[w] for w in range(len(members)) if w in slot and members[w].error]
        frames[:, block_atoms_of(np.array(stopped, np.int64))] = np.nan  # frames since a replica's last check
        sink.append(block, frames)
        sampled_temperatures.append(temps)
        buffer.clear()

    md = nvt_berendsen_init(state, model, kT=kT)
    md.momenta = initial_momenta(members, settings.seed, state.masses, state.system_idx)
    md, kT = check(md, kT, "start")
    for step in range(1, n_therm + 1):
        if md is None:
            return
        md = nvt_berendsen_step(md, model, dt=dt, kT=kT, tau=tau_b)
        if step % check_every == 0 or step == n_therm:
            md, kT = check(md, kT, f"thermalisation, {step * settings.timestep_fs / 1000:g} ps")
    if md is None:
        return
    md = nvt_nose_hoover_init(md, model, kT=kT, dt=dt, tau=tau_nh)
    block_members = [members[a] for a in alive]
    slot = {a: k for k, a in enumerate(alive)}  # member index -> its place in the block
    block = sink.open_block(block_members, [m.temperature for m in block_members])
    block_natoms = np.array([len(m.structure) for m in block_members], np.int64)
    block_offsets = np.array([m.offset for m in block_members], np.int64)  # set by open_block

    def block_atoms_of(slots: np.ndarray) -> np.ndarray:
        return concatenated_ranges(block_offsets[slots], block_natoms[slots])

    sampled_temperatures: list[np.ndarray] = []
    sample(md)
    for step in range(1, n_prod + 1):
        md = nvt_nose_hoover_step(md, model, dt=dt, kT=kT)
        if step % check_every == 0 or step == n_prod:
            md, kT = check(md, kT, f"production, {step * settings.timestep_fs / 1000:g} ps")
            if md is None:
                break
        if step % settings.sample_every == 0:
            sample(md)
            if len(buffer) >= settings.frames_per_flush:
                flush()
    flush()
    temps = np.concatenate(sampled_temperatures)
    for k, m in enumerate(block_members):
        m.temperatures = temps[np.isfinite(temps[:, k]), k].tolist()
