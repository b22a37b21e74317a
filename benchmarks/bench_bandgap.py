"""Band-gap committee: validation against published PBE gaps, the relaxed reference phases of a run, and speed.

    python benchmarks/bench_bandgap.py [--run runs/screen.h5] [--repeats 3] [--device cpu|cuda]

(a) The default committee (MEGNet + BandGap-ml, rule agree_below) on the 60 compounds of
    tests/bandgap_references.py (Materials Project PBE gaps): accuracy of the E_g > 0.5 eV decision on those clear of
    the threshold by more than 0.3 eV, and each member's MAE.
(b) With ``--run``: every relaxed reference phase in the run file's ``references/`` group that is a closed-shell
    ionic insulator of the alkali, alkaline-earth, group-3/13 metals, Zr, Hf, Si, Ge with F, Cl, Br, I, O, and every
    elemental metal: the committee's verdict on each (all insulators should pass, all metals fail).
(c) MEGNet batched (the stage) against MEGNet's own ``predict_structure`` one structure at a time, same inputs.
Writes benchmarks/results/bandgap_<device>.json.
"""

from __future__ import annotations

import argparse
import os
import statistics

import numpy as np
from common import ROOT, timed, write_json  # noqa: F401 - common puts the repo on sys.path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


from engine.filters.bandgap import committee_rows, predict_with_reasons  # noqa: E402
from engine.filters.bandgap_models import CompositionBandGap, MegnetBandGap  # noqa: E402
from tests.filters.bandgap_references import REFERENCES, acceptance_ionic_insulator  # noqa: E402

THRESHOLD = 0.5


def verdicts(members, structures):
    preds = [predict_with_reasons(m, structures) for m in members]
    return committee_rows([str(i) for i in range(len(structures))], [m.name for m in members],
                          np.array([p[0] for p in preds]).reshape(len(members), len(structures)),
                          [p[1] for p in preds], THRESHOLD)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=None, help="a run file whose relaxed references/ to check")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    import torch

    megnet = MegnetBandGap("MEGNet-MP-2019.4.1-BandGap-mfi", 0, args.device)
    members = [megnet, CompositionBandGap()]
    structures = [r.structure() for r in REFERENCES]
    rows = verdicts(members, structures)
    ref = np.array([r.pbe_gap for r in REFERENCES])
    clear = np.abs(ref - THRESHOLD) > 0.3
    passed = np.array([r.status == "pass" for r in rows])
    gaps = np.array([r.member_gaps for r in rows])
    out = {"validation": {
        "n": len(REFERENCES), "n_clear": int(clear.sum()),
        "accuracy": float(np.mean(passed[clear] == (ref[clear] > THRESHOLD))),
        "accuracy_megnet_alone": float(np.mean((gaps[clear, 0] > THRESHOLD) == (ref[clear] > THRESHOLD))),
        "mae_megnet_eV": float(np.abs(gaps[:, 0] - ref).mean()),
        "mae_composition_eV": float(np.abs(gaps[:, 1] - ref).mean()),
        "wrong": [r.formula for r, p, c in zip(REFERENCES, passed, clear) if c and p != (r.pbe_gap > THRESHOLD)]}}
    print("validation (MP PBE gaps):", out["validation"])

    if args.run:
        from engine.io.store import ResultStore
        with ResultStore(args.run, "r") as store:
            relaxed = store.structures("references")
        ionic = {k: s for k, s in relaxed.items() if acceptance_ionic_insulator(s.composition)}
        metals = {k: s for k, s in relaxed.items() if len(s.composition.elements) == 1
                  and s.composition.elements[0].is_metal}
        rows = verdicts(members, list(ionic.values()) + list(metals.values()))
        names = list(ionic) + list(metals)
        table = [(n, r.status, [round(float(g), 2) for g in r.member_gaps]) for n, r in zip(names, rows)]
        bad = [t for t, n in zip(table, names) if (t[1] == "pass") != (n in ionic)]
        megnet_alone_fails = [n for n, r in zip(names[:len(ionic)], rows) if r.member_gaps[0] <= THRESHOLD]
        out["run_references"] = {"run": args.run, "n_ionic": len(ionic), "n_metals": len(metals), "wrong": bad,
                                 "megnet_alone_would_reject": megnet_alone_fails}
        for t in table:
            print(f"  {t[0]:45s} {t[1]:5s} megnet {t[2][0]:6.2f}  composition {t[2][1]:6.2f}")
        print(f"run references: {len(ionic)} ionic insulators, {len(metals)} elemental metals; wrong verdicts: {bad}; "
              f"MEGNet alone would reject {len(megnet_alone_fails)}: {megnet_alone_fails}")

    batch = structures * 4
    engine_s = statistics.median(timed(lambda: megnet.predict(batch), args.device) for _ in range(args.repeats))
    loop_s = statistics.median(timed(lambda: [megnet.model.predict_structure(s, state_attr=torch.tensor([0]))
                                              for s in batch], args.device) for _ in range(args.repeats))
    comp_s = statistics.median(timed(lambda: members[1].predict(batch)) for _ in range(args.repeats))
    out["speed"] = {"structures": len(batch), "megnet_batched_s": engine_s, "megnet_loop_s": loop_s,
                    "ratio": loop_s / engine_s, "composition_s": comp_s}
    print(f"MEGNet on {len(batch)} structures: batched {engine_s:.3f} s, predict_structure loop {loop_s:.3f} s "
          f"({loop_s / engine_s:.2f}x); BandGap-ml {comp_s:.3f} s")
    print("wrote", write_json(f"bandgap_{args.device}", out))


if __name__ == "__main__":
    main()
