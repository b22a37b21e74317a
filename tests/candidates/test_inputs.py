"""Hostile inputs: every file of an input folder becomes candidates or a row with its reason, and the good
candidates beside the bad ones finish."""

import json

import numpy as np
from ase import Atoms
from ase.io import write
from pymatgen.core import Lattice, Structure

from engine.io.store import ResultStore
from tests.test_screen import screen


def rocksalt(a, anion="F"):
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Li", anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_every_file_gets_candidates_or_a_reason_and_the_good_ones_finish(tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    lif = rocksalt(4.05)
    lif.get_primitive_structure().to(filename=str(folder / "lif.cif"))
    rocksalt(5.2, "Cl").get_primitive_structure().to(filename=str(folder / "POSCAR_licl"), fmt="poscar")
    (folder / "li2o.vasp").write_text(Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.6), ["Li", "O"], [[0.25, 0.25, 0.25], [0, 0, 0]]).get_primitive_structure()
        .to(fmt="poscar"))
    (folder / "libr.json").write_text(json.dumps([rocksalt(5.5, "Br").get_primitive_structure().as_dict()]))
    good = Atoms("LiF", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=np.eye(3) * 3.5, pbc=True)
    nan = good.copy()
    nan.positions[1] = [np.nan, 0.0, 0.0]
    write(folder / "frames.extxyz", [good, nan], format="extxyz")

    cif = lif.to(fmt="cif").splitlines()
    atom_lines = [i for i, line in enumerate(cif) if line.strip().startswith(("Li ", "F "))]
    (folder / "cut_loop.cif").write_text("\n".join(cif[:atom_lines[1] + 1]) + "\n")  # two Li of eight atoms
    (folder / "cut_line.cif").write_text("\n".join(cif[:atom_lines[2]] + [cif[atom_lines[2]][:14]]) + "\n")
    Structure(Lattice.cubic(0.8), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(
        filename=str(folder / "POSCAR_tiny"), fmt="poscar")
    Structure(Lattice.orthorhombic(4, 4, 900), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.002]]).to(
        filename=str(folder / "slab.cif"))
    Structure(Lattice.orthorhombic(3, 3, 250), ["Li"] * 90, [[0, 0, i / 90] for i in range(90)]).to(
        filename=str(folder / "needle.cif"))
    lif.make_supercell([3, 1, 1], in_place=False).to(filename=str(folder / "big.cif"))
    (folder / "notes.txt").write_text("not a structure\n")
    (folder / "empty.cif").write_text("")
    (folder / "bad.json").write_text("{not json")
    disordered = rocksalt(4.2, "O").get_primitive_structure()
    disordered.replace(0, {"Li": 0.5, "Mg": 0.25})
    disordered.to(filename=str(folder / "disordered.cif"))
    cell = "\n".join(f"_cell_length_{x} 4.0" for x in "abc") + "\n" + "\n".join(
        f"_cell_angle_{x} 90" for x in ("alpha", "beta", "gamma"))
    loop = "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z"
    (folder / "coincident.cif").write_text(f"data_co\n{cell}\n_symmetry_space_group_name_H-M 'P 1'\n{loop}\n"
                                           "Li1 Li 0 0 0\nF1 F 0 0 0\n")
    (folder / "two_blocks.cif").write_text(lif.get_primitive_structure().to(fmt="cif").replace("data_", "data_a", 1)
                                           + "\n" + rocksalt(5.2, "Cl").get_primitive_structure().to(fmt="cif")
                                           .replace("data_", "data_b", 1))
    (folder / "water.xyz").write_text("3\nwater\nO 0 0 0\nH 0.96 0 0\nH -0.24 0.93 0\n")
    (folder / "gone.cif").symlink_to(tmp_path / "nowhere" / "gone.cif")
    (folder / "sub").mkdir()
    rocksalt(5.5, "Br").get_primitive_structure().to(filename=str(folder / "sub" / "libr.cif"))

    out = tmp_path / "inputs.h5"
    screen("stages=[candidates,relax]", "candidates=files", f"candidates.path={folder}",
           "candidates.max_atoms_file=20", f"output={out}", "threads=2")
    with ResultStore(out, "r") as store:
        cand = dict(zip(store.ids("candidates"), zip(store.column("candidates", "status"),
                                                     store.column("candidates", "reason"))))
        relax = dict(zip(store.ids("relax"), store.column("relax", "status")))
    reasons = {k: r for k, (s, r) in cand.items() if s != "pass"}
    good = {"lif", "POSCAR_licl", "li2o", "libr-0", "frames-0", "two_blocks:aLiF", "two_blocks:bLiCl", "sub.libr"}
    assert set(cand) - set(reasons) == good, cand
    assert reasons["cut_loop"].startswith("unreadable: ValueError: the atoms read make Li, the file declares LiF")
    assert reasons["cut_line"].startswith("unreadable")
    assert reasons["frames-1"] == "non-finite coordinates or cell"
    assert reasons["POSCAR_tiny"].startswith("degenerate cell: 0.256 Å³/atom")
    assert reasons["slab"].startswith("mostly vacuum: 7200 Å³/atom")
    assert reasons["needle"].startswith("absurd cell: a lattice vector of 250 Å")
    assert reasons["big"] == "too many atoms: 24 > 20 (candidates.max_atoms_file)"
    assert reasons["notes.txt"].startswith("unsupported format")
    assert reasons["empty"] == "unreadable: ValueError: empty file"
    assert reasons["bad"].startswith("unreadable")
    assert reasons["disordered"] == ("disordered: site 0 Li0.5Mg0.25; order it first (e.g. pymatgen's "
                                     "OrderDisorderedStructureTransformation)")
    assert reasons["coincident"].startswith("unreadable: ValueError: coincident atoms")
    assert reasons["water-0"].startswith("not a periodic crystal")
    assert reasons["gone"].startswith("broken link: gone.cif -> ")
    assert all(cand[k][0] == "error" for k in reasons)
    assert relax == {k: "pass" for k in good}
