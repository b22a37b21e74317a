"""Thermodynamics: pymatgen on real MP data, the MP2020 run-type assignment, windows against an independent
grand-potential check, mixing energies in closed form, missing references, and the built-in set with SevenNet-0."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from pymatgen.analysis.phase_diagram import GrandPotentialPhaseDiagram, PhaseDiagram
from pymatgen.core import Composition, Element
from pymatgen.entries.computed_entries import ComputedEntry

from engine.core import corrections
from engine.models import load_model
from engine.references.cache import relax_references
from engine.references.sources import BuiltinReferences, FileReferences, collect_phases
from engine.relax.fire import RelaxSettings
from engine.thermo import criteria, hulls
from engine.thermo import stage as thermo
from tests.conftest import ROOT, SHARED

MP_FILE = SHARED / "refdata" / "mp-Li-Co-Ni-O-entries.json.gz"
LI_CO_O = {"Li", "Co", "O"}


@pytest.fixture(scope="module")
def li_co_o_entries():
    if not MP_FILE.is_file():
        pytest.skip(f"{MP_FILE} not present")
    return [p.entry for p in FileReferences(MP_FILE).phases(LI_CO_O)]


def test_mp_e_above_hull_reproduced(li_co_o_entries):
    assert len(li_co_o_entries) == 457
    pd = hulls.Hulls(li_co_o_entries)[LI_CO_O]
    for e in li_co_o_entries:
        assert hulls.e_above_hull(pd, e)[0] == pytest.approx(e.data["e_above_hull"], abs=1e-6), e.entry_id
    lco = next(e for e in li_co_o_entries if e.entry_id == "mp-22526-GGA+U")
    assert lco.composition.reduced_formula == "LiCoO2"
    assert hulls.e_above_hull(pd, lco) == (pytest.approx(0.0, abs=1e-9), "1 LiCoO2")


def test_mp2020_with_mp_run_types_reproduces_mp_corrections(li_co_o_entries):
    """An entry rebuilt from MP's uncorrected energy and structure, with the run type and U values that
    ``mp_run_parameters`` assigns, gets exactly MP's corrected energy."""
    rebuilt = [corrections.model_entry(e.structure, e.uncorrected_energy, e.entry_id) for e in li_co_o_entries]
    for e, r in zip(li_co_o_entries, rebuilt):
        assert r.parameters["run_type"] == e.parameters["run_type"], e.entry_id
    corrected, dropped = corrections.apply_correction(rebuilt, "mp2020")
    assert not dropped
    by_id = {e.entry_id: e for e in li_co_o_entries}
    diffs = [abs(c.energy_per_atom - by_id[c.entry_id].energy_per_atom) for c in corrected]
    # MP classifies peroxides/superoxides from its own bonding analysis; the rebuilt entries do it from the
    # structure, which agrees for all but a handful of oddities
    assert np.median(diffs) < 1e-6 and np.mean(np.array(diffs) < 1e-6) > 0.95


def test_window_agrees_with_grand_potential_diagram(li_co_o_entries):
    """At a Li potential just inside the window LiCoO2 is a stable phase of the Li-open grand-potential diagram;
    just outside it is not (Ong et al. 2008, built independently of get_element_profile)."""
    pd = PhaseDiagram(li_co_o_entries)
    lco = next(e for e in li_co_o_entries if e.entry_id == "mp-22526-GGA+U")
    e_red, e_ox = hulls.stability_window(pd, lco.composition)
    assert 0 < e_red < e_ox < 6
    mu0 = pd.el_refs[Element("Li")].energy_per_atom

    def stable_at(volts):
        gpd = GrandPotentialPhaseDiagram(li_co_o_entries, {Element("Li"): mu0 - volts})
        return any(e.original_entry.entry_id == lco.entry_id for e in gpd.stable_entries)

    assert stable_at(e_red + 0.01) and stable_at(e_ox - 0.01) and stable_at((e_red + e_ox) / 2)
    assert not stable_at(e_red - 0.01) and not stable_at(e_ox + 0.01)


def test_mixing_energy_closed_form():
    """Li + F with LiF at -3 eV/atom: the most negative mixing energy is -3 eV/atom at x = 1/2."""
    entries = [ComputedEntry("Li", 0.0), ComputedEntry("F2", 0.0), ComputedEntry("LiF", -6.0)]
    pd = PhaseDiagram(entries)
    energy, x, reaction = hulls.mixing_energy(pd, Composition("Li"), Composition("F"))
    assert energy == pytest.approx(-3.0) and x == pytest.approx(0.5)
    assert "LiF" in reaction
    # and a window in closed form: LiF is stable from 0 V up to its formation energy per Li, 6 V
    assert hulls.stability_window(pd, Composition("LiF")) == (pytest.approx(0.0), pytest.approx(6.0))


def test_candidate_without_references_is_marked(li_co_o_entries):
    cand = ComputedEntry("LiCaI3", -10.0, entry_id="c1")
    row = thermo.evaluate_candidate(
        cid="c1", entry=cand, rejected=None, hulls=hulls.Hulls(li_co_o_entries), criteria=criteria.CoatingCriteria(),
        electrolyte=(Composition("Li10GeP2S12"), None, (np.nan, np.nan), "no LGPS"),
        cathode=(Composition("LiCoO2"), li_co_o_entries[0], ""), source_name="file")
    assert row.status == "error" and "no reference" in row.reason and "Ca I" in row.reason and np.isnan(row.e_hull)


def test_a_candidate_far_below_the_reference_hull_fails_as_below_hull(li_co_o_entries):
    """0.3 eV/atom below MP's Li-Co-O hull is more likely a phase missing from the references (or the model's error)
    than a discovery: the row fails as below_hull, is never a coating, and says which edges the hull lacks (none
    here; Co-O phases removed, it names Co-O). 0.04 eV/atom below is within thermo.below_hull_tolerance."""
    comp = Composition("LiCoO2")
    rows = {}
    for name, entries in (("full", li_co_o_entries),
                          ("no Co-O", [e for e in li_co_o_entries if e.composition.chemical_system != "Co-O"])):
        hull_set = hulls.Hulls(entries)
        hull = hull_set[LI_CO_O].get_hull_energy_per_atom(comp) * comp.num_atoms
        for below in (0.3, 0.04):
            cand = ComputedEntry(comp, hull - below * comp.num_atoms, entry_id="c")
            rows[name, below] = thermo.evaluate_candidate(
                cid="c", entry=cand, rejected=None, hulls=hull_set, criteria=criteria.CoatingCriteria(),
                electrolyte=(Composition("Li10GeP2S12"), li_co_o_entries[0], (0.0, 10.0), ""),
                cathode=(comp, li_co_o_entries[0], ""), source_name="file", below_hull_tolerance=0.05)
            assert rows[name, below].e_hull == pytest.approx(-below)
    far, near = rows["full", 0.3], rows["full", 0.04]
    assert far.status == "fail" and far.below_hull and far.verdict == "none"
    assert not (far.anode_coating or far.cathode_coating) and far.hull_lacks == ""
    assert far.reason.startswith("below the reference hull: E_hull -0.300 < -0.05 eV/atom; the Co-Li-O references "
                                 "are incomplete (no empty edge; file) or the model errs")
    assert not near.below_hull and not near.reason.startswith("below")
    assert rows["no Co-O", 0.3].hull_lacks == "Co-O" and "no reference phase on Co-O" in rows["no Co-O", 0.3].reason


def test_classify_follows_the_seed_criteria():
    c = criteria.CoatingCriteria()
    lgps = (1.7, 2.1)
    assert criteria.classify(0.0, 4.6, -0.05, -0.05, lgps, c).label == "AC+CC"
    assert criteria.classify(0.0, 2.5, -0.05, -0.05, lgps, c).label == "AC"
    assert criteria.classify(1.0, 4.6, -0.05, -0.05, lgps, c).label == "CC"
    assert criteria.classify(1.0, 4.6, -0.05, -0.30, lgps, c).label == "none"  # reacts with the cathode
    v = criteria.classify(0.0, 4.6, -0.30, -0.05, lgps, c)  # reacts with the electrolyte
    assert v.label == "none" and "electrolyte" in v.reasons[0]
    v = criteria.classify(1.0, 4.6, -0.05, -0.30, lgps, c)
    assert any("cathode" in r for r in v.reasons)


def test_builtin_references_with_sevennet(tmp_path, monkeypatch):
    """Issue acceptance: with the built-in references relaxed by SevenNet-0, LGPS's window lies inside 1.4-2.5 V,
    LiF is stable from 0 V to above 5.5 V, and Li3AlF6, Li3YCl6 and Li2ZrCl6 have finite windows with E_ox > 4 V.
    A second call relaxes nothing again (the cache)."""
    torch.set_num_threads(2)
    loaded = load_model(OmegaConf.load(ROOT / "conf/model/sevennet_0.yaml"), torch.device("cpu"))
    systems = [{"Li", "Ge", "P", "S"}, {"Li", "Al", "F"}, {"Li", "Y", "Cl"}, {"Li", "Zr", "Cl"}]
    phases = collect_phases(BuiltinReferences(), systems)
    settings = RelaxSettings(fmax=0.05, max_steps=500)
    relaxed = relax_references(phases, loaded, settings, tmp_path)
    assert all(r.usable for r in relaxed.values()), {k: r.reason for k, r in relaxed.items() if not r.usable}

    def no_relax(*args, **kwargs):
        raise AssertionError("cached references were relaxed again")
    monkeypatch.setattr("engine.references.cache.relax", no_relax)
    again = relax_references(phases, loaded, settings, tmp_path)
    assert {k: r.energy for k, r in again.items()} == {k: r.energy for k, r in relaxed.items()}

    raw = [corrections.model_entry(r.structure, r.energy, k) for k, r in relaxed.items()]
    entries, dropped = corrections.apply_correction(raw, "mp2020")
    assert not dropped
    hull_set = hulls.Hulls(entries)
    windows = {}
    for formula in ("Li10GeP2S12", "LiF", "Li3AlF6", "Li3YCl6", "Li2ZrCl6"):
        comp = Composition(formula)
        entry = min((e for e in entries if e.composition.reduced_formula == comp.reduced_formula),
                    key=lambda e: e.energy_per_atom)
        windows[formula] = hulls.window_of(entry, hull_set[corrections.chemsys(comp)])
    print({k: tuple(round(v, 3) for v in w) for k, w in windows.items()})
    e_red, e_ox = windows["Li10GeP2S12"]
    assert 1.4 <= e_red < e_ox <= 2.5
    assert windows["LiF"][0] == pytest.approx(0.0, abs=1e-6) and windows["LiF"][1] > 5.5
    for formula in ("Li3AlF6", "Li3YCl6", "Li2ZrCl6"):
        e_red, e_ox = windows[formula]
        assert 0 < e_red < e_ox and np.isfinite(e_ox) and e_ox > 4.0, (formula, e_red, e_ox)


def test_include_candidates_judges_candidates_against_each_other(li_co_o_entries):
    """Two LiCoO2 polymorphs below the MP hull: alone each is below it; with both in the hull, the higher one is
    above the lower one by their difference."""
    pd = hulls.Hulls(li_co_o_entries)[LI_CO_O]
    comp = Composition("LiCoO2")
    hull = pd.get_hull_energy_per_atom(comp) * comp.num_atoms
    low, high = ComputedEntry(comp, hull - 0.20, entry_id="low"), ComputedEntry(comp, hull - 0.08, entry_id="high")
    assert hulls.e_above_hull(pd, high)[0] == pytest.approx(-0.02)
    with_both = hulls.Hulls([*li_co_o_entries, low, high])[LI_CO_O]
    e_hull, products = hulls.e_above_hull(with_both, high)
    assert e_hull == pytest.approx(0.03) and products == "1 LiCoO2"


def test_a_mixing_hull_keeps_only_the_prototypes_of_the_candidates_and_the_partners_own_edges():
    """A Li-Al-B candidate mixed with Li2S: a prototype Al2S3 (edge Al-S, which only another candidate's system
    would bring) stays out of the mixing hull, so the reaction does not depend on the run's other candidates;
    the same phase from a reference source, and every prototype with prototype_edges=all, stay in."""
    from pymatgen.entries.computed_entries import ComputedEntry

    def entry(formula, e_per_atom, eid):
        comp = Composition(formula)
        return ComputedEntry(comp, e_per_atom * comp.num_atoms, entry_id=eid)

    base = [entry(el, 0.0, f"builtin:{el}") for el in ("Li", "Al", "B", "S")] + [entry("Li2S", -1.5, "builtin:Li2S"),
                                                                                  entry("AlB2", -0.1, "proto:AlB2-x")]
    al2s3 = -1.2
    system, partner = frozenset({"Li", "Al", "B"}), frozenset({"Li", "S"})
    restricted = hulls.Hulls([*base, entry("Al2S3", al2s3, "proto:Al2S3-x")]).mixing(system, partner)
    assert {e.entry_id for e in restricted.all_entries} == {e.entry_id for e in base}
    for kept in (hulls.Hulls([*base, entry("Al2S3", al2s3, "proto:Al2S3-x")], all_prototype_edges=True),
                 hulls.Hulls([*base, entry("Al2S3", al2s3, "builtin:Al2S3")])):
        assert "Al2S3" in {e.composition.reduced_formula for e in kept.mixing(system, partner).stable_entries}
