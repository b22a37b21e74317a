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
hosts share a forward pass (:mod:`engine.pes.probes`). Probe energies are stored relative to the host's own energy
[eV]. Grid points closer than ``exclusion_radius`` to a host atom are not computed (+inf), and with
``use_symmetry`` only one point of each orbit of the host's space group is (``kernels/grid.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from pymatgen.core import Structure

from engine.core.rows import NAN, ChunkResult, Row, Status, short_error
from engine.core.workers import MIN_PARALLEL_ITEMS, WorkerError, map_isolated
from engine.models import LoadedModel, energy_only
from engine.models.base import umlip_setting
from engine.pes.grids import GridParameters, descriptors_or_error, grid_descriptors, grid_or_error
from engine.pes.probes import (
    APPROACHES,
    Approach,
    ProbeJob,
    evaluate_jobs,
    host_arrays_of,
    host_of,
    job_of_host,
)
from engine.pes.refinement import refine_grids


@dataclass
class PesSettings:
    """Li-transport descriptors from probe grids (``conf/pes/``); the defaults are the seed's (``pes=default``)."""
    approaches: list[Approach] = field(default_factory=lambda: list(APPROACHES))
    spacing: float = 0.25  # Å, largest distance between neighbouring grid points along a lattice vector
    exclusion_radius: float = 1.2  # Å, grid points closer to a host atom are not computed (+inf)
    exclusion_scale: float = 0.0  # and those closer than this times the Li-atom covalent-radius sum (0: off; grids.py)
    min_probe_width: float = 5.0  # Å, each probe in the smallest host supercell at least this wide (0: unit cell)
    refine: bool = False  # framework grid: halve the spacing where the percolation level is decided (kernels/refine.py)
    refine_band: float = 0.3  # eV above the percolation level within which fine points are computed
    refine_rounds: int = 5  # at most this many refinement rounds
    refine_window: float | None = None  # eV; refine only grids whose coarse barrier is this close to barrier_max
    use_symmetry: bool = True
    symprec: float = 1e-3  # Å, spglib tolerance
    connectivity: int = 26  # grid neighbours: 26 (faces, edges, corners) or 6
    xi_level: float = 0.5  # eV above the minimum (ε of Ξ)
    xi_min: float = 0.8
    barrier_max: float = 0.5  # eV
    barrier_dimension: int = 1  # which percolation barrier (1, 2 or 3 D) the criterion uses
    max_atoms_per_batch: int | None = None  # None: cpu_atoms_per_batch on a CPU, torch-sim's estimate on CUDA
    cpu_atoms_per_batch: int = 100  # bigger batches run slower per probe on a CPU (engine/batching.py)
    chunk_size: int = 8  # candidates whose probes share batches; results are written per chunk
    save_grids: bool = False  # write the full energy grids to pes/grids/<approach>/<id>
    short_circuit: bool = False  # grids in the order of ``approaches``; once one passes, the candidate's later ones
    #                              are skipped (the verdict is an OR), their columns stay NaN and the reason says so
    interstitial_model: Any = umlip_setting()  # null: the run's model; a name in conf/model/; or a model config
    framework_model: Any = umlip_setting()  # null: the run's model; a name in conf/model/; or a model config

    def __post_init__(self):
        if not self.approaches:
            raise ValueError("pes.approaches is empty; give interstitial, framework or both")
        if self.spacing <= 0 or self.connectivity not in (6, 26) or self.barrier_dimension not in (1, 2, 3):
            raise ValueError(f"pes.spacing ({self.spacing} Å) must be > 0, pes.connectivity 6 or 26 (not "
                             f"{self.connectivity}), pes.barrier_dimension 1, 2 or 3 (not {self.barrier_dimension})")


@dataclass
class PesRow(Row):
    """One candidate's Li-transport descriptors from its probe grids."""
    xi: float = NAN  # Ξ of the interstitial grid
    fv_connected: float = NAN  # connected free-volume fraction at xi_level
    fv_disconnected: float = NAN
    insertion_energy: float = NAN  # eV, lowest interstitial probe energy relative to the host
    barrier_1d: float = NAN  # eV above the framework grid minimum (inf: never percolates)
    barrier_2d: float = NAN
    barrier_3d: float = NAN
    interstitial_points: int = 0  # grid points; 0 (with NaN descriptors) for a grid not computed
    interstitial_evaluated: int = 0  # probes computed after exclusion and symmetry
    interstitial_symops: int = 0  # space-group operations used
    framework_points: int = 0
    framework_evaluated: int = 0
    framework_symops: int = 0
    framework_refined: int = 0  # fine points computed by pes.refine (0: not refined)
    xi_pass: bool = False
    barrier_pass: bool = False


def descriptors(job: ProbeJob, settings: PesSettings) -> tuple[dict, bool, str]:
    """:func:`approach_descriptors` of ``job``, computed once per settings (short_circuit asks for the verdict
    before the row is written)."""
    if job.descriptors is None or job.descriptors[0] != settings:
        job.descriptors = (settings, approach_descriptors(job, settings))
    return job.descriptors[1]


def approach_descriptors(job: ProbeJob, settings: PesSettings) -> tuple[dict, bool, str]:
    """(columns, passed, why it failed) of one evaluated grid: :func:`grid_descriptors` of its energy map."""
    return grid_descriptors((job.approach, job.energy_map()), settings)


def describe(jobs: dict[str, ProbeJob], settings: PesSettings) -> tuple[str, str, dict]:
    """(status, reason, columns) of one candidate from its evaluated grids; an approach of ``settings`` without a
    grid here was skipped by ``short_circuit`` and is said in the reason."""
    out: dict = {}
    errors, fails, passes, refined_early = [], [], [], []
    for approach, job in jobs.items():
        if job.grid is not None:
            out[f"{approach}_points"] = job.grid.n_points
            out[f"{approach}_evaluated"] = job.grid.n_evaluated
            out[f"{approach}_symops"] = job.grid.n_operations
            if job.n_refined:
                out[f"{approach}_refined"] = job.n_refined
        if job.error:
            errors.append(job.error)
            continue
        columns, passed, why = descriptors(job, settings)
        out.update(columns)
        (passes if passed else fails).append(approach if passed else why)
        if job.refine_error:  # the verdict stands on the coarser grid; the reason says so
            refined_early.append(job.refine_error)
    skipped = [a for a in settings.approaches if a not in jobs] if settings.short_circuit else []
    if passes:  # OR: one descriptor suffices; a failed grid of the other is still said
        notes = [*errors] + ([f"{' and '.join(skipped)} not computed: {passes[0]} passed (pes.short_circuit)"]
                             if skipped else [])
        return Status.PASS, "; ".join(notes + refined_early), out
    if errors:
        return Status.ERROR, "; ".join(errors + refined_early), out
    return Status.FAIL, "; ".join(["no Li transport: " + " and ".join(fails), *refined_early]), out


def evaluate_candidates(structures: dict[str, Structure], settings: PesSettings, models: dict[str, LoadedModel],
                        energy_models: dict[str, tuple] | None = None, budgets: dict | None = None,
                        workers: int = 1, first_jobs: list[ProbeJob] | None = None) -> dict[str, dict[str, ProbeJob]]:
    """{id: {approach: evaluated ProbeJob}} of the candidates' grids, approach after approach (all candidates'
    probes of one approach share batches); with ``short_circuit`` a candidate that a grid passed gets no later
    grid. ``models``, ``energy_models`` and ``budgets`` (the atom budgets in use, updated here) are per approach.
    Grid construction (spglib, exclusion) and the descriptors (percolation) run on ``workers`` host workers;
    ``first_jobs``: the first approach's :func:`make_jobs`, when built ahead."""
    budgets = {} if budgets is None else budgets
    jobs: dict[str, dict[str, ProbeJob]] = {cid: {} for cid in structures}
    decided: set[str] = set()
    for approach in settings.approaches:
        group = [c for c in structures if c not in decided]
        built = first_jobs if first_jobs is not None and approach == settings.approaches[0] else make_jobs(
            {c: structures[c] for c in group}, approach, settings, workers)
        for cid, job in zip(group, built):
            jobs[cid][approach] = job
        used = evaluate_jobs([jobs[c][approach] for c in group], models[approach],
                             budgets.get(approach, settings.max_atoms_per_batch),
                             energy_model=(energy_models or {}).get(approach), cpu_atoms=settings.cpu_atoms_per_batch)
        if settings.refine and approach == "framework":
            used = refine_grids([jobs[c][approach] for c in group], settings, models[approach],
                                used or budgets.get(approach, settings.max_atoms_per_batch),
                                (energy_models or {}).get(approach))
        if used is not None:
            budgets[approach] = used
        _describe_all([jobs[c][approach] for c in group], settings, workers)
        if settings.short_circuit:
            decided |= {c for c in group if _passes(jobs[c][approach], settings)}
    return jobs


def make_jobs(structures: dict[str, Structure], approach: str, settings: PesSettings,
              workers: int = 1) -> list[ProbeJob]:
    """The jobs of one approach, their grids (spglib, exclusion) built on the host workers from the hosts' arrays."""
    hosts, failed = {}, {}
    for cid, structure in structures.items():
        try:
            hosts[cid] = host_of(structure, approach)
        except Exception as exc:  # noqa: BLE001 - e.g. a structure without sites
            failed[cid] = f"{approach}: grid: {short_error(exc)}"
    built = [c for c in hosts if len(hosts[c])]
    grids = dict(zip(built, map_isolated(partial(grid_or_error, settings=GridParameters.of(settings)),
                                         [host_arrays_of(hosts[c]) for c in built], workers)))
    out = []
    for cid, structure in structures.items():
        grid = grids.get(cid)
        if cid in failed or isinstance(grid, (Exception, WorkerError)):
            why = failed.get(cid) or f"{approach}: grid: {grid if isinstance(grid, WorkerError) else short_error(grid)}"
            out.append(ProbeJob(cid, approach, structure, None, error=why))
            continue
        try:
            out.append(job_of_host(cid, hosts[cid], approach, settings, grid=grid))
        except Exception as exc:  # noqa: BLE001 - e.g. a degenerate cell
            out.append(ProbeJob(cid, approach, structure, None, error=f"{approach}: grid: {short_error(exc)}"))
    return out


def _describe_all(jobs: Sequence[ProbeJob], settings: PesSettings, workers: int) -> None:
    """The descriptors of every evaluated grid, on the host workers (kept on each job for :func:`descriptors`)."""
    live = [j for j in jobs if not j.error and j.energies is not None]
    if workers <= 1 or len(live) < MIN_PARALLEL_ITEMS:
        return  # computed when the row is written
    maps = [(str(job.approach), job.energy_map()) for job in live]  # a worker gets the map alone, not the job's host
    describe_one = partial(descriptors_or_error, settings=GridParameters.of(settings))
    for job, out in zip(live, map_isolated(describe_one, maps, workers)):
        if isinstance(out, WorkerError):
            job.error = f"{job.approach}: descriptors: {out}"
        elif not isinstance(out, Exception):
            job.descriptors = (settings, out)


def run_stage(run) -> None:
    """Ξ and percolation barriers of every candidate that passed the stage before and is not yet in ``pes/``."""
    settings: PesSettings = run.settings("pes")
    todo = run.pending("pes")
    if not todo:
        return
    structures = run.input_structures("pes", todo)
    models = {a: run.stage_model("pes", getattr(settings, f"{a}_model")) for a in settings.approaches}
    copies = {}  # one energy-only copy per distinct model (Run.model returns the same object for one config)
    for loaded in models.values():
        if id(loaded) not in copies:
            copies[id(loaded)] = energy_only(loaded)
    energy_models = {a: copies[id(loaded)] for a, loaded in models.items()}

    budgets: dict = {}
    first = settings.approaches[0]

    def grids_of(chunk):  # the next chunk's grids are built while this chunk's probes are evaluated
        return make_jobs({c: structures[c] for c in chunk}, first, settings, run.workers)

    def compute(chunk, first_jobs):
        jobs = evaluate_candidates({c: structures[c] for c in chunk}, settings, models, energy_models, budgets,
                                   run.workers, first_jobs)
        return chunk_result(chunk, jobs, settings)

    ahead = run.run_chunks("pes", todo, settings.chunk_size, compute, ahead=grids_of)
    run.store.set_attrs("pes", {**{f"{a}_atoms_per_batch": b.history for a, b in budgets.items()},
                                "grids_ahead_s": [ahead.work_s, ahead.waited_s]})


def _passes(job: ProbeJob, settings: PesSettings) -> bool:
    if job.error:
        return False
    try:
        return descriptors(job, settings)[1]
    except Exception:  # noqa: BLE001 - describe() records the failure when the row is written
        return False


def chunk_result(chunk: Sequence[str], jobs: dict[str, dict[str, ProbeJob]], settings: PesSettings) -> ChunkResult:
    """The rows of ``chunk`` from its evaluated grids (and with ``save_grids`` the grids as arrays)."""
    rows = []
    for cid in chunk:
        try:
            status, reason, out = describe(jobs[cid], settings)
            transient = status == Status.ERROR and any(j.transient for j in jobs[cid].values())
            rows.append(PesRow(cid, status, reason, **out, transient=transient))
        except Exception as exc:  # noqa: BLE001 - a descriptor failure is this candidate's, not the run's
            rows.append(PesRow(cid, Status.ERROR, f"descriptors: {short_error(exc)}"))
    arrays = {grid_path(approach, cid): job.energy_map().astype(np.float32) for cid in chunk
              for approach, job in jobs[cid].items() if job.energies is not None} if settings.save_grids else {}
    return ChunkResult(rows, arrays)


def grid_path(approach: str, cid: str) -> str:
    """Where ``pes.save_grids`` puts a grid of energies [eV] (n_a, n_b, n_c) in the run file."""
    return f"pes/grids/{approach}/{cid.replace('/', '_')}"


def criteria_counts(store, cfg) -> tuple[str, list[tuple[str, int]]]:
    """How many candidates pass each transport criterion."""
    settings = cfg.pes
    status = store.column("pes", "status")
    d = settings.barrier_dimension
    n_xi = int((~np.isnan(store.column("pes", "xi"))).sum())  # with short_circuit not every grid is computed
    n_mig = int((~np.isnan(store.column("pes", f"barrier_{d}d"))).sum())  # inf: computed, never percolates
    return "Li-transport criteria (probe grids)", [
        ("evaluated", len(status)),
        (f"Ξ > {settings.xi_min} (interstitial; {n_xi} computed)", int(store.column("pes", "xi_pass").sum())),
        (f"E_mig({d}D) < {settings.barrier_max} eV (framework; {n_mig} computed)",
         int(store.column("pes", "barrier_pass").sum())),
        ("either (OR)", int((status == "pass").sum()))]


def funnel(store, cfg) -> list[tuple[str, set[str] | None, str]]:
    """The report\'s funnel steps: (criterion, ids passing it or None for this stage\'s pass rows, note)."""
    return [("Li transport from probe grids (Ξ or E_mig)", None, "")]


def coating_columns(store) -> list[tuple[str, dict[str, str]]]:
    """The report's coating-table column: each candidate's probe-grid status."""
    return [("PES", {k: str(v) for k, v in store.column_by_id("pes", "status").items()})]
