"""Phonon throughput: the phonons stage's batched finite displacements vs phonopy + the ASE calculator, one displaced
supercell at a time.

Inputs: the built-in reference phases with at most --max-atoms atoms in the cell (binary and ternary), relaxed
with the engine first (not timed), the first N of them.
(a) engine: ``engine.stability.phonons.phonon_rows``: every candidate's displaced supercells in one queue of batched model
    calls, force constants and frequencies on the commensurate q-points with phonopy;
(b) loop: the same phonopy objects (same supercells and displacements) with the model package's own ASE
    calculator, one supercell per call, the same residual-force subtraction and q-points.
Prints candidates/s of both, the ratio, the largest difference of the lowest frequency (a vs b, THz), and writes
benchmarks/results/phonons_<device>.json.

    python benchmarks/bench_phonons.py [--n 12] [--max-atoms 12] [--model sevennet_0] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from ase import Atoms
from common import ase_calculator, model_config, timed, write_json
from phonopy.harmonic.dynmat_to_fc import get_commensurate_points

from engine.models import load_model
from engine.references.builtin_phases import BUILTIN
from engine.relax.fire import RelaxSettings, relax
from engine.stability.phonons import PhononSettings, phonon_rows, plan


def inputs(loaded, n: int, max_atoms: int) -> dict:
    phases = []
    for p in BUILTIN:
        if len(p.elements) < 2:
            continue
        s = p.build()
        if len(s) <= max_atoms and not loaded.unsupported_elements(s.atomic_numbers):
            phases.append((p.id, s))
    phases = phases[:n]
    rows = []
    relax([s for _, s in phases], [i for i, _ in phases], loaded, RelaxSettings(fmax=0.01), rows.extend)
    return {r.id: r.structure.to_structure() for r in rows if r.status == "pass"}


def ase_loop(structures: dict, settings: PhononSettings, calc) -> dict[str, float]:
    """Lowest frequency [THz] (Γ acoustic left out) of each structure, one supercell per calculator call."""
    out = {}
    for cid, s in structures.items():
        job = plan(cid, s, settings)
        forces = []
        for cell in job.supercells:
            atoms = Atoms(numbers=cell.numbers, positions=cell.positions, cell=cell.cell, pbc=True)
            atoms.calc = calc
            forces.append(atoms.get_forces())
        phonon = job.phonon
        phonon.forces = np.array(forces[1:]) - forces[0]
        phonon.produce_force_constants()
        phonon.symmetrize_force_constants()
        q = get_commensurate_points(np.diag(job.reps))
        phonon.run_qpoints(q)
        f = np.array(phonon.get_qpoints_dict()["frequencies"])
        gamma = int(np.argmin(np.linalg.norm(q, axis=1)))
        f[gamma, np.argsort(np.abs(f[gamma]))[:3]] = np.inf
        out[cid] = float(f.min())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--max-atoms", type=int, default=12)
    ap.add_argument("--model", default="sevennet_0")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=1, help="alternate the two runs this many times; medians")
    args = ap.parse_args()

    loaded = load_model(model_config(args.model), args.device)
    device = loaded.model.device
    structures = inputs(loaded, args.n, args.max_atoms)
    settings = PhononSettings()
    jobs = [plan(i, s, settings) for i, s in structures.items()]
    n_cells = sum(len(j.supercells) for j in jobs)
    n_atoms = sum(len(c) for j in jobs for c in j.supercells)
    print(f"{len(structures)} structures, {n_cells} supercells ({n_atoms} atoms), model {loaded.name} "
          f"({loaded.model.dtype}), device {device}, torch threads {torch.get_num_threads()}")
    calc = ase_calculator(loaded, str(device))
    phonon_rows(dict(list(structures.items())[:1]), loaded, settings)  # warm-up of both paths
    ase_loop(dict(list(structures.items())[:1]), settings, calc)

    engine_rows, loop = [], {}

    def engine():  # (a)
        engine_rows[:] = phonon_rows(structures, loaded, settings)[0]

    def per_supercell():  # (b)
        loop.update(ase_loop(structures, settings, calc))

    t_engine, t_loop = [], []
    for _ in range(args.repeats):
        t_engine.append(timed(engine, device))
        t_loop.append(timed(per_supercell, device))
    te, tl = float(np.median(t_engine)), float(np.median(t_loop))
    diff = max(abs(r.min_frequency - loop[r.id]) for r in engine_rows)
    print(f"engine: {te:.2f} s ({len(structures) / te:.2f} structures/s)")
    print(f"ASE loop: {tl:.2f} s ({len(structures) / tl:.2f} structures/s)")
    print(f"engine / loop speed-up: {tl / te:.2f}x; largest lowest-frequency difference {diff:.2e} THz")
    for r in engine_rows:
        print(f"  {r.id:34s} {r.verdict:8s} min {r.min_frequency:7.2f} THz  supercell {tuple(r.supercell)}")
    path = write_json(f"phonons_{device.type}", {
        "n_structures": len(structures), "n_supercells": n_cells, "n_atoms": n_atoms, "model": loaded.name,
        "device": str(device), "engine_s": t_engine, "loop_s": t_loop, "speedup": tl / te,
        "max_min_frequency_diff_THz": diff,
        "rows": [{"id": r.id, "verdict": r.verdict, "min_frequency_THz": r.min_frequency} for r in engine_rows]})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
