"""MD throughput: the engine's multi-replica run vs the same replicas one after another through ASE's MD, same model.

Replicas: small Li compounds (rock-salt LiBr and LiCl, anti-fluorite Li2O; conventional cells, rattled, or with
``--supercell`` the protocol's ≥100-atom, ≥10 Å supercells) at 500 K and 1000 K. Each replica runs ``--therm``
Berendsen steps then ``--prod`` Nosé–Hoover-chain steps at 1 fs, positions sampled every ``--sample`` steps:
(a) engine: ``engine.md.replicas.run_replicas`` — all replicas as systems of batched states of at most ``--max-atoms``
    atoms, per-system temperatures and thermostats, frames streamed to an HDF5 file;
(b) ASE loop: for each replica an ``Atoms`` with the package's own calculator, ``NVTBerendsen`` then
    ``NoseHooverChainNVT``, positions appended to a list at the same interval;
(c) floor: the same number of model evaluations on the engine's batches, nothing else.
Prints atom-steps/s for each, the ratios a/b and a/c, and writes benchmarks/results/md_<model>.json.

    python benchmarks/bench_md.py [--therm 20] [--prod 80] [--max-atoms 400] [--supercell] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.md.nose_hoover_chain import NoseHooverChainNVT
from ase.md.nvtberendsen import NVTBerendsen
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from common import ase_calculator, model_config, timed, write_json
from pymatgen.core import Lattice, Structure

from engine.core.structures import pack
from engine.core.supercells import md_supercell
from engine.io.store import ResultStore
from engine.md.protocol import MdSettings
from engine.md.replicas import Replica, run_replicas
from engine.md.trajectories import TrajectorySink
from engine.models import load_model


def structures(supercell: bool, seed: int = 0) -> list[Structure]:
    rng = np.random.default_rng(seed)
    out = []
    # no LiF: TensorNet-MatPES-PBE collapses rattled rock-salt LiF within 10 fs (-12 eV per 8 atoms)
    for a, species, coords in ((5.50, ["Li", "Br"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
                               (5.13, ["Li", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
                               (4.62, ["Li", "O"], [[0.25, 0.25, 0.25], [0, 0, 0]])):
        s = Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), species, coords)
        if supercell:
            s = md_supercell(s, 100, 10.0)[0]
        out.append(Structure(s.lattice, s.species, s.cart_coords + rng.normal(scale=0.03, size=(len(s), 3)),
                             coords_are_cartesian=True))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="sevennet_0")
    ap.add_argument("--model-path", default=None, help="local weights (e.g. ../shared/models/matgl/<name>)")
    ap.add_argument("--therm", type=int, default=20, help="Berendsen steps per replica")
    ap.add_argument("--prod", type=int, default=80, help="Nose-Hoover steps per replica")
    ap.add_argument("--sample", type=int, default=10, help="steps between stored frames")
    ap.add_argument("--max-atoms", type=int, default=400)
    ap.add_argument("--supercell", action="store_true", help="the protocol's >=100-atom supercells")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="engine and ASE loop alternate; medians are reported")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = model_config(args.model)
    if args.model_path:
        cfg.path = args.model_path
    loaded = load_model(cfg, args.device)
    model = loaded.model
    temps = (500.0, 1000.0)
    inputs = structures(args.supercell)
    replicas = [Replica(f"s{i}", t, s) for i, s in enumerate(inputs) for t in temps]
    pymatgen_of = {r.key: inputs[int(r.cid[1:])] for r in replicas}
    n_steps = args.therm + args.prod
    atom_steps = sum(len(r.structure) for r in replicas) * n_steps
    settings = MdSettings(temperatures=temps, transport_temperature=min(temps), framework_temperature=max(temps),
                          timestep_fs=1.0, thermalisation_ps=args.therm / 1000,
                          berendsen_tau_ps=0.1, production_ps=args.prod / 1000, nose_hoover_tau_fs=25.0,
                          sample_interval_fs=args.sample, max_atoms_per_batch=args.max_atoms,
                          check_interval_fs=50.0)


    model(pack([inputs[0]], model.device, model.dtype))  # warm-up
    finished: list[Replica] = []

    def engine() -> None:
        finished.clear()
        for r in replicas:
            r.error, r.temperatures = "", []
        with tempfile.TemporaryDirectory() as tmp, ResultStore(Path(tmp) / "bench.h5", "w") as store:
            sink = TrajectorySink(store, settings.frame_interval_ps, settings.frames_per_flush)
            run_replicas(replicas, model, settings, sink, finished.extend)

    # (c) the floor: model calls on batches like the engine's (greedy packing by atoms)
    batches, current, atoms = [], [], 0
    for r in sorted(replicas, key=lambda r: -len(r.structure)):
        if current and atoms + len(r.structure) > args.max_atoms:
            batches.append(current)
            current, atoms = [], 0
        current.append(pymatgen_of[r.key])
        atoms += len(r.structure)
    batches.append(current)
    states = [pack(b, model.device, model.dtype) for b in batches]
    reps = max(1, min(n_steps, 10))
    t_call = timed(lambda: [model(s) for s in states for _ in range(reps)], args.device) / reps
    t_floor = t_call * (n_steps + 2)  # + the two init evaluations

    calc = ase_calculator(loaded, args.device)
    ase_T = {}

    def loop() -> None:
        for r in replicas:
            atoms = pymatgen_of[r.key].to_ase_atoms()
            atoms.calc = calc
            MaxwellBoltzmannDistribution(atoms, temperature_K=r.temperature, rng=np.random.default_rng(0))
            Stationary(atoms)
            frames, temps_seen = [], []
            NVTBerendsen(atoms, 1.0 * units.fs, temperature_K=r.temperature, taut=100 * units.fs).run(args.therm)
            dyn = NoseHooverChainNVT(atoms, 1.0 * units.fs, temperature_K=r.temperature, tdamp=25 * units.fs)
            dyn.attach(lambda a=atoms, f=frames, t=temps_seen: (f.append(a.get_positions()),
                                                                t.append(a.get_temperature())),
                       interval=args.sample)
            dyn.run(args.prod)
            ase_T[r.key] = float(np.mean(temps_seen))

    times_engine, times_loop = [], []
    for _ in range(args.repeats):  # alternating, so drifts of a shared machine hit both alike
        times_engine.append(timed(engine, args.device))
        times_loop.append(timed(loop, args.device))
    t_engine, t_loop = float(np.median(times_engine)), float(np.median(times_loop))
    errors = [r.error for r in finished if r.error]
    engine_T = {r.key: float(np.mean(r.temperatures)) for r in finished if r.temperatures}
    rate = {"engine": atom_steps / t_engine, "ase_loop": atom_steps / t_loop, "floor": atom_steps / t_floor}
    print(f"\n{len(replicas)} replicas ({', '.join(str(len(r.structure)) for r in replicas[::2])} atoms, each at "
          f"{temps[0]:g} and {temps[1]:g} K), {args.therm} Berendsen + {args.prod} Nose-Hoover steps, {loaded.name}, "
          f"{args.device}, {torch.get_num_threads()} threads, batches of <= {args.max_atoms} atoms")
    print(f"{'':36}{'time/s':>9}{'atom-steps/s':>14}")
    for name, t, key in (("engine (multi-replica, streamed)", t_engine, "engine"),
                         ("ASE loop (one replica at a time)", t_loop, "ase_loop"),
                         ("floor (model calls on the batches)", t_floor, "floor")):
        print(f"{name:36}{t:>9.2f}{rate[key]:>14.1f}")
    print(f"medians of {args.repeats} alternating runs; engine {', '.join(f'{t:.1f}' for t in times_engine)} s, "
          f"ASE loop {', '.join(f'{t:.1f}' for t in times_loop)} s")
    print(f"engine / ASE loop: {t_loop / t_engine:.2f}x;  engine / floor: {t_floor / t_engine:.2f} "
          f"(overhead {100 * (t_engine / t_floor - 1):.0f} % over the floor)")
    if errors:
        print("engine replicas stopped:", errors)
    path = write_json(f"md_{args.model}" + ("_supercell" if args.supercell else ""), {
        "model": loaded.name, "device": args.device, "replica_atoms": [len(r.structure) for r in replicas],
        "temperatures_K": temps, "berendsen_steps": args.therm, "nose_hoover_steps": args.prod,
        "max_atoms_per_batch": args.max_atoms, "atom_steps": atom_steps,
        "time_engine_s": t_engine, "time_ase_loop_s": t_loop, "times_engine_s": times_engine,
        "times_ase_loop_s": times_loop, "time_floor_s": t_floor,
        "atom_steps_per_s": rate, "ratio_engine_over_loop": t_loop / t_engine,
        "ratio_engine_over_floor": t_floor / t_engine, "engine_mean_T_K": engine_T, "ase_mean_T_K": ase_T,
        "errors": errors})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
