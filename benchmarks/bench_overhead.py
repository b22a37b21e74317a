"""The engine's own cost at GPU scale: relax, pes probes and md with a near-free analytic model, against the bare
torch-sim loop doing the same steps and model calls on the same batch.

With :class:`engine.models.analytic.LatticeWellModel` (harmonic wells at the points of a 1 Å lattice: a few
elementwise operations per atom) the model costs next to nothing, so whatever the engine spends beyond the bare loop
is its own work: what would dominate on a GPU, where a uMLIP step on 10^5 atoms takes milliseconds.

- relax: what the relax stage does (its input structures read from the run file, ``engine.relax.fire.relax``: elements
  check, packing, in-flight batching, verdicts, rows written to the run file) on N rattled 8-atom rock-salt cells,
  all in one batch; bare: ``fire_init`` and
  ``fire_step`` (ASE-flavoured FIRE, Fréchet cell filter) on the packed batch for as many steps as the engine needed.
- pes: ``engine.pes.probes.evaluate_jobs`` on framework grids whose probes number N in all (hosts of 8 atoms, each
  probe evaluated in the host's 2×2×2 supercell, as ``min_probe_width`` asks), all in one batch, best of three; bare:
  the same probe systems (the same supercells) built as one state with torch operations and one model call.
- md: ``engine.md.replicas.run_replicas`` (Berendsen then Nosé–Hoover, health checks, trajectories streamed to an
  HDF5 file) on N 8-atom replicas for 500 steps of 2 fs (frames every 10 fs, checks every 50 fs, as in the paper
  protocol); bare: torch-sim's ``nvt_nose_hoover_step`` for as many steps on the same batch.

N counts the systems of the batch dimension: structures (relax), probes (pes), replicas (md). Prints per stage the
time per system-step of both and their ratio, writes ``benchmarks/results/overhead[_<device>].json``, and ends with
the line ``overhead: relax X.XX, pes X.XX, md X.XX (engine / bare torch-sim loop, n=N)``.

Host memory: with glibc's defaults, the heap hands freed memory back to the system and ``mmap``s large blocks
afresh, so every step of both loops pays page faults (about 0.9 million per 10^4-structure relaxation, 1–1.7 s of
system time out of 2–3 s), and how many depends on the process's allocation history: ratios then vary from 1.2 to
1.8 between identical runs. A GPU's caching allocator keeps its blocks, so by default the benchmark re-executes
itself with glibc told to keep its heap (``MALLOC_*`` variables below, as a caching allocator would; both loops run
under the same setting). ``--system-malloc`` keeps glibc's defaults.

    python benchmarks/bench_overhead.py [--n 10000] [--device cpu|cuda] [--stages relax pes md] [--repeats 3]
                                        [--system-malloc]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch_sim as ts
from common import timed, write_json
from pymatgen.core import Lattice, Structure
from torch_sim.optimizers import fire_init, fire_step

from engine.core.crystals import Crystals
from engine.core.structures import pack
from engine.io.store import ResultStore
from engine.md.protocol import MdSettings
from engine.md.replicas import Replica, run_replicas
from engine.md.trajectories import TrajectorySink
from engine.models import load_model, model_config
from engine.pes.probes import evaluate_jobs, make_job
from engine.relax.fire import RelaxSettings, relax

# glibc: blocks up to 32 MB (its largest mmap threshold) from the heap; keep up to 1 GB free at its top
CACHING_HOST_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "1073741824",
                       "MALLOC_TOP_PAD_": "268435456"}

ROCK_SALT = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.0), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def cells(n: int, rattle: float, seed: int = 0) -> list[Structure]:
    """``n`` 8-atom rock-salt cells (a = 4 Å, every atom on a well) with Gaussian displacements of ``rattle`` Å."""
    rng = np.random.default_rng(seed)
    pos = ROCK_SALT.cart_coords
    return [Structure(ROCK_SALT.lattice, ROCK_SALT.species, pos + rng.normal(scale=rattle, size=pos.shape),
                      coords_are_cartesian=True) for _ in range(n)]


def bench_relax(loaded, n: int, workdir: Path) -> dict:
    structures = cells(n, 0.1)
    settings = RelaxSettings(fmax=0.05, max_steps=200, max_atoms_per_batch=8 * n)
    device, dtype = loaded.model.device, loaded.model.dtype
    ids = [f"c{i}" for i in range(n)]
    path = workdir / "relax.h5"
    with ResultStore(path, "w") as store:  # the stage's input: structures in the run file
        store.append("candidates", ids, ["pass"] * n, [""] * n, structures=structures)
    steps = []

    def engine():
        """What the relax stage does: read its input structures from the run file, relax, write the rows."""
        with ResultStore(path) as store:
            def write(rows):
                store.append_rows("relax", rows)
                steps.extend(r.steps for r in rows)
            found, crystals = store.crystals("candidates", ids)
            relax(crystals, found, loaded, settings, write)

    engine_s = timed(engine, device)
    n_steps = max(steps)
    state = pack(structures, device, dtype)

    def bare():
        s = fire_init(model=loaded.model, state=state, cell_filter=ts.CellFilter("frechet"), fire_flavor="ase_fire")
        for _ in range(n_steps):
            s = fire_step(state=s, model=loaded.model, fire_flavor="ase_fire")

    bare_s = timed(bare, device)
    return {"n": n, "steps": n_steps, "engine_s": engine_s, "bare_s": bare_s, "system_steps": n * n_steps}


def bench_pes(loaded, n: int, workdir: Path) -> dict:
    from engine.pes.stage import PesSettings

    settings = PesSettings(spacing=0.5, exclusion_radius=1.0, use_symmetry=False)
    host = cells(1, 0.0)[0]
    per_host = make_job("h", host, "framework", settings).grid.n_evaluated
    hosts = cells(max(1, -(-n // per_host)), 0.05, seed=1)
    jobs = [make_job(f"h{i}", s, "framework", settings) for i, s in enumerate(hosts)]
    n_probes = sum(j.grid.n_evaluated for j in jobs)
    # each probe is evaluated in the host's supercell of at least min_probe_width (evaluated_host), in both loops
    max_atoms = sum((len(j.evaluated_host) + 1) * j.grid.n_evaluated + len(j.evaluated_host) for j in jobs)
    device, dtype = loaded.model.device, loaded.model.dtype
    hosts_t = [(torch.as_tensor(j.evaluated_host.cart_coords, dtype=dtype, device=device),
                torch.as_tensor(j.evaluated_host.atomic_numbers, device=device),
                torch.as_tensor(j.evaluated_host.lattice.matrix.T.copy(), dtype=dtype, device=device),
                torch.as_tensor(j.probe_cart, dtype=dtype, device=device)) for j in jobs]

    def bare():
        """The hosts, and each host copied once per probe with a Li at the probe, as one state; one model call."""
        pos, z, cells = [], [], []
        for hpos, hz, cell, probes in hosts_t:
            m = len(probes)
            pos += [hpos, torch.cat([hpos.expand(m, -1, -1), probes[:, None]], dim=1).reshape(-1, 3)]
            z += [hz, torch.cat([hz.expand(m, -1), torch.full((m, 1), 3, device=device)], dim=1).reshape(-1)]
            cells += [cell[None], cell.expand(m, -1, -1)]
        numbers = torch.cat(z)
        sizes = torch.tensor([n for hpos, _, _, probes in hosts_t for n in (len(hpos), *[len(hpos) + 1] * len(probes))],
                             device=device)
        state = ts.SimState(positions=torch.cat(pos), masses=torch.ones(len(numbers), dtype=dtype, device=device),
                            cell=torch.cat(cells), pbc=True, atomic_numbers=numbers,
                            system_idx=torch.repeat_interleave(torch.arange(len(sizes), device=device), sizes))
        with torch.no_grad():
            loaded.model(state)["energy"].cpu()

    engine_s = min(timed(lambda: evaluate_jobs(jobs, loaded, max_atoms), device) for _ in range(3))
    bare_s = min(timed(bare, device) for _ in range(3))
    return {"n": n_probes, "hosts": len(jobs), "engine_s": engine_s, "bare_s": bare_s, "system_steps": n_probes}


def bench_md(loaded, n: int, workdir: Path) -> dict:
    from ase import units
    from torch_sim.integrators.nvt import nvt_nose_hoover_init, nvt_nose_hoover_step

    settings = MdSettings(temperatures=[500.0], framework_temperature=500.0, timestep_fs=2.0, thermalisation_ps=0.2, production_ps=0.8,
                          sample_interval_fs=10.0, max_atoms_per_batch=8 * n, check_interval_fs=50.0,
                          runaway_factor=10.0)  # 8-atom harmonic crystals swing far from the mean T
    replicas = [Replica(f"c{i}", 500.0, s) for i, s in enumerate(cells(n, 0.0))]
    n_steps = settings.steps(settings.thermalisation_ps) + settings.steps(settings.production_ps)

    def engine():
        with ResultStore(workdir / "md.h5", "w") as store:
            sink = TrajectorySink(store, settings.frame_interval_ps, settings.frames_per_flush)
            run_replicas(replicas, loaded.model, settings, sink, lambda members: None)

    engine_s = timed(engine, loaded.model.device)
    bad = [r.error for r in replicas if r.error]
    if bad:
        raise RuntimeError(f"{len(bad)} replicas stopped, e.g. {bad[0]}")
    device, dtype = loaded.model.device, loaded.model.dtype
    state = Crystals.from_structures([r.structure for r in replicas]).to_state(device, dtype)
    dt = torch.tensor(settings.timestep_fs * units.fs, dtype=dtype, device=device)
    kT = torch.tensor(500.0 * units.kB, dtype=dtype, device=device)

    def bare():
        s = nvt_nose_hoover_init(state, loaded.model, kT=kT, dt=dt, seed=0)
        for _ in range(n_steps):
            s = nvt_nose_hoover_step(s, loaded.model, dt=dt, kT=kT)

    bare_s = timed(bare, device)
    return {"n": n, "steps": n_steps, "engine_s": engine_s, "bare_s": bare_s, "system_steps": n * n_steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--stages", nargs="+", default=["relax", "pes", "md"], choices=["relax", "pes", "md"])
    ap.add_argument("--repeats", type=int, default=3, help="each stage this many times; the fastest of each side")
    ap.add_argument("--out", default=None, help="JSON name (default overhead, or overhead_cuda on a GPU)")
    ap.add_argument("--system-malloc", action="store_true",
                    help="keep glibc's default heap (page faults at every step; see the module docstring)")
    args = ap.parse_args()
    if not args.system_malloc and any(os.environ.get(k) != v for k, v in CACHING_HOST_MALLOC.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **CACHING_HOST_MALLOC})

    loaded = load_model(model_config({"kind": "analytic", "name": "lattice-wells", "dtype": "float64"}), args.device)
    runners = {"relax": bench_relax, "pes": bench_pes, "md": bench_md}
    # warm-up: the first calls pay for torch-sim's and torch's lazy initialisation
    with tempfile.TemporaryDirectory() as tmp:
        for stage in args.stages:
            runners[stage](loaded, 64, Path(tmp))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stage in args.stages:
            runs = [runners[stage](loaded, args.n, Path(tmp)) for _ in range(args.repeats)]
            r = {**runs[0], "engine_s": min(x["engine_s"] for x in runs), "bare_s": min(x["bare_s"] for x in runs)}
            r["ratio"] = r["engine_s"] / r["bare_s"]
            results[stage] = r
            per = 1e6 / r["system_steps"]
            print(f"{stage:5s} n={r['n']:6d}: engine {r['engine_s']:7.2f} s ({r['engine_s'] * per:6.2f} µs per "
                  f"system-step), bare torch-sim {r['bare_s']:6.2f} s ({r['bare_s'] * per:6.2f} µs): "
                  f"ratio {r['ratio']:.2f}", flush=True)
    name = args.out or ("overhead" if str(args.device) == "cpu" else f"overhead_{torch.device(args.device).type}")
    host_malloc = "glibc defaults" if args.system_malloc else CACHING_HOST_MALLOC
    write_json(name, {"device": args.device, "host_malloc": host_malloc, **results})
    body = ", ".join(f"{k} {v['ratio']:.2f}" for k, v in results.items())
    print(f"overhead: {body} (engine / bare torch-sim loop, n={args.n})")


if __name__ == "__main__":
    main()
