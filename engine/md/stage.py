"""MD stage: multi-replica NVT molecular dynamics of every candidate, Li diffusion, conductivity, framework stability.

Protocol of the reference pipeline (:class:`engine.md.protocol.MdSettings` holds its numbers):

1. supercell (:mod:`engine.core.supercells`) of the relaxed cell with at least ``min_atoms`` atoms and every
   perpendicular width at least ``min_width`` Å (the smallest diagonal supercell of the Niggli-reduced cell),
   positions relaxed at fixed cell to ``prerelax_fmax`` [eV/Å];
2. thermalisation with the Berendsen thermostat (``kernels/thermostats.py``), then production with torch-sim's
   Nosé–Hoover chain, at each temperature in ``temperatures`` [K]: ``transport_temperature`` for Li transport,
   ``framework_temperature`` for framework stability;
3. (:mod:`engine.md.analysis`) D ± s.e.m. per species from windowed MSD fits, σ_Li by Nernst–Einstein, extrapolated
   to ``room_temperature`` with E_a = ``activation_energy`` (``kernels/diffusion.py``).

All replicas (candidates × temperatures) run as systems (:mod:`engine.md.replicas`) of batched torch-sim states with
per-system temperature and thermostat state; torch-sim's ``BinningAutoBatcher`` packs them into batches of at most
``max_atoms_per_batch`` atoms. Unwrapped positions are sampled every ``sample_interval_fs``, buffered on the device
and streamed to ``md/trajectories/<id>/<T>K`` (:mod:`engine.md.trajectories`) in chunks of ``frames_per_flush``
frames, so memory stays bounded. A replica that explodes (non-finite energy or positions, temperature beyond
``runaway_factor`` × target, two atoms closer than ``min_distance`` Å) leaves its batch with a reason; the others go
on.

A candidate's row is written once all its replicas have finished; a killed run redoes the candidates without a row
(their partial trajectories are discarded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from pymatgen.core import Structure

from engine.core.crystals import Crystal
from engine.core.rows import NAN, Row, Status, short_error
from engine.core.supercells import md_supercell
from engine.md.analysis import analyse, describe
from engine.md.protocol import MdSettings
from engine.md.replicas import Replica, run_replicas
from engine.md.trajectories import TrajectorySink
from engine.models import LoadedModel
from engine.relax.fire import RelaxSettings, relax


@dataclass
class MdRow(Row):
    """One candidate after MD at every temperature (transport and framework)."""
    supercell: np.ndarray = field(default_factory=lambda: np.zeros(3, np.int64))  # (3,) repetitions of the cell
    n_atoms: int = -1  # atoms in the supercell
    volume: float = NAN  # Å³, supercell
    n_li: int = -1
    prerelax_fmax: float = NAN  # eV/Å after the fixed-cell pre-relaxation
    d_li: float = NAN  # Å²/ps at the transport temperature
    d_li_sem: float = NAN
    sigma: float = NAN  # S/cm at the transport temperature
    sigma_sem: float = NAN
    sigma_room: float = NAN  # S/cm at room temperature (Arrhenius)
    sigma_room_sem: float = NAN
    max_li_msd: float = NAN  # Å², largest Li MSD at the transport temperature
    d_framework: float = NAN  # Å²/ps, slowest non-Li species at the framework temperature
    d_framework_sem: float = NAN
    framework_species: str = ""
    framework_msd: float = NAN  # Å², 6 D_framework t_production
    diffusion: str = ""  # JSON: T -> species -> [D, s.e.m.] [Å²/ps]
    temperature_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))  # K, (n_temperatures,)
    temperature_std: np.ndarray = field(default_factory=lambda: np.zeros(0))  # K, (n_temperatures,)
    sigma_pass: bool = False
    framework_pass: bool = False
    li_msd_pass: bool = False

    @classmethod
    def error(cls, cid: str, reason: str, n_temperatures: int, transient: bool = False) -> MdRow:
        nan = np.full(n_temperatures, np.nan)
        return cls(cid, Status.ERROR, reason, temperature_mean=nan, temperature_std=nan.copy(), transient=transient)


def prepare(structures: dict[str, Structure], loaded: LoadedModel, settings: MdSettings,
            write_error) -> dict[str, tuple[Crystal, tuple, float]]:
    """Supercell and fixed-cell pre-relaxation per candidate: {id: (supercell, scale, fmax [eV/Å])}."""
    cells, errors = {}, []
    for cid, s in structures.items():
        lacks = loaded.lacks(s.atomic_numbers)
        if lacks:
            errors.append((cid, lacks))
            continue
        try:
            cells[cid] = md_supercell(s, settings.min_atoms, settings.min_width)
        except Exception as exc:  # noqa: BLE001
            errors.append((cid, f"supercell: {short_error(exc)}"))
    if errors:
        write_error(errors)
    out: dict[str, tuple[Crystal, tuple, float]] = {}

    def done(results):
        for r in results:
            if r.status == "error" or r.structure is None:
                write_error([(r.id, f"pre-relaxation: {r.reason}")], r.transient)
            else:  # an unconverged pre-relaxation still starts MD; its fmax is recorded
                out[r.id] = (r.structure, cells[r.id][1], r.fmax)

    ids = list(cells)
    if ids:
        relax([cells[i][0] for i in ids], ids, loaded,
              RelaxSettings(fmax=settings.prerelax_fmax, max_steps=settings.prerelax_max_steps, cell_filter=None,
                            max_atoms_per_batch=settings.max_atoms_per_batch), done)  # CPU: relax's 2000
    return out


def run_stage(run) -> None:
    """Multi-replica MD of every candidate that passed the stage before and is not yet in ``md/``."""
    settings: MdSettings = run.settings("md")
    store = run.store
    todo = run.pending("md")
    if not todo:
        return
    sink = TrajectorySink(store, settings.frame_interval_ps, settings.frames_per_flush)
    sink.prune(store.done_ids("md"))  # blocks left by a run killed before any of their candidates had a row
    structures = run.input_structures("md", todo)
    loaded = run.stage_model("md", settings.model)
    store.set_attrs("md", {"temperatures_K": list(settings.temperatures),
                           "transport_temperature_K": settings.transport_temperature,
                           "framework_temperature_K": settings.framework_temperature,
                           "room_temperature_K": settings.room_temperature, "model": loaded.name})
    n_t = len(settings.temperatures)

    def write_error(pairs, transient: bool = False):
        store.append_rows("md", [MdRow.error(c, reason, n_t, transient) for c, reason in pairs])

    with run.progress("md", len(todo) * n_t) as bar:
        prepared = prepare({c: structures[c] for c in todo if c in structures}, loaded, settings, write_error)
        missing = [c for c in todo if c not in structures]
        if missing:
            write_error([(c, "no relaxed structure") for c in missing])
        replicas = [Replica(cid, float(t), cell) for cid, (cell, _, _) in prepared.items()
                    for t in settings.temperatures]
        finished: dict[str, dict[float, Replica]] = {}

        def on_done(members: list[Replica]) -> None:
            rows = []
            for m in members:
                finished.setdefault(m.cid, {})[m.temperature] = m
            for cid in dict.fromkeys(m.cid for m in members):  # input order, so rows come out reproducibly
                reps = finished[cid]
                if len(reps) < n_t:
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
                    status, reason, out = describe(cid, reps, estimates, settings, scale, fmax)
                    transient = status == Status.ERROR and all(r.transient for r in reps.values() if r.error)
                    rows.append(MdRow(cid, status, reason, **out, transient=transient))
                except Exception as exc:  # noqa: BLE001
                    rows.append(MdRow.error(cid, f"descriptors: {short_error(exc)}", n_t))
                del finished[cid]
            store.append_rows("md", rows)

        budget = run_replicas(replicas, loaded.model, settings, sink, on_done, progress=bar.update)
    if budget is not None:
        store.set_attrs("md", {"atoms_per_batch": budget.history})


def criteria_counts(store, cfg) -> tuple[str, list[tuple[str, int]]]:
    """How many candidates pass each MD criterion."""
    settings = cfg.md
    status = store.column("md", "status")
    return "MD criteria (multi-replica NVT)", [
        ("simulated", len(status)),
        (f"σ({settings.room_temperature:g} K) − s.e.m. > {settings.sigma_min:g} S/cm",
         int(store.column("md", "sigma_pass").sum())),
        (f"framework MSD < {settings.framework_msd_max:g} Å² at {settings.framework_temperature:g} K",
         int(store.column("md", "framework_pass").sum())),
        (f"max Li MSD > {settings.li_msd_min:g} Å² at {settings.transport_temperature:g} K",
         int(store.column("md", "li_msd_pass").sum())),
        ("all three", int((status == "pass").sum()))]


def funnel(store, cfg) -> list[tuple[str, set[str] | None, str]]:
    """The report\'s funnel steps: (criterion, ids passing it or None for this stage\'s pass rows, note)."""
    return [("MD: σ(300 K), framework stability, Li MSD", None, "")]


def coating_columns(store) -> list[tuple[str, dict[str, str]]]:
    """The report's coating-table columns: each candidate's MD status and σ(300 K) ± s.e.m. [S/cm]."""
    sigma, sem = store.column_by_id("md", "sigma_room"), store.column_by_id("md", "sigma_room_sem")
    return [("MD", {k: str(v) for k, v in store.column_by_id("md", "status").items()}),
            ("σ(300 K) (S/cm)", {k: sigma_text(float(sigma[k]), float(sem[k])) for k in sigma})]


def sigma_text(value: float, sem: float) -> str:
    """σ ± s.e.m. in S/cm, as the coating tables print it; "–" when there is none."""
    if not math.isfinite(value):
        return "–"
    return f"{value:.2e} ± {sem:.1e}" if math.isfinite(sem) else f"{value:.2e} ± –"
