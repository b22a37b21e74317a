"""Probe grids, percolation barriers and Ξ: analytic landscapes, a point-by-point reference algorithm, and
symmetry-reduced vs full grids of a relaxed structure with SevenNet-0."""

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from pymatgen.core import Lattice, Structure

from engine.models import load_model
from engine.pes.probes import ProbeJob, evaluate_jobs, make_job
from engine.pes.stage import PesSettings, describe, evaluate_candidates
from engine.references.builtin_phases import BUILTIN
from engine.relax.fire import RelaxSettings, relax
from kernels.grid import probe_grid
from kernels.percolation import half_offsets, percolation_barriers
from kernels.xi import connected_free_volume, disconnected_free_volume, xi_descriptor
from tests.conftest import ROOT


def cosine_landscape(shape, a, b, c):
    x, y, z = np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij")
    return (a * (1 - np.cos(2 * np.pi * x)) + b * (1 - np.cos(2 * np.pi * y)) + c * (1 - np.cos(2 * np.pi * z))) / 2


@pytest.mark.parametrize("connectivity", [6, 26])
def test_cosine_barriers_are_the_amplitudes(connectivity):
    # E = A(1-cos 2πx)/2 + B(...y) + C(...z): a channel along x opens at A, a sheet (x, y) at B, 3D at C
    energy = cosine_landscape((24, 20, 16), 0.3, 0.7, 1.1)
    np.testing.assert_allclose(percolation_barriers(energy, connectivity), [0.3, 0.7, 1.1], atol=1e-12)
    # the answer does not depend on which axis carries which barrier, nor on an energy offset
    swapped = np.transpose(cosine_landscape((16, 24, 20), 1.1, 0.3, 0.7), (1, 2, 0)) - 5.0
    np.testing.assert_allclose(percolation_barriers(swapped, connectivity), [0.3, 0.7, 1.1], atol=1e-12)


def test_isolated_wells_never_percolate():
    x, y, z = np.meshgrid(*[np.arange(n) / n for n in (20, 20, 20)], indexing="ij")
    wells = -np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2 + (z - 0.5) ** 2) / 0.01) \
        - np.exp(-((x - 0.1) ** 2 + (y - 0.2) ** 2 + (z - 0.15) ** 2) / 0.005)
    walled = np.where(wells < -0.05, wells, np.inf)  # everything else excluded, as near atoms
    assert np.isinf(percolation_barriers(walled)).all()
    assert np.isinf(percolation_barriers(np.full((4, 4, 4), np.inf))).all()


def test_diagonal_channel_percolates_in_one_dimension():
    # a channel along [1 1 0] wraps the cell only through the corner-sharing 26-neighbourhood
    n = 12
    energy = np.full((n, n, n), 2.0)
    for i in range(n):
        energy[i, i, :3] = 0.1
    assert percolation_barriers(energy, 26)[0] == pytest.approx(0.1 - 0.1)  # 0 above the minimum, 1D only
    assert percolation_barriers(energy, 26)[1] == pytest.approx(1.9)
    assert percolation_barriers(energy, 6)[0] == pytest.approx(1.9)  # faces only: the diagonal is no path


def reference_barriers(energy: np.ndarray, connectivity: int) -> np.ndarray:
    """Points added one by one in order of energy, union-find with offsets per point: the textbook form."""
    shape = energy.shape
    n = np.array(shape)
    parent, offset, basis = {}, {}, {}

    def find(p):
        off = np.zeros(3, int)
        while parent[p] != p:
            off = off + offset[p]
            p = parent[p]
        return p, off

    out = np.full(3, np.inf)
    order = np.argsort(energy, axis=None, kind="stable")
    steps = [d for d in itertools.product((-1, 0, 1), repeat=3) if d != (0, 0, 0)]
    if connectivity == 6:
        steps = [d for d in steps if sum(map(abs, d)) == 1]
    for flat in order:
        if not np.isfinite(energy.flat[flat]):
            break
        p = tuple(np.unravel_index(flat, shape))
        parent[p], offset[p], basis[p] = p, np.zeros(3, int), []
        for d in steps:
            q_raw = np.array(p) + d
            q = tuple(q_raw % n)
            if q not in parent:
                continue
            s = q_raw // n  # q's copy adjacent to p sits in cell s
            rp, op = find(p)
            rq, oq = find(q)
            loop = op + s - oq
            if rp == rq:
                vectors = [loop]
            else:
                parent[rq], offset[rq] = rp, loop
                vectors = basis.pop(rq)
            for v in vectors:
                if v.any() and np.linalg.matrix_rank(np.array([*basis[rp], v])) > len(basis[rp]):
                    basis[rp].append(v)
            k = len(basis[rp])
            for dim in range(k):
                if np.isinf(out[dim]):
                    out[dim] = energy.flat[flat] - energy.min()
    return out


@pytest.mark.parametrize("seed", range(6))
def test_vectorised_barriers_match_point_by_point_union_find(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(2, 7, size=3))
    energy = rng.random(shape)
    energy[rng.random(shape) < 0.15] = np.inf
    for connectivity in (6, 26):
        np.testing.assert_array_equal(percolation_barriers(energy, connectivity),
                                      reference_barriers(energy, connectivity))


def test_half_offsets_cover_each_neighbour_pair_once():
    for connectivity in (6, 26):
        half = half_offsets(connectivity)
        assert len(half) == connectivity // 2
        assert not {tuple(-np.array(d)) for d in half} & set(half)


def test_free_volumes_of_a_pocket_and_a_channel():
    shape = (20, 20, 20)
    x, y, z = np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij")
    r2 = (x - 0.5) ** 2 + (y - 0.5) ** 2 + (z - 0.5) ** 2
    pocket = np.where(r2 < 0.04, 0.0, 3.0)  # one isolated pocket per cell
    f = (r2 < 0.04).mean()
    assert disconnected_free_volume(pocket, 0.5) == pytest.approx(f)
    assert connected_free_volume(pocket, 0.5) == pytest.approx(f / 8)  # one pocket of the 2×2×2 block
    channel = np.where((y - 0.5) ** 2 + (z - 0.5) ** 2 < 0.04, 0.0, 3.0)  # a straight channel along x
    g = ((y - 0.5) ** 2 + (z - 0.5) ** 2 < 0.04).mean()
    assert connected_free_volume(channel, 0.5) == pytest.approx(g / 4)  # one of the block's 4 parallel channels
    result = xi_descriptor(channel)
    def logistic(t):
        return 1 / (1 + np.exp(-t))

    expected = logistic(10 * (np.log10(g / 4) + 2)) * logistic(10 * (np.log10(g) + 1.15))
    assert result.xi == pytest.approx(expected)
    assert result.xi > 0.8 > xi_descriptor(np.where(r2 < 0.004, 0.0, 3.0)).xi  # big channel vs tiny pocket


def symmetric_field(structure: Structure, grid) -> np.ndarray:
    """Sum of Gaussians on the atoms (periodic images included) at the grid's representatives: a field with
    the structure's full space-group symmetry."""
    frac = grid.frac_coords(grid.representatives)
    lattice = structure.lattice.matrix
    out = np.zeros(len(frac))
    for shift in itertools.product(range(-2, 3), repeat=3):  # enough images for a 120° cell
        d = (frac[:, None, :] - structure.frac_coords[None, :, :] - shift) @ lattice
        out += (np.exp(-(d ** 2).sum(-1) / 0.8) * np.array(structure.atomic_numbers)).sum(1)
    return out


@pytest.mark.parametrize("formula", ["Li10GeP2S12-LGPS", "LiCoO2-R-3m", "Li3AlF6-cryolite", "AlF3-R-3c",
                                     "Co3O4-spinel", "Li2ZrCl6-P-3m1"])
@pytest.mark.parametrize("shifted", [False, True])
def test_orbits_respect_the_space_group(formula, shifted):
    s = next(p for p in BUILTIN if p.id == f"builtin:{formula}").build()
    n_ops = probe_grid(s.lattice.matrix, s.frac_coords, np.array(s.atomic_numbers), 0.5, 0.0).n_operations
    if shifted:  # symmetry elements at generic points of the cell: the grid must follow them
        s.translate_sites(range(len(s)), [0.1234, 0.3071, 0.0629])
    reduced = probe_grid(s.lattice.matrix, s.frac_coords, np.array(s.atomic_numbers), 0.5, 0.0)
    full = probe_grid(s.lattice.matrix, s.frac_coords, np.array(s.atomic_numbers), 0.5, 0.0, use_symmetry=False,
                      shape=reduced.shape, origin=reduced.origin)
    assert reduced.n_operations == n_ops > 1 and reduced.n_evaluated < full.n_evaluated
    from_orbits = symmetric_field(s, reduced)[reduced.orbit]
    direct = symmetric_field(s, full)[full.orbit]
    np.testing.assert_allclose(from_orbits, direct, rtol=0, atol=1e-6)  # a wrong orbit would be off by O(1)


@pytest.fixture(scope="module")
def sevennet():
    torch.set_num_threads(2)
    return load_model(OmegaConf.load(ROOT / "conf" / "model" / "sevennet_0.yaml"), "cpu")


@pytest.fixture(scope="module")
def relaxed_lif(sevennet):
    lif = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.10), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    done = []
    relax([lif], ["lif"], sevennet, RelaxSettings(fmax=0.01, max_steps=200), done.extend)
    assert done[0].status == "pass"
    return done[0].structure.to_structure()


def test_symmetry_reduced_grid_equals_full_grid_with_sevennet(sevennet, relaxed_lif):
    settings = PesSettings(spacing=0.6)  # the equality, not the resolution, is the point: a coarse grid keeps it short
    reduced = make_job("lif", relaxed_lif, "interstitial", settings)
    full_grid = probe_grid(relaxed_lif.lattice.matrix, relaxed_lif.frac_coords,
                           np.array(relaxed_lif.atomic_numbers), exclusion_radius=settings.exclusion_radius,
                           use_symmetry=False, shape=reduced.grid.shape, origin=reduced.grid.origin)
    full = ProbeJob("lif", "interstitial", relaxed_lif, full_grid, cell_host=reduced.cell_host)  # same probe cells
    evaluate_jobs([reduced, full], sevennet, max_atoms=200)
    assert not reduced.error and not full.error
    assert reduced.grid.n_operations == 192  # Fm-3m, conventional cell
    assert full.grid.n_evaluated >= 10 * reduced.grid.n_evaluated  # "several times fewer" on a cubic cell
    a, b = reduced.energy_map(), full.energy_map()
    assert (np.isfinite(a) == np.isfinite(b)).all() and np.isfinite(b).sum() == full.grid.n_evaluated
    # float32 SevenNet: total energies of the 33-atom probe cells differ by rounding, about 1e-4 eV
    np.testing.assert_allclose(a[np.isfinite(b)], b[np.isfinite(b)], atol=5e-4)
    # energies are relative to the frozen host: an interstitial Li costs energy
    assert np.isfinite(reduced.host_energy) and np.nanmin(b[np.isfinite(b)]) > -3.0


def test_describe_records_both_descriptors_and_the_or_verdict(sevennet, relaxed_lif):
    settings = PesSettings(spacing=0.45)
    jobs = {a: make_job("lif", relaxed_lif, a, settings) for a in ("interstitial", "framework")}
    evaluate_jobs(list(jobs.values()), sevennet, max_atoms=200)
    status, reason, out = describe(jobs, settings)
    assert 0.0 <= out["xi"] <= 1.0 and out["interstitial_evaluated"] < out["interstitial_points"]
    b = [out["barrier_1d"], out["barrier_2d"], out["barrier_3d"]]
    assert np.isfinite(b).all() and b[0] <= b[1] <= b[2]  # Li in the F sublattice: a cubic network
    assert b[0] == pytest.approx(b[2])  # cubic symmetry: a channel along a is one along b and c
    assert status == ("pass" if out["xi_pass"] or out["barrier_pass"] else "fail")
    if status == "fail":
        assert reason.startswith("no Li transport: Ξ")


def test_model_without_an_element_or_failing_is_recorded(sevennet):
    lipo = Structure(Lattice.cubic(4.2), ["Li", "Po"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    job = make_job("lipo", lipo, "framework", PesSettings(spacing=0.6))
    evaluate_jobs([job], sevennet, max_atoms=200)
    assert job.error == "framework: elements not in model: Po (7net-0)"

    class Broken:
        def __call__(self, state):
            raise RuntimeError("boom")
        device, dtype = torch.device("cpu"), torch.float32

    lif = Structure(Lattice.cubic(4.0), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    jobs = [make_job(c, lif, "interstitial", PesSettings(spacing=0.6)) for c in ("a", "b")]
    evaluate_jobs(jobs, sevennet, max_atoms=200, energy_model=(Broken(), True))
    assert all(j.error == "interstitial: model failed: RuntimeError: boom" for j in jobs)
    status, reason, _ = describe({"interstitial": jobs[0]}, PesSettings())
    assert status == "error" and "boom" in reason


def test_short_circuit_skips_the_later_grid_once_one_passes(sevennet, relaxed_lif):
    models = {"framework": sevennet, "interstitial": sevennet}
    passing = PesSettings(spacing=0.45, approaches=["framework", "interstitial"], short_circuit=True,
                          barrier_max=100.0)  # every framework grid passes
    jobs = evaluate_candidates({"a": relaxed_lif, "b": relaxed_lif}, passing, models)
    assert all(list(j) == ["framework"] for j in jobs.values())
    status, reason, out = describe(jobs["a"], passing)
    assert status == "pass" and out["barrier_pass"] and "xi" not in out
    assert reason == "interstitial not computed: framework passed (pes.short_circuit)"

    failing = replace(passing, barrier_max=-1.0)  # no framework grid passes: the interstitial grid is computed
    jobs = evaluate_candidates({"a": relaxed_lif}, failing, models)
    assert list(jobs["a"]) == ["framework", "interstitial"]
    status, reason, out = describe(jobs["a"], failing)
    assert np.isfinite(out["xi"]) and "interstitial" not in reason
    # without short_circuit both grids are computed whatever the first gives
    both = evaluate_candidates({"a": relaxed_lif}, replace(passing, short_circuit=False), models)
    assert list(both["a"]) == ["framework", "interstitial"]


def test_a_host_with_no_room_for_li_fails_with_xi_zero_and_no_model_call():
    """Rock-salt LiF's interstitial grid with an exclusion of 0.75 of the Li-atom covalent-radius sums:
    every point lies within 1.92 Å of a Li or 1.39 Å of an F (the tetrahedral hole is 1.75 Å from both), so there is
    no free volume: Ξ 0, a fail, not an error, and the model is never called."""
    from engine.models import LoadedModel

    class NeverCalled(torch.nn.Module):
        def forward(self, state):
            raise AssertionError("the model was called")

    lif = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.03), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    settings = PesSettings(approaches=["interstitial"], spacing=0.5, exclusion_scale=0.75, min_probe_width=0.0)
    job = make_job("lif", lif, "interstitial", settings)
    assert job.grid.n_evaluated == 0 and not job.error
    loaded = LoadedModel(NeverCalled(), "never", "analytic", frozenset(range(1, 119)), 0.0, "", "test")
    evaluate_jobs([job], loaded, 1000, energy_model=(NeverCalled(), True))
    status, reason, columns = describe({"interstitial": job}, settings)
    assert status == "fail" and columns["xi"] == 0.0 and "no grid point outside the exclusion radii" in reason
