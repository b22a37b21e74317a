"""The electrolyte's window checked before the coating criteria use it (engine/thermo/electrolyte.py): a degenerate
window or one far from the published first-principles window is flagged, and criteria.electrolyte_window pins it."""

import numpy as np
import pytest
from pymatgen.core import Composition
from pymatgen.entries.computed_entries import ComputedEntry

from engine.io.store import ResultStore
from engine.references.sources import FileReferences
from engine.thermo.criteria import CoatingCriteria
from engine.thermo.electrolyte import published_window, window_warning
from engine.thermo.hulls import Hulls
from engine.thermo.judgement import partner_window
from engine.thermo.stage import Partners, stored_partners
from tests.conftest import SHARED

MP_FILE = SHARED / "refdata" / "mp-Li-Co-Ni-O-entries.json.gz"


def test_lgps_windows_against_the_published_one():
    """SevenNet-0 with the built-in references: 1.67-2.30 V (published 1.71-2.14 V): trusted. TensorNet-MatPES-PBE:
    2.24-2.24 V (issue 41): degenerate. A window 0.4 V off at one end is flagged with the source named."""
    assert published_window("Li20Ge2P4S24").source.startswith("Zhu, He & Mo")  # any formula of the composition
    assert window_warning("Li10GeP2S12", (1.67, 2.30)) == ""
    assert "degenerate" in window_warning("Li10GeP2S12", (2.24, 2.24))
    off = window_warning("Li10GeP2S12", (1.71, 2.54))
    assert "more than 0.3 V from the published 1.71 - 2.14 V" in off and "Zhu, He & Mo" in off
    assert "no finite window" in window_warning("Li10GeP2S12", (np.nan, np.nan))
    assert window_warning("Li7La3Zr2O12", (0.05, 2.91)) == ""  # not in the table: only the degenerate check applies


def test_a_partner_above_its_own_hull_gets_a_degenerate_window_and_a_warning():
    """Real pymatgen analysis on MP's Li-Co-O entries. A partner whose composition lies inside a facet of the hull
    (three decomposition products, as LGPS's Li4GeS4 + Li3PS4 + ... with TensorNet-MatPES-PBE) and whose energy the
    model puts above it is placed on the hull and is stable at one Li potential only: a degenerate window, flagged.
    LiCoO2, on the hull, keeps a wide one."""
    if not MP_FILE.is_file():
        pytest.skip(f"{MP_FILE} not present")
    entries = [p.entry for p in FileReferences(MP_FILE).phases({"Li", "Co", "O"})]
    comp = Composition("Li2CoO2")
    pd = Hulls(entries)[frozenset({"Li", "Co", "O"})]
    assert len(pd.get_decomposition(comp)) == 3
    above = ComputedEntry(comp, (pd.get_hull_energy_per_atom(comp) + 0.05) * comp.num_atoms, entry_id="above")
    hulls = Hulls([*entries, above])
    _, window, problem = partner_window([above], hulls, comp, "electrolyte", "file")
    assert problem == "" and window[1] - window[0] < 0.01, window
    assert "degenerate" in window_warning("Li2CoO2", window)
    licoo2 = partner_window(entries, hulls, Composition("LiCoO2"), "cathode", "file")[1]
    assert window_warning("LiCoO2", licoo2) == "" and licoo2[1] - licoo2[0] > 0.5


def test_a_pinned_window_is_stored_said_and_checked(tmp_path):
    with pytest.raises(ValueError, match="E_red < E_ox"):
        CoatingCriteria(electrolyte_window=[2.14, 1.71])
    partners = Partners("Li10GeP2S12", 2.24, 2.24, "LiCoO2", 3.0, 4.1, "builtin", 1.71, 2.14, True,
                        window_warning("Li10GeP2S12", (2.24, 2.24)))
    with ResultStore(tmp_path / "run.h5") as store:
        store.set_attrs("thermo", vars(partners))
        back = stored_partners(store)
    assert back == partners
    lines = back.lines()
    assert lines[1] == "the criteria use 1.71 - 2.14 V (criteria.electrolyte_window)"
    assert lines[2].startswith("WARNING: Li10GeP2S12's window is degenerate (2.24 - 2.24 V)")
    unpinned = Partners("Li10GeP2S12", 2.24, 2.24, "LiCoO2", 3.0, 4.1, "builtin", 2.24, 2.24, False,
                        window_warning("Li10GeP2S12", (2.24, 2.24)))
    assert "criteria.electrolyte_window=[1.71,2.14] pins the published window" in unpinned.lines()[-1]
