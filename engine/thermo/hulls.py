"""Thermodynamic and electrochemical analysis on uMLIP energies with pymatgen, one function per concept.

- E_hull: distance to the convex hull (pymatgen ``PhaseDiagram``) of the candidate's chemical system, built from
  the reference phases and, optionally, all candidates of the run.
- Electrochemical stability window vs Li/Li+: the grand-potential method of Ong, Wang, Kang & Ceder, Chem. Mater.
  20, 1798 (2008), as pymatgen implements it (``PhaseDiagram.get_element_profile``): the range of Li chemical
  potential over which the composition takes up or releases no Li.
- Chemical mixing energy: Richards, Miara, Wang, Kim & Ceder, Chem. Mater. 28, 266 (2016), with pymatgen's
  ``InterfacialReactivity``: the most negative reaction energy per atom over all mixing ratios.

The entries and their energy corrections are :mod:`engine.core.corrections`. Entries that carry their own
corrections (``energies: source`` with MP data) are taken as they are.

Windows and mixing energies of a phase above its hull (a candidate that passed the E_hull cut, or LGPS whose
model energy may lie slightly above Li4GeS4 + 2 Li3PS4) are computed with the phase placed on the hull, 0.1 meV/atom
below it: the window is then that of the phase if it is stable, and the mixing energy measures its reaction with
the partner rather than its own decomposition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from pymatgen.analysis.interface_reactions import InterfacialReactivity
from pymatgen.analysis.phase_diagram import PhaseDiagram
from pymatgen.core import Composition, Element
from pymatgen.entries.computed_entries import ComputedEntry

from engine.core.corrections import chemsys
from engine.references.prototypes import binary_edges, is_prototype

ON_HULL_MARGIN = 1e-4  # eV/atom below the hull for a phase "placed on the hull"


def needed_systems(formulas: Sequence[str], partners: Sequence[str]) -> set[frozenset[str]]:
    """Chemical systems of the candidates' ``formulas``, of the ``partners`` and of each candidate with each
    partner."""
    partner_systems = {chemsys(Composition(p)) for p in partners}
    systems = set(partner_systems)
    for formula in set(formulas):
        cs = chemsys(Composition(formula))
        systems |= {cs} | {cs | p for p in partner_systems}
    return systems


# ---- hulls, windows, mixing ------------------------------------------------------------------------------------

def missing_elements(entries: Iterable[ComputedEntry], elements: Iterable[str]) -> list[str]:
    """Elements of ``elements`` that have no elemental reference among ``entries``."""
    have = {e.composition.elements[0].symbol for e in entries if len(e.composition.elements) == 1}
    return sorted(set(elements) - have)


class Hulls:
    """One ``PhaseDiagram`` per chemical system, built once from the entries that lie inside it.

    Prototype references (entry ids ``proto:…``, :mod:`engine.references.prototypes`) fill the binary edges of the
    candidates' and partners' own systems; with ``all_prototype_edges`` false (``references.prototype_edges:
    candidates``) a candidate's :meth:`mixing` hull keeps only the prototypes of its own and its partner's edges, so
    that its reaction with a partner does not depend on which other candidates the run holds (and a shard gives the
    unsharded run's numbers)."""

    def __init__(self, entries: Sequence[ComputedEntry], all_prototype_edges: bool = False):
        self.entries = list(entries)
        self.all_prototype_edges = all_prototype_edges
        self._pds: dict[tuple, PhaseDiagram] = {}

    def entries_in(self, elements: Iterable[str]) -> list[ComputedEntry]:
        allowed = set(elements)
        return [e for e in self.entries if chemsys(e.composition) <= allowed]

    def __getitem__(self, elements: Iterable[str]) -> PhaseDiagram:
        return self._hull(frozenset(elements), None)

    def mixing(self, system: frozenset[str], partner: frozenset[str]) -> PhaseDiagram:
        """The hull of ``system`` and ``partner`` together (a candidate's and its partner's chemical systems)."""
        edges = None if self.all_prototype_edges else frozenset(binary_edges([system, partner]))
        return self._hull(system | partner, edges)

    def _hull(self, key: frozenset[str], edges: frozenset | None) -> PhaseDiagram:
        if (key, edges) not in self._pds:
            entries = [e for e in self.entries_in(key) if edges is None or not is_prototype(e.entry_id)
                       or chemsys(e.composition) in edges]
            missing = missing_elements(entries, key)
            if missing:
                raise MissingReferencesError(key, missing)
            self._pds[key, edges] = PhaseDiagram(entries, elements=[Element(e) for e in sorted(key)])
        return self._pds[key, edges]


class MissingReferencesError(KeyError):
    def __init__(self, system: Iterable[str], missing: Sequence[str]):
        self.system, self.missing = "-".join(sorted(system)), list(missing)
        super().__init__(f"no reference for {' '.join(self.missing)} in {self.system}")


def e_above_hull(pd: PhaseDiagram, entry: ComputedEntry) -> tuple[float, str]:
    """E_hull [eV/atom] (negative: below the references' hull) and the decomposition products, e.g.
    "0.667 LiF + 0.333 AlF3" (atom fractions)."""
    decomp, e_hull = pd.get_decomp_and_e_above_hull(entry, allow_negative=True)
    products = " + ".join(f"{amt:.3g} {e.composition.reduced_formula}"
                          for e, amt in sorted(decomp.items(), key=lambda kv: -kv[1]))
    return float(e_hull), products


def placed_on_hull(entry: ComputedEntry, pd: PhaseDiagram, margin: float = ON_HULL_MARGIN) -> ComputedEntry:
    """``entry`` itself if it lies below the hull of ``pd`` by more than ``margin`` eV/atom, else a copy whose
    energy is ``margin`` eV/atom below the hull."""
    hull = pd.get_hull_energy_per_atom(entry.composition)
    if entry.energy_per_atom <= hull - margin:
        return entry
    n = entry.composition.num_atoms
    return ComputedEntry(entry.composition, (hull - margin) * n, entry_id=f"{entry.entry_id}:on-hull")


def stability_window(pd: PhaseDiagram, composition: Composition, element: str = "Li") -> tuple[float, float]:
    """(E_red, E_ox) [V vs the element's metal] of ``composition``: the chemical-potential range over which it
    neither takes up nor releases ``element`` (Ong et al. 2008). NaN, NaN where it does so at every potential
    (it is not stable in ``pd``)."""
    el = Element(element)
    mu0 = pd.el_refs[el].energy_per_atom
    profile = pd.get_element_profile(el, composition)
    # profile[k]: decomposition at the k-th critical composition, valid for mu between profile[k+1]["chempot"]
    # (below) and profile[k]["chempot"] (above); chempots decrease with k, the last range is open below.
    for k, step in enumerate(profile):
        if abs(step["evolution"]) < 1e-6:
            mu_high = step["chempot"]
            mu_low = profile[k + 1]["chempot"] if k + 1 < len(profile) else -np.inf
            return float(-(mu_high - mu0)), float(-(mu_low - mu0))
    return np.nan, np.nan


def window_of(entry: ComputedEntry, pd: PhaseDiagram, element: str = "Li") -> tuple[float, float]:
    """Stability window of ``entry`` placed on the hull of ``pd``."""
    placed = placed_on_hull(entry, pd)
    if placed is entry and entry in pd.all_entries:
        return stability_window(pd, entry.composition, element)
    pd_with = PhaseDiagram([*pd.all_entries, placed], elements=pd.elements)
    return stability_window(pd_with, entry.composition, element)


def mixing_energy(pd: PhaseDiagram, a: Composition, b: Composition) -> tuple[float, float, str]:
    """Most negative reaction energy [eV/atom of the mixture] of ``a`` with ``b`` over all mixing ratios, the
    molar fraction of ``a`` where it occurs, and the reaction (Richards et al. 2016). Both reactants at their
    hull energies in ``pd`` (a phase below the references' hull must be among ``pd``'s entries)."""
    ir = InterfacialReactivity(a, b, pd, norm=True, use_hull_energy=True)
    x, energy = ir.minimum
    reaction = ""
    for _, kx, kenergy, rxn, *_ in ir.get_kinks():
        if abs(kx - x) < 1e-9:
            reaction = str(rxn)
            break
    return float(energy), float(x), reaction


def pd_with(pd: PhaseDiagram, entries: Sequence[ComputedEntry]) -> PhaseDiagram:
    """``pd`` with ``entries`` added (only those below its hull change it)."""
    below = [e for e in entries if pd.get_hull_energy_per_atom(e.composition) - e.energy_per_atom > 1e-9]
    if not below:
        return pd
    return PhaseDiagram([*pd.all_entries, *below], elements=pd.elements)
