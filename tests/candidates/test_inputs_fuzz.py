"""Property-based fuzzing of the file readers: random valid and broken structure files (random cells, occupancies,
overlaps, truncations, encodings) in a folder; every file gets candidates or a reason, nothing raises, the good
ones pass validity; and one such folder through a screen (exit 0, the good ones relax)."""

import json
import random

import numpy as np
from ase.build import bulk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from engine.candidates.readers import read_candidates
from engine.candidates.stage import FilesCandidates, validity
from engine.io.store import ResultStore
from tests.test_screen import screen

KINDS = ("good_cif", "good_poscar", "good_json", "disordered", "overlap", "truncated", "bad_bytes", "latin1",
         "odd_cell", "empty", "random_json")


def good_structure(rng: random.Random) -> Structure:
    """A primitive rock-salt cell (ASE's: pymatgen's from_spacegroup costs 0.7 s a cell here)."""
    return AseAtomsAdaptor.get_structure(bulk("Li" + rng.choice(["F", "Cl", "O"]), "rocksalt",
                                              a=rng.uniform(3.8, 5.5)))


def write(folder, i: int, kind: str, rng: random.Random) -> tuple[str, bool]:
    """Write one file of ``kind``; returns (its name, whether it must pass validity)."""
    s = good_structure(rng)
    if kind == "good_cif":
        name = f"f{i}.cif"
        s.to(filename=str(folder / name))
        return name, True
    if kind == "good_poscar":
        name = f"f{i}.vasp"
        (folder / name).write_text(s.to(fmt="poscar"))
        return name, True
    if kind == "good_json":
        name = f"f{i}.json"
        (folder / name).write_text(json.dumps([s.as_dict()]))
        return name, True
    if kind == "disordered":
        s.replace(0, {"Li": rng.uniform(0.1, 0.9), "Na": rng.uniform(0.0, 0.1)})
        name = f"f{i}.cif"
        s.to(filename=str(folder / name))
        return name, False
    if kind == "overlap":
        s.append("Li", s[0].frac_coords + rng.uniform(0, 0.01))
        name = f"f{i}.vasp"
        (folder / name).write_text(s.to(fmt="poscar"))
        return name, False
    if kind == "truncated":
        text = s.to(fmt="cif")
        name = f"f{i}.cif"
        (folder / name).write_text(text[:rng.randrange(1, len(text) - 20)])
        return name, False
    if kind == "bad_bytes":
        name = f"f{i}.{rng.choice(['cif', 'vasp', 'xyz', 'json'])}"
        (folder / name).write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))))
        return name, False
    if kind == "latin1":
        name = f"f{i}.cif"
        (folder / name).write_bytes(s.to(fmt="cif").replace("data_", "data_é", 1).encode("latin-1") + b"\xff\xfe")
        return name, False
    if kind == "odd_cell":
        params = [rng.choice([0.0, 1e-3, rng.uniform(0.5, 300)]) for _ in range(3)]
        angles = [rng.choice([90.0, rng.uniform(1, 179), 180.0]) for _ in range(3)]
        lines = [f"data_odd{i}"] + [f"_cell_length_{x} {v}" for x, v in zip("abc", params)]
        lines += [f"_cell_angle_{x} {v}" for x, v in zip(("alpha", "beta", "gamma"), angles)]
        lines += ["_symmetry_space_group_name_H-M 'P 1'", "loop_", "_atom_site_type_symbol", "_atom_site_fract_x",
                  "_atom_site_fract_y", "_atom_site_fract_z", "Li 0 0 0", "F 0.5 0.5 0.5"]
        name = f"f{i}.cif"
        (folder / name).write_text("\n".join(lines) + "\n")
        return name, False
    if kind == "empty":
        name = f"f{i}.{rng.choice(['cif', 'vasp', 'xyz', 'json'])}"
        (folder / name).write_text("")
        return name, False
    name = f"f{i}.json"
    (folder / name).write_text(json.dumps(rng.choice([[1, 2], {"a": None}, [{"lattice": "x"}], "text", [None]])))
    return name, False


def check_folder(folder, written: dict[str, bool]) -> None:
    cands = read_candidates(folder)
    limits = OmegaConf.structured(FilesCandidates(path=str(folder)))
    status, reason, _ = validity(cands, 0.7, limits=limits)
    by_file: dict[str, list[tuple[str, str]]] = {}
    for c, s, r in zip(cands, status, reason):
        by_file.setdefault(c.source.split("@")[0].rsplit("/", 1)[-1], []).append((s, r))
    assert set(by_file) == set(written), (by_file, written)
    for name, rows in by_file.items():
        for s, r in rows:
            assert s == "pass" or r.strip(), (name, s, r)
        if written[name]:
            assert all(s == "pass" for s, _ in rows), (name, rows)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=6), seed=st.integers(0, 2**32 - 1))
def test_every_random_file_gets_candidates_or_a_reason(tmp_path_factory, kinds, seed):
    folder = tmp_path_factory.mktemp("fuzz")
    rng = random.Random(seed)
    written = dict(write(folder, i, kind, rng) for i, kind in enumerate(kinds))
    check_folder(folder, written)


def test_a_hostile_folder_screens_to_the_end_and_the_good_ones_relax(tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    rng = random.Random(7)
    written = dict(write(folder, i, kind, rng) for i, kind in enumerate(KINDS * 2))
    check_folder(folder, written)
    out = tmp_path / "fuzz.h5"
    screen("stages=[candidates,relax]", "candidates=files", f"candidates.path={folder}", "model.kind=analytic",
           f"output={out}", "threads=2")
    with ResultStore(out, "r") as store:
        sources = dict(zip(store.ids("candidates"), store.column("candidates", "source")))
        relaxed = dict(zip(store.ids("relax"), store.column("relax", "status")))
    good = {cid for cid, src in sources.items() if written[src.split("@")[0].rsplit("/", 1)[-1]]}
    assert good and {cid: relaxed.get(cid) for cid in good} == {cid: "pass" for cid in good}
    assert np.all([written.get(src.split("@")[0].rsplit("/", 1)[-1]) is not None for src in sources.values()])
