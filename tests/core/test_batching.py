"""Memory-safe batches: an out-of-memory error halves the atom budget and the same systems run again, in relax, pes and
md; what cannot fit even alone ends as a transient error, which a rerun retries (and a permanent one it does not).

The out-of-memory error is injected on the CPU: a wrapper around the analytic lattice-well model raises torch's
``OutOfMemoryError`` whenever a batch holds more atoms than its simulated device memory.
"""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from pymatgen.core import Lattice, Structure
from torch_sim.models.interface import ModelInterface

from engine.core.crystals import Crystals
from engine.core.rows import Status
from engine.io.store import ResultStore
from engine.md.protocol import MdSettings
from engine.md.replicas import Replica, run_replicas
from engine.md.trajectories import TrajectorySink
from engine.models import LoadedModel
from engine.models.analytic import LatticeWellModel
from engine.pes.probes import evaluate_jobs, make_job
from engine.pes.stage import PesSettings
from engine.relax import stage as relax_stage
from engine.relax.fire import RelaxSettings, relax
from engine.run import Run
from engine.screen import stage_summary
from engine.stages import BY_NAME

ROCK_SALT = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.0), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])


class SmallDevice(ModelInterface):
    """``inner`` on a device that holds ``max_atoms`` atoms: a bigger batch raises torch's OutOfMemoryError. After
    ``shrink_after`` calls the memory drops to ``then`` atoms (an out-of-memory error in the middle of a run)."""

    def __init__(self, inner, max_atoms: int, shrink_after: int | None = None, then: int | None = None):
        super().__init__()
        self.inner, self.max_atoms, self.shrink_after, self.then = inner, max_atoms, shrink_after, then
        self._device, self._dtype = inner.device, inner.dtype
        self._compute_stress = self._compute_forces = True
        self._memory_scales_with = "n_atoms"
        self.calls, self.refused = 0, 0

    def forward(self, state, **kwargs):
        self.calls += 1
        if self.shrink_after is not None and self.calls > self.shrink_after:
            self.max_atoms = self.then
        if state.n_atoms > self.max_atoms:
            self.refused += 1
            raise torch.OutOfMemoryError(f"CUDA out of memory (simulated: {state.n_atoms} > {self.max_atoms} atoms)")
        return self.inner(state)


def loaded(model, missing: set[int] = frozenset()) -> LoadedModel:
    return LoadedModel(model, "wells", "analytic", frozenset(range(1, 119)) - set(missing), 0.0, "", "test")


def cells(n: int, rattle: float = 0.1, seed: int = 0) -> list[Structure]:
    rng = np.random.default_rng(seed)
    return [Structure(ROCK_SALT.lattice, ROCK_SALT.species,
                      ROCK_SALT.cart_coords + rng.normal(scale=rattle, size=(8, 3)), coords_are_cartesian=True)
            for _ in range(n)]


def test_relax_halves_its_batch_on_out_of_memory_and_finishes_every_structure():
    structures = cells(12) + [cells(1, seed=1)[0] * (2, 1, 1)]  # twelve 8-atom cells, then a 16-atom one
    ids = [f"c{i}" for i in range(len(structures))]
    device = SmallDevice(LatticeWellModel(), max_atoms=40, shrink_after=6, then=12)  # 12 atoms: the big one never fits
    rows = []
    budget = relax(structures, ids, loaded(device), RelaxSettings(max_atoms_per_batch=1000, fmax=0.01), rows.extend)
    by_id = {r.id: r for r in rows}
    assert sorted(by_id) == sorted(ids) and len(rows) == len(ids)  # every structure once
    assert device.refused >= 2 and budget.history[0] == 1000 and 8 <= budget.history[-1] < 16
    assert all(b == a // 2 for a, b in zip(budget.history, budget.history[1:]))
    for cid in ids[:12]:  # each relaxed into its wells: E = ½ k Σ d² ≤ fmax² / (2k) per atom
        r = by_id[cid]
        assert r.status == Status.PASS and r.converged and not r.transient
        assert r.energy_per_atom < 0.01 ** 2 / (2 * 10.0) + 1e-12
        assert np.allclose(r.structure.positions, np.round(r.structure.positions), atol=0.01 / 10.0 + 1e-9)
    big = by_id[ids[12]]
    assert big.status == Status.ERROR and big.transient and big.reason.startswith("out of memory alone (16 atoms")


def test_relax_ends_a_structure_that_no_longer_fits_alone_as_transient():
    """The device shrinks below one structure in the middle of a relaxation: the batch splits down to single
    structures, each then fails alone and ends as a transient error (no endless retry)."""
    device = SmallDevice(LatticeWellModel(), max_atoms=100, shrink_after=3, then=4)
    rows = []
    relax(cells(2), ["a", "b"], loaded(device), RelaxSettings(max_atoms_per_batch=100, fmax=1e-6), rows.extend)
    assert sorted(r.id for r in rows) == ["a", "b"]
    assert all(r.status == Status.ERROR and r.transient and r.reason.startswith("out of memory alone (8 atoms")
               for r in rows), [(r.status, r.reason) for r in rows]


def test_relax_records_a_structure_with_non_finite_forces_at_the_start_and_relaxes_the_rest():
    class NanOnXe(LatticeWellModel):
        def forward(self, state, **kwargs):
            out = super().forward(state)
            out["forces"][state.atomic_numbers == 54] = float("nan")
            return out

    xe = cells(1, seed=4)[0]
    xe.replace(0, "Xe")
    rows = []
    relax([cells(1)[0], xe], ["ok", "xe"], loaded(NanOnXe()), RelaxSettings(fmax=0.01), rows.extend)
    by_id = {r.id: r for r in rows}
    assert by_id["xe"].status == Status.ERROR and by_id["xe"].reason == "non-finite energy or forces at the start"
    assert not by_id["xe"].transient and by_id["ok"].status == Status.PASS and len(rows) == 2


def test_md_splits_a_batch_that_runs_out_of_memory_and_repeats_the_same_trajectories(tmp_path):
    settings = MdSettings(temperatures=[300.0], transport_temperature=300.0, framework_temperature=300.0,
                          timestep_fs=2.0, thermalisation_ps=0.02, production_ps=0.04,
                          sample_interval_fs=4.0, check_interval_fs=10.0, max_atoms_per_batch=400,
                          runaway_factor=10.0)
    structures = cells(5, rattle=0.0)

    def simulate(model, path):
        replicas = [Replica(f"r{i}", 300.0, s) for i, s in enumerate(structures)]
        with ResultStore(path, "w") as store:
            sink = TrajectorySink(store, settings.frame_interval_ps, settings.frames_per_flush)
            budget = run_replicas(replicas, model, settings, sink, lambda members: None)
            return {r.cid: (r.error, sink.read(r)) for r in replicas}, budget, len(store.children("md/trajectories"))

    whole, _, blocks = simulate(LatticeWellModel(), tmp_path / "a.h5")
    device = SmallDevice(LatticeWellModel(), max_atoms=20)
    split, budget, split_blocks = simulate(device, tmp_path / "b.h5")
    # at 25 atoms the bins are 3 + 2 replicas: the first (24 atoms) runs out and splits into three, the second fits
    assert blocks == 1 and budget.history == [400, 200, 100, 50, 25, 12] and split_blocks == 4
    for cid, (error, frames) in whole.items():
        assert error == "" and split[cid][0] == ""
        assert frames.shape == (11, 8, 3) and np.allclose(split[cid][1], frames, atol=1e-5)


def test_probe_grids_survive_out_of_memory_with_the_same_energies():
    settings = PesSettings(spacing=0.7, exclusion_radius=1.0, use_symmetry=False)

    def grids(model):
        jobs = [make_job(f"h{i}", s, "framework", settings) for i, s in enumerate(cells(3, rattle=0.05))]
        budget = evaluate_jobs(jobs, loaded(model), max_atoms=10_000)
        return jobs, budget

    whole, _ = grids(LatticeWellModel())
    split, budget = grids(SmallDevice(LatticeWellModel(), max_atoms=100))
    assert budget.history[0] == 10_000 and budget.atoms <= 100
    for a, b in zip(whole, split):
        assert not a.error and not b.error and a.host_energy == b.host_energy
        assert np.array_equal(a.energies, b.energies)


def test_a_rerun_retries_transient_errors_and_not_permanent_ones(tmp_path):
    """The relax stage through its Run: a structure too big for the device and one with an element the model lacks
    end as errors; the rerun, with more memory, retries the first (its new row supersedes the old) and not the
    second."""
    structures = [*cells(3), cells(1, seed=2)[0] * (2, 1, 1)]
    xe = cells(1, seed=3)[0]
    xe.replace(0, "Xe")
    ids = ["a", "b", "c", "big", "xe"]
    cfg = OmegaConf.create({"device": "cpu", "stages": ["candidates", "relax"], "model": {"kind": "analytic"},
                            "relax": OmegaConf.structured(RelaxSettings(max_atoms_per_batch=12))})
    path = tmp_path / "run.h5"
    with ResultStore(path) as store:
        store.append("candidates", ids, ["pass"] * 5, [""] * 5, structures=[*structures, xe])

    def rerun(max_atoms: int) -> Run:
        with ResultStore(path) as store:
            run = Run(cfg, store, BY_NAME)
            run._models[OmegaConf.to_yaml(cfg.model)] = loaded(SmallDevice(LatticeWellModel(), max_atoms), {54})
            relax_stage.run_stage(run)
            return {k: dict(zip(store.ids("relax"), store.column("relax", k))) for k in ("status", "reason",
                    "transient")}, run.pending("relax"), stage_summary(store, "relax")["n"]

    first, pending, n = rerun(12)
    assert first["status"] == {"a": "pass", "b": "pass", "c": "pass", "big": "error", "xe": "error"}
    assert first["transient"]["big"] and not first["transient"]["xe"]
    assert "elements not in model: Xe" in first["reason"]["xe"]
    assert pending == ["big"] and n == 5
    second, pending, n = rerun(64)
    assert second["status"]["big"] == "pass" and second["status"]["xe"] == "error" and pending == [] and n == 5
    assert second["reason"]["xe"] == first["reason"]["xe"]
    with ResultStore(path, "r") as store:
        assert store.h5["relax/id"].shape[0] == 6  # the transient row stays in the file, superseded
        assert list(store.attrs("relax")["atoms_per_batch"]) == [16]  # relax.max_atoms_per_batch, raised to fit
        #                                                               the largest structure


@pytest.mark.parametrize("ids", [["x", "y"], ["y", "x"]])
def test_crystals_round_trip_through_state_and_store(tmp_path, ids):
    structures = [cells(1)[0], cells(1, seed=5)[0] * (1, 1, 2)]
    crystals = Crystals.from_structures(structures)
    back = Crystals.from_state(crystals.to_state())
    assert np.array_equal(back.natoms, [8, 16]) and np.allclose(back.positions, crystals.positions)
    assert np.allclose(back.cell, crystals.cell) and back[1].to_structure() == structures[1]
    with ResultStore(tmp_path / "s.h5") as store:
        store.append("g", ["x", "y"], ["pass", "pass"], ["", ""], structures=crystals)
        found, read = store.crystals("g", ids)
        assert found == ["x", "y"] and np.allclose(read.take([1]).positions, structures[1].cart_coords)


def test_take_systems_equals_torch_sim_indexing_on_fire_and_md_states():
    import torch_sim as ts
    from ase import units
    from torch_sim.integrators.nvt import nvt_nose_hoover_init
    from torch_sim.optimizers import fire_init

    from kernels.states import take_systems

    model = LatticeWellModel(dtype=torch.float64)
    mixed = [cells(1, seed=k)[0] * (1, 1, 1 + k % 2) for k in range(5)]  # 8- and 16-atom systems
    state = Crystals.from_structures(mixed).to_state("cpu", torch.float64)
    fire = fire_init(model=model, state=state, cell_filter=ts.CellFilter("frechet"), fire_flavor="ase_fire")
    nvt = nvt_nose_hoover_init(state, model, kT=torch.tensor(500 * units.kB, dtype=torch.float64),
                               dt=torch.tensor(units.fs, dtype=torch.float64), seed=0)
    for full in (fire, nvt):
        idx = torch.tensor([0, 3, 4])
        ours, theirs = take_systems(full, idx), full[idx]
        assert type(ours) is type(theirs) and ours.n_systems == 3
        for name, value in vars(theirs).items():
            if isinstance(value, torch.Tensor):
                assert torch.allclose(getattr(ours, name), value, rtol=0, atol=0, equal_nan=True), name


class FailsWith(SmallDevice):
    """``inner``, which from its ``after``-th call on fails on any batch holding element ``z`` (as torch-sim's
    neighbour list overflows on one over-dense structure), however many other systems the batch holds."""

    def __init__(self, inner, z: int, after: int):
        super().__init__(inner, max_atoms=10**9)
        self.z, self.after = z, after

    def forward(self, state, **kwargs):
        self.calls += 1
        if self.calls > self.after and (state.atomic_numbers == self.z).any():
            raise RuntimeError("NeighborOverflowError: 144 > 112")
        return self.inner(state)


def test_relax_isolates_the_structure_a_batch_failure_comes_from_and_relaxes_the_others():
    structures = cells(5)
    structures[3].replace(0, "Xe")
    results = []
    relax(structures, list("abcde"), loaded(FailsWith(LatticeWellModel(), 54, after=3)),  # fire_init: 2 calls
          RelaxSettings(max_atoms_per_batch=400), results.extend)
    by_id = {r.id: r for r in results}
    assert by_id["d"].status == Status.ERROR and not by_id["d"].transient
    assert by_id["d"].reason == "model failed during relaxation: RuntimeError: NeighborOverflowError: 144 > 112"
    for cid in "abce":  # back in the queue at their geometry, then relaxed into their wells
        r = by_id[cid]
        assert r.status == Status.PASS and r.converged, r
        assert np.abs(r.structure.positions - np.round(r.structure.positions)).max() < 0.05


class Hole(SmallDevice):
    """``inner`` with the energy of systems holding element ``z`` lowered by ``depth`` eV per atom: atoms that fell
    into a hole of a model (as an over-dense prototype does in SevenNet-0, at -6e9 eV/atom)."""

    def __init__(self, inner, z: int, depth: float):
        super().__init__(inner, max_atoms=10**9)
        self.z, self.depth = z, depth

    def forward(self, state, **kwargs):
        out = dict(self.inner(state))
        has = torch.zeros(state.n_systems, dtype=torch.bool).index_fill_(
            0, state.system_idx[state.atomic_numbers == self.z], True)
        out["energy"] = out["energy"] - self.depth * state.system_idx.bincount() * has
        return out


def test_relax_stops_a_structure_whose_energy_collapses_and_relaxes_the_others():
    structures = cells(3)
    structures[1].replace(0, "Xe")
    results = []
    relax(structures, list("abc"), loaded(Hole(LatticeWellModel(), 54, depth=1e3)), RelaxSettings(), results.extend)
    by_id = {r.id: r for r in results}
    assert by_id["b"].status == Status.ERROR and by_id["b"].reason.startswith("collapsed: -1e+03 eV/atom after 1 steps")
    assert by_id["b"].structure is None
    assert by_id["a"].status == by_id["c"].status == Status.PASS
