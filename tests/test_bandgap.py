"""Band-gap filter: MEGNet batched equals MEGNet's own predict_structure; verdicts and bad inputs."""

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from engine.bandgap import MegnetBandGap, predict_with_reasons, verdicts
from engine.models import ModelUnavailableError

from .conftest import MATGL_MODELS, make_three_structures

MEGNET = MATGL_MODELS / "MEGNet-MP-2019.4.1-BandGap-mfi"
needs_megnet = pytest.mark.skipif(not MEGNET.is_dir(), reason=f"{MEGNET} not present")


@pytest.fixture(scope="module")
def megnet():
    return MegnetBandGap(str(MEGNET), fidelity=0, batch_size=2)  # batch_size 2: three structures span two batches


@needs_megnet
def test_batched_megnet_matches_predict_structure(megnet):
    structures = make_three_structures()
    batched = megnet.predict(structures)
    own = [float(megnet.model.predict_structure(s, state_attr=torch.tensor([0]))) for s in structures]
    assert np.abs(batched - np.array(own)).max() < 1e-4, (batched, own)
    assert len(set(np.round(own, 3))) == 3  # three different answers, not one broadcast


@needs_megnet
def test_insulators_pass_and_metals_fail(megnet):
    lif = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.03), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    li = Structure.from_spacegroup("Im-3m", Lattice.cubic(3.44), ["Li"], [[0, 0, 0]])
    gaps, errors = predict_with_reasons(megnet, [lif, li])
    status, reason = verdicts(gaps, errors, 0.5)
    assert status[0] == "pass" and gaps[0] > 3.0  # LiF is a wide-gap insulator
    assert status[1] == "fail" and reason[1].startswith("E_g:") and abs(gaps[1]) < 0.3  # bcc Li is a metal


def test_one_bad_structure_does_not_take_its_batch_with_it():
    class Picky:
        name = "picky"

        def predict(self, structures):
            if any("Po" in s.composition for s in structures):
                raise KeyError("Po")
            return np.array([float(len(s)) for s in structures])

    lif = Structure(Lattice.cubic(4.0), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    po = Structure(Lattice.cubic(3.35), ["Po"], [[0, 0, 0]])
    gaps, errors = predict_with_reasons(Picky(), [lif, po, lif])
    assert gaps[0] == gaps[2] == 2.0 and np.isnan(gaps[1])
    assert errors[1].startswith("band-gap prediction failed: KeyError")
    status, reason = verdicts(gaps, errors, 0.5)
    assert status == ["pass", "error", "pass"] and reason[1] == errors[1]


def test_missing_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(ModelUnavailableError, match="bandgap.path="):
        MegnetBandGap(str(tmp_path / "nowhere"))


def test_a_model_name_with_the_hub_out_of_reach_fails_at_once(monkeypatch):
    """Without HF_HUB_OFFLINE and without a network, a by-name load of a model that is not shipped stops at once
    (matgl's hub client would retry for about 45 s) with the message that says how to give the weights offline."""
    import matgl

    from engine.models import base as models

    for var in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)

    def no_network(*args, **kwargs):
        raise OSError("Name or service not known")

    def hub_asked(*args, **kwargs):
        raise AssertionError("the hub was asked")

    monkeypatch.setattr(models.socket, "create_connection", no_network)
    monkeypatch.setattr(matgl, "load_model", hub_asked)
    assert not models.hub_reachable()
    with pytest.raises(ModelUnavailableError, match="out of reach.*bandgap.path="):
        MegnetBandGap("MEGNet-MP-2018.6.1-Eform")  # a matgl name that is not shipped
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")  # behind a proxy the hub client is left to try
    assert models.hub_reachable()
