"""Framework-grid refinement against a uniform fine grid on the same relaxed structures.

Reads the relaxed structures of ``--ids`` from a run file (``python -m engine.screen`` writes one), builds each
candidate's framework grid with ``conf/pes/quick.yaml`` (0.5 Å, refined where the verdict's barrier is decided) and
with a uniform ``--uniform`` grid (0.25 Å, no refinement) and otherwise the same settings, evaluates both with
``--model``, and prints per candidate the probes computed and the 1D/2D/3D barriers of each. JSON in
``benchmarks/results/refine.json``.

    python benchmarks/bench_refine.py --run runs/screen.h5 --ids Li-Al-F-0000 [--uniform 0.25] [--model sevennet_0]
"""

from __future__ import annotations

import argparse
import time

from common import ROOT, model_config, write_json
from omegaconf import OmegaConf

from engine.io.store import ResultStore
from engine.models import load_model
from engine.pes.stage import PesSettings, approach_descriptors, evaluate_candidates


def barriers(settings: PesSettings, structure, cid: str, loaded) -> dict:
    """Probes computed, barriers [eV] and seconds of the framework grid of one structure."""
    start = time.perf_counter()
    job = evaluate_candidates({cid: structure}, settings, {"framework": loaded})[cid]["framework"]
    columns = approach_descriptors(job, settings)[0]
    return {"coarse": job.grid.n_evaluated, "fine": job.n_refined, "seconds": time.perf_counter() - start,
            **{k: float(columns[k]) for k in ("barrier_1d", "barrier_2d", "barrier_3d")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--ids", nargs="+", required=True)
    parser.add_argument("--uniform", type=float, default=0.25, help="Å, the uniform grid's spacing")
    parser.add_argument("--model", default="sevennet_0")
    args = parser.parse_args()
    quick = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PesSettings),
                                                OmegaConf.load(ROOT / "conf/pes/quick.yaml")))
    quick.approaches = ["framework"]
    uniform = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PesSettings),
                                                  OmegaConf.load(ROOT / "conf/pes/quick.yaml"),
                                                  {"spacing": args.uniform, "refine": False}))
    uniform.approaches = ["framework"]
    loaded = load_model(model_config(args.model))
    with ResultStore(args.run, "r") as store:
        structures = store.structures("relax", args.ids)
    results = {}
    for cid, structure in structures.items():
        results[cid] = {"refined": barriers(quick, structure, cid, loaded),
                        "uniform": barriers(uniform, structure, cid, loaded)}
        for kind, r in results[cid].items():
            print(f"{cid:16s} {kind:8s} probes {r['coarse']:5d} + {r['fine']:5d}  E_mig 1D/2D/3D "
                  f"{r['barrier_1d']:.3f} / {r['barrier_2d']:.3f} / {r['barrier_3d']:.3f} eV  {r['seconds']:.0f} s",
                  flush=True)
    write_json("refine", results)


if __name__ == "__main__":
    main()
