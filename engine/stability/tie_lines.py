"""Whether a composition lies on a tie line of its phase diagram.

A composition whose hull decomposition has exactly two phases lies on the tie line between them (for a ternary
candidate: on a pseudo-binary join such as LiF–MgF2 for Li3MgF5). Above the hull it is expected to phase-separate
into those two stable phases: a mixture of two known compounds is the simplest explanation of such a candidate.
"""

from __future__ import annotations

from pymatgen.analysis.phase_diagram import PhaseDiagram
from pymatgen.core import Composition


def tie_line(pd: PhaseDiagram, composition: Composition, tol: float = 1e-6) -> tuple[str, str] | None:
    """The two stable phases (reduced formulas) whose tie line ``composition`` lies on, else None."""
    products = [e.composition.reduced_formula for e, amount in pd.get_decomposition(composition).items()
                if amount > tol]
    return tuple(sorted(products)) if len(products) == 2 else None
