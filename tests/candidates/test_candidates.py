"""The built-in sampler under the seed's CSX constraints, seeded per chemical system (shards, host workers)."""

import pytest
from omegaconf import OmegaConf

from engine.candidates.sampler import (
    SEED_ALLOWED_ELEMENTS,
    CsxError,
    charge_balanced,
    check_csx,
    draw_chemical_systems,
    sample_symmetric_crystals,
)
from engine.candidates.stage import BuiltinCandidates, load_candidates, shard_systems

SEED_ALLOWED = list(SEED_ALLOWED_ELEMENTS)


def test_drawn_systems_obey_csx_and_are_reproducible():
    systems = draw_chemical_systems(["Li"], SEED_ALLOWED, 12, seed=3)
    assert len(systems) == len({tuple(s) for s in systems}) == 12
    check_csx(systems, ["Li"], SEED_ALLOWED, 3)
    assert all(s[0] == "Li" and len(set(s)) == 3 and set(s) <= set(SEED_ALLOWED) for s in systems)
    assert systems == draw_chemical_systems(["Li"], SEED_ALLOWED, 12, seed=3)
    assert systems != draw_chemical_systems(["Li"], SEED_ALLOWED, 12, seed=4)


def test_systems_outside_csx_are_refused_with_the_reason():
    with pytest.raises(CsxError, match=r"Li-Co-O \(has \['Co'\] outside allowed_elements\)"):
        check_csx([["Li", "Co", "O"]], ["Li"], SEED_ALLOWED, 3)
    with pytest.raises(CsxError, match="Li-F .*2 elements, not 3"):
        check_csx([["Li", "F"]], ["Li"], SEED_ALLOWED, 3)
    with pytest.raises(CsxError, match=r"lacks \['Li'\]"):
        check_csx([["Na", "Al", "F"]], ["Li"], SEED_ALLOWED, 3)


def test_sampled_crystals_are_li_ternaries_from_the_allowed_list():
    cfg = OmegaConf.structured(BuiltinCandidates)
    cfg.chemical_systems, cfg.n_systems, cfg.per_system, cfg.max_atoms, cfg.seed = None, 4, 1, 16, 5
    cands = load_candidates(cfg)
    assert len(cands) >= 2
    for c in cands:
        elements = {el.symbol for el in c.structure.composition.elements}
        assert "Li" in elements and len(elements) == 3 and elements <= set(SEED_ALLOWED), c.id
        assert len(c.structure) <= 16


def _same(a, b) -> bool:
    return [c.id for c in a] == [c.id for c in b] and all(
        x.structure.species == y.structure.species and (x.structure.lattice.matrix == y.structure.lattice.matrix).all()
        and (x.structure.frac_coords == y.structure.frac_coords).all() for x, y in zip(a, b))


SYSTEMS = [["Li", "Mg", "Cl"], ["Li", "Al", "F"], ["Li", "Y", "Cl"], ["Li", "Ca", "I"]]
GROUPS = [2, 12, 14, 62, 166, 225]


def test_a_systems_candidates_do_not_depend_on_the_other_systems_nor_on_the_workers():
    """Each candidate is seeded on its own (sampler.candidate_seed): what shards and host workers rely on."""
    every = sample_symmetric_crystals(SYSTEMS, 2, GROUPS, 8, seed=1)
    assert len(every) == 8
    alone = sample_symmetric_crystals(SYSTEMS[2:3], 2, GROUPS, 8, seed=1)
    assert _same(alone, [c for c in every if c.id.startswith("Li-Y-Cl-")])
    assert _same(every, sample_symmetric_crystals(SYSTEMS, 2, GROUPS, 8, seed=1, workers=2))
    assert not _same(every, sample_symmetric_crystals(SYSTEMS, 2, GROUPS, 8, seed=2))


def test_shards_sample_their_own_systems_and_together_all_of_them():
    cfg = OmegaConf.structured(BuiltinCandidates)
    cfg.chemical_systems, cfg.per_system, cfg.max_atoms = SYSTEMS, 1, 8
    every = load_candidates(cfg)
    shards = [load_candidates(cfg, shard=OmegaConf.create({"index": i, "count": 3})) for i in range(3)]
    assert [len(shard_systems(SYSTEMS, i, 3)) for i in range(3)] == [2, 1, 1]
    assert sorted(c.id for s in shards for c in s) == sorted(c.id for c in every)
    by_id = {c.id: c for c in every}
    assert all(_same(s, [by_id[c.id] for c in s]) for s in shards)


def test_the_shared_pyxtal_tolerance_matrix_and_the_lattice_bound_leave_the_crystals_unchanged(monkeypatch):
    import contextlib

    from engine.candidates import sampler

    fast = sampler.sample_symmetric_crystals([["Li", "Zr", "Cl"]], 3, GROUPS, 16, seed=0)
    monkeypatch.setattr(sampler, "_pyxtal_bounded", contextlib.nullcontext)
    slow = sampler.sample_symmetric_crystals([["Li", "Zr", "Cl"]], 3, GROUPS, 16, seed=0)
    assert len(fast) == 3 and _same(fast, slow)


def test_a_placement_pyxtal_cannot_make_is_abandoned_after_a_few_lattices(monkeypatch):
    """LiYBr4 with Z = 3 in R-3m (the benchmark's slowest draw): unbounded, pyxtal tries 40 lattices (about 20 s)
    and fails; bounded, it gives up after LATTICE_TRIES."""
    import pyxtal.crystal

    from engine.candidates import sampler

    lattices = []
    original = pyxtal.crystal.random_crystal.set_volume
    monkeypatch.setattr(pyxtal.crystal.random_crystal, "set_volume", lambda self: (lattices.append(1), original(self)))
    with sampler._pyxtal_bounded(), pytest.raises(sampler.PlacementAbandoned):
        sampler.symmetric_crystal(166, ["Li", "Br", "Y"], [3, 12, 3], 1998891409)
    assert len(lattices) == sampler.LATTICE_TRIES


def test_pyxtals_defaults_give_the_same_crystals(monkeypatch):
    """The sampler asks pyxtal for one attempt per placement with one shared tolerance matrix; pyxtal's own defaults
    (ten attempts, each re-seeded from the same integer, and a fresh matrix) give the same crystals, more slowly."""
    import pyxtal

    from engine.candidates import sampler

    fast = sampler.sample_symmetric_crystals([["Li", "Y", "Br"]], 3, GROUPS, 16, seed=0)
    original = pyxtal.pyxtal.from_random

    def defaults(self, *args, **kwargs):
        kwargs.pop("max_count"), kwargs.pop("tm")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pyxtal.pyxtal, "from_random", defaults)
    assert _same(fast, sampler.sample_symmetric_crystals([["Li", "Y", "Br"]], 3, GROUPS, 16, seed=0))


def _pymatgen_balanced(system, coeffs) -> bool:
    """The reference: pymatgen's full oxidation-state guesser on the reduced formula."""
    import warnings

    from pymatgen.core import Composition

    comp = Composition(dict(zip(system, coeffs)))
    anion = max(comp.elements, key=lambda el: el.X).symbol
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guesses = Composition(comp.formula).oxi_state_guesses(max_sites=-1)
    return any(g.get("Li", 1) == 1 and g[anion] < 0 for g in guesses)


def test_charge_balance_agrees_with_pymatgens_oxidation_state_guesses():
    import itertools

    assert charge_balanced({"Li": 1, "Al": 1, "O": 2}) and not charge_balanced({"Li": 1, "Al": 1, "O": 1})
    assert charge_balanced({"Li": 3, "Y": 1, "Cl": 6}) and not charge_balanced({"Li": 1, "Cl": 1, "O": 1})
    # Cu(I)/Cu(II) on different sites; C and Se of equal electronegativity (2.55), the first the anion
    for system in (["Li", "Cu", "O"], ["Li", "Se", "C"], ["Li", "C", "Se"], ["Li", "Sb", "Te"]):
        for coeffs in itertools.product(range(1, 5), repeat=3):
            assert charge_balanced(dict(zip(system, coeffs))) == _pymatgen_balanced(system, coeffs), (system, coeffs)
