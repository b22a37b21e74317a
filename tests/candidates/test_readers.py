import json

import numpy as np
from ase.io import write
from pymatgen.io.ase import AseAtomsAdaptor

from engine.candidates.readers import read_candidates
from engine.candidates.stage import min_distances, validity
from engine.core.structures import pack, unpack


def test_pack_unpack_preserves_order(three_structures):
    state = pack(three_structures)
    assert state.n_systems == 3
    for a, b in zip(unpack(state), three_structures):
        assert a.composition == b.composition
        np.testing.assert_allclose(a.cart_coords, b.cart_coords, atol=1e-10)


def test_readers_keep_ids_and_record_broken_files(tmp_path, three_structures):
    folder = tmp_path / "cifs"
    folder.mkdir()
    for name, s in zip("abc", three_structures):
        s.to(filename=str(folder / f"{name}.cif"))
    (folder / "broken.cif").write_text("data_broken\n_cell_length_a 4.0\nthis is not a cif loop\n")
    cands = read_candidates(folder)
    assert [c.id for c in cands] == ["a", "b", "broken", "c"]
    broken = cands[2]
    assert broken.structure is None and broken.reason.startswith("unreadable")
    assert all(c.structure is not None for c in cands if c.id != "broken")

    xyz = tmp_path / "c.extxyz"
    write(xyz, [AseAtomsAdaptor.get_atoms(s) for s in three_structures])
    assert [len(c.structure) for c in read_candidates(xyz)] == [len(s) for s in three_structures]

    js = tmp_path / "c.json"
    js.write_text(json.dumps([s.as_dict() for s in three_structures]))
    assert [c.id for c in read_candidates(js)] == ["c-0", "c-1", "c-2"]


def test_batched_d_min_matches_pymatgen_and_flags_overlaps(three_structures):
    close = three_structures[2].copy()
    close.append("Li", close[0].coords + [0.1, 0.0, 0.0], coords_are_cartesian=True)
    structures = [*three_structures, close]
    d = min_distances(structures)
    for s, di in zip(structures, d):
        dm = s.distance_matrix + np.diag([np.inf] * len(s))
        ref = min(dm.min(), *(s.lattice.abc))  # an atom's own image counts too
        assert abs(di - ref) < 1e-8
    assert abs(d[-1] - 0.1) < 1e-8
    from engine.candidates.readers import Candidate

    status, reason, _ = validity([Candidate(str(i), "t", s) for i, s in enumerate(structures)], 0.7)
    assert status == ["pass", "pass", "pass", "fail"] and reason[-1].startswith("d_min")


def test_a_cell_too_dense_for_the_batched_neighbour_list_costs_no_run(three_structures):
    """One Li in a 1.6 Å cube (4.1 Å³/atom, 80 neighbours within 4 Å) overflows nvalchemiops' neighbour matrix in
    the batched call; d_min then comes structure by structure from pymatgen, the same numbers for the others."""
    from pymatgen.core import Lattice, Structure

    from engine.candidates.readers import Candidate

    dense = Structure(Lattice.cubic(1.6), ["Li"], [[0, 0, 0]])
    batched = min_distances(three_structures)
    d = min_distances([*three_structures, dense])
    np.testing.assert_allclose(d[:3], batched, rtol=0, atol=1e-10)
    assert abs(d[3] - 1.6) < 1e-10
    status, _, _ = validity([Candidate(str(i), "t", s) for i, s in enumerate([*three_structures, dense])], 0.7)
    assert status == ["pass", "pass", "pass", "pass"]
