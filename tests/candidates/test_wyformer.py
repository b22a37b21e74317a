"""WyFormer end to end offline: a tiny model trained here with the package's own trainer, saved as a model folder,
generates valid Li ternaries through the adapter and through ``python -m engine.screen candidates=wyformer``."""

import numpy as np
import pytest
from monty.serialization import loadfn
from omegaconf import OmegaConf

from engine.candidates.stage import load_candidates, validity
from engine.candidates.wyformer import MODEL_FILES, load_wyformer
from engine.io.store import ResultStore
from engine.models import ModelUnavailableError
from tests.conftest import SHARED
from tests.test_screen import screen

wyckoff_transformer = pytest.importorskip("wyckoff_transformer")
ENTRIES = SHARED / "refdata" / "mp-Li-Co-Ni-O-entries.json.gz"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    if not ENTRIES.is_file():
        pytest.skip(f"{ENTRIES} not present")
    from tests.candidates.wyformer_fixture import train_tiny_wyformer

    entries = loadfn(ENTRIES)
    ternaries = [e.structure for e in entries
                 if {el.symbol for el in e.composition.elements} == {"Li", "Co", "O"} and len(e.structure) <= 24]
    work = tmp_path_factory.mktemp("wyformer")
    return train_tiny_wyformer(ternaries[:60], work / "store", work / "tiny-wyformer", epochs=300)


def cfg(model_path, **kw):
    base = {"source": "wyformer", "model": None, "model_path": str(model_path), "n_structures": 6,
            "samples_per_round": 200, "max_rounds": 10, "temperature": 1.0, "required_elements": ["Li"],
            "allowed_elements": ["Li", "Co", "O", "F"], "n_elements": 3, "pyxtal_attempts": 10, "max_atoms": 80,
            "seed": 0, "min_distance": 0.7}
    return OmegaConf.create({**base, **kw})


def test_tiny_wyformer_generates_valid_li_ternaries(tiny_model):
    assert all((tiny_model / f).is_file() for f in MODEL_FILES)
    cands = load_candidates(cfg(tiny_model))
    assert len(cands) == 6
    built = [c for c in cands if c.structure is not None]
    assert len(built) >= 4, [c.reason for c in cands]
    for c in built:
        elements = {el.symbol for el in c.structure.composition.elements}
        assert "Li" in elements and len(elements) == 3 and elements <= {"Li", "Co", "O", "F"}, c.structure
        assert c.source.startswith("wyformer:sg")
    status, reason, d_min = validity(built, 0.7)
    assert status.count("pass") >= 3, list(zip(status, reason, d_min))
    again = load_candidates(cfg(tiny_model))  # seeded: the same genes and structures
    assert [c.source for c in again] == [c.source for c in cands]
    for a, b in zip(again, cands):
        if a.structure is not None:
            assert np.allclose(a.structure.frac_coords, b.structure.frac_coords)


def test_screen_with_wyformer_candidates(tiny_model, tmp_path):
    out = tmp_path / "wy.h5"
    screen("stages=[candidates]", "candidates=wyformer", f"candidates.model_path={tiny_model}",
           "candidates.n_structures=4", "candidates.samples_per_round=200", "candidates.allowed_elements=[Li,Co,O]",
           f"output={out}", "threads=1")
    with ResultStore(out, "r") as store:
        assert len(store.ids("candidates")) == 4
        sources = store.column("candidates", "source")
        assert all(s.startswith("wyformer:sg") for s in sources)
        assert store.ids("candidates", status="pass")


def test_missing_model_folder_says_what_it_needs(tmp_path):
    with pytest.raises(ModelUnavailableError, match="best_model_params.pt"):
        load_wyformer(None, str(tmp_path), "cpu")
    with pytest.raises(ModelUnavailableError, match="model_path"):
        load_wyformer(None, None, "cpu")
