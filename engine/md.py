"""MD stage: multi-replica NVT molecular dynamics of every candidate, Li diffusion, conductivity, framework stability.

Protocol of the reference pipeline (``conf/md/paper.yaml`` holds its numbers):

1. supercell of the relaxed cell with at least ``min_atoms`` atoms and every perpendicular width at least
   ``min_width`` Å (the smallest diagonal supercell of the Niggli-reduced cell), positions relaxed at fixed cell to
   ``prerelax_fmax`` [eV/Å];
2. thermalisation with the Berendsen thermostat (``kernels/thermostats.py``), then production with torch-sim's
   Nosé–Hoover chain, at each temperature in ``temperatures`` [K]: ``transport_temperature`` for Li transport,
   ``framework_temperature`` for framework stability;
3. D ± s.e.m. per species from windowed MSD fits, σ_Li by Nernst–Einstein, extrapolated to ``room_temperature``
   with E_a = ``activation_energy`` (``kernels/diffusion.py``).

All replicas (candidates × temperatures) run as systems of batched torch-sim states with per-system temperature
and thermostat state; torch-sim's ``BinningAutoBatcher`` packs them into batches of at most
``max_atoms_per_batch`` atoms. Unwrapped positions are sampled every ``sample_interval_fs``, buffered on the
device and streamed to ``md/trajectories/<id>/<T>K`` in chunks of ``frames_per_flush`` frames, so memory stays
bounded. A replica that explodes (non-finite energy or positions, temperature beyond ``runaway_factor`` × target,
two atoms closer than ``min_distance`` Å) leaves its batch with a reason; the others go on.

A candidate's row is written once all its replicas have finished; a killed run redoes the candidates without a row
(their partial trajectories are discarded).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch
import torch_sim as ts
from ase import units
from omegaconf import DictConfig, OmegaConf
from pymatgen.core import Lattice, Structure
from torch_sim.integrators.md import NoseHooverChain
from torch_sim.integrators.nvt import nvt_nose_hoover_init, nvt_nose_hoover_step

from engine.models import LoadedModel
from engine.relax import RelaxSettings, atom_limit, relax
from engine.structures import pack, short_error
from kernels.diffusion import (
    arrhenius_extrapolate,
    nernst_einstein_conductivity,
    windowed_diffusion,
)
from kernels.distances import min_interatomic_distance
from kernels.thermostats import nvt_berendsen_init, nvt_berendsen_step, system_kT

log = logging.getLogger(__name__)

LI = 3
TRAJECTORIES = "md/trajectories"


@dataclass
class MdSettings:
    temperatures: Sequence[float] = (500.0, 1000.0)  # K, one replica per candidate and temperature
    transport_temperature: float = 500.0  # K, Li diffusion and conductivity
    framework_temperature: float = 1000.0  # K, framework stability
    timestep_fs: float = 1.0
    thermalisation_ps: float = 10.0  # Berendsen
    berendsen_tau_ps: float = 1.0
    production_ps: float = 100.0  # Nosé–Hoover chain
    nose_hoover_tau_fs: float = 25.0
    sample_interval_fs: float = 10.0  # unwrapped positions stored every this often
    min_atoms: int = 100
    min_width: float = 10.0  # Å, every perpendicular width of the supercell
    prerelax_fmax: float = 0.005  # eV/Å, fixed-cell relaxation before MD
    prerelax_max_steps: int = 2000
    window_ps: float = 15.0
    fit_start_ps: float = 3.0
    fit_end_ps: float = 15.0
    d_resolution: float = 1e-4  # Å²/ps, smaller D is below what the windows resolve
    activation_energy: float = 0.5  # eV, Arrhenius extrapolation of σ
    room_temperature: float = 300.0  # K
    sigma_min: float = 1e-6  # S/cm, σ(room) − s.e.m. must exceed it
    framework_msd_max: float = 2.0  # Å², 6 D_framework t_production at framework_temperature
    li_msd_min: float = 4.0  # Å², largest Li MSD over the production run at transport_temperature
    max_atoms_per_batch: int | None = 400  # None: let torch-sim estimate from GPU memory
    frames_per_flush: int = 100
    check_interval_fs: float = 50.0  # replicas are checked for explosions this often
    runaway_factor: float = 3.0  # T above this × target counts as runaway
    min_distance: float = 0.5  # Å, two atoms closer count as overlapping
    seed: int = 0
    model: object = None  # null: the run's model; a name in conf/model/; or a model config

    @classmethod
    def from_config(cls, cfg) -> MdSettings:
        known = {f.name for f in fields(cls)}
        values = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        return cls(**{k: v for k, v in values.items() if k in known})

    def steps(self, ps: float) -> int:
        return round(ps * 1000.0 / self.timestep_fs)

    @property
    def sample_every(self) -> int:
        return max(1, round(self.sample_interval_fs / self.timestep_fs))

    @property
    def frame_interval_ps(self) -> float:
        return self.sample_every * self.timestep_fs / 1000.0


# ---- supercell ---------------------------------------------------------------------------------------
def perpendicular_widths(matrix: np.ndarray) -> np.ndarray:
    """Distances [Å] between opposite faces of the cell spanned by the rows of ``matrix``: the (100), (010) and
    (001) interplanar spacings."""
    lattice = Lattice(matrix)
    return np.array([lattice.d_hkl(hkl) for hkl in np.eye(3, dtype=int)])


def md_supercell(structure: Structure, min_atoms: int, min_width: float) -> tuple[Structure, tuple[int, int, int]]:
    """Smallest diagonal supercell of the Niggli-reduced cell with ≥ ``min_atoms`` atoms and every perpendicular
    width ≥ ``min_width`` Å (it holds a sphere of diameter ``min_width``); ties go to the most isotropic one."""
    reduced = structure.get_reduced_structure("niggli")
    widths = perpendicular_widths(reduced.lattice.matrix)
    lower = np.maximum(1, np.ceil(min_width / widths - 1e-9)).astype(int)
    n = len(reduced)
    best = None
    span = math.ceil(max(1, min_atoms / n) ** (1 / 3)) + 1
    for i in range(lower[0], lower[0] + span + 1):
        for j in range(lower[1], lower[1] + span + 1):
            for k in range(lower[2], lower[2] + span + 1):
                if n * i * j * k < min_atoms:
                    continue
                w = widths * (i, j, k)
                key = (i * j * k, -w.min())
                if best is None or key < best[0]:
                    best = (key, (i, j, k))
    scale = best[1]
    return reduced.make_supercell(scale, in_place=False), scale


# ---- replicas ---------------------------------------------------------------------------------------
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


class TrajectorySink:
    """Per-replica HDF5 datasets of unwrapped positions [Å] (frames, atoms, 3), float32, gzip-compressed."""

    def __init__(self, h5, frame_interval_ps: float, chunk_frames: int):
        self.h5, self.dt, self.chunk = h5, frame_interval_ps, chunk_frames

    @staticmethod
    def path(cid: str) -> str:
        return f"{TRAJECTORIES}/{cid.replace('/', '_')}"

    def group(self, replica: Replica):
        return self.h5.require_group(f"{self.path(replica.cid)}/{replica.temperature:g}K")

    def open(self, replica: Replica) -> None:
        g = self.group(replica)
        for name in list(g):
            del g[name]
        n = len(replica.structure)
        g.create_dataset("positions", shape=(0, n, 3), maxshape=(None, n, 3), dtype=np.float32,
                         chunks=(max(1, min(self.chunk, (1 << 20) // (12 * n))), n, 3),
                         compression="gzip", compression_opts=4)
        g.create_dataset("numbers", data=np.asarray(replica.structure.atomic_numbers, dtype=np.int64))
        g.create_dataset("cell", data=replica.structure.lattice.matrix)
        g.attrs.update(temperature_K=replica.temperature, frame_interval_ps=self.dt)

    def append(self, replica: Replica, positions: np.ndarray) -> None:
        ds = self.group(replica)["positions"]
        start = ds.shape[0]
        ds.resize(start + len(positions), axis=0)
        ds[start:] = positions

    def read(self, replica: Replica) -> np.ndarray:
        return self.group(replica)["positions"][()]

    def discard(self, cid: str) -> None:
        name = self.path(cid)
        if name in self.h5:
            del self.h5[name]


def _drop_systems(state, keep: torch.Tensor):
    """``state`` without the systems not in ``keep`` (bool per system); torch-sim keeps the Nosé–Hoover chain as a
    global attribute, so its per-system tensors are cut here."""
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


def run_replicas(replicas: Sequence[Replica], model, settings: MdSettings, sink: TrajectorySink,
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
    for b, (state, indices) in enumerate(batcher):
        members = [replicas[i] for i in indices]
        state.rng = settings.seed + b
        try:
            _run_batch(state, members, model, settings, sink)
        except Exception as exc:  # noqa: BLE001 - the batch is lost; its replicas are recorded, the run goes on
            log.warning("MD batch failed: %s", short_error(exc))
            for m in members:
                m.error = m.error or f"model failed during MD: {short_error(exc)}"
        on_done(members)
        if progress:
            progress(len(members))


def _run_batch(state, members: list[Replica], model, settings: MdSettings, sink: TrajectorySink) -> None:
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


# ---- analysis and verdict ------------------------------------------------------------------------
COLUMNS = ("supercell", "n_atoms", "volume", "n_li", "prerelax_fmax", "d_li", "d_li_sem", "sigma", "sigma_sem",
           "sigma_room", "sigma_room_sem", "max_li_msd", "d_framework", "d_framework_sem", "framework_species",
           "framework_msd", "diffusion", "temperature_mean", "temperature_std", "sigma_pass", "framework_pass",
           "li_msd_pass")


def analyse(replica: Replica, positions: np.ndarray, settings: MdSettings):
    """Windowed D per species [Å²/ps] of one replica's production trajectory."""
    species = np.array([site.specie.symbol for site in replica.structure])
    return windowed_diffusion(torch.as_tensor(positions, dtype=torch.float64), species, settings.frame_interval_ps,
                              settings.window_ps, settings.fit_start_ps, settings.fit_end_ps)


def describe(cid: str, replicas: dict[float, Replica], estimates: dict, settings: MdSettings,
             supercell, prerelax_fmax: float) -> tuple[str, str, dict]:
    """(status, reason, columns) of one candidate from its finished replicas."""
    any_rep = next(iter(replicas.values()))
    s = any_rep.structure
    n_li = sum(1 for z in s.atomic_numbers if z == LI)
    temps = list(settings.temperatures)
    out = {"supercell": np.asarray(supercell, dtype=np.int64), "n_atoms": len(s), "volume": s.volume, "n_li": n_li,
           "prerelax_fmax": prerelax_fmax,
           "temperature_mean": np.array([np.mean(replicas[t].temperatures) if replicas[t].temperatures else np.nan
                                         for t in temps]),
           "temperature_std": np.array([np.std(replicas[t].temperatures) if replicas[t].temperatures else np.nan
                                        for t in temps])}
    errors = [f"{t:g} K: {replicas[t].error}" for t in temps if replicas[t].error]
    if errors:
        return "error", "; ".join(errors), out
    out["diffusion"] = json.dumps({f"{t:g}": {str(sp): [float(d), float(e)] for sp, d, e in
                                              zip(est.species, est.d, est.sem)} for t, est in estimates.items()})
    fails = []
    tr = estimates[settings.transport_temperature]
    d_li, d_li_sem = tr.of("Li")
    sigma = nernst_einstein_conductivity(d_li, n_li, s.volume, settings.transport_temperature)
    sigma_sem = nernst_einstein_conductivity(d_li_sem, n_li, s.volume, settings.transport_temperature)
    factor = arrhenius_extrapolate(1.0, settings.transport_temperature, settings.room_temperature,
                                   settings.activation_energy)
    out.update(d_li=d_li, d_li_sem=d_li_sem, sigma=sigma, sigma_sem=sigma_sem, sigma_room=sigma * factor,
               sigma_room_sem=sigma_sem * factor, max_li_msd=float(tr.max_msd[tr.species.index("Li")]))
    out["sigma_pass"] = bool(out["sigma_room"] - out["sigma_room_sem"] > settings.sigma_min)
    if not out["sigma_pass"]:
        resolved = "" if d_li > settings.d_resolution else f", D_Li below {settings.d_resolution:g} Å²/ps"
        fails.append(f"σ({settings.room_temperature:g} K) {out['sigma_room']:.2e} ± {out['sigma_room_sem']:.1e} "
                     f"S/cm{resolved}")
    out["li_msd_pass"] = bool(out["max_li_msd"] > settings.li_msd_min)
    if not out["li_msd_pass"]:
        fails.append(f"max Li MSD {out['max_li_msd']:.2f} Å² <= {settings.li_msd_min:g}")
    fw = estimates[settings.framework_temperature]
    others = [i for i, sp in enumerate(fw.species) if sp != "Li"]
    if others:
        slowest = min(others, key=lambda i: fw.d[i])
        out.update(d_framework=float(fw.d[slowest]), d_framework_sem=float(fw.sem[slowest]),
                   framework_species=str(fw.species[slowest]),
                   framework_msd=6.0 * max(float(fw.d[slowest]), 0.0) * settings.production_ps)
        out["framework_pass"] = bool(out["framework_msd"] < settings.framework_msd_max)
        if not out["framework_pass"]:
            fails.append(f"framework MSD {out['framework_msd']:.2f} Å² >= {settings.framework_msd_max:g} "
                         f"({out['framework_species']}, {settings.framework_temperature:g} K)")
    else:
        fails.append("no framework species")
    if fails:
        return "fail", "; ".join(fails), out
    return "pass", "", out


def _columns(rows: list[tuple[str, str, dict]]) -> dict:
    cols = {}
    for k in COLUMNS:
        vals = [r[2].get(k) for r in rows]
        if k.endswith("_pass"):
            cols[k] = np.array([bool(v) for v in vals])
        elif k in ("n_atoms", "n_li"):
            cols[k] = np.array([-1 if v is None else int(v) for v in vals], dtype=np.int64)
        elif k == "supercell":
            cols[k] = np.stack([np.zeros(3, np.int64) if v is None else v for v in vals])
        elif k in ("temperature_mean", "temperature_std"):
            width = max((len(v) for v in vals if v is not None), default=0)
            cols[k] = np.stack([np.full(width, np.nan) if v is None else v for v in vals])
        elif k in ("framework_species", "diffusion"):
            cols[k] = ["" if v is None else str(v) for v in vals]
        else:
            cols[k] = np.array([np.nan if v is None else float(v) for v in vals])
    return cols


# ---- the stage -------------------------------------------------------------------------------------
def prepare(structures: dict[str, Structure], loaded: LoadedModel, settings: MdSettings, write_error) -> dict[str, tuple[Structure, tuple, float]]:
    """Supercell and fixed-cell pre-relaxation per candidate: {id: (supercell, scale, fmax [eV/Å])}."""
    cells, errors = {}, []
    for cid, s in structures.items():
        missing = loaded.unsupported_elements(s.atomic_numbers)
        if missing:
            errors.append((cid, f"elements not in model: {' '.join(missing)} ({loaded.name})"))
            continue
        try:
            cells[cid] = md_supercell(s, settings.min_atoms, settings.min_width)
        except Exception as exc:  # noqa: BLE001
            errors.append((cid, f"supercell: {short_error(exc)}"))
    if errors:
        write_error(errors)
    out: dict[str, tuple[Structure, tuple, float]] = {}

    def done(results):
        bad = []
        for r in results:
            if r.status == "error" or r.structure is None:
                bad.append((r.id, f"pre-relaxation: {r.reason}"))
            else:  # an unconverged pre-relaxation still starts MD; its fmax is recorded
                out[r.id] = (r.structure, cells[r.id][1], r.fmax)
        if bad:
            write_error(bad)

    ids = list(cells)
    if ids:
        relax([cells[i][0] for i in ids], ids, loaded,
              RelaxSettings(fmax=settings.prerelax_fmax, max_steps=settings.prerelax_max_steps, cell_filter=None,
                            max_atoms_per_batch=settings.max_atoms_per_batch or 2000), done)
    return out


def run_stage(run) -> None:
    """Multi-replica MD of every candidate that passed the stage before and is not yet in ``md/``."""
    settings = MdSettings.from_config(run.cfg.md)
    for needed in (settings.transport_temperature, settings.framework_temperature):
        if needed not in settings.temperatures:
            raise ValueError(f"md.temperatures {list(settings.temperatures)} must include {needed:g} K")
    store = run.store
    done = store.done_ids("md")
    source = run.input_stage("md", ("pes", "thermo", "relax"), "relax")
    todo = [i for i in store.ids(source, status="pass") if i not in done]
    if not todo:
        return
    sink = TrajectorySink(store.h5, settings.frame_interval_ps, settings.frames_per_flush)
    for cid in todo:
        sink.discard(cid)  # left by a run killed before the candidate's row was written
    structures = store.structures("relax", todo)
    loaded = run.stage_model("md", settings.model)
    group = store.h5.require_group("md")
    group.attrs.update(temperatures_K=list(settings.temperatures),
                       transport_temperature_K=settings.transport_temperature,
                       framework_temperature_K=settings.framework_temperature,
                       room_temperature_K=settings.room_temperature, model=loaded.name)

    def write_error(pairs):
        rows = [("error", reason, {}) for _, reason in pairs]
        store.append("md", [c for c, _ in pairs], [r[0] for r in rows], [r[1] for r in rows], columns=_columns(rows))

    with run.progress("md", len(todo) * len(settings.temperatures)) as bar:
        prepared = prepare({c: structures[c] for c in todo if c in structures}, loaded, settings, write_error)
        missing = [c for c in todo if c not in structures]
        if missing:
            write_error([(c, "no relaxed structure") for c in missing])
        replicas = [Replica(cid, float(t), cell) for cid, (cell, _, _) in prepared.items()
                    for t in settings.temperatures]
        finished: dict[str, dict[float, Replica]] = {}

        def on_done(members: list[Replica]) -> None:
            rows, ids = [], []
            for m in members:
                finished.setdefault(m.cid, {})[m.temperature] = m
            for cid in dict.fromkeys(m.cid for m in members):  # input order, so rows come out reproducibly
                reps = finished[cid]
                if len(reps) < len(settings.temperatures):
                    continue
                estimates = {}
                for t, r in reps.items():
                    if r.error:
                        continue
                    try:
                        estimates[t] = analyse(r, sink.read(r), settings)
                    except Exception as exc:  # noqa: BLE001 - an analysis failure is this replica's
                        r.error = f"analysis: {short_error(exc)}"
                _, scale, fmax = prepared[cid]
                try:
                    rows.append(describe(cid, reps, estimates, settings, scale, fmax))
                except Exception as exc:  # noqa: BLE001
                    rows.append(("error", f"descriptors: {short_error(exc)}", {}))
                ids.append(cid)
                del finished[cid]
            if ids:
                store.append("md", ids, [r[0] for r in rows], [r[1] for r in rows], columns=_columns(rows))

        run_replicas(replicas, loaded.model, settings, sink, on_done, progress=bar.update)


def md_counts(store, settings: MdSettings) -> list[tuple[str, int]]:
    """How many candidates pass each MD criterion."""
    if not store.has("md"):
        return []
    status = store.column("md", "status")
    return [("simulated", len(status)),
            (f"σ({settings.room_temperature:g} K) − s.e.m. > {settings.sigma_min:g} S/cm",
             int(store.column("md", "sigma_pass").sum())),
            (f"framework MSD < {settings.framework_msd_max:g} Å² at {settings.framework_temperature:g} K",
             int(store.column("md", "framework_pass").sum())),
            (f"max Li MSD > {settings.li_msd_min:g} Å² at {settings.transport_temperature:g} K",
             int(store.column("md", "li_msd_pass").sum())),
            ("all three", int((status == "pass").sum()))]
