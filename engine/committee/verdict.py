"""The committee's verdict on one candidate from its members' thermo verdicts, each on that member's own hull.

Raw energies of different universal potentials are not comparable (each has its own elemental reference energies);
each member's E_hull on a hull built from its own energies is (Riebesell et al., Matbench Discovery, Nat. Mach.
Intell. 7, 836 (2025)). The errors of different uMLIPs are only weakly correlated, so their disagreement on E_hull is
a usable warning that a verdict depends on the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AGREED, SPLIT, REJECTED, UNJUDGED = "agreed", "split", "rejected by committee", "n/a"


@dataclass(frozen=True)
class CommitteeVerdict:
    verdict: str  # agreed | split | rejected by committee | n/a
    e_hull_spread: float  # eV/atom, largest minus smallest member's E_hull (NaN: fewer than two members judged)
    e_hull_std: float  # eV/atom, population standard deviation over the members that judged
    reason: str


def committee_verdict(e_hull: np.ndarray, passes: np.ndarray, jury: np.ndarray, max_spread: float,
                      labels: list[str]) -> CommitteeVerdict:
    """The verdict of the members with a finite ``e_hull`` [eV/atom, (n_members,)] whose thermo verdicts are
    ``passes`` (a coating verdict, AC or CC); ``jury`` marks the members other than the model that proposed the
    candidate (the run's own). ``agreed``: every member that judged passes and their E_hull spread is at most
    ``max_spread`` eV/atom; ``rejected by committee``: no jury member passes; ``split``: anything between.
    ``n/a`` when no jury member could judge (each member's reason is in the row)."""
    judged = np.isfinite(e_hull)
    if not (judged & jury).any():
        return CommitteeVerdict(UNJUDGED, np.nan, np.nan, "no committee member could judge it")
    values = e_hull[judged]
    spread = float(values.max() - values.min()) if len(values) > 1 else np.nan
    std = float(values.std()) if len(values) > 1 else np.nan
    failing = [lab for lab, j, p in zip(labels, judged, passes) if j and not p]
    if not failing and not spread > max_spread:
        return CommitteeVerdict(AGREED, spread, std, "")
    if not (passes & judged & jury).any():
        return CommitteeVerdict(REJECTED, spread, std, f"no committee member passes it (fails with {', '.join(failing)})")
    why = [f"fails with {', '.join(failing)}"] if failing else []
    if spread > max_spread:
        why.append(f"E_hull spread {spread:.3f} > {max_spread} eV/atom")
    return CommitteeVerdict(SPLIT, spread, std, "; ".join(why))
