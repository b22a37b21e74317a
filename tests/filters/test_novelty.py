"""Uniqueness and novelty: planted duplicates (permuted, shifted, re-celled) and planted known structures are
reported exactly, and nothing else is."""

import numpy as np
from pymatgen.core import Lattice, Structure

from engine.filters.novelty import (
    KnownStructures,
    UniqueSet,
    classify,
    make_matcher,
    prototype_key,
)
from engine.references.sources import BuiltinReferences
from tests.conftest import rattled
from tests.test_screen import screen

MATCH = {"ltol": 0.2, "stol": 0.3, "angle_tol": 5.0}


class Cfg(dict):
    __getattr__ = dict.__getitem__


def permuted_and_shifted(s: Structure, seed: int) -> Structure:
    """The same crystal: sites in another order, the origin moved, wrapped back into the cell."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(s))
    shift = rng.random(3)
    return Structure(s.lattice, [s[i].species for i in order], (s.frac_coords[order] + shift) % 1.0)


def distinct_candidates() -> list[Structure]:
    """Five different Li ternaries: two compositions in several structures, one composition in two cells."""
    a = Structure(Lattice.from_parameters(5.1, 5.6, 6.3, 90, 90, 90), ["Li", "Li", "Al", "F", "F", "F", "F", "F"],
                  [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0.5], [0.25, 0.2, 0.1], [0.75, 0.3, 0.6], [0.2, 0.7, 0.35],
                   [0.7, 0.8, 0.85], [0.0, 0.5, 0.0]])
    b = a.copy()
    b.replace(1, "Mg"), b.replace(2, "Li")  # another composition
    c = rattled(a, [0.05, 0.0, 0.0], 0.4, 3)  # same composition, different arrangement
    d = Structure(Lattice.from_parameters(5.9, 6.3, 6.8, 88, 95, 101), ["Li", "Li", "Y", "Cl", "Cl", "Cl", "Cl", "Cl"],
                  [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0.5], [0.25, 0.25, 0.1], [0.75, 0.25, 0.6],
                   [0.25, 0.75, 0.35], [0.75, 0.7, 0.85], [0.0, 0.5, 0.0]])
    e = d.copy()
    e.make_supercell([2, 1, 1])
    e.remove_sites([0, 1, 2])
    return [a, b, c, d, e]


def test_planted_duplicates_and_known_structures_are_reported_exactly():
    base = distinct_candidates()
    refs = BuiltinReferences().phases(["Li", "Al", "F", "Y", "Cl"])
    known_lif = next(p for p in refs if p.structure.composition.reduced_formula == "LiF").structure
    known_li3alf6 = next(p for p in refs if p.structure.composition.reduced_formula == "Li3AlF6")
    plan = [("a", base[0]), ("b", base[1]), ("a-copy", permuted_and_shifted(base[0], 1)),
            ("c", base[2]), ("lif", permuted_and_shifted(known_lif.get_primitive_structure(), 2)),
            ("d", base[3]), ("a-super", base[0].make_supercell([1, 2, 1], in_place=False)),
            ("e", base[4]), ("d-copy", permuted_and_shifted(base[3], 3)),
            ("li3alf6", permuted_and_shifted(known_li3alf6.structure, 4)), ("b-copy", permuted_and_shifted(base[1], 5))]
    ids = [p[0] for p in plan]
    structures = [p[1] for p in plan]
    matcher = make_matcher(Cfg(MATCH))
    known = KnownStructures([(p.id, p.structure) for p in refs], matcher)
    rows = classify(ids, [prototype_key(s) for s in structures], structures, UniqueSet(matcher), known)
    assert [r.id for r in rows] == ids
    got = {r.id: (r.status, r.duplicate_of, r.known_as) for r in rows}
    reason = [r.reason for r in rows]
    assert got == {
        "a": ("pass", "", ""), "b": ("pass", "", ""), "a-copy": ("fail", "a", ""), "c": ("pass", "", ""),
        "lif": ("fail", "", next(p.id for p in refs if p.structure.composition.reduced_formula == "LiF")),
        "d": ("pass", "", ""), "a-super": ("fail", "a", ""), "e": ("pass", "", ""), "d-copy": ("fail", "d", ""),
        "li3alf6": ("fail", "", known_li3alf6.id), "b-copy": ("fail", "b", "")}, got
    assert reason[ids.index("a-copy")] == "duplicate of a" and reason[ids.index("lif")].startswith("known: ")


def test_novelty_stage_through_the_screen_with_a_user_file_of_known_structures(tmp_path):
    base = distinct_candidates()
    folder, known_folder = tmp_path / "cands", tmp_path / "known"
    folder.mkdir(), known_folder.mkdir()
    for name, s in [("a", base[0]), ("a2", permuted_and_shifted(base[0], 7)), ("d", base[3]),
                    ("b", base[1])]:
        s.to(filename=str(folder / f"{name}.cif"))
    permuted_and_shifted(base[3], 8).to(filename=str(known_folder / "icsd-d.cif"))
    out = tmp_path / "nov.h5"
    stdout = screen("stages=[candidates,novelty]", "candidates=files", f"candidates.path={folder}",
                    f"novelty.known_structures=[{known_folder}]", f"output={out}", "threads=1")
    assert "novelty" in stdout
    from engine.io.store import ResultStore

    with ResultStore(out, "r") as store:
        rows = dict(zip(store.ids("novelty"), zip(store.column("novelty", "status"),
                                                  store.column("novelty", "reason"))))
    assert rows == {"a": ("pass", ""), "a2": ("fail", "duplicate of a"), "b": ("pass", ""),
                    "d": ("fail", "known: icsd-d")}


def test_a_structure_the_matcher_fails_on_is_an_error_and_the_rest_go_on():
    class Brittle(UniqueSet):
        def add(self, cid, key, structure):
            if cid == "bad":
                raise ValueError("degenerate lattice")
            return super().add(cid, key, structure)

    a, b = distinct_candidates()[:2]
    matcher = make_matcher(Cfg(MATCH))
    ids = ["a", "bad", "a-copy", "b"]
    structures = [a, b, permuted_and_shifted(a, 9), b]
    rows = classify(ids, [prototype_key(s) for s in structures], structures, Brittle(matcher),
                    KnownStructures([], matcher))
    assert [r.status for r in rows] == ["pass", "error", "fail", "pass"]
    assert rows[1].reason == "structure matcher: ValueError: degenerate lattice" and rows[2].duplicate_of == "a"


def test_relaxed_candidates_that_meet_in_one_minimum_or_in_a_reference_phase_fail_after_relaxation(tmp_path):
    """relaxed_novelty: within formula (the space group may change on relaxation), against each other in the relax
    stage's order and against the relaxed reference phases of the file."""
    from omegaconf import OmegaConf

    from engine.filters import relaxed_novelty
    from engine.filters.relaxed_novelty import RelaxedNoveltySettings
    from engine.io.store import ResultStore
    from engine.run import Run
    from engine.stages import BY_NAME

    rocksalt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.05), ["Li", "F"], [[0, 0, 0], [.5, .5, .5]])
    cscl = Structure(Lattice.cubic(2.5), ["Li", "F"], [[0, 0, 0], [.5, .5, .5]])
    li2o = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.6), ["Li", "O"], [[.25, .25, .25], [0, 0, 0]])
    relaxed = {"x": cscl, "y": permuted_and_shifted(cscl * (1, 1, 2), 1), "z": rocksalt.get_primitive_structure(),
               "w": li2o, "bad": cscl}
    status = {"x": "pass", "y": "pass", "z": "pass", "w": "pass", "bad": "fail"}
    cfg = OmegaConf.create({"stages": ["relax", "relaxed_novelty", "thermo"], "device": "cpu",
                            "relaxed_novelty": OmegaConf.structured(RelaxedNoveltySettings())})
    with ResultStore(tmp_path / "r.h5") as store:
        ids = list(relaxed)
        store.append("relax", ids, [status[i] for i in ids], [""] * len(ids), structures=list(relaxed.values()))
        store.append("references", ["builtin:LiF-rocksalt"], ["pass"], [""], structures=[rocksalt * (2, 1, 1)])
        run = Run(cfg, store, BY_NAME)
        relaxed_novelty.run_stage(run)
        got = dict(zip(store.ids("relaxed_novelty"), store.column("relaxed_novelty", "reason")))
        assert got == {"x": "", "y": "duplicate of x", "z": "known: builtin:LiF-rocksalt", "w": ""}
        assert run.passed_input("thermo") == ["x", "w"]
        relaxed_novelty.run_stage(run)  # a rerun adds nothing
        assert len(store.ids("relaxed_novelty")) == 4
