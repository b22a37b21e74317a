"""Failure paths of the relax loop, on torch-sim's Lennard-Jones model (fast, no weights)."""

import torch
from pymatgen.core import Lattice, Structure
from torch_sim.models.lennard_jones import LennardJonesModel

from engine.models import LoadedModel
from engine.relax.fire import RelaxSettings, relax
from tests.conftest import rattled


class FailsAfter(LennardJonesModel):
    """Lennard-Jones that raises from its ``calls``-th evaluation on, as a model meeting bad input would."""

    def __init__(self, calls: int):
        super().__init__(sigma=2.0, epsilon=0.01, cutoff=5.0, compute_stress=True, dtype=torch.float64)
        self.left = calls

    def forward(self, state, **kwargs):
        self.left -= 1
        if self.left < 0:
            raise RuntimeError("boom")
        return super().forward(state, **kwargs)


def argon_like(a: float) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Ar"], [[0, 0, 0]])


def run(model, structures):
    loaded = LoadedModel(model, "lj", "lj", frozenset({18}), 5.0, "", "")
    results = []
    relax(structures, [str(i) for i in range(len(structures))], loaded,
          RelaxSettings(max_steps=50, max_atoms_per_batch=100), results.extend)
    return {r.id: r for r in results}


def test_model_failing_on_the_first_step_is_recorded_not_raised():
    results = run(FailsAfter(calls=2), [argon_like(3.2), argon_like(3.4)])  # fire_init's two calls succeed, no step does
    assert set(results) == {"0", "1"}
    assert all(r.status == "error" and r.reason.startswith("model failed during relaxation: RuntimeError: boom")
               and r.steps == 0 for r in results.values())


def test_model_failing_at_start_is_recorded_per_structure():
    results = run(FailsAfter(calls=0), [argon_like(3.2)])
    assert results["0"].status == "error" and results["0"].reason == "model failed: RuntimeError: boom"


def test_structure_larger_than_the_batch_limit_relaxes_alone():
    big = argon_like(3.6)
    big.make_supercell([3, 3, 3])  # 108 atoms > max_atoms_per_batch=100
    big.perturb(0.05, min_distance=0.01)
    results = run(LennardJonesModel(sigma=2.0, epsilon=0.01, cutoff=5.0, compute_stress=True, dtype=torch.float64),
                  [argon_like(3.4), big])
    assert set(results) == {"0", "1"}
    assert results["1"].status in ("pass", "fail") and results["1"].steps > 0, results["1"]


def test_per_step_checks_stop_where_ase_fire_stops():
    """On a CPU convergence is checked after every FIRE step, so each structure leaves the batch within one step of
    where ase.optimize.FIRE on a FrechetCellFilter stops (same algorithm, same Lennard-Jones forces and stress).
    Checking every 5 steps would overshoot by up to 4 (here 30, 35, 30, 45 against ASE's 29, 32, 29, 42)."""
    import numpy as np
    from ase.calculators.lj import LennardJones
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from pymatgen.io.ase import AseAtomsAdaptor

    structures = [rattled(argon_like(a).make_supercell([2, 1, 1], in_place=False), [0.01, -0.01, 0.0], 0.08, seed)
                  for seed, a in ((0, 3.3), (1, 3.5), (2, 3.4), (3, 3.6))]
    ids = [str(i) for i in range(len(structures))]
    model = LennardJonesModel(sigma=2.0, epsilon=0.01, cutoff=5.0, compute_stress=True, dtype=torch.float64)
    results = []
    relax(structures, ids, LoadedModel(model, "lj", "lj", frozenset({18}), 5.0, "", ""),
          RelaxSettings(fmax=0.01, max_steps=300, max_atoms_per_batch=100), results.extend)
    engine = {r.id: r for r in results}
    for cid, s in zip(ids, structures):
        atoms = AseAtomsAdaptor.get_atoms(s)
        atoms.calc = LennardJones(sigma=2.0, epsilon=0.01, rc=5.0)
        opt = FIRE(FrechetCellFilter(atoms), logfile=None)
        assert opt.run(fmax=0.01, steps=300)
        r = engine[cid]
        assert r.converged and abs(r.steps - opt.nsteps) <= 1, (cid, r.steps, opt.nsteps)
        assert np.allclose(r.structure.cell, atoms.cell.array, atol=2e-3)


def test_structures_relax_bit_for_bit_as_alone_whatever_joins_their_batch():
    """Structures that join a running batch (the budget holds two at a time) relax as they do alone, to the last bit
    of every position and cell vector (Fréchet cell filter): the same steps (a joiner's first FIRE step is its own,
    not one with a halved time step), the same energy, and the others' step counts left alone; none runs past
    max_steps. Without :mod:`engine.relax.reproducible` the lone structures differ by about 1e-15 Å."""
    structures = [rattled(argon_like(a).make_supercell([2, 1, 1], in_place=False), [0.01, -0.01, 0.0], 0.08, seed)
                  for seed, a in enumerate((3.3, 3.5, 3.4, 3.6, 3.45, 3.55))]
    ids = [str(i) for i in range(len(structures))]
    model = LennardJonesModel(sigma=2.0, epsilon=0.01, cutoff=5.0, compute_stress=True, dtype=torch.float64)
    loaded = LoadedModel(model, "lj", "lj", frozenset({18}), 5.0, "", "")

    def relaxed(chosen, budget, max_steps=300):
        results = []
        relax([structures[i] for i in chosen], [ids[i] for i in chosen], loaded,
              RelaxSettings(fmax=0.01, max_steps=max_steps, max_atoms_per_batch=budget), results.extend)
        return {r.id: (r.steps, r.energy_per_atom, r.structure.positions.tobytes(), r.structure.cell.tobytes())
                for r in results}

    alone = {}
    for i in range(len(structures)):
        alone.update(relaxed([i], 100))
    counts = [n for n, *_ in alone.values()]
    assert len(set(counts)) > 2  # they finish at different steps, so systems join mid-relaxation
    assert relaxed(range(len(structures)), 16) == alone
    capped = relaxed(range(len(structures)), 16, max_steps=min(counts) + 5)
    assert max(n for n, *_ in capped.values()) <= min(counts) + 5


def test_a_lone_cell_is_exponentiated_as_in_a_batch_and_torch_is_restored():
    """torch.matrix_exp takes another Padé path for a batch of one small matrix (a cell's log-deformation); inside
    the relax's context a lone matrix gets its batched result bit for bit, nested contexts are harmless, and torch's
    own function comes back after."""

    from engine.relax.reproducible import batch_independent_cell_filter

    a = 0.05 * torch.randn(5, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    batched, original = torch.matrix_exp(a), torch.matrix_exp
    assert not torch.equal(torch.cat([torch.matrix_exp(a[i:i + 1]) for i in range(5)]), batched)
    with batch_independent_cell_filter():
        with batch_independent_cell_filter():
            alone = torch.cat([torch.matrix_exp(a[i:i + 1]) for i in range(5)])
        assert torch.matrix_exp is not original
    assert torch.matrix_exp is original
    assert torch.equal(alone, batched)
