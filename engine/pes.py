"""PES stage: Li-transport descriptors from uMLIP potential-energy grids, with the probes as the batch dimension.

Two frozen-host grids per candidate (the relaxed structure, never moved again):

* ``interstitial`` — the relaxed structure plus one extra Li at each grid point; descriptor Ξ
  (``kernels/xi.py``; Maevskiy et al., Phys. Rev. Research 7, 023167 (2025)); seed model SevenNet-0.
* ``framework`` — every Li removed, one Li at each grid point; descriptor the percolation (migration) barrier
  for 1D, 2D and 3D percolation (``kernels/percolation.py``); seed model MACE-MPA-0.

A candidate passes when Ξ > ``xi_min`` OR the barrier of the chosen dimensionality < ``barrier_max`` [eV]. With
``short_circuit`` the grids are computed in the order of ``approaches`` and a candidate's later grids are skipped
once one passes (the built-in run: the framework grid first, the cheaper one since its host has no Li).

Every probe is one system of a batched torch-sim ``SimState``: the frozen host copied once per probe plus one Li.
All probes of all candidates of a chunk are cut into batches of at most ``max_atoms_per_batch`` atoms, so small
hosts share a forward pass. Probe energies are stored relative to the host's own energy [eV]. Grid points closer
than ``exclusion_radius`` to a host atom are not computed (+inf), and with ``use_symmetry`` only one point of
each orbit of the host's space group is (``kernels/grid.py``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch
import torch_sim as ts
from ase.data import atomic_masses
from omegaconf import DictConfig, OmegaConf
from pymatgen.core import Structure

from engine.models import LoadedModel, energy_only
from engine.structures import short_error
from kernels.grid import ProbeGrid, probe_grid
from kernels.percolation import percolation_barriers
from kernels.xi import xi_descriptor

log = logging.getLogger(__name__)

APPROACHES = ("interstitial", "framework")
LI = 3


@dataclass
class PesSettings:
    approaches: Sequence[str] = APPROACHES
    spacing: float = 0.25  # Å, largest distance between neighbouring grid points along a lattice vector
    exclusion_radius: float = 1.2  # Å, grid points closer to a host atom are not computed (+inf)
    use_symmetry: bool = True
    symprec: float = 1e-3  # Å, spglib tolerance
    connectivity: int = 26  # grid neighbours: 26 (faces, edges, corners) or 6
    xi_level: float = 0.5  # eV above the minimum (ε of Ξ)
    xi_min: float = 0.8
    barrier_max: float = 0.5  # eV
    barrier_dimension: int = 1  # which percolation barrier (1, 2 or 3 D) the criterion uses
    max_atoms_per_batch: int = 100  # CPU: about 100 (bigger batches run slower per probe); GPU: 10^4 and up
    candidates_per_chunk: int = 8  # candidates whose probes share batches; results are written per chunk
    save_grids: bool = False  # write the full energy grids to pes/grids/<approach>/<id>
    short_circuit: bool = False  # grids in the order of ``approaches``; once one passes, the candidate's later ones
    #                              are skipped (the verdict is an OR), their columns stay NaN and the reason says so
    interstitial_model: object = None  # null: the run's model; a name in conf/model/; or a model config
    framework_model: object = None

    @classmethod
    def from_config(cls, cfg) -> PesSettings:
        known = {f.name for f in fields(cls)}
        values = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class ProbeJob:
    """One grid of one candidate: the frozen host, its grid, and (after evaluation) the probe energies."""
    cid: str
    approach: str
    host: Structure
    grid: ProbeGrid
    host_energy: float = float("nan")  # eV
    energies: np.ndarray | None = None  # eV, relative to host_energy, one per evaluated point
    error: str = ""
    n_nonfinite: int = 0
    _probe_cart: np.ndarray = field(default=None, repr=False)
    _descriptors: tuple | None = field(default=None, repr=False)  # (settings, approach_descriptors' answer)

    def descriptors(self, settings: PesSettings) -> tuple[dict, bool, str]:
        """:func:`approach_descriptors` of this grid, computed once per settings (short_circuit asks for the
        verdict before the row is written)."""
        if self._descriptors is None or self._descriptors[0] != settings:
            self._descriptors = (settings, approach_descriptors(self, settings))
        return self._descriptors[1]

    @property
    def probe_cart(self) -> np.ndarray:
        if self._probe_cart is None:
            self._probe_cart = self.grid.frac_coords() @ self.host.lattice.matrix
        return self._probe_cart

    def energy_map(self) -> np.ndarray:
        return self.grid.expand(self.energies)


def host_of(structure: Structure, approach: str) -> Structure:
    """The frozen host: the structure itself (interstitial) or the structure without its Li (framework)."""
    if approach == "interstitial":
        return structure
    if approach == "framework":
        host = structure.copy()
        host.remove_species(["Li"])
        return host
    raise ValueError(f"unknown PES approach {approach!r}; use {APPROACHES}")


def make_job(cid: str, structure: Structure, approach: str, settings: PesSettings) -> ProbeJob:
    host = host_of(structure, approach)
    if len(host) == 0:
        return ProbeJob(cid, approach, host, None, error=f"{approach}: no atoms left without Li")
    grid = probe_grid(host.lattice.matrix, host.frac_coords, np.array(host.atomic_numbers), settings.spacing,
                      settings.exclusion_radius, settings.use_symmetry, settings.symprec)
    job = ProbeJob(cid, approach, host, grid)
    if grid.n_evaluated == 0:
        job.error = f"{approach}: every grid point within {settings.exclusion_radius} Å of an atom"
    return job


# ---- batched evaluation --------------------------------------------------------------------------
@dataclass
class _Segment:
    job: int  # index into the job list
    start: int  # first probe (-1: the host alone)
    stop: int


def _segments(jobs: Sequence[ProbeJob], max_atoms: int) -> Iterator[list[_Segment]]:
    """Consecutive runs of systems (host first, then its probes) cut into batches of at most ``max_atoms``."""
    batch: list[_Segment] = []
    atoms = 0
    for j, job in enumerate(jobs):
        n = len(job.host)
        if atoms + n > max_atoms and batch:
            yield batch
            batch, atoms = [], 0
        batch.append(_Segment(j, -1, 0))
        atoms += n
        start, total = 0, len(job.probe_cart)
        while start < total:
            room = (max_atoms - atoms) // (n + 1)
            if room < 1:
                yield batch
                batch, atoms = [], 0
                room = max(1, max_atoms // (n + 1))
            stop = min(total, start + room)
            batch.append(_Segment(j, start, stop))
            atoms += (stop - start) * (n + 1)
            start = stop
    if batch:
        yield batch


def _batch_state(jobs: Sequence[ProbeJob], segments: Sequence[_Segment], device, dtype) -> ts.SimState:
    """The batched state of ``segments``: hosts alone, or hosts copied once per probe with the probe Li last."""
    pos, z, cells, counts = [], [], [], []
    for seg in segments:
        host = jobs[seg.job].host
        hpos = torch.tensor(host.cart_coords, dtype=dtype)
        hz = torch.as_tensor(host.atomic_numbers, dtype=torch.long)
        cell = torch.tensor(host.lattice.matrix, dtype=dtype)
        if seg.start < 0:
            pos.append(hpos)
            z.append(hz)
            cells.append(cell[None])
            counts.append(torch.tensor([len(host)]))
            continue
        m = seg.stop - seg.start
        probes = torch.as_tensor(jobs[seg.job].probe_cart[seg.start:seg.stop], dtype=dtype)
        pos.append(torch.cat([hpos.expand(m, -1, -1), probes[:, None, :]], dim=1).reshape(-1, 3))
        z.append(torch.cat([hz.expand(m, -1), torch.full((m, 1), LI)], dim=1).reshape(-1))
        cells.append(cell.expand(m, -1, -1))
        counts.append(torch.full((m,), len(host) + 1))
    numbers = torch.cat(z)
    counts = torch.cat(counts)
    return ts.SimState(
        positions=torch.cat(pos).to(device),
        masses=torch.as_tensor(atomic_masses[numbers.numpy()], dtype=dtype).to(device),
        cell=torch.cat(cells).transpose(1, 2).contiguous().to(device),  # torch-sim: lattice vectors as columns
        pbc=torch.tensor([True, True, True], device=device),
        atomic_numbers=numbers.to(device),
        system_idx=torch.repeat_interleave(torch.arange(len(counts)), counts).to(device),
    )


def evaluate_jobs(jobs: Sequence[ProbeJob], loaded: LoadedModel, max_atoms: int, progress=None,
                  energy_model: tuple | None = None) -> None:
    """Fill ``host_energy`` and ``energies`` of every job without an error; a batch the model fails on is
    retried job by job, and a job that still fails gets the model's error as its reason. ``energy_model`` is
    :func:`engine.models.energy_only`'s answer for ``loaded`` (computed here when not given)."""
    model, no_grad = energy_model or energy_only(loaded)
    for job in jobs:
        missing = not job.error and loaded.unsupported_elements([*job.host.atomic_numbers, LI])
        if missing:
            job.error = f"{job.approach}: elements not in model: {' '.join(missing)} ({loaded.name})"
    live = [j for j in jobs if not j.error]
    raw: dict[int, np.ndarray] = {id(j): np.full(len(j.probe_cart), np.nan) for j in live}

    def run(segments: list[_Segment], group: Sequence[ProbeJob]) -> None:
        state = _batch_state(group, segments, model.device, model.dtype)
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            energy = model(state)["energy"].detach().double().cpu().numpy()
        n_systems = [1 if s.start < 0 else s.stop - s.start for s in segments]
        for seg, k in zip(segments, np.cumsum([0, *n_systems[:-1]])):
            job = group[seg.job]
            if seg.start < 0:
                job.host_energy = float(energy[k])
            else:
                raw[id(job)][seg.start:seg.stop] = energy[k:k + seg.stop - seg.start]
        if progress:
            progress(sum(s.stop - s.start for s in segments if s.start >= 0))

    for segments in _segments(live, max_atoms):
        try:
            run(segments, live)
        except Exception as exc:  # noqa: BLE001 - isolate the job that breaks the model
            log.warning("PES batch failed (%s); retrying its grids one by one", short_error(exc))
            for j in sorted({s.job for s in segments}):
                try:
                    for sub in _segments([live[j]], max_atoms):
                        run(sub, [live[j]])
                except Exception as exc_j:  # noqa: BLE001
                    live[j].error = f"{live[j].approach}: model failed: {short_error(exc_j)}"
    for job in live:
        if job.error:
            continue
        if not np.isfinite(job.host_energy):
            job.error = f"{job.approach}: non-finite energy of the host"
            continue
        e = raw[id(job)] - job.host_energy
        bad = ~np.isfinite(e)
        job.n_nonfinite = int(bad.sum())
        if bad.all():
            job.error = f"{job.approach}: non-finite energy at every probe"
            continue
        job.energies = np.where(bad, np.inf, e)  # a probe the model cannot evaluate counts as excluded


# ---- descriptors and verdict ---------------------------------------------------------------------
COLUMNS = ("xi", "fv_connected", "fv_disconnected", "insertion_energy", "barrier_1d", "barrier_2d", "barrier_3d",
           "interstitial_points", "interstitial_evaluated", "interstitial_symops", "framework_points",
           "framework_evaluated", "framework_symops", "xi_pass", "barrier_pass")


def approach_descriptors(job: ProbeJob, settings: PesSettings) -> tuple[dict, bool, str]:
    """(columns, passed, why it failed) of one evaluated grid: Ξ of the interstitial grid or the percolation
    barriers of the framework grid."""
    grid = job.energy_map()
    if job.approach == "interstitial":
        xi = xi_descriptor(grid, settings.xi_level, connectivity=settings.connectivity)
        passed = bool(xi.xi > settings.xi_min)
        out = {"xi": xi.xi, "fv_connected": xi.fv_connected, "fv_disconnected": xi.fv_disconnected,
               "insertion_energy": float(np.min(grid)), "xi_pass": passed}
        return out, passed, "" if passed else f"Ξ {xi.xi:.2f} <= {settings.xi_min}"
    b = percolation_barriers(grid, settings.connectivity)
    d = settings.barrier_dimension
    passed = bool(b[d - 1] < settings.barrier_max)
    out = {"barrier_1d": b[0], "barrier_2d": b[1], "barrier_3d": b[2], "barrier_pass": passed}
    return out, passed, "" if passed else f"E_mig({d}D) {b[d - 1]:.2f} >= {settings.barrier_max} eV"


def describe(jobs: dict[str, ProbeJob], settings: PesSettings) -> tuple[str, str, dict]:
    """(status, reason, columns) of one candidate from its evaluated grids; an approach of ``settings`` without a
    grid here was skipped by ``short_circuit`` and is said in the reason."""
    out: dict = {}
    errors, fails, passes = [], [], []
    for approach, job in jobs.items():
        if job.grid is not None:
            out[f"{approach}_points"] = job.grid.n_points
            out[f"{approach}_evaluated"] = job.grid.n_evaluated
            out[f"{approach}_symops"] = job.grid.n_operations
        if job.error:
            errors.append(job.error)
            continue
        columns, passed, why = job.descriptors(settings)
        out.update(columns)
        (passes if passed else fails).append(approach if passed else why)
    skipped = [a for a in settings.approaches if a not in jobs] if settings.short_circuit else []
    if passes:  # OR: one descriptor suffices; a failed grid of the other is still said
        notes = [*errors] + ([f"{' and '.join(skipped)} not computed: {passes[0]} passed (pes.short_circuit)"]
                             if skipped else [])
        return "pass", "; ".join(notes), out
    if errors:
        return "error", "; ".join(errors), out
    return "fail", "no Li transport: " + " and ".join(fails), out


def evaluate_candidates(structures: dict[str, Structure], settings: PesSettings, models: dict[str, LoadedModel],
                        energy_models: dict[str, tuple] | None = None) -> dict[str, dict[str, ProbeJob]]:
    """{id: {approach: evaluated ProbeJob}} of the candidates' grids, approach after approach (all candidates'
    probes of one approach share batches); with ``short_circuit`` a candidate that a grid passed gets no later
    grid. ``models`` and ``energy_models`` are per approach."""
    jobs: dict[str, dict[str, ProbeJob]] = {cid: {} for cid in structures}
    decided: set[str] = set()
    for approach in settings.approaches:
        group = [c for c in structures if c not in decided]
        for cid in group:
            try:
                jobs[cid][approach] = make_job(cid, structures[cid], approach, settings)
            except Exception as exc:  # noqa: BLE001 - e.g. spglib on a degenerate cell
                jobs[cid][approach] = ProbeJob(cid, approach, structures[cid], None,
                                               error=f"{approach}: grid: {short_error(exc)}")
        evaluate_jobs([jobs[c][approach] for c in group], models[approach], settings.max_atoms_per_batch,
                      energy_model=(energy_models or {}).get(approach))
        if settings.short_circuit:
            decided |= {c for c in group if _passes(jobs[c][approach], settings)}
    return jobs


def run_stage(run) -> None:
    """Ξ and percolation barriers of every candidate that passed the stage before and is not yet in ``pes/``."""
    settings = PesSettings.from_config(run.cfg.pes)
    unknown = set(settings.approaches) - set(APPROACHES)
    if unknown:
        raise ValueError(f"unknown PES approaches {sorted(unknown)}; use {APPROACHES}")
    store = run.store
    done = store.done_ids("pes")
    source = run.input_stage("pes", ("thermo", "relax"), "thermo")
    todo = [i for i in store.ids(source, status="pass") if i not in done]
    if not todo:
        return
    structures = store.structures("relax", todo)
    models = {a: run.stage_model("pes", getattr(settings, f"{a}_model")) for a in settings.approaches}
    copies = {}  # one energy-only copy per distinct model (Run.model returns the same object for one config)
    for loaded in models.values():
        if id(loaded) not in copies:
            copies[id(loaded)] = energy_only(loaded)
    energy_models = {a: copies[id(loaded)] for a, loaded in models.items()}

    with run.progress("pes", len(todo)) as bar:
        for start in range(0, len(todo), settings.candidates_per_chunk):
            chunk = todo[start:start + settings.candidates_per_chunk]
            jobs = evaluate_candidates({c: structures[c] for c in chunk}, settings, models, energy_models)
            _write(store, chunk, jobs, settings)
            bar.update(len(chunk))


def _passes(job: ProbeJob, settings: PesSettings) -> bool:
    if job.error:
        return False
    try:
        return job.descriptors(settings)[1]
    except Exception:  # noqa: BLE001 - describe() records the failure when the row is written
        return False


def _write(store, chunk: Sequence[str], jobs: dict[str, dict[str, ProbeJob]], settings: PesSettings) -> None:
    rows = []
    for cid in chunk:
        try:
            rows.append(describe(jobs[cid], settings))
        except Exception as exc:  # noqa: BLE001 - a descriptor failure is this candidate's, not the run's
            rows.append(("error", f"descriptors: {short_error(exc)}", {}))
    cols = {}
    for k in COLUMNS:
        if k.endswith("_pass"):
            cols[k] = np.array([bool(r[2].get(k, False)) for r in rows])
        elif k.endswith(("_points", "_evaluated", "_symops")):
            cols[k] = np.array([int(r[2].get(k, 0)) for r in rows], dtype=np.int64)
        else:
            cols[k] = np.array([float(r[2].get(k, np.nan)) for r in rows])
    if settings.save_grids:
        for cid in chunk:
            for approach, job in jobs[cid].items():
                if job.energies is not None:
                    group = store.h5.require_group(f"pes/grids/{approach}")
                    name = cid.replace("/", "_")
                    if name in group:  # left by a run killed before its row was written
                        del group[name]
                    group.create_dataset(name, data=job.energy_map().astype(np.float32), compression="gzip",
                                         compression_opts=4)
    store.append("pes", list(chunk), [r[0] for r in rows], [r[1] for r in rows], columns=cols)


def pes_counts(store, settings: PesSettings) -> list[tuple[str, int]]:
    """How many candidates pass each transport criterion."""
    if not store.has("pes"):
        return []
    status = store.column("pes", "status")
    d = settings.barrier_dimension
    n_xi = int((~np.isnan(store.column("pes", "xi"))).sum())  # with short_circuit not every grid is computed
    n_mig = int((~np.isnan(store.column("pes", f"barrier_{d}d"))).sum())  # inf: computed, never percolates
    return [("evaluated", len(status)),
            (f"Ξ > {settings.xi_min} (interstitial; {n_xi} computed)", int(store.column("pes", "xi_pass").sum())),
            (f"E_mig({d}D) < {settings.barrier_max} eV (framework; {n_mig} computed)",
             int(store.column("pes", "barrier_pass").sum())),
            ("either (OR)", int((status == "pass").sum()))]
