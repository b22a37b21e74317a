"""Probe grids as the batch dimension: every probe is one system of a batched torch-sim ``SimState`` (the frozen host
copied once per probe, plus one Li), and the probes of many grids share forward passes of at most ``max_atoms``
atoms. Energies are relative to the host's own energy [eV]; a grid point the model cannot evaluate counts as excluded
(+inf).

The grid lies in the host's unit cell (whose symmetry reduces it), but each probe is evaluated in the smallest
supercell of the host whose perpendicular widths are at least ``min_probe_width`` [Å]: in a 4 Å cell a probe would
drag its own periodic images along, which moves barriers by 0.1 eV and more (LiF, Li2O with SevenNet-0). The
supercell multiplies the atoms per probe, not the number of probes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import torch
import torch_sim as ts
from ase.data import atomic_masses
from pymatgen.core import Structure

from engine.core.batching import AtomBudget, atom_budget, evaluate_batched
from engine.core.supercells import width_supercell
from engine.models import LoadedModel, energy_only
from engine.pes.grids import host_grid
from kernels.grid import ProbeGrid

log = logging.getLogger(__name__)

class Approach(StrEnum):
    """The two probe grids."""
    interstitial = "interstitial"  # a Li interstitial in the frozen structure (Ξ)
    framework = "framework"  # one Li in the Li-free framework (percolation barrier)


APPROACHES = tuple(Approach)
LI = 3


@dataclass
class ProbeJob:
    """One grid of one candidate: the frozen host, its grid, and (after evaluation) the probe energies."""
    cid: str
    approach: str
    host: Structure  # the unit cell the grid spans
    grid: ProbeGrid
    cell_host: Structure | None = None  # the host supercell each probe is evaluated in (None: ``host``)
    refined: np.ndarray | None = None  # eV, the map at half the spacing (engine.pes.refinement), when refined
    n_refined: int = 0  # fine points computed for it
    refine_error: str = ""  # why refinement stopped early (the grid keeps the resolution it reached)
    host_energy: float = float("nan")  # eV
    energies: np.ndarray | None = None  # eV, relative to host_energy, one per evaluated point (n_evaluated,)
    error: str = ""
    transient: bool = False  # the error is the device's (out of memory), not the candidate's
    n_nonfinite: int = 0
    _probe_cart: np.ndarray = field(default=None, repr=False)
    _host_arrays: tuple | None = field(default=None, repr=False)
    descriptors: tuple | None = field(default=None, repr=False)  # (settings, the grid's descriptors), cached

    @property
    def probe_cart(self) -> np.ndarray:
        """Cartesian positions [Å] of the evaluated probes, (n_evaluated, 3)."""
        if self._probe_cart is None:
            self._probe_cart = self.grid.frac_coords() @ self.host.lattice.matrix
        return self._probe_cart

    @property
    def evaluated_host(self) -> Structure:
        return self.host if self.cell_host is None else self.cell_host

    def host_arrays(self, dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(positions [Å], atomic numbers, cell rows [Å]) of the evaluated host as CPU tensors, built once: every
        batch that holds some of this job's probes copies them."""
        if self._host_arrays is None or self._host_arrays[0].dtype != dtype:
            host = self.evaluated_host
            self._host_arrays = (torch.tensor(host.cart_coords, dtype=dtype),
                                 torch.as_tensor(host.atomic_numbers, dtype=torch.long),
                                 torch.tensor(host.lattice.matrix, dtype=dtype))
        return self._host_arrays

    def energy_map(self) -> np.ndarray:
        """The full grid (n_a, n_b, n_c) of probe energies [eV], +inf where not computed (the refined grid, at
        twice the points along each axis, when there is one)."""
        return self.refined if self.refined is not None else self.grid.expand(self.energies)


def host_of(structure: Structure, approach: str) -> Structure:
    """The frozen host: the structure itself (interstitial) or the structure without its Li (framework)."""
    if approach == "interstitial":
        return structure
    if approach == "framework":
        host = structure.copy()
        host.remove_species(["Li"])
        return host
    raise ValueError(f"unknown PES approach {approach!r}; use {APPROACHES}")


def host_arrays_of(host: Structure) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`host_grid`'s input for ``host``."""
    return host.lattice.matrix, host.frac_coords, np.array(host.atomic_numbers)


def make_job(cid: str, structure: Structure, approach: str, settings) -> ProbeJob:
    """The grid of one approach for one candidate; ``settings`` as for :func:`host_grid`, and ``min_probe_width``
    [Å] (:class:`engine.pes.stage.PesSettings`)."""
    return job_of_host(cid, host_of(structure, approach), approach, settings)


def job_of_host(cid: str, host: Structure, approach: str, settings, grid: ProbeGrid | None = None) -> ProbeJob:
    """:func:`make_job` from the frozen ``host`` (:func:`host_of`), and its grid when already built."""
    if len(host) == 0:
        return ProbeJob(cid, approach, host, None, error=f"{approach}: no atoms left without Li")
    if grid is None:
        grid = host_grid(host_arrays_of(host), settings)
    reps = width_supercell(host.lattice.matrix, float(getattr(settings, "min_probe_width", 0.0) or 0.0))
    job = ProbeJob(cid, approach, host, grid, cell_host=host * reps if reps != (1, 1, 1) else None)
    if grid.n_evaluated == 0:  # no room for a Li anywhere: a map of +inf, no model call (Ξ 0, no percolation)
        job.energies = np.zeros(0)
    return job


# ---- batched evaluation --------------------------------------------------------------------------
@dataclass
class _Segment:
    job: int  # index into the job list
    start: int  # first probe (-1: the host alone)
    stop: int


def _cut(jobs: Sequence[ProbeJob], segments: Sequence[_Segment], max_atoms: int) -> list[list[_Segment]]:
    """Runs of systems (a host alone; a range of its probes, each the host plus one Li) cut into batches of at most
    ``max_atoms`` atoms, a range split where a batch fills up."""
    out, batch, atoms = [], [], 0
    for seg in segments:
        n = len(jobs[seg.job].evaluated_host)
        if seg.start < 0:
            if batch and atoms + n > max_atoms:
                out.append(batch)
                batch, atoms = [], 0
            batch.append(seg)
            atoms += n
            continue
        start = seg.start
        while start < seg.stop:
            room = (max_atoms - atoms) // (n + 1)
            if room < 1:
                if batch:
                    out.append(batch)
                batch, atoms = [], 0
                room = max(1, max_atoms // (n + 1))
            stop = min(seg.stop, start + room)
            batch.append(_Segment(seg.job, start, stop))
            atoms += (stop - start) * (n + 1)
            start = stop
    return out + ([batch] if batch else [])


def _whole(jobs: Sequence[ProbeJob]) -> list[_Segment]:
    """Each job's host, then all its probes."""
    return [seg for j, job in enumerate(jobs) for seg in (_Segment(j, -1, 0), _Segment(j, 0, len(job.probe_cart)))]


def _batch_state(jobs: Sequence[ProbeJob], segments: Sequence[_Segment], device, dtype) -> ts.SimState:
    """The batched state of ``segments``: hosts alone, or hosts copied once per probe with the probe Li last."""
    pos, z, cells, counts = [], [], [], []
    for seg in segments:
        hpos, hz, cell = jobs[seg.job].host_arrays(dtype)
        if seg.start < 0:
            pos.append(hpos)
            z.append(hz)
            cells.append(cell[None])
            counts.append(torch.tensor([len(hz)]))
            continue
        m = seg.stop - seg.start
        probes = torch.as_tensor(jobs[seg.job].probe_cart[seg.start:seg.stop], dtype=dtype)
        pos.append(torch.cat([hpos.expand(m, -1, -1), probes[:, None, :]], dim=1).reshape(-1, 3))
        z.append(torch.cat([hz.expand(m, -1), torch.full((m, 1), LI)], dim=1).reshape(-1))
        cells.append(cell.expand(m, -1, -1))
        counts.append(torch.full((m,), len(hz) + 1))
    numbers = torch.cat(z)
    counts = torch.cat(counts)
    return ts.SimState(
        positions=torch.cat(pos).to(device),
        masses=torch.as_tensor(atomic_masses[numbers.numpy()], dtype=dtype).to(device),
        cell=torch.cat(cells).transpose(1, 2).contiguous().to(device),  # torch-sim: lattice vectors as columns
        pbc=torch.tensor([True, True, True], device=device),
        atomic_numbers=numbers.to(device),
        # output_size: without it repeat_interleave first sums the counts itself, 1 ms a call on a CPU (torch 2.x)
        system_idx=torch.repeat_interleave(torch.arange(len(counts)), counts, output_size=len(numbers)).to(device),
    )


def evaluate_jobs(jobs: Sequence[ProbeJob], loaded: LoadedModel, max_atoms: int | None | AtomBudget,
                  progress=None, energy_model: tuple | None = None, cpu_atoms: int = 100) -> AtomBudget | None:
    """Fill ``host_energy`` and ``energies`` of every job without an error; returns the atom budget used (None when
    no job needed the model), which the next call may take as ``max_atoms`` to keep a halved budget.
    ``max_atoms`` None: torch-sim's memory estimate on CUDA, ``cpu_atoms`` on a CPU. Hosts and probe ranges go
    through :func:`engine.core.batching.evaluate_batched` (out of memory: halve and cut again; another failure: job by
    job); a job that still fails gets the model's error as its reason. ``energy_model`` is
    :func:`engine.models.energy_only`'s answer for ``loaded`` (computed here when not given)."""
    model, no_grad = energy_model or energy_only(loaded)
    for job in jobs:
        lacks = not job.error and loaded.lacks([*job.host.atomic_numbers, LI])
        if lacks:
            job.error = f"{job.approach}: {lacks}"
    live = [j for j in jobs if not j.error and j.grid.n_evaluated]
    if not live:
        return max_atoms if isinstance(max_atoms, AtomBudget) else None
    budget = max_atoms if isinstance(max_atoms, AtomBudget) else atom_budget(
        max_atoms, model, max(len(j.evaluated_host) + 1 for j in live),
        sample=lambda: _batch_state(live, [_Segment(0, 0, 1)], model.device, model.dtype), cpu_atoms=cpu_atoms)
    raw: dict[int, np.ndarray] = {id(j): np.full(len(j.probe_cart), np.nan) for j in live}

    def run(segments: list[_Segment]) -> None:
        state = _batch_state(live, segments, model.device, model.dtype)
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            energy = model(state)["energy"].detach().double().cpu().numpy()
        n_systems = [1 if s.start < 0 else s.stop - s.start for s in segments]
        for seg, k in zip(segments, np.cumsum([0, *n_systems[:-1]])):
            job = live[seg.job]
            if seg.start < 0:
                job.host_energy = float(energy[k])
            else:
                raw[id(job)][seg.start:seg.stop] = energy[k:k + seg.stop - seg.start]
        if progress:
            progress(sum(s.stop - s.start for s in segments if s.start >= 0))

    failed = evaluate_batched(_whole(live), lambda seg: seg.job,
                              lambda segments, atoms: _cut(live, segments, atoms), run, budget, "PES")
    for j, failure in failed.items():
        live[j].error, live[j].transient = f"{live[j].approach}: {failure.reason}", failure.transient
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
    return budget
