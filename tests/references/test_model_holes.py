"""A reference phase that fell into a hole of the model is left out of every hull (references.min_formation_energy)."""

import pytest
from pymatgen.entries.computed_entries import ComputedEntry

from engine.core.corrections import below_formation_floor, corrected_references
from engine.references.sources import ReferencesSettings


def test_a_collapsed_prototype_is_left_out_with_its_reason_and_real_phases_stay():
    """TensorNet-MatPES-PBE relaxed the Ge3P4 prototype into a 4.3 Å³/atom collapse at -16.26 eV/atom (Ge -4.43, P
    -5.31 eV/atom): a formation energy of -11.33 eV/atom, which put LGPS 0.82 eV/atom above its hull. GeP at a sane
    -0.3 eV/atom stays, as do the elements and a compound whose elements have no entry here."""
    entries = [ComputedEntry("Ge", -4.431, entry_id="Ge"), ComputedEntry("P", -5.308, entry_id="P"),
               ComputedEntry("Ge3P4", -16.263 * 7, entry_id="proto:Ge3P4"),
               ComputedEntry("GeP", (-4.431 - 5.308) - 0.6, entry_id="GeP"),
               ComputedEntry("Li3PS4", -4.6 * 8, entry_id="Li3PS4")]
    kept, holes = below_formation_floor(entries, ReferencesSettings().min_formation_energy)
    assert [e.entry_id for e in kept] == ["Ge", "P", "GeP", "Li3PS4"]
    assert list(holes) == ["proto:Ge3P4"]
    assert holes["proto:Ge3P4"].startswith("unphysical: formation energy -11.33 eV/atom below")
    # what the references stage and every committee member call: the same phases left out, with the same reasons
    assert corrected_references(entries, "none", ReferencesSettings().min_formation_energy) == (kept, holes)


def test_the_floor_lies_below_every_known_solid():
    """The most negative formation energies of real solids are about -4.5 eV/atom (fluorides of the rare earths);
    LiF, the default run's negative control, is -3.2 eV/atom (MP): the default floor must not touch them."""
    floor = ReferencesSettings().min_formation_energy
    assert floor == pytest.approx(-5.0)
    entries = [ComputedEntry("Li", -1.9, entry_id="Li"), ComputedEntry("F", -1.9, entry_id="F"),
               ComputedEntry("LiF", 2 * (-1.9 - 3.2), entry_id="LiF")]
    assert below_formation_floor(entries, floor)[1] == {}
