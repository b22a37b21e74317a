"""Framework grids refined where the percolation level is decided (``pes.refine``; the kernel and its reasoning:
:mod:`kernels.refine`). The fine points of all candidates of a chunk that must be computed in one round share
batches, as the coarse probes do."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.core.batching import AtomBudget
from engine.models import LoadedModel
from engine.pes.grids import exclusion_radii
from engine.pes.probes import ProbeJob, evaluate_jobs
from kernels.grid import probe_grid
from kernels.percolation import percolation_barriers
from kernels.refine import percolation_level, points_to_refine, upsampled_estimate


def _fine_grid(job: ProbeJob, coarse_shape, settings):
    """The grid at half the spacing whose every other point is the coarse grid's, reduced by the same symmetry when
    the coarse grid was (its origin then is the same standard-setting origin)."""
    h = job.host
    numbers = np.array(h.atomic_numbers)
    args = (h.lattice.matrix, h.frac_coords, numbers, settings.spacing / 2, exclusion_radii(numbers, settings))
    shape = tuple(2 * n for n in coarse_shape)
    if job.grid.n_operations > 1:
        fine = probe_grid(*args, use_symmetry=True, symprec=settings.symprec, shape=shape)
        if np.allclose(fine.origin, job.grid.origin):
            return fine
    return probe_grid(*args, use_symmetry=False, shape=shape, origin=job.grid.origin)


def refine_grids(jobs: Sequence[ProbeJob], settings, loaded: LoadedModel, budget, energy_model=None) -> AtomBudget:
    """Halve the spacing of every evaluated grid of ``jobs`` (with ``refine_window``, of those whose coarse barrier lies
    within it of ``barrier_max``) where the percolation level of the verdict's dimension (``barrier_dimension``) is
    decided: the barriers of the other dimensions are those of this partially refined map; the refined map
    goes to ``job.refined`` and the number of fine points computed to ``job.n_refined``. A round whose model call
    fails for a grid leaves that grid at the resolution it reached. Returns the atom budget in use."""
    live = []
    for job in jobs:
        if job.error or job.energies is None:
            continue
        coarse = job.energy_map()
        if settings.refine_window is not None:  # refine only where the verdict could change
            barrier = percolation_barriers(coarse, settings.connectivity)[settings.barrier_dimension - 1]
            if not abs(barrier - settings.barrier_max) <= settings.refine_window:
                continue
        fine = _fine_grid(job, coarse.shape, settings)
        excluded = fine.excluded[fine.orbit].reshape(fine.shape)
        values = upsampled_estimate(coarse)
        values[excluded] = np.inf
        computed = np.zeros(fine.shape, bool)
        computed[::2, ::2, ::2] = True
        job.refined, job.n_refined = values, 0
        live.append((job, fine, computed, excluded))
    for _ in range(int(settings.refine_rounds)):
        subs = []
        for job, fine, computed, excluded in live:
            chosen = points_to_refine(job.refined, computed, excluded,
                                      percolation_level(job.refined, settings.connectivity,
                                                        settings.barrier_dimension), settings.refine_band)
            if chosen.any():  # whole orbits: the map is symmetric, so one point of each is computed
                orbits = np.unique(fine.orbit[np.flatnonzero(chosen)])
                chosen = np.isin(fine.orbit, orbits).reshape(fine.shape)
                sub = ProbeJob(job.cid, job.approach, job.host, fine, cell_host=job.cell_host)
                sub._probe_cart = fine.frac_coords(fine.representatives[orbits]) @ job.host.lattice.matrix
                subs.append((sub, chosen, orbits, job, computed, fine))
        if not subs:
            break
        budget = evaluate_jobs([s for s, *_ in subs], loaded, budget, energy_model=energy_model,
                               cpu_atoms=settings.cpu_atoms_per_batch) or budget
        for sub, chosen, orbits, job, computed, fine in subs:
            if sub.error:  # keep what this grid reached; stop refining it, and say so in the row
                computed[...] = True
                job.refine_error = f"refinement stopped after {job.n_refined} fine points: {sub.error}"
                continue
            per_orbit = np.full(len(fine.representatives), np.nan)
            per_orbit[orbits] = sub.energies
            job.refined[chosen] = per_orbit[fine.orbit.reshape(fine.shape)[chosen]]
            computed |= chosen
            job.n_refined += len(orbits)
    return budget
