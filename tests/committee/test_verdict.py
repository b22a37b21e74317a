"""The committee's verdict from its members' E_hull [eV/atom] and thermo verdicts."""

import numpy as np

from engine.committee.verdict import AGREED, REJECTED, SPLIT, UNJUDGED, committee_verdict

LABELS = ["run", "a", "b"]
JURY = np.array([False, True, True])


def test_agreeing_members_within_the_spread_agree():
    v = committee_verdict(np.array([0.01, 0.03, 0.05]), np.array([True, True, True]), JURY, 0.1, LABELS)
    assert v.verdict == AGREED and np.isclose(v.e_hull_spread, 0.04) and np.isclose(v.e_hull_std, np.std([0.01, 0.03, 0.05]))


def test_members_that_disagree_by_more_than_the_spread_are_split_even_when_all_pass():
    v = committee_verdict(np.array([0.0, 0.15, 0.05]), np.array([True, True, True]), JURY, 0.1, LABELS)
    assert v.verdict == SPLIT and "spread 0.150 > 0.1" in v.reason


def test_one_failing_member_splits_and_no_passing_jury_member_rejects():
    split = committee_verdict(np.array([0.0, 0.25, 0.05]), np.array([True, False, True]), JURY, 1.0, LABELS)
    assert split.verdict == SPLIT and "fails with a" in split.reason
    rejected = committee_verdict(np.array([0.0, 0.25, 0.3]), np.array([True, False, False]), JURY, 1.0, LABELS)
    assert rejected.verdict == REJECTED and "a, b" in rejected.reason


def test_a_member_that_could_not_judge_is_left_out_and_no_jury_is_no_verdict():
    left_out = committee_verdict(np.array([0.0, np.nan, 0.02]), np.array([True, False, True]), JURY, 0.1, LABELS)
    assert left_out.verdict == AGREED and np.isclose(left_out.e_hull_spread, 0.02)
    none = committee_verdict(np.array([0.0, np.nan, np.nan]), np.array([True, False, False]), JURY, 0.1, LABELS)
    assert none.verdict == UNJUDGED
