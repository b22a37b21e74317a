"""Prototype completion of binary edges (engine/prototypes.py)."""

import numpy as np
import pytest
from pymatgen.core import Composition, Species

from engine.candidates.stage import SEED_SYSTEMS
from engine.references.prototypes import binary_edges, edge_phases, stoichiometries
from engine.references.sources import BuiltinReferences, prototype_phases
from engine.references.stage import completed_edges, needed_systems


def test_an_ionic_edge_gets_every_charge_balanced_stoichiometry_in_its_prototypes():
    # Zr: 2+, 3+, 4+ (common and ICSD states): the reductions of ZrCl4 that a window needs
    assert {(m, n) for _, _, m, n, _ in stoichiometries("Zr", "Cl")} == {(1, 2), (1, 3), (1, 4)}
    phases = edge_phases("Cl", "Zr")  # either order
    formulas = {p.structure.composition.reduced_formula for p in phases}
    assert formulas == {"ZrCl2", "ZrCl3", "ZrCl4"}
    names = {p.id for p in phases}
    assert {"proto:ZrCl2-CdI2", "proto:ZrCl2-rutile", "proto:ZrCl3-BiI3", "proto:ZrCl4-ordered-hcp"} <= names
    for p in phases:  # scaled: the shortest Zr–Cl distance is the sum of the Shannon radii of the ions
        s = p.structure
        comp = Composition(s.composition.reduced_formula)
        q = round(comp["Cl"] / comp["Zr"])  # the Zr charge of ZrCl_q
        if Species("Zr", q).ionic_radius is None:  # pymatgen has Shannon radii for Zr4+ only
            continue
        d = s.distance_matrix[np.ix_([i for i, x in enumerate(s) if x.specie.symbol == "Zr"],
                                     [i for i, x in enumerate(s) if x.specie.symbol == "Cl"])].min()
        assert d == pytest.approx(Species("Zr", q).ionic_radius + Species("Cl", -1).ionic_radius, abs=1e-6), p.id


def test_metal_pairs_get_intermetallic_prototypes_and_lithium_anions_too_rich_fall_back_to_them():
    assert {p.id for p in edge_phases("Li", "Al")} == {"proto:LiAl-CsCl", "proto:Li3Al-Cu3Au", "proto:LiAl3-Cu3Au"}
    # Ge as Ge4- gives Li4Ge, which no close-packed Ge lattice holds: the edge still gets phases
    assert {p.structure.composition.reduced_formula for p in edge_phases("Li", "Ge")} == {"LiGe", "Li3Ge", "LiGe3"}


def test_prototypes_of_every_edge_of_the_default_systems_are_sane():
    edges = binary_edges(SEED_SYSTEMS + [["Li", "Ge", "P", "S"], ["Li", "Co", "O"]])
    assert len(edges) == 24
    for edge in edges:
        phases = edge_phases(*sorted(edge))
        assert phases, edge
        for p in phases:
            s = p.structure
            assert {el.symbol for el in s.composition.elements} == set(edge), p.id
            d = s.distance_matrix + 99 * np.eye(len(s))
            assert d.min() > 1.2, p.id  # no overlapping atoms
            assert s.volume / len(s) < 80, p.id  # not blown up


def test_completion_adds_only_phases_the_builtin_set_lacks_and_covers_the_candidates_edges():
    systems = needed_systems(["Li2ZrCl6"], ["Li10GeP2S12", "LiCoO2"])
    known = [p for s in systems for p in BuiltinReferences().phases(s)]
    edges = completed_edges(["Li2ZrCl6"], ["Li10GeP2S12", "LiCoO2"], systems, "candidates")
    assert frozenset({"Zr", "Cl"}) in edges and frozenset({"Zr", "S"}) not in edges
    assert frozenset({"Zr", "S"}) in completed_edges(["Li2ZrCl6"], ["Li10GeP2S12"], systems, "all")
    added = prototype_phases(edges, known)
    ids = {p.id for p in added}
    assert "proto:LiCl-CsCl" in ids and "proto:LiCl-rocksalt" not in ids  # builtin:LiCl-rocksalt exists
    assert all(p.source == "prototype" for p in added)
    with pytest.raises(ValueError, match="candidates or all"):
        completed_edges(["Li2ZrCl6"], [], systems, "some")
