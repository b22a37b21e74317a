"""Phonons stage: dynamical stability of the relaxed candidates by batched finite displacements.

For each candidate phonopy (Togo, J. Phys. Soc. Jpn. 92, 012001 (2023)) builds the symmetry-reduced displaced
supercells of the smallest diagonal supercell whose perpendicular widths are at least ``min_width`` Å; the forces
of all of them — of every candidate, with each candidate's undisplaced supercell, whose residual forces are
subtracted — go through the uMLIP as batched torch-sim states of at most the stage's atom budget
(:mod:`engine.core.batching`). phonopy turns the forces into force constants and frequencies at the q-points
commensurate with the supercell (the coarse q-grid on which finite displacements in that supercell are exact, Γ
included). The three acoustic modes at Γ are left out; a mode below ``imaginary_threshold`` THz (phonopy writes
imaginary frequencies as negative numbers) makes the candidate dynamically unstable: a saddle point of the model's
energy that relaxes into another structure when its symmetry is broken.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from phonopy import Phonopy
from phonopy.harmonic.dynmat_to_fc import get_commensurate_points
from phonopy.structure.atoms import PhonopyAtoms
from pymatgen.core import Structure

from engine.core.batching import AtomBudget, atom_budget, evaluate_batched, greedy_batches
from engine.core.crystals import Crystals
from engine.core.rows import NAN, Row, Status, short_error
from engine.core.supercells import width_supercell
from engine.models import LoadedModel
from engine.models.base import umlip_setting

log = logging.getLogger(__name__)
STAGE = "phonons"


class PhononAction(StrEnum):
    """What an unstable candidate gets; an unknown value stops the run before any work."""
    flag = "flag"  # it goes on, flagged
    reject = "reject"  # it fails here


@dataclass
class PhononSettings:
    """``conf/phonons/``: finite-displacement phonons with the uMLIP."""
    action: PhononAction = PhononAction.reject
    model: Any = umlip_setting()  # null: the run's model; a name in conf/model/; or a model config
    displacement: float = 0.01  # Å
    min_width: float = 6.0  # Å, perpendicular widths of the supercell (sets the commensurate q-grid)
    max_supercell_atoms: int = 200  # the supercell shrinks along its longest side until it has at most this many atoms
    imaginary_threshold: float = -0.5  # THz; a (non-acoustic) mode below it is imaginary
    symprec: float = 1e-3  # Å, phonopy's symmetry tolerance (relaxed structures are symmetric to about fmax/k)
    max_atoms_per_batch: int | None = None  # None: cpu_atoms_per_batch on a CPU, torch-sim's estimate on CUDA
    cpu_atoms_per_batch: int = 128  # on a CPU a model call costs more per atom as it grows (page faults): keep it small
    chunk_size: int = 32  # candidates per queue of displaced supercells: each chunk's rows are written before the next


@dataclass
class PhononRow(Row):
    """One candidate's dynamical stability."""
    supercell: np.ndarray = field(default_factory=lambda: np.zeros(3, np.int64))  # (3,) repetitions of the cell
    n_displaced: int = 0  # displaced supercells evaluated
    min_frequency_gamma: float = NAN  # THz, lowest mode at Γ without the three acoustic ones
    min_frequency: float = NAN  # THz, lowest mode over the commensurate q-points (Γ acoustic left out)
    q_min: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))  # (3,) reduced q of the lowest mode
    n_imaginary: int = 0  # modes below imaginary_threshold, summed over the q-points
    verdict: str = ""  # stable | unstable | n/a


@dataclass
class PhononJob:
    """One candidate's phonopy object, its supercells (undisplaced first) and, once evaluated, their forces."""
    id: str
    phonon: Phonopy | None
    reps: tuple[int, int, int] = (1, 1, 1)
    forces: list[np.ndarray] = field(default_factory=list)
    error: str = ""
    transient: bool = False

    @property
    def supercells(self) -> list[PhonopyAtoms]:
        return [self.phonon.supercell, *self.phonon.supercells_with_displacements] if self.phonon else []


def supercell_reps(structure: Structure, min_width: float, max_atoms: int) -> tuple[int, int, int]:
    """Diagonal repetitions with every perpendicular width ≥ ``min_width`` Å, shrunk along the longest side while
    the supercell has more than ``max_atoms`` atoms."""
    reps = list(width_supercell(structure.lattice.matrix, min_width))
    lengths = np.array(structure.lattice.abc)
    while len(structure) * np.prod(reps) > max_atoms and max(reps) > 1:
        k = int(np.argmax(np.where(np.array(reps) > 1, lengths * reps, -1)))
        reps[k] -= 1
    return tuple(reps)


def plan(cid: str, structure: Structure, settings: PhononSettings) -> PhononJob:
    """The displaced supercells of one candidate."""
    unit = PhonopyAtoms(symbols=[s.specie.symbol for s in structure], cell=structure.lattice.matrix,
                        scaled_positions=structure.frac_coords)
    reps = supercell_reps(structure, settings.min_width, settings.max_supercell_atoms)
    phonon = Phonopy(unit, supercell_matrix=np.diag(reps), primitive_matrix="P", symprec=settings.symprec)
    phonon.generate_displacements(distance=settings.displacement)
    return PhononJob(cid, phonon, reps)


def _crystals(cells: list[PhonopyAtoms]) -> Crystals:
    return Crystals(np.array([len(c) for c in cells], np.int64), np.concatenate([c.numbers for c in cells]),
                    np.concatenate([c.positions for c in cells]), np.stack([c.cell for c in cells]),
                    np.ones((len(cells), 3), bool))


def evaluate_forces(jobs: list[PhononJob], loaded: LoadedModel, budget: int | None | AtomBudget, cpu_atoms: int,
                    progress=None) -> AtomBudget | None:
    """Forces [eV/Å] of every supercell of every job, as batched states of at most the atom budget: all the
    candidates' supercells in one queue (:func:`engine.core.batching.evaluate_batched`; a job that fails even alone
    gets the model's error)."""
    for job in jobs:
        job.error = job.error or loaded.lacks(job.phonon.supercell.numbers)
    live = [j for j in jobs if not j.error]
    if not live:
        return budget if isinstance(budget, AtomBudget) else None
    model = loaded.model
    cells = [(j, c) for j, job in enumerate(live) for c in job.supercells]
    if not isinstance(budget, AtomBudget):
        largest = max(len(c) for _, c in cells)
        budget = atom_budget(budget, model, largest, cpu_atoms=cpu_atoms,
                             sample=lambda: _crystals([cells[0][1], max((c for _, c in cells), key=len)])
                             .to_state(model.device, model.dtype))
    forces: list[np.ndarray | None] = [None] * len(cells)

    def run(batch: list[int]) -> None:
        crystals = _crystals([cells[i][1] for i in batch])
        state = crystals.to_state(model.device, model.dtype)
        f = model(state)["forces"].detach().double().cpu().numpy()
        for i, start, n in zip(batch, crystals.offsets, crystals.natoms):
            forces[i] = f[start:start + n]
        if progress:
            progress(len(batch))

    failed = evaluate_batched(range(len(cells)), lambda i: cells[i][0],
                              lambda units, atoms: greedy_batches(units, lambda i: len(cells[i][1]), atoms),
                              run, budget, "phonon")
    for j, failure in failed.items():
        live[j].error, live[j].transient = failure.reason, failure.transient
    for j, job in enumerate(live):
        job.forces = [forces[i] for i, (k, _) in enumerate(cells) if k == j]
    return budget


def analyse(job: PhononJob, settings: PhononSettings) -> PhononRow:
    """Force constants and frequencies on the commensurate q-points of one evaluated job."""
    row = PhononRow(job.id, Status.PASS, supercell=np.array(job.reps, np.int64))
    if job.error:
        return PhononRow(job.id, Status.ERROR, job.error, transient=job.transient,
                         supercell=np.array(job.reps, np.int64), verdict="n/a")
    perfect, *displaced = job.forces
    row.n_displaced = len(displaced)
    if any(f is None or not np.all(np.isfinite(f)) for f in job.forces):
        return PhononRow(job.id, Status.ERROR, "non-finite forces", supercell=row.supercell, verdict="n/a")
    job.phonon.forces = np.array(displaced) - perfect  # the residual forces of the relaxed structure cancel
    job.phonon.produce_force_constants()
    job.phonon.symmetrize_force_constants()
    qpoints = get_commensurate_points(np.diag(job.reps))
    job.phonon.run_qpoints(qpoints)
    freqs = np.array(job.phonon.get_qpoints_dict()["frequencies"])  # (n_q, 3 n_atoms) THz
    gamma = int(np.argmin(np.linalg.norm(qpoints, axis=1)))
    keep = np.ones_like(freqs, bool)
    keep[gamma, np.argsort(np.abs(freqs[gamma]))[:3]] = False  # acoustic modes at Γ
    masked = np.where(keep, freqs, np.inf)
    row.min_frequency_gamma = float(masked[gamma].min()) if keep[gamma].any() else NAN
    lowest_per_q = masked.min(axis=1)
    # symmetry-equivalent q-points share their lowest mode up to float noise: take the first within 1e-3 THz
    q = int(np.flatnonzero(lowest_per_q <= lowest_per_q.min() + 1e-3)[0])
    row.min_frequency, row.q_min = float(lowest_per_q.min()), np.asarray(qpoints[q], float)
    row.n_imaginary = int((masked < settings.imaginary_threshold).sum())
    row.verdict = "unstable" if row.n_imaginary else "stable"
    lowest = f"lowest {row.min_frequency:.2f} THz at q = ({', '.join(f'{x:g}' for x in row.q_min)})"
    if row.n_imaginary:
        row.reason = f"{row.n_imaginary} imaginary mode(s) below {settings.imaginary_threshold} THz, {lowest}"
        if settings.action == "reject":
            row.status = Status.FAIL
    else:
        row.reason = f"no mode below {settings.imaginary_threshold} THz; {lowest}"
    return row


def phonon_rows(structures: dict[str, Structure], loaded: LoadedModel, settings: PhononSettings,
                budget=None, progress=None) -> tuple[list[PhononRow], list[PhononJob], AtomBudget | None]:
    """Rows (and the phonopy jobs behind them) of ``structures``, evaluated as one queue of batched supercells."""
    jobs = []
    for cid, s in structures.items():
        try:
            jobs.append(plan(cid, s, settings))
        except Exception as exc:  # noqa: BLE001 - a cell phonopy cannot handle is this candidate's error
            jobs.append(PhononJob(cid, None, error=f"phonopy: {short_error(exc)}"))
    budget = evaluate_forces(jobs, loaded, budget if budget is not None else settings.max_atoms_per_batch,
                             settings.cpu_atoms_per_batch, progress)
    rows = []
    for job in jobs:
        try:
            rows.append(analyse(job, settings))
        except Exception as exc:  # noqa: BLE001
            rows.append(PhononRow(job.id, Status.ERROR, f"phonopy: {short_error(exc)}", verdict="n/a"))
    return rows, jobs, budget


def run_stage(run) -> None:
    settings: PhononSettings = run.settings(STAGE)
    todo = run.pending(STAGE)
    if not todo:
        return
    structures = run.input_structures(STAGE, todo)
    loaded = run.stage_model(STAGE, run.cfg.phonons.model)
    budget = None

    def compute(ids):
        nonlocal budget
        missing = [PhononRow(i, Status.ERROR, "no relaxed structure", verdict="n/a") for i in ids
                   if i not in structures]
        rows, _, budget = phonon_rows({i: structures[i] for i in ids if i in structures}, loaded, settings, budget)
        return [*rows, *missing]

    run.run_chunks(STAGE, todo, settings.chunk_size, compute)
    if budget is not None:
        run.store.set_attrs(STAGE, {"atoms_per_batch": budget.history})


def funnel(store, cfg) -> list[tuple[str, set[str] | None, str]]:
    settings = cfg.phonons
    status = store.column_by_id(STAGE, "status")
    verdict = store.column_by_id(STAGE, "verdict")
    judged = {i for i, s in status.items() if s != Status.ERROR}
    unstable = {i for i, v in verdict.items() if v == "unstable"}
    label = f"no imaginary mode below {settings.imaginary_threshold} THz"
    if settings.action == "reject":
        return [(label, judged - unstable, f"finite-displacement phonons; rejects ({len(unstable)})")]
    return [(label, judged, f"flag only: {len(unstable)} unstable, they go on")]


def coating_columns(store) -> list[tuple[str, dict[str, str]]]:
    """The report's coating-table column: each candidate's phonon verdict."""
    return [("phonons", {k: str(v) for k, v in store.column_by_id(STAGE, "verdict").items()})]
