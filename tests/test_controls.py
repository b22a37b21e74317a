"""Controls (engine/controls.py): known materials screened beside the candidates, against their expected outcomes,
left out of the funnel counts; a control that comes out wrong is said."""

import numpy as np
import pytest

from engine import controls
from engine.candidates.stage import CandidateRow
from engine.controls import KNOWN, NOT_REACHED, control_ids, outcomes, summary_lines
from engine.core.rows import Row, Status
from engine.io.store import ResultStore
from engine.io.views import RowsExcept
from engine.stages import STAGES, by_name
from engine.thermo.criteria import classify
from engine.thermo.judgement import ThermoRow


def test_expected_outcomes_pass_up_to_the_failing_stage_and_are_not_reached_after_it():
    lif, li3ycl6 = KNOWN["LiF"], KNOWN["Li3YCl6"]
    stages = ["candidates", "thermo", "pes", "md"]
    assert lif.expected(stages) == {"candidates": "pass", "thermo": "pass", "pes": "fail", "md": NOT_REACHED}
    assert set(li3ycl6.expected(stages).values()) == {"pass"}
    assert lif.role == "negative" and li3ycl6.role == "positive"


def test_every_known_control_is_a_built_in_phase_and_unknown_names_are_refused():
    built = controls.control_structures(list(KNOWN))
    assert [c.name for c, _ in built] == list(KNOWN)
    assert {s.composition.reduced_formula for _, s in built} == set(KNOWN)
    with pytest.raises(ValueError, match="controls: unknown"):
        controls.check_names(["LiF", "Unobtainium"])


def _file_with(tmp_path, pes_status: dict[str, str]):
    """A run file with two candidates and both controls through candidates, thermo and pes."""
    path = tmp_path / "run.h5"
    ids = ["Li-Y-Cl-0000", "Li-Mg-Cl-0000", "control-Li3YCl6", "control-LiF"]
    with ResultStore(path) as store:
        store.append_rows("candidates", [CandidateRow(i, Status.PASS, control={"control-Li3YCl6": "positive",
                                                                              "control-LiF": "negative"}.get(i, ""))
                                         for i in ids])
        verdicts = {"control-Li3YCl6": "CC", "control-LiF": "AC+CC"}
        store.append_rows("thermo", [ThermoRow(i, Status.PASS, verdict=verdicts.get(i, "CC")) for i in ids])
        store.append_rows("committee", [Row(i, Status.FAIL, "fails with chgnet") for i in ids])  # advisory
        store.append_rows("pes", [Row(i, Status(pes_status.get(i, "fail"))) for i in ids])
    return path


def test_controls_at_their_expected_outcomes_are_said_so_and_left_out_of_the_counts(tmp_path):
    path = _file_with(tmp_path, {"control-Li3YCl6": "pass", "Li-Y-Cl-0000": "pass"})
    with ResultStore(path, "r") as store:
        assert control_ids(store) == {"control-Li3YCl6", "control-LiF"}
        results = outcomes(store, STAGES)
        assert [r.wrong for r in results] == [[], []]
        assert results[0].observed == {"candidates": "pass", "thermo": "pass (CC)", "committee": "fail",
                                       "pes": "pass"}
        assert results[0].expected["committee"] == "advisory"  # the committee decides nothing: never wrong
        lines = summary_lines(results)
        assert all("as expected" in line for line in lines) and len(lines) == 2
        counted = RowsExcept(store, control_ids(store))
        assert counted.ids("pes", status="pass") == ["Li-Y-Cl-0000"]
        assert list(counted.column("thermo", "verdict")) == ["CC", "CC"]
        assert len(counted.column_by_id("candidates", "control")) == 2


def test_a_control_that_comes_out_wrong_gives_a_warning_naming_the_stage(tmp_path):
    """The positive control failing the transport stage (e.g. after a model swap) is a WARNING with the stage, the
    outcome and the expected one; the report's table marks the cell."""
    path = _file_with(tmp_path, {})
    with ResultStore(path, "r") as store:
        results = outcomes(store, STAGES)
    positive = next(r for r in results if r.control.name == "Li3YCl6")
    assert positive.wrong == ["pes"]
    warning = next(line for line in summary_lines(results) if "Li3YCl6" in line)
    assert warning.startswith("WARNING") and "pes: fail, expected pass" in warning
    table = "\n".join(controls.markdown_lines(results))
    assert "## Controls" in table and "**fail / pass**" in table


def test_the_stage_table_says_which_stages_write_no_candidate_rows():
    assert [s.name for s in STAGES if not s.per_candidate] == ["references"]
    assert by_name()["thermo"].per_candidate


@pytest.mark.slow
def test_the_default_runs_chlorides_and_the_controls_through_thermo(tmp_path):
    """The acceptance of the criteria and of the controls on the real chain (SevenNet-0, built-in references; about
    4 min on 2 cores): the default run's Li-Y-Cl and Li-Mg-Cl candidates (E_ox ≈ 4.27 V) are cathode coatings under
    criteria=seed and not under criteria=strict; the controls, exempt from novelty and left out of the counts, come out
    as expected and the report has their table. The default suite's twins: tests/thermo/test_criteria.py and
    test_the_positive_control_reaches_md_and_the_negative_one_stops_at_pes."""
    from engine.thermo.stage import stored_partners
    from tests.test_screen import screen
    from tests.thermo.test_criteria import criteria_set

    out = tmp_path / "c.h5"
    stdout = screen("stages=[candidates,bandgap,novelty,relax,references,relaxed_novelty,thermo]",
                    "candidates.chemical_systems=[[Li,Y,Cl],[Li,Mg,Cl]]", "controls=[Li3YCl6,LiF]", "threads=2",
                    f"output={out}", timeout=1200)
    with ResultStore(out, "r") as store:
        assert control_ids(store) == {"control-Li3YCl6", "control-LiF"}
        assert store.column_by_id("novelty", "reason")["control-LiF"] == "control: exempt from novelty"
        thermo = {k: store.column_by_id("thermo", k) for k in ("verdict", "e_red", "e_ox", "e_rxn_electrolyte",
                                                                "e_rxn_cathode")}
        partners = stored_partners(store)
        results = outcomes(store, STAGES)
    lgps = (partners.electrolyte_e_red_V, partners.electrolyte_e_ox_V)
    for cid in ("Li-Y-Cl-0000", "Li-Mg-Cl-0000"):
        assert thermo["verdict"][cid] == "CC" and 4.2 < thermo["e_ox"][cid] < 4.35, (cid, thermo["e_ox"][cid])
        numbers = [thermo[k][cid] for k in ("e_red", "e_ox", "e_rxn_electrolyte", "e_rxn_cathode")]
        assert classify(*numbers, lgps, criteria_set("strict")).label == "none"
        assert classify(*numbers, lgps, criteria_set("seed")).label == "CC"
    assert [r.wrong for r in results] == [[], []], [(r.control.name, r.observed) for r in results]
    assert "control Li3YCl6 (positive): as expected at every stage" in stdout
    summary = stdout.split("top reasons")[1]
    assert "\ncandidates       2 " in summary and "\nthermo           2     2 " in summary  # controls not counted
    report = (tmp_path / "c_report" / "report.md").read_text()
    assert "## Controls" in report and "`criteria=seed`" in report
    assert "control-LiF" not in report.split("## Controls")[0]


def test_the_positive_control_reaches_md_and_the_negative_one_stops_at_pes(tmp_path):
    """The funnel's end on the controls alone (the default suite's twin of preset=smoke, which reaches md through
    them): SevenNet-0 relaxes them and computes their probe grids, Li3YCl6 passes pes and gets σ(300 K) ± s.e.m. from
    the smoke MD (M3GNet, for the suite's time), LiF fails pes and is not taken by md; both as expected, and the
    report's transport plot is drawn."""
    from tests.test_screen import screen

    empty = tmp_path / "no_candidates"
    empty.mkdir()
    out = tmp_path / "end.h5"
    stdout = screen("stages=[candidates,relax,pes,md]", "candidates=files", f"candidates.path={empty}",
                    "controls=[Li3YCl6,LiF]", "md=smoke", "md.model=m3gnet", "threads=2", f"output={out}")
    with ResultStore(out, "r") as store:
        assert store.column_by_id("pes", "status") == {"control-Li3YCl6": "pass", "control-LiF": "fail"}
        assert store.ids("md") == ["control-Li3YCl6"]
        room, sem = (store.column_by_id("md", k)["control-Li3YCl6"] for k in ("sigma_room", "sigma_room_sem"))
        results = outcomes(store, STAGES)
    assert np.isfinite(room) and room > 0 and np.isfinite(sem)
    assert [r.wrong for r in results] == [[], []], [(r.control.name, r.observed) for r in results]
    assert "as expected at every stage" in stdout and "WARNING" not in stdout
    assert (tmp_path / "end_report" / "transport.png").stat().st_size > 0
