"""The whole funnel at scale with a near-free model: what each stage costs the host, and what a GPU would add.

Runs ``engine.screen.run`` on every stage of the table (the default funnel plus MD with the smoke protocol) for about
``--n`` built-in candidates (``--per-system`` in each of enough drawn Li ternaries that have a charge-balanced
composition), with :class:`engine.models.analytic.LatticeWellModel` as every stage's uMLIP: its forward pass is a few
elementwise operations, so a stage's wall time is the engine's own work. Each model call is timed and its atoms
counted (atom-steps), per stage. Printed per stage: wall time, candidates in, host seconds per candidate (wall minus
model calls), the fraction of the stage spent outside model calls, and the projected GPU line: the model time per
candidate at ``--model-us-per-atom-step`` (default 3 µs, the published batched MACE figure on an H100) beside the
host's time. Every batched stage gets ``--max-atoms-per-batch`` atoms per model call, as a GPU's memory would give
it. The band-gap stage's MEGNet counts as host work (it is no uMLIP and runs once per candidate).

Each ``--workers`` value gets its own run, in a fresh Python process (a cold reference cache each, and no objects
left over from another run for the garbage collector to walk); then the first file is resumed (every stage
finds its rows; the references stage's time is the warm-cache resume) and the files of the different worker counts
are compared with ``engine.compare`` (zero differences expected). With ``--shards`` the screen also runs as shards,
merged and compared with the unsharded file: structures at zero tolerance, numbers within float32 rounding (a shard
batches a candidate with other candidates, which moves a batched model's float32 numbers by ulps). JSON in ``benchmarks/results/funnel.json``.

    python benchmarks/bench_funnel.py [--n 1000] [--workers 1 2] [--per-system 12] [--max-atoms 24]
                                      [--model-us-per-atom-step 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_json

from engine.candidates.sampler import SEED_ALLOWED_ELEMENTS, charge_balanced_compositions, draw_chemical_systems
from engine.io.compare import compare_groups
from engine.io.store import ResultStore
from engine.models.analytic import LatticeWellModel
from engine.stages import STAGES

ANALYTIC = ["model.kind=analytic", "model.name=lattice-wells", "model.dtype=float64",
            "committee.models=[{kind:analytic,name:lattice-wells-member,dtype:float64}]",
            "controls=[]"]  # the funnel of the candidates alone: its per-candidate costs
BATCHED_STAGES = ("relax", "phonons", "pes", "md")
# the stages whose work is the host's (pyxtal, spglib, pymatgen's matching, hulls, CrystalNN, bond valence)
# float32 rounding: a shard batches a candidate with other candidates than the unsharded run does (bandgap, relax)
ROUNDING = (1e-5, 1e-6)  # rtol, atol
HOST_STAGES = ("candidates", "novelty", "references", "relaxed_novelty", "thermo", "plausibility")


class ModelClock:
    """Wall time [s] and atoms of every uMLIP call, attributed to the stage running."""

    def __init__(self):
        self.stage = None
        self.seconds: dict[str, float] = {}
        self.atom_steps: dict[str, int] = {}
        self._forward = LatticeWellModel.forward

    def __enter__(self):
        clock = self

        def forward(model, state, **kwargs):
            t0 = time.perf_counter()
            out = clock._forward(model, state, **kwargs)
            if clock.stage:
                clock.seconds[clock.stage] = clock.seconds.get(clock.stage, 0.0) + time.perf_counter() - t0
                clock.atom_steps[clock.stage] = clock.atom_steps.get(clock.stage, 0) + int(state.positions.shape[0])
            return out
        LatticeWellModel.forward = forward
        return self

    def __exit__(self, *exc):
        LatticeWellModel.forward = self._forward

    def table(self, stages=STAGES):
        """The stage table with each stage's ``run`` telling the clock which stage is running."""
        def timed(stage):
            def run_stage(run):
                self.stage = stage.name
                try:
                    stage.run(run)
                finally:
                    self.stage = None
            return dataclasses.replace(stage, run=run_stage)
        return tuple(timed(s) for s in stages)


def chemical_systems(n: int, per_system: int, max_atoms: int, seed: int = 0) -> tuple[list[list[str]], int]:
    """Enough drawn Li ternaries with a charge-balanced composition within ``max_atoms`` for ``n`` candidates, and the
    candidates per system: ``per_system``, raised when all 820 Li-X-Y systems of the allowed elements hold too few
    usable ones (501 within 24 atoms: 10^4 candidates take 20 per system)."""
    need = math.ceil(n / per_system)
    drawn = draw_chemical_systems(["Li"], SEED_ALLOWED_ELEMENTS, min(4 * need + 20, 820), seed)
    usable = [s for s in drawn if charge_balanced_compositions(s, max_atoms)]
    if len(usable) < need and len(drawn) == 820:
        per_system = math.ceil(n / len(usable))
        need = math.ceil(n / per_system)
        print(f"only {len(usable)} usable systems within {max_atoms} atoms: {per_system} candidates per system")
    if len(usable) < need:
        raise SystemExit(f"only {len(usable)} usable systems for {need} wanted; lower --n or raise --per-system")
    return usable[:need], per_system


def screen(overrides: list[str], clock: ModelClock) -> dict[str, float]:
    from hydra import compose, initialize_config_dir

    from engine.screen import run

    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = compose("screen", overrides=overrides)
    return run(cfg, clock.table())


def screen_in_process(overrides: list[str]) -> tuple[dict[str, float], dict, dict, float]:
    """One screen in a fresh Python process (this script with ``--child``): (stage timings [s], model seconds per
    stage, model atom-steps per stage, wall [s])."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(overrides, f)
    subprocess.run([sys.executable, __file__, "--child", f.name], check=True)
    out = json.loads(Path(f.name).read_text())
    Path(f.name).unlink()
    return out["timings"], out["model_s"], out["atom_steps"], out["wall_s"]


def child(path: str) -> None:
    """``--child FILE``: the screen of the overrides in FILE, its timings written back to FILE."""
    overrides = json.loads(Path(path).read_text())
    with ModelClock() as clock:
        t0 = time.perf_counter()
        timings = screen(overrides, clock)
        wall = time.perf_counter() - t0
    Path(path).write_text(json.dumps({"timings": timings, "model_s": clock.seconds, "atom_steps": clock.atom_steps,
                                      "wall_s": wall}))


def stage_lines(timings: dict, model_seconds: dict, atom_steps: dict, store: ResultStore,
                us_per_atom_step: float) -> dict:
    out = {}
    for name, wall in timings.items():
        n_in = len(store.ids(name)) if store.has(name) else 0
        model_s = model_seconds.get(name, 0.0)
        host_s = wall - model_s
        steps = atom_steps.get(name, 0)
        gpu_model_s = steps * us_per_atom_step * 1e-6
        out[name] = {"wall_s": wall, "n": n_in, "model_s": model_s, "host_s": host_s, "atom_steps": steps,
                     "outside_model_fraction": host_s / wall if wall else 0.0,
                     "host_s_per_candidate": host_s / n_in if n_in else 0.0,
                     "gpu_model_s_per_candidate": gpu_model_s / n_in if n_in else 0.0}
    return out


def print_table(label: str, lines: dict) -> None:
    print(f"\n{label}")
    print(f"{'stage':<16}{'wall/s':>9}{'n':>7}{'host s/cand':>13}{'outside model':>15}{'GPU model s/cand':>18}")
    for name, r in lines.items():
        print(f"{name:<16}{r['wall_s']:>9.1f}{r['n']:>7}{r['host_s_per_candidate']:>13.4f}"
              f"{r['outside_model_fraction']:>15.1%}{r['gpu_model_s_per_candidate']:>18.5f}")
    total = sum(r["wall_s"] for r in lines.values())
    print(f"{'total':<16}{total:>9.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="candidates (about: per_system in each drawn system)")
    ap.add_argument("--per-system", type=int, default=12)
    ap.add_argument("--max-atoms", type=int, default=24)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--model-us-per-atom-step", type=float, default=3.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-atoms-per-batch", type=int, default=20000,
                    help="every batched stage's budget, as a GPU's memory would set it (on a CPU the stages' "
                         "cpu_atoms_per_batch suit a real uMLIP, not a near-free one); 0: the stages' own")
    ap.add_argument("--shards", type=int, default=0,
                    help="also run the screen as this many shards (workers = the first --workers), merge them and "
                         "compare with the unsharded run; each shard's sampling time against the unsharded one")
    ap.add_argument("--out", default="funnel")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child)

    systems, per_system = chemical_systems(args.n, args.per_system, args.max_atoms)
    systems_arg = "[" + ",".join("[" + ",".join(s) + "]" for s in systems) + "]"
    results: dict = {"n_requested": args.n, "systems": len(systems), "per_system": per_system,
                     "max_atoms": args.max_atoms, "model_us_per_atom_step": args.model_us_per_atom_step, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for workers in args.workers:
            path = Path(tmp) / f"funnel_w{workers}.h5"
            overrides = [*ANALYTIC, "stages=${all_stages:}", "md=smoke", f"candidates.chemical_systems={systems_arg}",
                         f"candidates.per_system={per_system}", f"candidates.max_atoms={args.max_atoms}",
                         f"workers={workers}", f"device={args.device}", f"output={path}",
                         f"references.cache_dir={tmp}/cache_w{workers}"]
            if args.max_atoms_per_batch:
                overrides += [f"{s}.max_atoms_per_batch={args.max_atoms_per_batch}" for s in BATCHED_STAGES]
            timings, model_s, atom_steps, wall = screen_in_process(overrides)
            with ResultStore(path, "r") as store:
                lines = stage_lines(timings, model_s, atom_steps, store, args.model_us_per_atom_step)
            print_table(f"workers={workers}: {wall:.0f} s", lines)
            results["runs"][str(workers)] = {"wall_s": wall, "stages": lines}
            files[workers] = (path, overrides)
        first, overrides = files[args.workers[0]]
        resumed = screen_in_process(overrides)[0]
        results["resume_s"] = resumed
        print(f"\nresume of workers={args.workers[0]}: references {resumed.get('references', 0):.2f} s, "
              f"all stages {sum(resumed.values()):.1f} s")
        if len(files) > 1:
            with ResultStore(first, "r") as a:
                for workers, (path, _) in list(files.items())[1:]:
                    with ResultStore(path, "r") as b:
                        diffs = compare_groups(a, b, 0.0, 0.0, 0.0)
                    results[f"differences_w{args.workers[0]}_w{workers}"] = len(diffs)
                    print(f"workers={args.workers[0]} vs workers={workers}: {len(diffs)} differences "
                          f"(engine.compare, zero tolerance, structures included)" + "".join(
                              f"\n  {d}" for d in diffs[:10]))
            base = results["runs"][str(args.workers[0])]["stages"]
            for workers in args.workers[1:]:
                other = results["runs"][str(workers)]["stages"]
                host = [s for s in HOST_STAGES if s in base]
                speedup = sum(base[s]["host_s"] for s in host) / max(1e-9, sum(other[s]["host_s"] for s in host))
                results[f"host_speedup_w{workers}"] = speedup
                print(f"host-side stages ({', '.join(host)}): workers={workers} {speedup:.2f} x faster than "
                      f"workers={args.workers[0]}")
        if args.shards:
            results["shards"] = run_shards(args.shards, first, overrides, timings_of(results, args), tmp)
    write_json(args.out, results)


def timings_of(results: dict, args) -> dict:
    return {k: v["wall_s"] for k, v in results["runs"][str(args.workers[0])]["stages"].items()}


def run_shards(count: int, unsharded: Path, overrides: list[str], unsharded_s: dict, tmp: str) -> dict:
    """The same screen as ``count`` shards, one after the other, each in its own process (sharing the warm reference
    cache), merged and compared with the unsharded file."""
    from engine.io.merge import merge

    paths, stage_s = [], []
    for index in range(count):
        path = Path(tmp) / f"shard_{index}.h5"
        shard = [o for o in overrides if not o.startswith("output=")] + [
            f"output={path}", f"shard.count={count}", f"shard.index={index}"]
        timings = screen_in_process(shard)[0]
        paths.append(path)
        stage_s.append(timings["candidates"])
    sampling = [sampling_seconds(p) for p in paths]
    alone = sampling_seconds(unsharded)
    merged = Path(tmp) / "merged.h5"
    merge(merged, paths)
    with ResultStore(unsharded, "r") as a, ResultStore(merged, "r") as b:
        exact = compare_groups(a, b, 0.0, 0.0, 0.0)
        diffs = compare_groups(a, b, *ROUNDING, 0.0)
    ratios = [t / alone for t in sampling]
    stage_ratios = [t / unsharded_s["candidates"] for t in stage_s]
    print(f"\n{count} shards: sampling {', '.join(f'{t:.1f}' for t in sampling)} s against {alone:.1f} s unsharded "
          f"(at most {max(ratios):.2f} x); the whole candidates stage, with the process's first torch-sim neighbour "
          f"list (it imports torch._dynamo, about 2 s): {', '.join(f'{t:.1f}' for t in stage_s)} s against "
          f"{unsharded_s['candidates']:.1f} s (at most {max(stage_ratios):.2f} x)"
          f"\nmerged vs unsharded: {len(diffs)} differences (structures at zero "
          f"tolerance, numbers at rtol {ROUNDING[0]:g}, atol {ROUNDING[1]:g}); {len(exact)} at zero tolerance, "
          f"numbers of models whose batches hold other candidates in a shard:"
          + "".join(f"\n  {d}" for d in (diffs or exact)[:10]))
    return {"count": count, "sampling_s": sampling, "unsharded_sampling_s": alone, "max_ratio": max(ratios),
            "candidates_stage_s": stage_s, "unsharded_candidates_stage_s": unsharded_s["candidates"],
            "max_stage_ratio": max(stage_ratios), "differences": len(diffs), "differences_zero_tolerance": len(exact)}


def sampling_seconds(path: Path) -> float:
    """The sampling alone of a run file's candidates stage [s] (its ``sampling_s`` attribute)."""
    with ResultStore(path, "r") as store:
        return float(store.attrs("candidates")["sampling_s"])


if __name__ == "__main__":
    main()
