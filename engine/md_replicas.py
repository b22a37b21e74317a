"""The multi-replica MD runner: all replicas (candidates × temperatures) as systems of batched torch-sim states with
per-system temperatures and thermostat state, packed by torch-sim's ``BinningAutoBatcher``; Berendsen
thermalisation (``kernels/thermostats.py``), then torch-sim's Nosé–Hoover chain. A replica that explodes leaves its
batch with a reason; the others go on."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch_sim as ts
from ase import units
from pymatgen.core import Structure
from torch_sim.integrators.md import NoseHooverChain, initialize_momenta
from torch_sim.integrators.nvt import nvt_nose_hoover_init, nvt_nose_hoover_step

from engine.fire import atom_limit
from engine.md_protocol import MdSettings
from engine.structures import pack, short_error
from kernels.distances import min_interatomic_distance
from kernels.thermostats import nvt_berendsen_init, nvt_berendsen_step, system_kT

log = logging.getLogger(__name__)


@dataclass
class Replica:
    """One candidate at one temperature."""
    cid: str
    temperature: float  # K
    structure: Structure  # the supercell, positions pre-relaxed
    error: str = ""
    temperatures: list = field(default_factory=list)  # K, instantaneous, at every sampled frame

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
    out = state[idx]
    if chain is not None:
        out.chain = NoseHooverChain(chain.positions[idx], chain.momenta[idx], chain.masses[idx],
                                    chain.tau[idx] if chain.tau.ndim else chain.tau,
                                    chain.kinetic_energy[idx], chain.degrees_of_freedom[idx])
    return out


def _health(state, kT_target: torch.Tensor, settings: MdSettings) -> list[str]:
    """Per system: '' or why the replica is stopped."""
    energy_ok = torch.isfinite(state.energy)
    atom_ok = torch.isfinite(state.positions).all(dim=1) & torch.isfinite(state.forces).all(dim=1) \
        & torch.isfinite(state.momenta).all(dim=1)
    bad_atoms = torch.zeros(state.n_systems, dtype=torch.long, device=state.device).index_add_(
        0, state.system_idx, (~atom_ok).long())
    finite = energy_ok & (bad_atoms == 0)
    kT = system_kT(state)
    temperature = kT / units.kB
    reasons = ["" if f else "non-finite energy, forces or positions" for f in finite.tolist()]
    hot = (kT > settings.runaway_factor * kT_target) & finite
    for i in torch.nonzero(hot).flatten().tolist():
        reasons[i] = f"temperature runaway: {temperature[i]:.0f} K"
    if finite.all():
        d_min = min_interatomic_distance(state.positions, state.row_vector_cell, state.pbc, state.system_idx,
                                         cutoff=settings.min_distance * 1.5)
        for i in torch.nonzero(d_min < settings.min_distance).flatten().tolist():
            reasons[i] = reasons[i] or f"atoms overlapping: {float(d_min[i]):.2f} Å"
    return reasons


def initial_momenta(replica: Replica, seed: int, masses: torch.Tensor) -> torch.Tensor:
    """Maxwell–Boltzmann momenta (n_atoms, 3) [ASE units] of one replica at its temperature, with the centre-of-mass
    motion removed, from a generator seeded by (``seed``, id, temperature): a replica starts the same whichever batch
    it shares, so a resumed run repeats what an uninterrupted one computes."""
    key = hashlib.sha256(f"{seed}:{replica.cid}:{replica.temperature:g}".encode()).hexdigest()
    generator = torch.Generator().manual_seed(int(key[:15], 16))
    masses = masses.detach().cpu()
    n = len(masses)
    kT = torch.tensor(units.kB * replica.temperature, dtype=masses.dtype)
    return initialize_momenta(torch.zeros(n, 3, dtype=masses.dtype), masses, torch.zeros(n, dtype=torch.long), kT,
                              generator)


def run_replicas(replicas: Sequence[Replica], model, settings: MdSettings, sink,
                 on_done: Callable[[list[Replica]], None], progress: Callable[[int], None] | None = None) -> None:
    """Thermalise and run production for every replica, batched; ``on_done`` gets the replicas of each batch once
    they end (``error`` set for those that were stopped), their trajectories already in ``sink``."""
    if not replicas:
        return
    dtype, device = model.dtype, model.device
    states = [pack([r.structure], device, dtype) for r in replicas]
    batcher = ts.BinningAutoBatcher(
        model, memory_scales_with="n_atoms" if settings.max_atoms_per_batch else model.memory_scales_with,
        max_memory_scaler=atom_limit(settings.max_atoms_per_batch, [r.structure for r in replicas]))
    batcher.load_states(states)
    for state, indices in batcher:
        members = [replicas[i] for i in indices]
        try:
            _run_batch(state, members, model, settings, sink)
        except Exception as exc:  # noqa: BLE001 - the batch is lost; its replicas are recorded, the run goes on
            log.warning("MD batch failed: %s", short_error(exc))
            for m in members:
                m.error = m.error or f"model failed during MD: {short_error(exc)}"
        on_done(members)
        if progress:
            progress(len(members))


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
        if not any(reasons):
            return st, kT_now
        for s, r in enumerate(reasons):
            if r:
                members[alive[s]].error = f"{r} ({phase})"
        keep = torch.tensor([not r for r in reasons], device=device)
        alive = [a for a, k in zip(alive, keep.tolist()) if k]
        if not alive:
            return None, kT_now
        return _drop_systems(st, keep), kT_now[keep]

    def sample(st) -> None:
        buffer.append((list(alive), st.positions.detach().clone(), system_kT(st) / units.kB))

    def flush() -> None:
        per_member: dict[int, list] = {}
        for who, pos, temp in buffer:
            sizes = [len(members[w].structure) for w in who]
            for w, p, t in zip(who, pos.split(sizes), temp.tolist()):
                per_member.setdefault(w, []).append((p, t))
        for w, frames in per_member.items():
            m = members[w]
            if not m.error:  # frames of a replica stopped since are dropped with it
                sink.append(m, torch.stack([p for p, _ in frames]).float().cpu().numpy())
                m.temperatures.extend(t for _, t in frames)
        buffer.clear()

    md = nvt_berendsen_init(state, model, kT=kT)
    masses = state.masses.split(state.n_atoms_per_system.tolist())  # masses [amu] (n_atoms,) of each replica
    md.momenta = torch.cat([initial_momenta(m, settings.seed, w) for m, w in zip(members, masses)]).to(device)
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
    for m in members:
        if not m.error:
            sink.open(m)
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
