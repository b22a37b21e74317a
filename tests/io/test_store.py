import h5py
import numpy as np
import pytest

from engine.io.store import ResultStore
from engine.screen import stage_summary


def test_rows_columns_and_ragged_structures_round_trip(tmp_path, three_structures):
    path = tmp_path / "run.h5"
    with ResultStore(path) as store:
        store.write_metadata("model: {name: x}\n", {"torch": "2"}, {"relax": {"name": "7net-0", "sha256": "ab"}})
        store.append("relax", ["a", "b"], ["pass", "error"], ["", "model failed: boom"],
                     columns={"energy_per_atom": [-1.5, np.nan], "stress": np.zeros((2, 3, 3))},
                     structures=[three_structures[2], None])
        store.append("relax", ["c"], ["fail"], ["not converged: fmax 0.2"],
                     columns={"energy_per_atom": [-2.0], "stress": np.ones((1, 3, 3))},
                     structures=[three_structures[1]])
    with ResultStore(path, "r") as store:
        assert store.ids("relax") == ["a", "b", "c"]
        assert store.ids("relax", status="pass") == ["a"]
        assert store.done_ids("relax") == {"a", "b", "c"}
        np.testing.assert_allclose(store.column("relax", "energy_per_atom"), [-1.5, np.nan, -2.0])
        back = store.structures("relax")
        assert set(back) == {"a", "c"}  # the error row has no structure
        for key, ref in (("a", three_structures[2]), ("c", three_structures[1])):
            assert back[key].composition == ref.composition
            np.testing.assert_allclose(back[key].cart_coords, ref.cart_coords)
            np.testing.assert_allclose(back[key].lattice.matrix, ref.lattice.matrix)
        meta = store.metadata()
        assert meta["models"]["relax"]["sha256"] == "ab" and meta["versions"]["torch"] == "2"
        s = stage_summary(store, "relax")
        assert (s["pass"], s["fail"], s["error"]) == (1, 1, 1)
    with h5py.File(path) as h5:  # plain h5py reads it, as a notebook would
        assert h5["relax/structure/offset"][()].tolist() == [0, 8, 8]


def test_rejects_unknown_status_and_ragged_columns(tmp_path):
    with ResultStore(tmp_path / "r.h5") as store:
        with pytest.raises(ValueError, match="unknown status"):
            store.append("x", ["a"], ["pending"], [""])
        with pytest.raises(ValueError, match="unequal"):
            store.append("x", ["a", "b"], ["pass", "pass"], ["", ""], columns={"e": [1.0]})


def test_settings_choices_are_written_as_plain_strings(tmp_path):
    """A StrEnum setting (engine.references.sources.EnergySource) in a group attribute reads back as its string."""
    from engine.io.store import ResultStore
    from engine.references.sources import EnergySource

    with ResultStore(tmp_path / "a.h5") as store:
        store.set_attrs("references", {"energies": EnergySource.model})
        assert store.attrs("references")["energies"] == "model"


def test_copied_rows_keep_the_stored_structures_bit_for_bit(tmp_path):
    """What engine.io.merge relies on: a merged file equals the shards' at zero tolerance. A pymatgen Structure on
    the way (Cartesian to fractional and back) would move positions by an ulp."""
    from pymatgen.core import Lattice, Structure

    from engine.core.rows import Status
    from engine.relax.stage import RelaxRow

    rng = np.random.default_rng(0)
    lattice = Lattice.from_parameters(5.1, 6.3, 7.7, 81.0, 97.0, 112.0)
    structures = [Structure(lattice, ["Li", "O"] * 4, rng.random((8, 3))) for _ in range(3)]
    with ResultStore(tmp_path / "a.h5", "w") as a:
        a.append_rows("relax", [RelaxRow(f"c{i}", Status.PASS, "", structure=s, stress=np.zeros((3, 3)))
                                for i, s in enumerate(structures)])
    with ResultStore(tmp_path / "a.h5", "r") as a, ResultStore(tmp_path / "b.h5", "w") as b:
        b.copy_rows_from(a, "relax", [2, 0])
        assert b.ids("relax") == ["c2", "c0"]
        for cid in ("c2", "c0"):
            stored, copied = a.crystals("relax", [cid])[1], b.crystals("relax", [cid])[1]
            assert (copied.positions == stored.positions).all() and (copied.cell == stored.cell).all()
        round_trip = np.concatenate([s.cart_coords for s in a.crystals("relax")[1].to_structures()])
        assert not (round_trip == a.crystals("relax")[1].positions).all()  # the rounding this test is about
