"""The electrolyte's and the cathode's windows per model: what the coating criteria compare every candidate with.

For each model of ``--models`` (names in ``conf/model/``) the built-in reference phases of Li–Ge–P–S and
Li–Co–O (with the prototype completion of their binary edges, as a run builds them) are relaxed with the engine's
batched FIRE and the relax stage's defaults (cached in ``--cache``) and corrected with the scheme the model's config
names; a compound below ``--min-formation-energy`` is a hole of the model and left out, as the references stage does.
LGPS's and LiCoO2's E_hull (with the decomposition products) and Li windows are computed as the thermo stage does
(:func:`engine.thermo.judgement.partner_window`), with :func:`engine.thermo.electrolyte.window_warning`'s verdict.
Beside them: the published first-principles LGPS window (Zhu, He & Mo 2015) and LiCoO2's window from the Materials
Project's own entries (``../shared/refdata``, MP2020-corrected GGA/GGA+U) by the same pymatgen analysis. JSON in
``benchmarks/results/partner_windows.json``.

    python benchmarks/partner_windows.py [--models sevennet_0 chgnet m3gnet tensornet_matpes]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import ROOT, model_config, write_json
from pymatgen.core import Composition

from engine.core.corrections import chemsys, corrected_references, correction_of, model_entry
from engine.models import load_model
from engine.references.cache import relax_references
from engine.references.prototypes import binary_edges
from engine.references.sources import BuiltinReferences, FileReferences, collect_phases, prototype_phases
from engine.relax.fire import RelaxSettings
from engine.thermo.electrolyte import published_window, window_warning
from engine.thermo.hulls import Hulls, e_above_hull
from engine.thermo.judgement import lowest_entry, partner_window

MP_ENTRIES = ROOT.parent / "shared" / "refdata" / "mp-Li-Co-Ni-O-entries.json.gz"
PARTNERS = ("Li10GeP2S12", "LiCoO2")


def partner_rows(entries, source: str) -> dict:
    """E_hull, products and window of each partner among ``entries``."""
    hulls = Hulls(entries)
    out = {}
    for formula in PARTNERS:
        comp = Composition(formula)
        entry, window, problem = partner_window(entries, hulls, comp, formula, source)
        if entry is None:
            out[formula] = {"problem": problem}
            continue
        e_hull, products = e_above_hull(hulls[chemsys(comp)], lowest_entry(entries, comp))
        out[formula] = {"e_hull_eV_per_atom": e_hull, "products": products, "e_red_V": window[0],
                        "e_ox_V": window[1], "warning": window_warning(formula, window)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["sevennet_0", "chgnet", "m3gnet", "tensornet_matpes"])
    parser.add_argument("--min-formation-energy", type=float, default=-5.0,
                        help="eV/atom; -inf keeps every relaxed phase (references.min_formation_energy)")
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "coating-engine" / "references"))
    args = parser.parse_args()
    systems = [chemsys(Composition(f)) for f in PARTNERS]
    phases = collect_phases(BuiltinReferences(), systems)
    phases += prototype_phases(binary_edges(systems), phases)
    results: dict = {}
    if MP_ENTRIES.is_file():
        mp = [p.entry for p in FileReferences(MP_ENTRIES).phases({"Li", "Co", "O"})]
        results["Materials Project (GGA/GGA+U, MP2020)"] = {"LiCoO2": partner_rows(mp, "mp")["LiCoO2"]}
    for name in args.models:
        cfg = model_config(name)
        start = time.perf_counter()
        relaxed = relax_references(phases, load_model(cfg), RelaxSettings(), Path(args.cache))
        raw = [model_entry(r.structure, r.energy, pid) for pid, r in relaxed.items() if r.usable]
        entries, left_out = corrected_references(raw, correction_of(cfg, "mp2020"), args.min_formation_energy)
        results[name] = partner_rows(entries, "builtin")
        results[name]["left_out"] = left_out
        results[name]["correction"] = correction_of(cfg, "mp2020")
        results[name]["seconds"] = time.perf_counter() - start
    lgps = published_window("Li10GeP2S12")
    print(f"{len(phases)} reference phases; LGPS published {lgps.e_red_V:.2f}-{lgps.e_ox_V:.2f} V ({lgps.source})")
    print(f"{'model':38s} {'partner':12s} {'E_hull':>7s} {'window (V)':>12s}  products / warning")
    for model, rows in results.items():
        for formula in PARTNERS:
            r = rows.get(formula)
            if r is None:
                continue
            if "problem" in r:
                print(f"{model:38s} {formula:12s} {r['problem']}")
                continue
            print(f"{model:38s} {formula:12s} {r['e_hull_eV_per_atom']:7.3f} {r['e_red_V']:5.2f}-{r['e_ox_V']:5.2f}  "
                  f"{r['products']}{'  WARNING: ' + r['warning'] if r['warning'] else ''}")
        for pid, why in rows.get("left_out", {}).items():
            print(f"{model:38s} left out {pid}: {why}")
    write_json("partner_windows", results)


if __name__ == "__main__":
    main()
