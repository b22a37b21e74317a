"""The built-in sampler under the seed's CSX constraints."""

import pytest
from omegaconf import OmegaConf

from engine.candidates.sampler import SEED_ALLOWED_ELEMENTS, CsxError, check_csx, draw_chemical_systems
from engine.candidates.stage import BuiltinCandidates, load_candidates

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
