"""Committee calibration on real data: each uMLIP's E_hull against the Materials Project's, and whether the
committee's spread warns where the error is large.

Entries: the Materials Project's Li–Co–O entries of at most ``--max-atoms`` atoms from
``../shared/refdata/mp-Li-Co-Ni-O-entries.json.gz`` (GGA/GGA+U with MP2020 corrections, each with MP's own
``e_above_hull``). For every model of ``--models`` (names in ``conf/model/``):

1. the engine's batched FIRE (:func:`engine.relax.fire.relax`, cell and positions, the relax stage's defaults)
   relaxes every entry's structure from MP's relaxed geometry;
2. the model's energies become entries with the run parameters MP would have used and the model's correction scheme
   (``correction`` in its config: MP2020 for raw MPtrj energies, none for CHGNet, MP2020's anion terms for MatPES-PBE),
   and one pymatgen ``PhaseDiagram`` of Li–Co–O is built from them alone — the model's own hull;
3. each entry's E_hull on that hull is compared with MP's ``e_above_hull``: MAE, and the stable/unstable
   classification at ``--stable-below`` (0.1 eV/atom) as F1 (positive: E_hull below the cut in MP).

Then the committee (``--committee``, default the default run's model and committee members; and all ``--models``):
per entry the spread (max − min) of the members' E_hull and the error of their mean; the Spearman rank correlation
between the two, and the mean error of the tenth of entries with the largest spread against the rest, say whether a
large spread marks a large error. The reference MAE of the
same subset's DFT hull against MP's values (a subset hull can lack MP phases of more atoms) is printed beside.
Per model also the relaxation's cost (s per structure and per atom-step on this machine). JSON in
``benchmarks/results/committee.json``.

    python benchmarks/bench_committee.py [--max-atoms 12] [--models sevennet_0 tensornet_matpes m3gnet chgnet]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from common import ROOT, model_config, write_json
from pymatgen.analysis.phase_diagram import PhaseDiagram
from scipy.stats import spearmanr

from engine.core.corrections import Correction, apply_correction, chemsys, correction_of, model_entry
from engine.models import load_model
from engine.references.sources import read_entries
from engine.relax.fire import RelaxSettings, relax

ENTRIES = ROOT.parent / "shared" / "refdata" / "mp-Li-Co-Ni-O-entries.json.gz"


def f1_score(true_stable: np.ndarray, predicted_stable: np.ndarray) -> float:
    """F1 of the stable class: 2 TP / (2 TP + FP + FN)."""
    tp = np.sum(true_stable & predicted_stable)
    fp, fn = np.sum(~true_stable & predicted_stable), np.sum(true_stable & ~predicted_stable)
    return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else float("nan")


def relaxed_entries(entries, loaded, settings: RelaxSettings) -> tuple[list, dict]:
    """The model's relaxed entries (uncorrected, with the run parameters MP would have used) and the cost."""
    results = {}
    t0 = time.perf_counter()
    relax([e.structure for e in entries], [e.entry_id for e in entries], loaded, settings,
          lambda rows: results.update({r.id: r for r in rows}))
    seconds = time.perf_counter() - t0
    raw = []
    for e in entries:
        r = results[e.entry_id]
        if r.structure is not None and np.isfinite(r.energy_per_atom):
            s = r.structure.to_structure()
            raw.append(model_entry(s, r.energy_per_atom * len(s), e.entry_id))
    atom_steps = sum(len(e.structure) * results[e.entry_id].steps for e in entries)
    cost = {"relax_s": seconds, "s_per_structure": seconds / len(entries),
            "us_per_atom_step": 1e6 * seconds / max(atom_steps, 1), "atom_steps": int(atom_steps),
            "converged": int(sum(results[e.entry_id].converged for e in entries)), "relaxed": len(raw)}
    return raw, cost


def own_hull(entries, raw, correction: str) -> np.ndarray:
    """Each entry's E_hull [eV/atom] on the hull of the model's own energies corrected with ``correction`` (NaN:
    not relaxed, or rejected by the correction)."""
    corrected, _ = apply_correction(raw, correction)
    pd = PhaseDiagram(corrected)
    by_id = {c.entry_id: c for c in corrected}
    return np.array([pd.get_e_above_hull(by_id[e.entry_id]) if e.entry_id in by_id else np.nan for e in entries])


def committee_stats(stack: np.ndarray, mp: np.ndarray, truth: np.ndarray, stable_below: float) -> dict:
    """``stack``: (members, entries) E_hull [eV/atom]. The spread (max − min) per entry against the error of the
    members' mean: Spearman's rank correlation, and the mean error of the tenth with the largest spread."""
    ok = np.all(np.isfinite(stack), axis=0)
    spread = stack[:, ok].max(axis=0) - stack[:, ok].min(axis=0)
    mean = stack[:, ok].mean(axis=0)
    error = np.abs(mean - mp[ok])
    rho, p = spearmanr(spread, error)
    widest = spread >= np.quantile(spread, 0.9)
    return {"entries": int(ok.sum()), "mae_of_mean_eV_per_atom": float(error.mean()),
            "median_spread_eV_per_atom": float(np.median(spread)), "spearman_spread_vs_error": float(rho),
            "spearman_p": float(p), "f1_of_mean": f1_score(truth[ok], mean < stable_below),
            "error_of_widest_tenth": float(error[widest].mean()), "error_of_the_rest": float(error[~widest].mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", default=str(ENTRIES))
    ap.add_argument("--max-atoms", type=int, default=12)
    ap.add_argument("--models", nargs="+", default=["sevennet_0", "tensornet_matpes", "m3gnet", "chgnet"])
    ap.add_argument("--committee", nargs="+", default=["sevennet_0", "chgnet", "m3gnet"],
                    help="the models whose spread is scored (default: the default run's model and committee)")
    ap.add_argument("--stable-below", type=float, default=0.1, help="eV/atom: the stable class of the F1 score")
    ap.add_argument("--fmax", type=float, default=0.05, help="eV/Å")
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")  # pymatgen's oxidation-state guesses and matgl's version notices, per entry

    entries = [e for e in read_entries(args.entries)
               if chemsys(e.composition) <= {"Li", "Co", "O"} and len(e.structure) <= args.max_atoms]
    mp = np.array([e.data["e_above_hull"] for e in entries])
    subset_hull = PhaseDiagram(entries)
    subset_dft = np.array([subset_hull.get_e_above_hull(e) for e in entries])
    print(f"{len(entries)} MP Li–Co–O entries of <= {args.max_atoms} atoms ({sum(len(e.structure) for e in entries)} "
          f"atoms); {np.sum(mp < args.stable_below)} below {args.stable_below} eV/atom in MP; the subset's own DFT hull "
          f"against MP's e_above_hull: MAE {np.mean(np.abs(subset_dft - mp)):.4f} eV/atom")
    settings = RelaxSettings(fmax=args.fmax, max_steps=args.max_steps)
    truth = mp < args.stable_below
    hulls, rows = {}, {}
    for name in args.models:
        cfg = model_config(name)
        correction = correction_of(cfg, Correction.mp2020)
        raw, cost = relaxed_entries(entries, load_model(cfg, args.device), settings)
        mae = {}
        for scheme in Correction:  # the model's own scheme decides; the others show what a wrong one costs
            e_hull = own_hull(entries, raw, scheme)
            ok = np.isfinite(e_hull)
            mae[str(scheme)] = float(np.mean(np.abs(e_hull[ok] - mp[ok])))
            if scheme == correction:
                hulls[name] = e_hull
                rows[name] = {"correction": correction, "mae_eV_per_atom": mae[scheme],
                              "f1": f1_score(truth[ok], e_hull[ok] < args.stable_below), **cost}
        r = rows[name]
        r["mae_by_correction"] = mae
        print(f"{name:18s} {correction:14s} MAE {r['mae_eV_per_atom']:.4f} eV/atom  F1 {r['f1']:.3f}  "
              f"{r['relaxed']}/{len(entries)} relaxed ({r['converged']} converged)  {r['relax_s']:.1f} s "
              f"({r['s_per_structure']:.2f} s/structure, {r['us_per_atom_step']:.0f} µs/atom-step); MAE with "
              + ", ".join(f"{k} {v:.4f}" for k, v in mae.items() if k != correction), flush=True)

    committees = {}
    for members in ([m for m in args.committee if m in hulls], args.models):
        if len(members) < 2 or set(members) in [set(k.split(",")) for k in committees]:
            continue
        committees[",".join(members)] = stats = committee_stats(np.array([hulls[m] for m in members]), mp, truth,
                                                                 args.stable_below)
        print(f"committee {', '.join(members)}: mean E_hull MAE {stats['mae_of_mean_eV_per_atom']:.4f} eV/atom, F1 "
              f"{stats['f1_of_mean']:.3f}; median spread {stats['median_spread_eV_per_atom']:.3f} eV/atom; "
              f"Spearman(spread, |error of the mean|) = {stats['spearman_spread_vs_error']:.2f} "
              f"(p = {stats['spearman_p']:.1e}); the largest-spread tenth: mean |error| "
              f"{stats['error_of_widest_tenth']:.3f} vs {stats['error_of_the_rest']:.3f} eV/atom")
    write_json("committee", {
        "max_atoms": args.max_atoms, "n_entries": len(entries), "stable_below": args.stable_below,
        "subset_dft_mae_eV_per_atom": float(np.mean(np.abs(subset_dft - mp))), "models": rows,
        "committees": committees,
        "per_entry": [{"id": e.entry_id, "formula": e.composition.reduced_formula, "mp_e_hull": float(mp[i]),
                       **{m: float(hulls[m][i]) for m in args.models}} for i, e in enumerate(entries)]})


if __name__ == "__main__":
    main()
