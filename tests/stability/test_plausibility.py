"""Crystal-chemistry filters (issue 18): built implausible Li environments are flagged, relaxed references are not."""

import numpy as np
import pytest
from omegaconf import OmegaConf
from pymatgen.analysis.phase_diagram import PhaseDiagram
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.entries.computed_entries import ComputedEntry

from engine.core.rows import Status
from engine.models import load_model
from engine.references.builtin_phases import BUILTIN
from engine.relax.fire import RelaxSettings, relax
from engine.stability.bond_valence import bond_valences, with_oxidation_states
from engine.stability.coordination import cation_environments, order_parameters
from engine.stability.plausibility import PlausibilitySettings, judge, reference_environments
from engine.stability.tie_lines import tie_line
from tests.conftest import ROOT
from tests.stability.implausible_structures import li2so4_square_planar, li3mgf5_trigonal

ELEMENTS = {"Li", "F", "O", "Cl", "Y", "Mg", "S"}


@pytest.fixture(scope="module")
def reference():
    """Environments of the built-in phases of the elements above (as built, not relaxed)."""
    phases = {p.id: p.build() for p in BUILTIN if len(p.elements) > 1 and p.elements <= ELEMENTS}
    return reference_environments(phases)


@pytest.fixture(scope="module")
def relaxed_references():
    """LiF, Li2O and Li3YCl6 relaxed with SevenNet-0 (cell and positions)."""
    wanted = ("builtin:LiF-rocksalt", "builtin:Li2O-antifluorite", "builtin:Li3YCl6-P-3m1")
    built = [next(p for p in BUILTIN if p.id == w).build() for w in wanted]
    loaded = load_model(OmegaConf.load(ROOT / "conf/model/sevennet_0.yaml"), "cpu")
    rows = []
    relax(built, list(wanted), loaded, RelaxSettings(max_steps=300), rows.extend)
    assert all(r.status == Status.PASS for r in rows), [(r.id, r.reason) for r in rows]
    return {r.id: r.structure.to_structure() if hasattr(r.structure, "to_structure") else r.structure for r in rows}


def test_the_built_structures_have_the_environments_they_are_built_for():
    envs = {e.cation: e for e in cation_environments(with_oxidation_states(li2so4_square_planar()))}
    assert (envs["Li"].cn, envs["Li"].geometry, envs["S"].geometry) == (4, "square co-planar", "tetrahedral")
    assert envs["Li"].order > 0.95
    li = [e for e in cation_environments(with_oxidation_states(li3mgf5_trigonal())) if e.cation == "Li"]
    assert li and all((e.cn, e.geometry, e.anions) == (3, "trigonal planar", "F") for e in li)


def test_order_parameters_are_pymatgens_from_one_neighbour_search():
    from pymatgen.analysis.local_env import CrystalNN

    nn = CrystalNN(cation_anion=True)
    built = [p.build() for p in BUILTIN if len(p.elements) > 1 and p.elements <= ELEMENTS]
    compared = 0
    for structure in [*built[:8], li2so4_square_planar(), li3mgf5_trigonal()]:
        decorated = with_oxidation_states(structure)
        for i, site in enumerate(decorated):
            if site.specie.oxi_state > 0:
                assert order_parameters(decorated, i, nn.get_nn_info(decorated, i)) == \
                    nn.get_local_order_parameters(decorated, i)
                compared += 1
    assert compared > 20


@pytest.mark.parametrize("build, flag", [(li2so4_square_planar, "square-planar Li (O"),
                                         (li3mgf5_trigonal, "trigonal-planar Li with halide (F")])
def test_implausible_li_environments_are_flagged(reference, build, flag):
    row = judge("x", build(), PlausibilitySettings(), reference, None)
    assert row.status == Status.PASS and row.coordination_verdict == "flag"  # flag only by default
    assert flag in row.coordination_reason and flag in row.reason
    assert row.coordination_score == 0.0  # no reference phase shows these Li environments
    rejected = judge("x", build(), PlausibilitySettings(coordination="reject"), reference, None)
    assert rejected.status == Status.FAIL and flag in rejected.reason


def test_relaxed_references_are_not_flagged(reference, relaxed_references):
    for pid, s in relaxed_references.items():
        row = judge(pid, s, PlausibilitySettings(), reference, None)
        assert row.coordination_verdict == "ok" and row.bond_valence_verdict == "ok", (pid, row)
        assert row.coordination_score >= 0.5 and row.gii < 0.2, (pid, row.coordination_score, row.gii)  # Li2O2: octahedral Li-O
        assert row.status == Status.PASS and row.reason == ""


def test_bond_valence_sums_of_rock_salt_lif_follow_the_iucr_parameters():
    # Li+-F- in the IUCr table: R0 = 1.360 Å, B = 0.37 Å; six bonds of a/2 in rock salt
    a = 4.0
    lif = Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    bv = bond_valences(with_oxidation_states(lif), cutoff=2.5)
    expected = 6 * np.exp((1.360 - a / 2) / 0.37)
    assert np.allclose(bv.bvs[bv.valence > 0], expected, rtol=1e-3)
    assert np.allclose(bv.bvs[bv.valence < 0], -expected, rtol=1e-3)
    assert bv.gii == pytest.approx(abs(expected - 1), rel=1e-3)


def _entries(energies: dict[str, float]) -> list[ComputedEntry]:
    return [ComputedEntry(Composition(f), e * Composition(f).num_atoms) for f, e in energies.items()]


def test_a_composition_on_a_tie_line_above_the_hull_is_flagged():
    pd = PhaseDiagram(_entries({"Li": 0.0, "Mg": 0.0, "F2": 0.0, "LiF": -3.0, "MgF2": -3.5}))
    assert tie_line(pd, Composition("Li3MgF5")) == ("LiF", "MgF2")
    assert tie_line(pd, Composition("Li2MgF3")) is None  # off the join: three products
    row = judge("x", li3mgf5_trigonal(), PlausibilitySettings(coordination="off", bond_valence="off"), None,
                (pd, 0.02))
    assert row.tie_line == "LiF + MgF2" and row.tie_line_verdict == "flag" and "phase-separate" in row.reason
    assert row.coordination_verdict == "" and row.status == Status.PASS
    reject = PlausibilitySettings(coordination="off", bond_valence="off", tie_line="reject")
    on_hull = judge("x", li3mgf5_trigonal(), reject, None, (pd, -0.01))
    assert on_hull.tie_line_verdict == "ok" and on_hull.status == Status.PASS
    assert judge("x", li3mgf5_trigonal(), reject, None, (pd, 0.02)).status == Status.FAIL


def test_an_intermetallic_is_not_judged_by_ionic_filters(reference):
    lial = Structure.from_spacegroup("Fd-3m", Lattice.cubic(6.37), ["Li", "Al"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    row = judge("x", lial, PlausibilitySettings(), reference, None)
    assert row.coordination_verdict == row.bond_valence_verdict == "n/a" and row.status == Status.PASS
    assert "LiAl" in row.coordination_reason and np.isnan(row.gii)


@pytest.mark.parametrize("target", ["bond_valences", "cation_environments", "tie_line"])
def test_a_failing_analysis_is_n_a_and_the_candidate_goes_on(monkeypatch, target):
    """A flag filter never stops a candidate: an analysis that raises (pymatgen's order parameters raised
    "max() iterable argument is empty" on some relaxed Li-As-Te and Li-S-Sn cells) gives that filter the verdict
    n/a with the reason; the other filters still judge."""
    import engine.stability.plausibility as plausibility

    def broken(*args, **kwargs):
        raise ValueError("max() iterable argument is empty")

    monkeypatch.setattr(plausibility, target, broken)
    lif = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.03), ["Li", "F"], [[0, 0, 0], [0.5] * 3])
    pd = PhaseDiagram([ComputedEntry(c, e) for c, e in (("Li", 0.0), ("F2", 0.0), ("LiF", -6.0))])
    row = judge("x", lif, PlausibilitySettings(), reference_environments({}), (pd, 0.0))
    name = {"bond_valences": "bond_valence", "cation_environments": "coordination", "tie_line": "tie_line"}[target]
    assert row.status == Status.PASS
    assert getattr(row, f"{name}_verdict") == "n/a"
    assert getattr(row, f"{name}_reason") == "analysis failed: ValueError: max() iterable argument is empty"
    others = [f for f in ("coordination", "bond_valence", "tie_line") if f != name]
    assert all(getattr(row, f"{f}_verdict") in ("ok", "flag") for f in others)


@pytest.mark.parametrize("name", ["Li-As-Te", "Li-Ag-B"])
def test_a_cation_with_no_anion_neighbour_is_flagged_not_an_analysis_failure(name):
    """The structures behind issue 25's ``max() iterable argument is empty``: candidates of the built-in 25-system
    screen relaxed with M3GNet (2026-12-03), where the oxidation-state guess makes As (As0.25+) or Ag (Ag1.33+) a
    cation and no anion shares a face of its Voronoi cell (the nearest anion 4-5 Å away). pymatgen's CrystalNN raises
    on such a site; the coordination filter calls it a cation with no anion neighbour and flags it."""
    from pymatgen.analysis.local_env import CrystalNN

    from engine.stability.coordination import NO_ANION, ReferenceEnvironments, judge_coordination

    decorated = with_oxidation_states(Structure.from_file(ROOT / "tests" / "data" / f"cation_without_anion_{name}.cif"))
    bare = [i for i, site in enumerate(decorated) if site.specie.oxi_state > 0 and not any(
        n["site"].specie.oxi_state < 0 for n in _voronoi_neighbours(decorated, i))]
    assert bare, "the file should hold a cation without anion neighbours"
    with pytest.raises(ValueError, match="max"):
        CrystalNN(cation_anion=True).get_nn_info(decorated, bare[0])
    envs = cation_environments(decorated)
    assert any(e.geometry == NO_ANION and e.cn == 0 for e in envs)
    verdict = judge_coordination(envs, ReferenceEnvironments(), 0.1, 2)
    assert any("with no anion neighbour" in f for f in verdict.flags)


def _voronoi_neighbours(structure, i):
    from pymatgen.analysis.local_env import VoronoiNN

    return VoronoiNN(cutoff=7.0).get_nn_info(structure, i)


def test_quick_bv_analyzer_gives_pymatgens_valences():
    """QuickBVAnalyzer walks pymatgen's BVAnalyzer search in plain integers: the same valences (or the same error) on
    built-in phases and on sampled low-symmetry candidates, also where the search is cut off early."""
    from pymatgen.analysis.bond_valence import BVAnalyzer

    from engine.candidates.sampler import sample_symmetric_crystals
    from engine.stability.bond_valence import QuickBVAnalyzer

    structures = [p.build() for p in BUILTIN if len(p.elements) > 1 and p.elements <= ELEMENTS]
    sampled = sample_symmetric_crystals([["Li", "Sr", "Br"], ["Li", "Al", "S"], ["Li", "Bi", "O"]], 3,
                                        [1, 2, 4, 14], 16, seed=0)
    structures += [c.structure for c in sampled if c.structure is not None]
    assert len(structures) >= 12

    def valences(analyzer, structure):
        try:
            return analyzer.get_valences(structure)
        except ValueError as exc:
            return f"ValueError: {exc}"

    truncated = 0
    for cap in (100_000, 20, 2):
        for s in structures:
            ours = valences(QuickBVAnalyzer(max_permutations=cap), s)
            assert ours == valences(BVAnalyzer(max_permutations=cap), s), (s.composition, cap)
            truncated += cap == 2 and ours != valences(QuickBVAnalyzer(), s)
    assert truncated, "no structure's search was cut off by max_permutations=2: the cap path is untested"


def test_a_candidate_is_judged_against_the_references_of_its_own_system():
    """The coordination filter takes the reference phases within the candidate's own chemical system, so its
    verdict depends neither on the other candidates of the run nor on the shard: a Li–F candidate is judged on the
    Li–F phases alone, also in a run that holds the O, Cl, Y, Mg and S phases, with other Li environments."""
    from engine.stability.plausibility import environments_by_system

    phases = {p.id: p.build() for p in BUILTIN if len(p.elements) > 1 and p.elements <= ELEMENTS}
    li_f = frozenset({"Li", "F"})
    own = {i: s for i, s in phases.items() if {el.symbol for el in s.composition.elements} <= li_f}
    assert own and len(own) < len(phases)
    alone = environments_by_system(own, [li_f])[li_f]
    crowded = environments_by_system(phases, [li_f, frozenset(ELEMENTS)])
    assert crowded[li_f] == alone
    assert crowded[frozenset(ELEMENTS)] == reference_environments(phases) != alone
