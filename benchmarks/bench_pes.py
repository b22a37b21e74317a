"""Probe-grid throughput: the engine's batched probes vs a per-probe ASE single-point loop, same model, same probes.

Candidates: small Li compounds (rock-salt LiF and LiCl, anti-fluorite Li2O, conventional cells, rattled so they
lose their symmetry for (a)-(c); and the built-in Li3YCl6 and Li3AlF6 for the symmetry factor). For each, ``--probes``
grid points of the interstitial grid (the frozen structure plus one Li) are evaluated by
(a) engine: ``engine.pes.probes.evaluate_jobs`` — probes of all candidates packed into batches of ``--max-atoms`` atoms,
    energy-only model (SevenNet without its force/stress backward pass);
(b) engine, forces kept: the same batches through the plain model (what batching alone buys);
(c) ASE loop: for each probe an ``Atoms`` with the package's own calculator and ``get_potential_energy()``.
Also: the symmetry-reduction factor (grid points evaluated without / with spglib orbits, same grid) at
``--spacing``, and the time of the percolation kernel on a 100×100×100 grid. Prints a table, the ratios a/c and
b/c, the largest |ΔE| between (a) and (c), and writes benchmarks/results/pes.json.

    python benchmarks/bench_pes.py [--probes 48] [--spacing 0.25] [--max-atoms 100] [--device cpu]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from ase import Atoms
from common import ase_calculator, model_config, timed, write_json
from pymatgen.core import Lattice, Structure

from engine.models import load_model
from engine.pes.probes import evaluate_jobs as engine_evaluate
from engine.pes.probes import make_job
from engine.pes.stage import PesSettings
from engine.references.builtin_phases import BUILTIN
from kernels.grid import probe_grid
from kernels.percolation import percolation_barriers


def candidates(seed: int = 0) -> list[Structure]:
    rng = np.random.default_rng(seed)
    out = []
    for sg, a, species, coords in (("Fm-3m", 4.03, ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
                                   ("Fm-3m", 5.13, ["Li", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
                                   ("Fm-3m", 4.62, ["Li", "O"], [[0.25, 0.25, 0.25], [0, 0, 0]])):
        s = Structure.from_spacegroup(sg, Lattice.cubic(a), species, coords)
        out.append(Structure(s.lattice, s.species, s.cart_coords + rng.normal(scale=0.03, size=(len(s), 3)),
                             coords_are_cartesian=True))
    return out


def symmetry_factors(spacing: float) -> list[dict]:
    rows = []
    for pid in ("builtin:LiF-rocksalt", "builtin:Li3YCl6-P-3m1", "builtin:Li3AlF6-cryolite",
                "builtin:Li10GeP2S12-LGPS"):
        phase = next((p for p in BUILTIN if p.id == pid), None)
        if phase is None:
            continue
        s = phase.build()
        reduced = probe_grid(s.lattice.matrix, s.frac_coords, np.array(s.atomic_numbers), spacing, 1.2)
        full = probe_grid(s.lattice.matrix, s.frac_coords, np.array(s.atomic_numbers), spacing, 1.2,
                          use_symmetry=False, shape=reduced.shape, origin=reduced.origin)
        rows.append({"phase": pid, "grid": list(reduced.shape), "operations": reduced.n_operations,
                     "evaluated_full": full.n_evaluated, "evaluated_reduced": reduced.n_evaluated,
                     "factor": full.n_evaluated / max(1, reduced.n_evaluated)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="sevennet_0")
    ap.add_argument("--probes", type=int, default=48, help="probes per candidate")
    ap.add_argument("--spacing", type=float, default=0.25)
    ap.add_argument("--max-atoms", type=int, default=100)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    loaded = load_model(model_config(args.model), args.device)
    settings = PesSettings(spacing=args.spacing, use_symmetry=False)
    jobs = []
    for i, s in enumerate(candidates()):
        job = make_job(f"c{i}", s, "interstitial", settings)
        pick = np.linspace(0, len(job.probe_cart) - 1, min(args.probes, len(job.probe_cart))).astype(int)
        job._probe_cart = job.probe_cart[pick]
        jobs.append(job)
    n_probes = sum(len(j.probe_cart) for j in jobs)


    engine_evaluate(jobs[:1], loaded, args.max_atoms)  # warm-up (first-call allocations)
    t_engine = timed(lambda: engine_evaluate(jobs, loaded, args.max_atoms), args.device)
    e_engine = [j.energies + j.host_energy for j in jobs]
    t_forces = timed(lambda: engine_evaluate(jobs, loaded, args.max_atoms, energy_model=(loaded.model, False)),
                     args.device)
    e_forces = [j.energies + j.host_energy for j in jobs]

    calc = ase_calculator(loaded, args.device)
    e_loop = []

    def loop() -> None:
        for job in jobs:
            host = job.host
            out = []
            for p in job.probe_cart:
                atoms = Atoms(numbers=[*host.atomic_numbers, 3], positions=np.vstack([host.cart_coords, p]),
                              cell=host.lattice.matrix, pbc=True)
                atoms.calc = calc
                out.append(atoms.get_potential_energy())
            e_loop.append(np.array(out))

    t_loop = timed(loop, args.device)
    de = max(float(np.max(np.abs(a - b))) for a, b in zip(e_engine, e_loop))
    de_forces = max(float(np.max(np.abs(a - b))) for a, b in zip(e_forces, e_loop))

    shape = (100, 100, 100)
    x, y, z = np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij")
    grid = (0.3 * (1 - np.cos(2 * np.pi * x)) + 0.7 * (1 - np.cos(2 * np.pi * y)) + 1.1 * (1 - np.cos(2 * np.pi * z))
            ) / 2 + 0.01 * np.random.default_rng(0).random(shape)
    t_perc = timed(lambda: percolation_barriers(grid), args.device)
    sym = symmetry_factors(args.spacing)

    rows = [("engine (batched, energy only)", t_engine), ("engine (batched, with forces)", t_forces),
            ("ASE loop (one probe per call)", t_loop)]
    print(f"\n{n_probes} probes ({args.probes} per candidate, {len(jobs)} candidates of "
          f"{', '.join(str(len(j.host)) for j in jobs)} atoms + 1 Li), {loaded.name}, {args.device}, "
          f"{torch.get_num_threads()} threads, batches of <= {args.max_atoms} atoms")
    print(f"{'':34}{'time/s':>9}{'probes/s':>11}")
    for name, t in rows:
        print(f"{name:34}{t:>9.2f}{n_probes / t:>11.1f}")
    print(f"engine / ASE loop: {t_loop / t_engine:.2f}x (energy only), {t_loop / t_forces:.2f}x (with forces)")
    print(f"max |dE| engine vs ASE loop: {de:.2e} eV (energy only), {de_forces:.2e} eV (with forces)")
    print(f"percolation kernel, 10^6-point grid: {t_perc:.2f} s")
    print(f"symmetry reduction at {args.spacing} Å (points evaluated, same grid):")
    for r in sym:
        print(f"  {r['phase']:<28} grid {r['grid']}  {r['operations']:>3} ops  "
              f"{r['evaluated_full']:>7} -> {r['evaluated_reduced']:>6}  ({r['factor']:.1f}x)")
    path = write_json("pes", {
        "model": loaded.name, "device": args.device, "n_probes": n_probes, "max_atoms_per_batch": args.max_atoms,
        "candidate_atoms": [len(j.host) for j in jobs],
        "time_engine_s": t_engine, "time_engine_forces_s": t_forces, "time_ase_loop_s": t_loop,
        "probes_per_s": {"engine": n_probes / t_engine, "engine_forces": n_probes / t_forces,
                         "ase_loop": n_probes / t_loop},
        "ratio_engine_over_loop": t_loop / t_engine, "ratio_engine_forces_over_loop": t_loop / t_forces,
        "max_abs_dE_eV": de, "max_abs_dE_forces_eV": de_forces, "percolation_1e6_s": t_perc,
        "symmetry": sym})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
