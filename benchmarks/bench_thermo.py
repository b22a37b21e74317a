"""Hull and window throughput: the thermo stage's shared hulls vs a per-candidate pymatgen loop.

References: Materials Project entries of Li–Co–Ni–O (../shared/refdata, or --entries FILE). Candidates: N copies
of those entries, spread over the M chemical systems that contain Li, with their energies raised by 0–0.15 eV/atom
(so some pass the E_hull cut and get a window).
(a) engine: ``engine.thermo.hulls.Hulls`` builds each chemical system's PhaseDiagram once; E_hull of every candidate and
    the Li window of those with E_hull < 0.2 eV/atom;
(b) loop: the same numbers with a PhaseDiagram built for each candidate from the entries of its system — what a
    per-structure script does.
Prints candidates/s for both, the ratio, the largest difference between (a) and (b) (must be 0), and writes
benchmarks/results/thermo.json.

    python benchmarks/bench_thermo.py [--n 200] [--entries FILE.json.gz]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import ROOT, write_json
from pymatgen.analysis.phase_diagram import PhaseDiagram
from pymatgen.entries.computed_entries import ComputedEntry

from engine.core import corrections
from engine.references.sources import read_entries
from engine.thermo import criteria, hulls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--entries", default=str(ROOT.parent / "shared" / "refdata" / "mp-Li-Co-Ni-O-entries.json.gz"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    refs = read_entries(args.entries)
    rng = np.random.default_rng(args.seed)
    pool = [e for e in refs if "Li" in corrections.chemsys(e.composition) and len(e.composition.elements) > 1]
    picks = rng.choice(len(pool), args.n)
    candidates = [ComputedEntry(pool[i].composition, pool[i].energy + rng.uniform(0, 0.15) * pool[i].composition.num_atoms,
                                entry_id=f"cand-{k}") for k, i in enumerate(picks)]
    systems = {corrections.chemsys(c.composition) for c in candidates}
    cut = criteria.CoatingCriteria().e_hull_max

    def evaluate(pd_for) -> list[tuple]:
        out = []
        for c in candidates:
            pd = pd_for(corrections.chemsys(c.composition))
            e_hull, _ = hulls.e_above_hull(pd, c)
            window = hulls.window_of(c, pd) if e_hull < cut else (np.nan, np.nan)
            out.append((e_hull, *window))
        return out

    t0 = time.perf_counter()
    shared = hulls.Hulls(refs)
    engine = evaluate(lambda s: shared[s])
    t_engine = time.perf_counter() - t0

    t0 = time.perf_counter()
    loop = evaluate(lambda s: PhaseDiagram([e for e in refs if corrections.chemsys(e.composition) <= s]))
    t_loop = time.perf_counter() - t0

    diff = np.nanmax(np.abs(np.array(engine) - np.array(loop)))
    n_windows = int(np.isfinite(np.array(engine)[:, 1]).sum())
    rows = {"engine": t_engine, "per-candidate loop": t_loop}
    print(f"{args.n} candidates in {len(systems)} chemical systems, {len(refs)} reference entries, "
          f"{n_windows} windows")
    for name, t in rows.items():
        print(f"{name:<22}{t:>9.2f} s {args.n / t:>10.1f} candidates/s")
    print(f"speed-up (engine / loop): {t_loop / t_engine:.1f}x; largest difference {diff:.2e}")
    path = write_json("thermo", {"n": args.n, "systems": sorted("-".join(sorted(s)) for s in systems),
                                 "n_references": len(refs), "n_windows": n_windows, "seconds": rows,
                                 "speedup": t_loop / t_engine, "max_difference": float(diff)})
    print(path)


if __name__ == "__main__":
    main()
