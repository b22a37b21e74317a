"""Reference sources: file (real MP data), mp_api (everything around the network call), builtin."""

import importlib.util

import pytest
from omegaconf import OmegaConf
from pymatgen.core import Composition, Lattice, Structure

from engine.references.builtin_phases import BUILTIN
from engine.references.cache import structure_key
from engine.references.sources import (
    BuiltinReferences,
    FileReferences,
    MPAPIReferences,
    ReferenceUnavailableError,
    read_entries,
    reference_source,
)
from tests.conftest import SHARED

MP_FILE = SHARED / "refdata" / "mp-Li-Co-Ni-O-entries.json.gz"


@pytest.fixture(scope="module")
def mp_entries():
    if not MP_FILE.is_file():
        pytest.skip(f"{MP_FILE} not present")
    return read_entries(MP_FILE)


def test_file_source_filters_by_chemical_system(mp_entries):
    src = FileReferences(MP_FILE)
    li_co_o = src.phases({"Li", "Co", "O"})
    assert len(li_co_o) == 457 and len(mp_entries) == 775
    assert all(p.elements <= {"Li", "Co", "O"} and p.structure is not None for p in li_co_o)
    assert {p.id for p in src.phases({"Co", "O"})} < {p.id for p in li_co_o}
    assert "e_above_hull" in li_co_o[0].entry.data


class FakeMPRester:
    """Stands in for mp_api.client.MPRester: answers from the MP file, counts calls."""
    calls = 0

    def __init__(self, api_key, entries):
        assert api_key == "test-key"
        self.entries = entries

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def get_entries_in_chemsys(self, elements, additional_criteria=None):
        FakeMPRester.calls += 1
        assert additional_criteria == {"thermo_types": ["GGA_GGA+U"]}
        return [e for e in self.entries if {el.symbol for el in e.composition.elements} <= set(elements)]


def test_mp_api_fetches_once_and_caches_as_a_file(tmp_path, mp_entries):
    FakeMPRester.calls = 0
    src = MPAPIReferences(tmp_path, api_key="test-key", client_factory=lambda key: FakeMPRester(key, mp_entries))
    phases = src.phases({"Li", "Co", "O"})
    assert len(phases) == 457 and FakeMPRester.calls == 1 and all(p.source == "mp_api" for p in phases)
    cache = src.cache_file({"Li", "Co", "O"})
    assert cache.is_file() and len(read_entries(cache)) == 457

    def offline(key):
        raise AssertionError("the cache should have answered")
    again = MPAPIReferences(tmp_path, api_key="test-key", client_factory=offline).phases({"O", "Co", "Li"})
    assert sorted(p.id for p in again) == sorted(p.id for p in phases)


def test_mp_api_without_key_or_package_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("MP_API_KEY", raising=False)
    with pytest.raises(ReferenceUnavailableError, match="MP_API_KEY"):
        MPAPIReferences(tmp_path).phases({"Li", "F"})
    if importlib.util.find_spec("mp_api") is None:
        with pytest.raises(ReferenceUnavailableError, match="pip install mp-api"):
            MPAPIReferences(tmp_path, api_key="some-key").phases({"Li", "F"})

    def failing(key):
        raise ConnectionError("network unreachable")
    with pytest.raises(ReferenceUnavailableError, match="network unreachable"):
        MPAPIReferences(tmp_path, api_key="k", client_factory=failing).phases({"Li", "F"})
    assert not list(tmp_path.glob("*.json.gz"))  # nothing half-written


def test_reference_source_from_config(tmp_path):
    assert isinstance(reference_source(OmegaConf.create({"source": "builtin"})), BuiltinReferences)
    with pytest.raises(ReferenceUnavailableError, match="not found"):
        reference_source(OmegaConf.create({"source": "file", "path": str(tmp_path / "nope.json")})).phases({"Li"})
    with pytest.raises(ReferenceUnavailableError, match="unknown reference source"):
        reference_source(OmegaConf.create({"source": "icsd"}))


def test_builtin_phases_cover_the_default_systems_and_are_sane():
    src = BuiltinReferences()
    for system in ("Li-Al-F", "Li-Y-Cl", "Li-Zr-Cl", "Li-Mg-Cl", "Li-Ca-I", "Li-S-Br", "Li-Ge-P-S", "Li-Co-O"):
        elements = set(system.split("-"))
        phases = src.phases(elements)
        have = {p.structure.composition.reduced_formula for p in phases}
        assert all(el in {f.rstrip("2") for f in have} or el in have for el in elements), (system, have)
        assert any(len(p.elements) >= 2 for p in phases), system
    everything = src.phases({el for p in BUILTIN for el in p.elements})
    assert len(everything) == len(BUILTIN)
    by_formula = {p.structure.composition.reduced_formula: p for p in everything}
    lgps = by_formula[Composition("Li10GeP2S12").reduced_formula].structure
    assert len(lgps) == 50 and lgps.lattice.abc[0] == pytest.approx(8.72)
    assert by_formula["LiCoO2"].structure.get_space_group_info()[0] == "R-3m"
    for p in everything:
        s = p.structure
        assert s.composition.reduced_formula == Composition(BUILTIN[[b.id for b in BUILTIN].index(p.id)].formula
                                                            ).reduced_formula
        if len(s) > 1:
            d = s.distance_matrix + 99 * (s.distance_matrix == 0)
            shortest = 0.7 if p.elements == {"H"} else 1.05  # H2 0.74 Å; then N2, O2 and F2 (1.10–1.42 Å)
            assert d.min() > shortest, p.id  # no overlapping atoms
    # building twice gives the same structures (the electrostatic ordering is seeded)
    again = {p.id: structure_key(p.structure) for p in BuiltinReferences().phases({"Li", "Y", "Cl"})}
    assert again == {p.id: structure_key(p.structure) for p in everything if p.id in again}


def test_references_relax_in_the_primitive_cell_to_the_conventional_cells_energy(tmp_path):
    """Rock-salt LiF given in its 8-atom conventional cell is relaxed in its 2-atom primitive cell, to the energy
    per atom the conventional cell relaxes to."""
    import torch

    from engine.models import load_model
    from engine.references.cache import relax_references
    from engine.references.sources import ReferencePhase
    from engine.relax.fire import RelaxSettings, relax
    from tests.conftest import ROOT

    torch.set_num_threads(2)
    loaded = load_model(OmegaConf.load(ROOT / "conf/model/sevennet_0.yaml"), torch.device("cpu"))
    lif = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.15), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    settings = RelaxSettings(fmax=0.01, max_steps=300)
    ref = relax_references([ReferencePhase("lif", lif, "test")], loaded, settings, tmp_path)["lif"]
    conventional = []
    relax([lif], ["lif"], loaded, settings, conventional.extend)
    assert len(lif) == 8 and ref.status == "pass" and len(ref.structure) == 2
    assert ref.energy / 2 == pytest.approx(conventional[0].energy_per_atom, abs=2e-4)
    # the energy is flat near the minimum: fmax 0.01 eV/Å leaves the volumes within about 1 %
    assert ref.structure.volume * 4 == pytest.approx(conventional[0].structure.volume, rel=1e-2)


def test_every_allowed_element_relaxes_to_the_materials_projects_energy(tmp_path):
    """The built-in ground states of the 42 elements a candidate may hold (and Co), relaxed with SevenNet-0, against
    the Materials Project's DFT energies of the same ground states (``mp-elemental-reference-entries``: raw GGA
    energies, no corrections). SevenNet-0 was trained on MPtrj, so a wrong structure or a bad starting geometry shows
    up as a difference well beyond the model's error (measured: median 0.02, largest 0.20 eV/atom, W)."""
    import gzip
    import json

    import numpy as np
    from pymatgen.entries.computed_entries import ComputedEntry

    from engine.candidates.sampler import SEED_ALLOWED_ELEMENTS
    from engine.models import load_model, model_config
    from engine.references.cache import relax_references
    from engine.relax.fire import RelaxSettings

    with gzip.open(SHARED / "refdata" / "mp-elemental-reference-entries.json.gz", "rt") as fh:
        mp = {el: ComputedEntry.from_dict(d).energy_per_atom for el, d in json.load(fh).items()}
    elements = set(SEED_ALLOWED_ELEMENTS) | {"Co"}
    phases = [p for p in BuiltinReferences().phases(elements) if len(p.elements) == 1]
    assert {el for p in phases for el in p.elements} == elements
    relaxed = relax_references(phases, load_model(model_config("sevennet_0")), RelaxSettings(), tmp_path)
    lowest: dict[str, tuple[float, str]] = {}
    for p in phases:
        r = relaxed[p.id]
        assert r.usable, (p.id, r.reason)
        (el,) = p.elements
        e = r.energy / len(r.structure)
        if el not in lowest or e < lowest[el][0]:
            lowest[el] = (e, p.id)
    diff = {el: e - mp[el] for el, (e, _) in lowest.items()}
    print("\nelement  ground state (built-in)       SevenNet-0 − MP (eV/atom)")
    for el in sorted(diff, key=lambda k: abs(diff[k])):
        print(f"{el:8s} {lowest[el][1]:30s} {diff[el]:+.3f}")
    assert np.median(np.abs(list(diff.values()))) < 0.04
    assert max(abs(d) for d in diff.values()) < 0.25, diff


def test_a_reference_read_from_the_cache_is_the_relaxed_one_bit_for_bit(tmp_path):
    """Shards read the references another run relaxed: the structures must be the fresh ones to the last bit, or a
    merged screen differs from the unsharded one (a relaxation's cell is a transposed view, the cached one is not,
    and pymatgen's Cartesian positions then differ by ~1e-16 Å)."""
    import numpy as np

    from engine.models import load_model
    from engine.references.cache import relax_references
    from engine.references.sources import collect_phases
    from engine.relax.fire import RelaxSettings

    loaded = load_model(OmegaConf.create({"kind": "analytic", "name": "lattice-wells", "dtype": "float64"}))
    phases = collect_phases(BuiltinReferences(), [{"Li", "Co", "O"}])
    fresh = relax_references(phases, loaded, RelaxSettings(), tmp_path)
    cached = relax_references(phases, loaded, RelaxSettings(), tmp_path)
    compared = [k for k in fresh if fresh[k].structure is not None]
    assert len(compared) >= 6
    for k in compared:
        assert np.array_equal(fresh[k].structure.cart_coords, cached[k].structure.cart_coords), k
        assert np.array_equal(fresh[k].structure.lattice.matrix, cached[k].structure.lattice.matrix), k
