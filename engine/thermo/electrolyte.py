"""The electrolyte's stability window as the run's model gives it, checked against the published first-principles
window before the coating criteria use it.

Both coating criteria compare a candidate's window with the electrolyte's (AC: E_ox above the electrolyte's E_red;
CC: E_red below its E_ox). A model whose relaxed references put the electrolyte above its own hull collapses that
window to a point (TensorNet-MatPES-PBE with the built-in references: LGPS 2.24–2.24 V), and every verdict of the run
would be judged against it without a word. The check flags a window that is degenerate (narrower than
``DEGENERATE_V``) or whose ends lie more than ``TOLERANCE_V`` from the published ones; ``criteria.electrolyte_window``
pins the window the criteria use (the model's own stays in the file and the summary).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.core import Composition


@dataclass(frozen=True)
class PublishedWindow:
    e_red_V: float  # V vs Li/Li+
    e_ox_V: float
    source: str


# first-principles (PBE, grand-potential phase diagrams of Materials Project phases) windows of solid electrolytes
PUBLISHED = {
    "Li10GeP2S12": PublishedWindow(1.71, 2.14, "Zhu, He & Mo, ACS Appl. Mater. Interfaces 7, 23685 (2015)"),
    "Li3PS4": PublishedWindow(1.71, 2.31, "Zhu, He & Mo, ACS Appl. Mater. Interfaces 7, 23685 (2015)"),
    "Li3YCl6": PublishedWindow(0.62, 4.21, "Wang, Bai, Zhu, Li & Mo, Angew. Chem. Int. Ed. 58, 8039 (2019)"),
}
TOLERANCE_V = 0.3  # the tolerance the coating criteria themselves allow (criteria.ac_e_red_max; seed's CC side)
DEGENERATE_V = 0.05  # V: a window narrower than this is a phase above its own hull, placed on it


def published_window(formula: str) -> PublishedWindow | None:
    """The published window of ``formula`` (any formula of the same reduced composition), or None."""
    reduced = Composition(formula).reduced_formula
    return next((w for f, w in PUBLISHED.items() if Composition(f).reduced_formula == reduced), None)


def window_warning(formula: str, window: tuple[float, float]) -> str:
    """Why the electrolyte ``window`` [V vs Li/Li+] the run's model gives should not be trusted ("" when it can)."""
    e_red, e_ox = window
    if not (np.isfinite(e_red) and np.isfinite(e_ox)):
        return f"{formula} has no finite window ({e_red:.2f} - {e_ox:.2f} V)"
    if e_ox - e_red < DEGENERATE_V:
        return (f"{formula}'s window is degenerate ({e_red:.2f} - {e_ox:.2f} V): the model puts it above its own hull "
                "among the run's references")
    published = published_window(formula)
    if published and max(abs(e_red - published.e_red_V), abs(e_ox - published.e_ox_V)) > TOLERANCE_V:
        return (f"{formula}'s window {e_red:.2f} - {e_ox:.2f} V lies more than {TOLERANCE_V} V from the published "
                f"{published.e_red_V:.2f} - {published.e_ox_V:.2f} V ({published.source})")
    return ""


def advice(formula: str) -> str:
    """How to judge against the published window instead."""
    published = published_window(formula)
    if published is None:
        return "criteria.electrolyte_window=[E_red,E_ox] pins the window the criteria use"
    return (f"criteria.electrolyte_window=[{published.e_red_V},{published.e_ox_V}] pins the published window "
            f"({published.source})")
