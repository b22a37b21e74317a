"""Each committee member judges on its own hull: the built-in Li–Cl references (Li, Cl2, rock-salt LiCl and four
prototype LiCl polymorphs) relaxed with the member's model, and candidates that are copies of those phases. A hull
phase must come out at E_hull 0, and an off-hull polymorph at exactly the E_hull that the member's own relaxed
references give it in a plain pymatgen ``PhaseDiagram`` — so no member is judged on another's energies."""

import numpy as np
import pytest
from pymatgen.analysis.phase_diagram import PhaseDiagram
from pymatgen.core import Composition

from engine.committee.members import Judging, judge
from engine.core.corrections import apply_correction, correction_of, model_entry
from engine.core.crystals import Crystals
from engine.models import load_model, model_config
from engine.references.cache import relax_references
from engine.references.prototypes import binary_edges
from engine.references.sources import BuiltinReferences, collect_phases, prototype_phases
from engine.relax.fire import RelaxSettings
from engine.thermo.criteria import CoatingCriteria

MEMBERS = ["m3gnet", "chgnet"]


@pytest.fixture(scope="module")
def li_cl_phases():
    phases = collect_phases(BuiltinReferences(), [{"Li", "Cl"}])
    return phases + prototype_phases(binary_edges([frozenset({"Li", "Cl"})]), phases)


def test_each_member_reproduces_its_own_e_hull_of_the_reference_phases(li_cl_phases, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = RelaxSettings(fmax=0.02, max_steps=300)
    polymorphs = [p for p in li_cl_phases if p.structure.composition.reduced_formula == "LiCl"]
    ids = [f"cand:{p.id}" for p in polymorphs]
    crystals = Crystals.from_structures([p.structure for p in polymorphs])
    own: dict[str, np.ndarray] = {}
    for name in MEMBERS:
        cfg = model_config(name)
        correction = correction_of(cfg, "mp2020")
        loaded = load_model(cfg)
        judging = Judging("LiCl", "LiCl", 0.05, CoatingCriteria(), correction, settings, tmp_path, "builtin")
        rows = judge(loaded, ids, crystals, li_cl_phases, judging, correction)
        # the member's references alone, in a plain PhaseDiagram (the cache gives the relaxation judge() used)
        refs = relax_references(li_cl_phases, loaded, settings, tmp_path)
        entries, _ = apply_correction([model_entry(r.structure, r.energy, pid) for pid, r in refs.items()],
                                      correction)
        pd = PhaseDiagram(entries)
        expected = np.array([pd.get_e_above_hull(next(e for e in entries if e.entry_id == p.id)) for p in polymorphs])
        got = np.array([rows[c].e_hull for c in ids])
        print(name, dict(zip([p.id for p in polymorphs], got.round(4))))
        assert all(rows[c].status.value != "error" for c in ids), {c: rows[c].reason for c in ids}
        # a copy of a phase relaxes like the phase (float32 models: 1e-4 eV/atom)
        np.testing.assert_allclose(got, expected, atol=2e-4)
        assert np.isclose(got.min(), 0.0, atol=2e-4) and got.max() > 0.02
        ground = polymorphs[int(np.argmin(expected))]
        assert pd.get_e_above_hull(next(e for e in entries if e.entry_id == ground.id)) == pytest.approx(0, abs=1e-9)
        own[name] = got
    # the members disagree somewhere (else the test could not tell them apart)
    assert np.abs(own["m3gnet"] - own["chgnet"]).max() > 1e-3
    assert Composition("LiCl") == polymorphs[0].structure.composition.reduced_composition


def test_a_member_that_lacks_an_element_gives_its_cell_a_reason_not_an_error_of_the_candidate(li_cl_phases, tmp_path):
    """A member without Cl cannot judge LiCl: its thermo row is an error naming the element, and the committee row
    keeps the other members' verdict, with that member's E_hull NaN and its reason in ``member_verdicts``."""
    from dataclasses import replace

    from omegaconf import OmegaConf

    from engine.committee.stage import CommitteeSettings, committee_row
    from engine.core.rows import Status
    from engine.thermo.judgement import ThermoRow

    full = load_model(OmegaConf.create({"kind": "analytic", "name": "wells"}))
    no_cl = replace(full, name="no-Cl", supported_z=frozenset(full.supported_z - {17}))
    rocksalt = next(p for p in li_cl_phases if p.id == "builtin:LiCl-rocksalt")
    judging = Judging("LiCl", "LiCl", 0.05, CoatingCriteria(), "none", RelaxSettings(max_steps=5), tmp_path, "builtin")
    rows = judge(no_cl, ["c"], Crystals.from_structures([rocksalt.structure]), li_cl_phases, judging, "none")
    assert rows["c"].status == Status.ERROR and "elements not in model: Cl (no-Cl)" in rows["c"].reason
    passing = ThermoRow("c", Status.PASS, "", e_hull=0.01, verdict="AC")
    row = committee_row("c", [{"c": passing}, {"c": passing}, rows], ["run", "a", "no-Cl"], CommitteeSettings())
    assert row.verdict == "agreed" and np.isnan(row.e_hull[2]) and row.e_hull_spread == pytest.approx(0.0)
    assert "no-Cl: error (relax: elements not in model: Cl (no-Cl))" in row.member_verdicts
