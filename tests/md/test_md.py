"""engine/md.py: supercells, the multi-replica runner (on Lennard-Jones), and the stage through engine.screen."""

import itertools
import math

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from torch_sim.models.lennard_jones import LennardJonesModel

from engine.core.supercells import md_supercell, perpendicular_widths
from engine.io.store import ResultStore
from engine.md.protocol import MdSettings
from engine.md.replicas import Replica, run_replicas
from engine.md.trajectories import TrajectorySink, read_trajectory
from tests.test_screen import screen


def argon(a=5.26) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Ar"], [[0, 0, 0]])


def lj(**kw):
    return LennardJonesModel(sigma=3.405, epsilon=0.0104, cutoff=8.0, dtype=torch.float64, **kw)


@pytest.mark.parametrize("lattice", [Lattice.cubic(4.03), Lattice.from_parameters(3.1, 5.0, 12.5, 90, 100, 90),
                                     Lattice.hexagonal(3.0, 14.0)])
def test_supercell_is_the_smallest_diagonal_one_meeting_both_bounds(lattice):
    s = Structure(lattice, ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    cell, scale = md_supercell(s, min_atoms=100, min_width=10.0)
    assert len(cell) >= 100 and perpendicular_widths(cell.lattice.matrix).min() >= 10.0 - 1e-9
    reduced = s.get_reduced_structure("niggli")
    widths = perpendicular_widths(reduced.lattice.matrix)
    smallest = min(math.prod(n) for n in itertools.product(range(1, 12), repeat=3)
                   if len(s) * math.prod(n) >= 100 and (widths * n).min() >= 10.0 - 1e-9)
    assert math.prod(scale) == smallest


def short(**kw) -> MdSettings:
    base = {"temperatures": (40.0, 80.0), "transport_temperature": 40.0, "framework_temperature": 80.0,
            "timestep_fs": 5.0, "thermalisation_ps": 0.5, "berendsen_tau_ps": 0.1, "production_ps": 2.0,
            "nose_hoover_tau_fs": 100.0, "sample_interval_fs": 20.0, "window_ps": 1.0, "fit_start_ps": 0.2,
            "fit_end_ps": 1.0, "frames_per_flush": 7, "check_interval_fs": 50.0, "max_atoms_per_batch": 200}
    return MdSettings(**{**base, **kw})


class NanAfter(LennardJonesModel):
    """Lennard-Jones whose forces turn NaN on the systems of ``n_atoms`` atoms from the ``calls``-th evaluation on."""

    def __init__(self, calls: int, n_atoms: int):
        super().__init__(sigma=3.405, epsilon=0.0104, cutoff=8.0, dtype=torch.float64)
        self.left, self.n_atoms = calls, n_atoms

    def forward(self, state, **kwargs):
        out = super().forward(state, **kwargs)
        self.left -= 1
        if self.left < 0:
            out["forces"] = out["forces"].clone()
            out["forces"][state.n_atoms_per_system[state.system_idx] == self.n_atoms] = float("nan")
        return out


def run(model, replicas, settings, tmp_path):
    done = []
    with ResultStore(tmp_path / "t.h5", "w") as store:
        sink = TrajectorySink(store, settings.frame_interval_ps, settings.frames_per_flush)
        run_replicas(replicas, model, settings, sink, done.extend)
        frames = {r.key: sink.read(r) if not r.error else None for r in done}
    return {r.key: r for r in done}, frames


def test_replicas_stream_every_frame_and_hold_their_own_temperatures(tmp_path):
    s = argon().make_supercell([2, 2, 2], in_place=False)
    settings = short()
    done, frames = run(lj(), [Replica("a", 40.0, s), Replica("a", 80.0, s), Replica("b", 40.0, s)], settings,
                       tmp_path)
    n_frames = settings.steps(settings.production_ps) // settings.sample_every + 1
    for key, r in done.items():
        assert r.error == ""
        assert frames[key].shape == (n_frames, len(s), 3) and len(r.temperatures) == n_frames
        assert abs(np.mean(r.temperatures) / r.temperature - 1) < 0.2, (key, np.mean(r.temperatures))
    # positions are unwrapped: no jump of a lattice vector between frames
    step = np.abs(np.diff(frames["a/80K"], axis=0)).max()
    assert step < 1.0


def test_a_replica_that_goes_nan_in_production_stops_alone(tmp_path):
    s = argon().make_supercell([2, 2, 2], in_place=False)
    smaller = argon().make_supercell([2, 2, 1], in_place=False)
    settings = short()
    n_therm = settings.steps(settings.thermalisation_ps)
    model = NanAfter(calls=n_therm + 2 + 60, n_atoms=len(smaller))  # init, thermalisation, NH init, 60 steps
    done, frames = run(model, [Replica("a", 40.0, s), Replica("b", 80.0, smaller), Replica("c", 40.0, s)],
                       settings, tmp_path)
    assert done["b/80K"].error.startswith("non-finite energy, forces or positions (production")
    n_frames = settings.steps(settings.production_ps) // settings.sample_every + 1
    assert frames["a/40K"].shape[0] == n_frames and frames["c/40K"].shape[0] == n_frames
    assert np.isfinite(frames["c/40K"]).all()
    # the survivors keep their own thermostat chains: both stay near 40 K after b left
    for key in ("a/40K", "c/40K"):
        assert abs(np.mean(done[key].temperatures[-40:]) / 40.0 - 1) < 0.25


def test_overlapping_atoms_stop_a_replica_at_the_start(tmp_path):
    good = argon().make_supercell([2, 2, 2], in_place=False)
    bad = good.copy()
    bad.translate_sites([1], bad[0].coords - bad[1].coords + [0.3, 0, 0], frac_coords=False)
    done, _ = run(lj(), [Replica("good", 40.0, good), Replica("bad", 40.0, bad)], short(), tmp_path)
    assert done["bad/40K"].error.startswith("atoms overlapping: 0.30 Å (start)")
    assert done["good/40K"].error == ""


def test_md_stage_through_the_screen_and_rerun_skips_finished(tmp_path):
    folder = tmp_path / "cands"
    folder.mkdir()
    lif = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.05), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    lif.to(filename=str(folder / "lif.cif"))
    licl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.2), ["Li", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    licl.get_primitive_structure().to(filename=str(folder / "licl.cif"))
    out = tmp_path / "md.h5"
    args = ("candidates=files", f"candidates.path={folder}", f"output={out}", "threads=2",
            "stages=[candidates,relax,md]", "md=smoke", "md.min_atoms=8", "md.production_ps=0.1",
            "md.window_ps=0.05", "md.fit_start_ps=0.01", "md.fit_end_ps=0.05")
    stdout = screen(*args)
    assert "MD criteria" in stdout
    with ResultStore(out, "r") as store:
        rows = {i: k for k, i in enumerate(store.ids("md"))}
        assert set(rows) == {"lif", "licl"}
        status = store.column("md", "status")
        assert all(s in ("pass", "fail") for s in status), store.column("md", "reason")
        n_atoms = store.column("md", "n_atoms")
        assert n_atoms[rows["lif"]] == 8 and n_atoms[rows["licl"]] >= 8
        assert np.all(np.isfinite(store.column("md", "d_li"))) and np.all(store.column("md", "sigma_room") >= 0)
        t_mean = store.column("md", "temperature_mean")
        assert t_mean.shape == (2, 2) and np.all(np.abs(t_mean / [500, 1000] - 1) < 0.5)
        written, numbers, cell = read_trajectory(store, "lif", 500)
        assert written.shape == (0.1 / 0.004 + 1, 8, 3) and np.isfinite(written).all()
        assert sorted(numbers) == [3] * 4 + [9] * 4 and np.allclose(abs(np.linalg.det(cell)), lif.volume, rtol=0.1)
        assert store.h5["md"].attrs["transport_temperature_K"] == 500
        blocks = store.children("md/trajectories")
    screen(*args)  # resumes: nothing left to do, nothing redone
    with ResultStore(out, "r") as store:
        assert len(store.ids("md")) == 2
        assert store.children("md/trajectories") == blocks
        assert np.array_equal(read_trajectory(store, "lif", 500)[0], written)


def test_a_replica_larger_than_the_batch_limit_runs_alone_and_no_replicas_is_no_work(tmp_path):
    big = argon().make_supercell([2, 2, 2], in_place=False)  # 32 atoms against a limit of 20
    done, frames = run(lj(), [Replica("big", 40.0, big)], short(max_atoms_per_batch=20, production_ps=0.5),
                       tmp_path)
    assert done["big/40K"].error == "" and frames["big/40K"].shape[1] == 32
    assert run(lj(), [], short(), tmp_path) == ({}, {})


def test_a_replica_runs_the_same_alone_or_batched_with_others(tmp_path):
    """Initial momenta are seeded per replica (seed, id, T), not per batch: a resumed run, whose batches differ,
    repeats what the uninterrupted run computed."""
    s = argon().make_supercell([2, 2, 2], in_place=False)
    other = argon(5.4).make_supercell([2, 2, 1], in_place=False)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    _, alone = run(lj(), [Replica("a", 40.0, s)], short(), tmp_path / "a")
    _, batched = run(lj(), [Replica("b", 80.0, other), Replica("a", 40.0, s)], short(), tmp_path / "b")
    np.testing.assert_allclose(batched["a/40K"], alone["a/40K"], atol=1e-5)
