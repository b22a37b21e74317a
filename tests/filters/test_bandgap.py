"""Band-gap filter: MEGNet reproduces its published values; the committee against 60 published PBE gaps and the
built-in phases; batching, verdicts, committee rules and bad inputs."""

import numpy as np
import pytest
import torch
from pymatgen.core import Composition, Lattice, Structure

from engine.filters.bandgap import CommitteeRule, committee_rows, predict_with_reasons
from engine.filters.bandgap_models import MEGNET_CSCL_PUBLISHED, CompositionBandGap, MegnetBandGap
from engine.models import ModelUnavailableError
from tests.conftest import MATGL_MODELS, make_three_structures
from tests.filters.bandgap_references import REFERENCES, acceptance_ionic_insulator

MEGNET = MATGL_MODELS / "MEGNet-MP-2019.4.1-BandGap-mfi"
needs_megnet = pytest.mark.skipif(not MEGNET.is_dir(), reason=f"{MEGNET} not present")
THRESHOLD = 0.5


@pytest.fixture(scope="module")
def megnet():
    return MegnetBandGap(str(MEGNET), fidelity=0, batch_size=2)  # batch_size 2: three structures span two batches


@pytest.fixture(scope="module")
def composition():
    return CompositionBandGap()


def committee(megnet, composition, structures):
    """The default stage's verdicts (agree_below of MEGNet and BandGap-ml) and the deciding E_g [eV]."""
    names, preds = ["megnet", "composition"], [predict_with_reasons(m, structures) for m in (megnet, composition)]
    rows = committee_rows([str(i) for i in range(len(structures))], names, np.array([p[0] for p in preds]),
                          [p[1] for p in preds], THRESHOLD)
    return rows


@needs_megnet
def test_megnet_reproduces_its_published_gaps_at_every_fidelity(megnet):
    """matgl's own example (DGL backend) gives CsCl 4.825/8.323/6.317/5.965 eV; with matgl's PyG convention
    (messages averaged into the source node) the same weights give 2.717 eV at PBE, and the load check says so."""
    cscl = Structure.from_spacegroup("Pm-3m", Lattice.cubic(4.1437), ["Cs", "Cl"], [[0, 0, 0], [0.5] * 3])
    got = []
    for fidelity in range(4):
        megnet.fidelity = fidelity
        got.append(float(megnet.predict([cscl])[0]))
    megnet.fidelity = 0
    assert np.abs(np.array(got) - MEGNET_CSCL_PUBLISHED).max() < 0.005, got

    from matgl.layers._graph_convolution import MEGNetGraphConv
    broken = MegnetBandGap(str(MEGNET))
    for block in broken.model.model.blocks:
        block.conv.__class__ = MEGNetGraphConv
    assert float(broken.predict([cscl])[0]) < 3.0  # matgl's convention on these weights
    with pytest.raises(ModelUnavailableError, match="does not reproduce its published CsCl gaps"):
        broken.check_published()


@needs_megnet
def test_committee_against_published_pbe_gaps(megnet, composition):
    """60 compounds with their Materials Project PBE gaps (tests/bandgap_references.py): the E_g > 0.5 eV decision
    is right for >= 95 % of those whose gap is not within 0.3 eV of the threshold."""
    structures = [r.structure() for r in REFERENCES]
    rows = committee(megnet, composition, structures)
    ref = np.array([r.pbe_gap for r in REFERENCES])
    passed = np.array([row.status == "pass" for row in rows])
    clear = np.abs(ref - THRESHOLD) > 0.3
    accuracy = float(np.mean(passed[clear] == (ref[clear] > THRESHOLD)))
    members = np.array([row.member_gaps for row in rows])
    mae = {name: float(np.abs(members[:, i] - ref).mean()) for i, name in enumerate(["megnet", "composition"])}
    wrong = [r.formula for r, p, c in zip(REFERENCES, passed, clear) if c and p != (r.pbe_gap > THRESHOLD)]
    print(f"\nband-gap committee: accuracy {accuracy:.3f} on {clear.sum()} compounds clear of the threshold "
          f"(wrong: {', '.join(wrong) or 'none'}); MAE vs MP PBE: MEGNet {mae['megnet']:.2f} eV, "
          f"BandGap-ml {mae['composition']:.2f} eV")
    assert len(REFERENCES) >= 40 and clear.sum() >= 40
    assert accuracy >= 0.95, wrong


@needs_megnet
def test_builtin_ionic_insulators_pass_and_elemental_metals_fail(megnet, composition):
    """Every built-in phase made of alkali, alkaline-earth, group-3/13 metals, Zr, Hf, Si or Ge at their group valence
    with F, Cl, Br, I or O passes the default committee; every elemental metal of the built-in set fails."""
    from engine.references.builtin_phases import BUILTIN

    ionic = [p for p in BUILTIN if acceptance_ionic_insulator(Composition(p.formula))]
    metals = [p for p in BUILTIN if len(p.elements) == 1 and Composition(p.formula).elements[0].is_metal]
    assert len(ionic) >= 15 and len(metals) >= 10
    rows = committee(megnet, composition, [p.build() for p in ionic + metals])
    failed = [(p.formula, r.reason) for p, r in zip(ionic, rows) if r.status != "pass"]
    passed = [(p.formula, r.band_gap) for p, r in zip(metals, rows[len(ionic):]) if r.status != "fail"]
    assert not failed and not passed, (failed, passed)


def test_committee_rules_and_reasons():
    names = ["a", "b"]
    gaps = np.array([[0.1, 2.0, 0.2, 3.0], [0.3, 0.1, 1.5, np.nan]])
    errors = [["", "", "", ""], ["", "", "", "lacks elements: Po"]]
    rows = committee_rows(list("wxyz"), names, gaps, errors, THRESHOLD)
    assert [r.status for r in rows] == ["fail", "pass", "pass", "pass"]
    assert rows[0].reason == "E_g <= 0.5 eV: a 0.10, b 0.30 eV" and rows[0].decided_by == "all" and rows[0].band_gap == 0.3
    assert rows[1].reason == "members disagree: a 2.00, b 0.10 eV" and rows[1].decided_by == "a"
    assert rows[1].spread == pytest.approx(1.9)
    assert rows[3].reason == "not evaluated by b: lacks elements: Po" and rows[3].band_gap == 3.0
    strict = committee_rows(list("wxyz"), names, gaps, errors, THRESHOLD, CommitteeRule.all_above)
    assert [r.status for r in strict] == ["fail", "fail", "fail", "pass"] and strict[1].decided_by == "b"
    none = committee_rows(["v"], names, np.full((2, 1), np.nan), [["x"], ["y"]], THRESHOLD)
    assert none[0].status == "error" and none[0].reason == "band gap: a: x; b: y"


@needs_megnet
def test_batched_megnet_matches_predict_structure(megnet):
    structures = make_three_structures()
    batched = megnet.predict(structures)
    own = [float(megnet.model.predict_structure(s, state_attr=torch.tensor([0]))) for s in structures]
    assert np.abs(batched - np.array(own)).max() < 1e-4, (batched, own)
    assert len(set(np.round(own, 3))) == 3  # three different answers, not one broadcast


@needs_megnet
def test_insulators_pass_and_metals_fail(megnet, composition):
    lif = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.03), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    li = Structure.from_spacegroup("Im-3m", Lattice.cubic(3.44), ["Li"], [[0, 0, 0]])
    rows = committee(megnet, composition, [lif, li])
    assert rows[0].status == "pass" and rows[0].member_gaps.min() > 3.0  # LiF is a wide-gap insulator
    assert rows[1].status == "fail" and rows[1].reason.startswith("E_g <=") and abs(rows[1].band_gap) < 0.3


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
    assert errors[1].startswith("prediction failed: KeyError")
    rows = committee_rows(["a", "b", "c"], ["picky"], gaps[None, :], [errors], THRESHOLD)
    assert [r.status for r in rows] == ["pass", "error", "pass"] and rows[1].reason == f"band gap: picky: {errors[1]}"


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
