"""The report: cumulative funnel counts, coating tables and the three PNGs, from a run file."""

import json

import numpy as np
import yaml
from PIL import Image

from engine.config import from_stored
from engine.filters.bandgap import committee_rows
from engine.io.report import funnel, markdown, write_report
from engine.io.store import ResultStore, row_columns
from engine.thermo.stage import ThermoRow


def make_run(path):
    """A run file with known outcomes: 6 candidates, one failing at each filter."""
    ids = [f"c{i}" for i in range(6)]
    cfg = {"candidates": {"min_distance": 0.7}, "bandgap": {"threshold": 0.5},
           "criteria": {"e_hull_max": 0.2, "ac_e_red_max": 0.3, "cc_e_ox_min": 4.5, "e_rxn_min": -0.2},
           "md": {"production_ps": 100.0, "framework_msd_max": 2.0, "sigma_min": 1e-6}}
    with ResultStore(path) as s:
        s.write_metadata(yaml.safe_dump(cfg), {}, {})
        s.append("candidates", ids, ["fail"] + ["pass"] * 5, ["d_min: 0.5 Å <= 0.7 Å"] + [""] * 5,
                 columns={"formula": ["LiF", "Li3AlF6", "Li2ZrCl6", "LiYCl4", "Li3YCl6", "LiAlCl4"]})
        members = ["megnet", "composition"]  # c1 fails on agreement, c3 passes on composition's word alone
        gaps = np.array([[0.1, 5.0, 0.2, 5.0, 5.0], [0.2, 4.0, 4.0, 5.0, 5.0]])
        s.append_rows("bandgap", committee_rows(ids[1:], members, gaps, [[""] * 5] * 2, 0.5))
        s.set_attrs("bandgap", {"members": json.dumps(members), "rule": "agree_below"})
        s.append("novelty", ids[2:], ["fail", "fail", "pass", "pass"], ["duplicate of c1", "known: mp-1", "", ""],
                 columns={"duplicate_of": ["c1", "", "", ""], "known_as": ["", "mp-1", "", ""]})
        s.append("relax", ids[4:], ["pass", "pass"], ["", ""])
        thermo = {k: np.array([0.05, 0.3]) for k, _ in row_columns(ThermoRow)}
        thermo.update(e_red=np.array([0.1, 1.0]), e_ox=np.array([4.2, 4.0]), anode_coating=np.array([True, False]),
                      cathode_coating=np.array([False, False]), below_hull=np.array([False, False]))
        for k in ("decomposition", "reaction_electrolyte", "reaction_cathode", "verdict", "hull_lacks"):
            thermo[k] = ["", ""]
        s.append("thermo", ids[4:], ["pass", "fail"], ["", "E_hull"], columns=thermo)
        s.append("pes", ids[4:5], ["pass"], [""])
        s.append("md", ids[4:5], ["pass"], [""], columns={"sigma": [2e-2], "d_framework": [1e-4],
                                                           "sigma_room": [3e-4], "sigma_room_sem": [5e-5]})


def test_funnel_counts_are_cumulative_and_the_files_are_written(tmp_path):
    run = tmp_path / "run.h5"
    make_run(run)
    with ResultStore(run, "r") as store:
        steps = funnel(store, from_stored(store.metadata()["config"]))
    assert [(s.criterion.split(" ")[0], s.passed) for s in steps] == [
        ("candidates", 6), ("valid:", 5), ("E_g", 4), ("unique", 3), ("novel", 2), ("relaxed", 2),
        ("unique", None),  # relaxed_novelty: configured (a default stage) but not in this file: "stage not run"
        ("E_hull", 1), ("not", 1), ("anode", 1),
        ("typical", None), ("GII", None), ("not", None), ("no", None),  # plausibility and phonons: not in this file
        ("Li", 1), ("MD:", 1)]
    paths = write_report(run)
    text = paths["report"].read_text()
    assert "| c4 | Li3YCl6 |" in text and "3.00e-04 ± 5.0e-05" in text  # the AC table row with σ(300 K)
    assert "Cathode-coating candidates (CC)" in text and "| none |" in text
    assert "Below the reference hull" not in text
    assert "| E_g > 0.5 eV | 4 (agree_below of megnet, composition; 1 passed on one member's word) |" in text
    assert "| every member (agreed) | 3 | 1 |" in text and "| composition | 1 | 0 |" in text
    for key in ("funnel", "bandgap", "transport", "windows"):
        with Image.open(paths[key]) as img:
            assert img.size[0] > 300 and img.size[1] > 200


def test_candidates_below_the_hull_are_listed_apart_with_the_edges_their_hull_lacks(tmp_path):
    run = tmp_path / "run.h5"
    make_run(run)
    with ResultStore(run, "r") as store:
        text = markdown(store, [], [], [], [{"id": "c9", "formula": "LiS3Br2", "e_hull": -0.29,
                                             "decomposition": "S + LiBr", "hull_lacks": "Br-S"}])
    section = text.split("## Below the reference hull (not judged)")[1]
    assert "| c9 | LiS3Br2 | -0.290 | S + LiBr | Br-S |" in section


def test_the_committee_columns_and_plot_are_in_the_report(tmp_path):
    """Per-member E_hull, the spread and the verdict in the coating table; the committee's counts and its plot."""
    from engine.committee.stage import CommitteeRow

    run = tmp_path / "run.h5"
    make_run(run)
    with ResultStore(run) as s:
        s.set_attrs("committee", {"models": json.dumps(["7net-0 (run)", "chgnet", "m3gnet"])})
        s.append_rows("committee", [CommitteeRow(
            "c4", "fail", "E_hull spread 0.180 > 0.1 eV/atom", verdict="split",
            e_hull=np.array([0.05, 0.23, 0.09]), passes=np.array([True, False, True]), e_hull_spread=0.18,
            e_hull_std=0.075, e_red=np.full(3, np.nan), e_ox=np.full(3, np.nan),
            e_rxn_electrolyte=np.full(3, np.nan), e_rxn_cathode=np.full(3, np.nan))])
    paths = write_report(run)
    text = paths["report"].read_text()
    assert "E_hull chgnet (eV/atom)" in text and "E_hull spread (eV/atom)" in text
    row = next(line for line in text.splitlines() if line.startswith("| c4 |"))
    assert "0.230" in row and "0.090" in row and "0.180" in row and "split" in row
    with Image.open(paths["committee"]) as img:
        assert img.size[0] > 300
