"""Host workers do not change results: the whole funnel (every stage, the analytic model) with ``workers=1`` and
``workers=2`` gives the same run file bit for bit; a resume of it builds no reference phase again."""

from __future__ import annotations

import pytest

from engine.io.compare import compare_groups
from engine.io.store import ResultStore
from engine.references import stage as references_stage
from tests.conftest import ROOT, without_controls

SYSTEMS = "[[Li,Mg,Cl],[Li,Al,F],[Li,Y,Cl],[Li,Zr,Cl]]"


def screen(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from engine.screen import run

    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        return run(compose("screen", overrides=without_controls(overrides)))


def overrides(tmp_path, workers: int) -> list[str]:
    # committee members analytic too: float32 uMLIPs on a CPU are not bit-reproducible from one call to the next
    return ["model.kind=analytic", "model.name=wells", "stages=${all_stages:}", "md=smoke",
            "committee.models=[{kind:analytic,name:wells-member}]",
            f"candidates.chemical_systems={SYSTEMS}", "candidates.per_system=4", "candidates.max_atoms=8",
            "pes.max_atoms_per_batch=4000", f"workers={workers}", f"output={tmp_path}/w{workers}.h5",
            f"references.cache_dir={tmp_path}/cache{workers}"]


def test_workers_leave_every_row_unchanged_and_a_resume_rebuilds_no_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    screen(overrides(tmp_path, 1))
    screen(overrides(tmp_path, 2))
    with ResultStore(tmp_path / "w1.h5", "r") as a, ResultStore(tmp_path / "w2.h5", "r") as b:
        assert compare_groups(a, b, 0.0, 0.0, 0.0) == []
        assert len(a.ids("candidates")) == 16 and a.has("pes") and a.has("plausibility")
        # the committee judged every thermo passer, the run's model and its member each with an E_hull
        assert a.ids("committee") == a.ids("thermo", status="pass")
        assert all(len(e) == 2 for e in a.column("committee", "e_hull"))

    def rebuilt(*args, **kwargs):
        raise AssertionError("a resume built the reference phases again")

    monkeypatch.setattr(references_stage, "collect_phases", rebuilt)
    screen(overrides(tmp_path, 1))  # every stage finds its rows; references by the systems it covered
    monkeypatch.undo()
    with pytest.raises(AssertionError, match="again"):  # a new system does need new phases
        monkeypatch.setattr(references_stage, "collect_phases", rebuilt)
        monkeypatch.setattr(references_stage, "needed_systems", lambda f, p: {frozenset({"Li", "Sc", "Br"})})
        screen(overrides(tmp_path, 1))
