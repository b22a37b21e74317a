"""Relaxation throughput: the engine's batched in-flight FIRE vs the plain per-structure ASE loop vs the floor.

(a) engine: engine.relax.stage.relax on N structures (8-80 atoms), one process;
(b) ASE: for each structure, the model package's own ASE calculator, ase.optimize.FIRE on
    ase.filters.FrechetCellFilter, same fmax and step limit;
(c) floor: the same number of structure-evaluations as (a) made, done as batched model calls alone;
(d) torch-sim's own ``ts.optimize`` runner on the same inputs, for reference;
(e) the model's cost per atom in one batched call and in one call per structure (what batching can save).
Prints structures/s for each, the ratios a/b and a/c, the largest final-energy difference per atom (a vs b),
and writes benchmarks/results/relax_<device>.json (relax_<model>_<device>.json for another model than SevenNet-0).

    python benchmarks/bench_relax.py [--n 16] [--min-atoms 8] [--max-atoms 80] [--repeats 1] [--model sevennet_0]
                                     [--device cpu|cuda]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch_sim as ts
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE
from common import ase_calculator, mixed_size_structures, model_config, timed, write_json
from pymatgen.io.ase import AseAtomsAdaptor

from engine.core.structures import pack
from engine.models import load_model
from engine.relax.fire import RelaxSettings, relax


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--min-atoms", type=int, default=8)
    ap.add_argument("--max-atoms", type=int, default=80)
    ap.add_argument("--model", default="sevennet_0")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fmax", type=float, default=0.05)
    ap.add_argument("--max-steps", type=int, default=500)
    ap.add_argument("--max-atoms-per-batch", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=1, help="alternate the four runs this many times; medians")
    ap.add_argument("--steps-between-checks", type=int, default=None, help="default: the engine's (1 CPU, 5 GPU)")
    args = ap.parse_args()

    structures = mixed_size_structures(args.n, args.min_atoms, args.max_atoms)
    loaded = load_model(model_config(args.model), args.device)
    device = loaded.model.device
    n_atoms = [len(s) for s in structures]
    print(f"{args.n} structures, {min(n_atoms)}-{max(n_atoms)} atoms ({sum(n_atoms)} in all), model "
          f"{loaded.name} ({loaded.model.dtype}), device {device}, torch threads {torch.get_num_threads()}")

    # warm-up (first calls pay for lazy initialisation in every package)
    loaded.model(pack(structures[:2], device, loaded.model.dtype))

    settings = RelaxSettings(fmax=args.fmax, max_steps=args.max_steps, steps_between_checks=args.steps_between_checks,
                             max_atoms_per_batch=args.max_atoms_per_batch if device.type == "cpu" else None)
    ids = [str(i) for i in range(len(structures))]
    calc = ase_calculator(loaded, str(device))
    results = {}
    ase_e, ase_steps = [], []

    def engine():  # (a)
        relax(structures, ids, loaded, settings, lambda rs: results.update({r.id: r for r in rs}))

    def ase_loop():  # (b) per-structure ASE loop
        ase_e.clear(), ase_steps.clear()
        for s in structures:
            atoms = AseAtomsAdaptor.get_atoms(s)
            atoms.calc = calc
            opt = FIRE(FrechetCellFilter(atoms), logfile=None)
            opt.run(fmax=args.fmax, steps=args.max_steps)
            ase_steps.append(opt.nsteps)
            ase_e.append(atoms.get_potential_energy() / len(atoms))

    def torchsim_optimize():  # (d) torch-sim's own runner (same FIRE flavour, cell filter and convergence test)
        ts.optimize(system=pack(structures, device, loaded.model.dtype), model=loaded.model,
                    optimizer=ts.Optimizer.fire, max_steps=args.max_steps,
                    convergence_fn=ts.generate_force_convergence_fn(args.fmax, include_cell_forces=True),
                    autobatcher=ts.InFlightAutoBatcher(loaded.model, memory_scales_with="n_atoms",
                                                       max_memory_scaler=args.max_atoms_per_batch)
                    if device.type == "cpu" else True,
                    init_kwargs={"cell_filter": ts.CellFilter.frechet, "fire_flavor": "ase_fire"},
                    fire_flavor="ase_fire")

    def floor_calls() -> int:  # full-batch model calls that equal the engine's structure-evaluations
        return int(np.ceil(sum(r.steps for r in results.values()) / len(structures)))

    def floor():  # (c) the engine's structure-evaluations as full batched model calls alone
        state = pack(structures, device, loaded.model.dtype)
        for _ in range(floor_calls()):
            loaded.model(state)

    # the runs alternate and medians are reported: this machine's timing noise is about ±10 %
    times = {"engine": [], "ase": [], "torchsim": [], "floor": []}
    for _ in range(args.repeats):
        for name, fn in (("engine", engine), ("ase", ase_loop), ("torchsim", torchsim_optimize), ("floor", floor)):
            times[name].append(timed(fn, str(device)))
    t_engine, t_ase, t_torchsim, t_floor = (float(np.median(times[k])) for k in ("engine", "ase", "torchsim", "floor"))
    engine_steps = [results[i].steps for i in ids]
    engine_e = np.array([results[i].energy_per_atom for i in ids])
    n_calls = floor_calls()

    # (e) the model's own cost per atom: one call on the whole batch vs one call per structure (best of 3)
    batch_state = pack(structures, device, loaded.model.dtype)
    singles = [pack([s], device, loaded.model.dtype) for s in structures]
    ms_per_atom_batched = 1e3 * min(timed(lambda: loaded.model(batch_state), str(device))
                                    for _ in range(3)) / sum(n_atoms)
    ms_per_atom_alone = 1e3 * min(timed(lambda: [loaded.model(st) for st in singles], str(device))
                                  for _ in range(3)) / sum(n_atoms)

    n = len(structures)
    converged = sum(results[i].converged for i in ids)
    row = {
        "n_structures": n, "atoms_min": min(n_atoms), "atoms_max": max(n_atoms), "model": loaded.name,
        "device": str(device), "dtype": str(loaded.model.dtype),
        "model_ms_per_atom_batched": ms_per_atom_batched, "model_ms_per_atom_alone": ms_per_atom_alone,
        "repeats": args.repeats, "times_s": times, "engine_s": t_engine, "ase_s": t_ase, "floor_s": t_floor,
        "engine_structures_per_s": n / t_engine, "ase_structures_per_s": n / t_ase,
        "floor_structures_per_s": n / t_floor,
        "torchsim_optimize_s": t_torchsim, "speedup_torchsim_over_ase": t_ase / t_torchsim,
        "speedup_engine_over_ase": t_ase / t_engine, "engine_over_floor": t_floor / t_engine,
        "engine_steps_total": int(sum(engine_steps)), "ase_steps_total": int(sum(ase_steps)),
        "engine_converged": int(converged), "ase_converged": int(sum(s < args.max_steps for s in ase_steps)),
        "max_abs_dE_per_atom_eV": float(np.nanmax(np.abs(engine_e - np.array(ase_e)))),
    }
    print(f"\n{'':<10}{'time/s':>9}{'structures/s':>14}{'steps':>8}")
    print(f"{'engine':<10}{t_engine:>9.1f}{n / t_engine:>14.3f}{sum(engine_steps):>8d}")
    print(f"{'ASE loop':<10}{t_ase:>9.1f}{n / t_ase:>14.3f}{sum(ase_steps):>8d}")
    print(f"{'ts.optimize':<10}{t_torchsim:>9.1f}{n / t_torchsim:>14.3f}{'':>8}")
    print(f"{'floor':<10}{t_floor:>9.1f}{n / t_floor:>14.3f}{n_calls * n:>8d}")
    print(f"a/b (engine speed-up over ASE loop): {row['speedup_engine_over_ase']:.2f}x")
    print(f"d/b (torch-sim's own runner over ASE loop): {row['speedup_torchsim_over_ase']:.2f}x")
    print(f"a/c (engine throughput / floor):     {row['engine_over_floor']:.2f}  "
          f"(overhead over floor {100 * (t_engine / t_floor - 1):.0f} %)")
    print(f"converged: engine {converged}/{n}, ASE {row['ase_converged']}/{n}; "
          f"max |dE| engine vs ASE {row['max_abs_dE_per_atom_eV']:.2e} eV/atom")
    print(f"model alone: {ms_per_atom_batched:.1f} ms/atom in one batch, {ms_per_atom_alone:.1f} ms/atom one structure "
          "per call")
    name = f"relax_{device.type}" if args.model == "sevennet_0" else f"relax_{args.model}_{device.type}"
    print("wrote", write_json(name, row))


if __name__ == "__main__":
    main()
