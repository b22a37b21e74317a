"""Each shipped uMLIP against the Materials Project's DFT energies at MP's own geometries.

Agreement with the package's ASE calculator (test_models.py) cannot catch a defect the package itself has: matgl
4.1.2's PyG port of M3GNet sums messages into the wrong end of each edge, and its own ``PESCalculator`` then puts
Li2O 3.4 eV/atom above MP. Reference values: the MP2020-corrected GGA / GGA+U energies of MP entries in
``../shared/refdata/mp-Li-Co-Ni-O-entries.json.gz`` — mp-1960 Li2O, mp-135 Li, mp-1009490 O2, mp-19079 CoO,
mp-22526 LiCoO2 — against each model's energies with the correction its config names (``correction``: MP2020 for
raw MPtrj energies; none for CHGNet, trained on corrected ones). Models trained on MP relaxations (MPtrj, MPF)
reproduce these within about 0.05–0.15 eV/atom, the elements within 0.05; a wrong correction scheme moves CoO by
1.2 eV/atom.
"""

import logging

import numpy as np
import pytest
import torch

from engine.core.structures import pack
from engine.models import load_model, model_config
from engine.references.sources import read_entries
from engine.thermo.hulls import apply_correction, correction_of, model_entry
from tests.conftest import SHARED

ENTRIES = ["mp-1960-GGA", "mp-135-GGA", "mp-1009490-GGA", "mp-19079-GGA+U", "mp-22526-GGA+U"]
MP_TRAINED = ["sevennet_0", "chgnet", "m3gnet"]


@pytest.fixture(scope="module")
def mp_entries():
    by_id = {e.entry_id: e for e in read_entries(SHARED / "refdata" / "mp-Li-Co-Ni-O-entries.json.gz")}
    return [by_id[i] for i in ENTRIES]


def deviations(loaded, entries, correction: str = "mp2020") -> dict[str, float]:
    """Model energy, corrected with ``correction``, minus MP's corrected energy [eV/atom] per entry, all in one
    batch."""
    state = pack([e.structure for e in entries], device="cpu", dtype=loaded.model.dtype)
    energy = loaded.model(state)["energy"].double().numpy()
    model = [model_entry(e.structure, energy[i], e.entry_id) for i, e in enumerate(entries)]
    corrected, dropped = apply_correction(model, correction)
    assert not dropped, dropped
    return {e.entry_id: c.energy_per_atom - e.energy_per_atom for c, e in zip(corrected, entries)}


@pytest.mark.parametrize("name", MP_TRAINED)
def test_mp_trained_models_reproduce_mp_energies(name, mp_entries, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(2)
    cfg = model_config(name)
    dev = deviations(load_model(cfg), mp_entries, correction_of(cfg, "mp2020"))
    print(name, {k: round(v, 3) for k, v in dev.items()})
    assert max(abs(dev[i]) for i in ("mp-135-GGA", "mp-1009490-GGA")) < 0.05, dev
    assert max(abs(v) for v in dev.values()) < 0.2, dev
    assert np.mean(np.abs(list(dev.values()))) < 0.1, dev


def test_m3gnet_as_matgl_ships_it_is_far_off_and_the_restored_aggregation_is_what_fixes_it(mp_entries, monkeypatch):
    """The fix is the restored destination sum, not something else: undone on the loaded instance, Li2O is again
    more than 2 eV/atom off."""
    from matgl.layers._graph_convolution import M3GNetGraphConv

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_model(model_config("m3gnet"))
    assert loaded.variant == "destination-sum aggregation" and loaded.provenance()["variant"] == loaded.variant
    fixed = deviations(loaded, mp_entries)["mp-1960-GGA"]
    for layer in loaded.model.potential.modules():
        if isinstance(layer, M3GNetGraphConv):
            layer.__class__ = M3GNetGraphConv
    assert abs(fixed) < 0.1 and abs(deviations(loaded, mp_entries)["mp-1960-GGA"]) > 2.0


def test_tensornet_matpes_li2o_is_flagged_when_it_is_far_from_mp(mp_entries, monkeypatch, caplog):
    """TensorNet-MatPES-PBE under matgl 4.1.2 (measured 2026-12-03): Li and O2 within 0.02 eV/atom of MP, Li2O
    +1.59 eV/atom — its formation energies are wrong, cause not found. The load says so in the log; the test fails
    once a matgl version computes Li2O right (then drop the warning's documentation and this test's expectation)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with caplog.at_level(logging.WARNING, logger="engine.models.matgl"):
        loaded = load_model(model_config("tensornet_matpes"))
    dev = deviations(loaded, mp_entries)
    assert abs(dev["mp-135-GGA"]) < 0.05 and abs(dev["mp-1009490-GGA"]) < 0.05
    assert dev["mp-1960-GGA"] > 1.0 and "Li2O lies" in caplog.text
