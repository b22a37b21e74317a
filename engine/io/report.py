"""The funnel report of one run: ``python -m engine.report RUN.h5`` (also called at the end of a screen), or of the
shards of one screen: ``python -m engine.report SHARD.h5 SHARD.h5 ...`` (merged first, :mod:`engine.io.merge`).

Writes beside the HDF5 file (``<run>_report/``):

- ``report.md``: the funnel table (criterion and number of candidates passing it, cumulative, in stage order; the
  seed's Table 1) and the anode- and cathode-coating candidate tables (formula, space group, E_hull, E_red, E_ox,
  E_rxn, σ(300 K) ± s.e.m.; the seed's Tables 2 and 3);
- ``funnel.png``: the funnel as bars;
- ``transport.png``: σ(500 K) against D_framework(1000 K) with the threshold lines (the seed's Fig. 2);
- ``bandgap.png``: the distribution of predicted band gaps, per committee member and as decided, with the threshold;
- ``windows.png``: the electrochemical stability window [E_red, E_ox] of each thermodynamically evaluated
  candidate against the coating thresholds and the electrolyte's window;
- one plot per stage that declares one in the stage table (``committee.png``: members' E_hull of its candidates).

Everything is read from the HDF5 file, including the thresholds (the resolved config in its root attributes).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine import controls
from engine.config import ScreenConfig, from_stored
from engine.core.structures import spacegroup_number
from engine.filters.bandgap import committee_of
from engine.io.merge import merge
from engine.io.store import ResultStore
from engine.io.views import RowsExcept
from engine.md.protocol import MdSettings
from engine.stages import STAGES, default_stages
from engine.thermo.criteria import CoatingCriteria
from engine.thermo.stage import stored_partners


@dataclass
class FunnelStep:
    criterion: str
    passed: int | None  # None: the stage did not run
    note: str = ""


def funnel(store: ResultStore, cfg: ScreenConfig) -> list[FunnelStep]:
    """Cumulative counts in the order of the stage table: a candidate counts at a step when it passed that step and
    every one before it. A configured stage without rows shows as "stage not run"."""
    alive = set(store.ids("candidates"))
    steps = [FunnelStep("candidates generated or read", len(alive))]
    for stage in STAGES:
        if stage.funnel is None:
            continue
        if not store.has(stage.name):
            if stage.name in (cfg.stages if cfg.stages is not None else default_stages()):
                steps += [FunnelStep(label, None, "stage not run") for label, _, _ in stage.funnel(store, cfg)]
            continue
        for label, passed, note in stage.funnel(store, cfg):
            alive &= set(store.ids(stage.name, status="pass")) if passed is None else passed
            steps.append(FunnelStep(label, len(alive), note))
    return steps


def later_columns(store: ResultStore) -> list[tuple[str, dict[str, str]]]:
    """The coating tables' columns of the stages after thermo, in stage order: (header, {id: text}), each stage's
    ``coating`` in the stage table."""
    return [column for s in STAGES if s.coating is not None for column in s.coating(store)]


def coating_rows(store: ResultStore, kind: str, columns: list[tuple[str, dict[str, str]]] | None = None) -> list[dict]:
    """Candidates meeting the anode (``kind="anode"``) or cathode coating criteria, with what the stages after thermo
    found (``columns``, :func:`later_columns` when not given, under ``"later"``), ordered by the last stage's status
    first, then by E_hull."""
    if not store.has("thermo"):
        return []
    columns = later_columns(store) if columns is None else columns
    flag = store.column_by_id("thermo", f"{kind}_coating")
    cols = {k: store.column_by_id("thermo", k) for k in ("e_hull", "e_red", "e_ox", "e_rxn_electrolyte", "e_rxn_cathode")}
    formula = store.column_by_id("candidates", "formula")
    relaxed = (store.structures("relax", [i for i, f in flag.items() if f])
               if store.has("relax") and store.exists("relax/structure") else {})
    statuses = [store.column_by_id(s.name, "status") for s in reversed(STAGES) if s.coating is not None]
    rows = []
    for cid, ok in flag.items():
        if not ok:
            continue
        rows.append({"id": cid, "formula": formula.get(cid, ""),
                     "spacegroup": spacegroup_number(relaxed[cid]) if cid in relaxed else 0,
                     **{k: float(v[cid]) for k, v in cols.items()},
                     "later": {head: values.get(cid, "") for head, values in columns},
                     "order": tuple(STATUS_ORDER.get(str(st.get(cid, "")), 3) for st in statuses)})
    return sorted(rows, key=lambda r: (*r["order"], r["e_hull"]))


def below_hull_rows(store: ResultStore) -> list[dict]:
    """Candidates found below the references' hull by more than the tolerance: not judged, listed apart."""
    if not store.has("thermo") or "below_hull" not in store.column_names("thermo"):
        return []
    flag = store.column_by_id("thermo", "below_hull")
    cols = {k: store.column_by_id("thermo", k) for k in ("e_hull", "decomposition", "hull_lacks")}
    formula = store.column_by_id("candidates", "formula")
    rows = [{"id": cid, "formula": formula.get(cid, ""), **{k: v[cid] for k, v in cols.items()}}
            for cid, below in flag.items() if below]
    return sorted(rows, key=lambda r: r["e_hull"])


def _num(x: float, fmt: str) -> str:
    return "–" if x is None or not math.isfinite(x) else format(x, fmt)


STATUS_ORDER = {"pass": 0, "fail": 1, "error": 2, "": 3}


def bandgap_lines(store: ResultStore) -> list[str]:
    """Which band-gap predictors decided: the committee, its rule, and per member how many verdicts it decided."""
    if not store.has("bandgap") or "member_gaps" not in store.column_names("bandgap"):
        return []
    members, rule = committee_of(store)
    status, decided = store.column("bandgap", "status"), store.column("bandgap", "decided_by")
    lines = ["", "## Band gap", "", f"Committee: {', '.join(members)} (rule {rule}); "
             "`bandgap.png` shows the predicted gaps.", "", "| decided by | pass | fail |", "|---|---:|---:|"]
    for who in ["all", *members]:
        n_pass = int(np.sum((decided == who) & (status == "pass")))
        n_fail = int(np.sum((decided == who) & (status == "fail")))
        if n_pass or n_fail:
            lines.append(f"| {'every member (agreed)' if who == 'all' else who} | {n_pass} | {n_fail} |")
    return lines


def markdown(store: ResultStore, steps: list[FunnelStep], anode: list[dict], cathode: list[dict],
             below: list[dict] | None = None, later: list[str] | None = None,
             criteria: CoatingCriteria | None = None, control_lines: list[str] = ()) -> str:
    """The report's text; ``later``: the headers of the later stages' coating columns (:func:`later_columns`);
    ``criteria``: the set that judged the coating tables; ``control_lines``: the Controls section."""
    later = [head for head, _ in later_columns(store)] if later is None else later
    partners = stored_partners(store)  # the electrolyte window the criteria used, and a warning where it is off
    judged = (f"Judged by `criteria={criteria.name}`: E_hull < {criteria.e_hull_max} eV/atom, AC E_red < "
              f"{criteria.ac_e_red_max} V, CC E_ox > {criteria.cc_e_ox_min} V, E_rxn > {criteria.e_rxn_min} eV/atom."
              + "".join(f" {line}." for line in (partners.lines() if partners else [])) if criteria else "")
    lines = [f"# Screening report: {store.path.name}", "", "## Funnel", "",
             "| criterion | candidates passing |", "|---|---:|"]
    lines += [f"| {s.criterion} | {'–' if s.passed is None else s.passed}{f' ({s.note})' if s.note else ''} |"
              for s in steps]
    lines += bandgap_lines(store)
    for title, rows, rxn in (("Anode-coating candidates (AC)", anode, ("e_rxn_electrolyte",)),
                             ("Cathode-coating candidates (CC)", cathode, ("e_rxn_electrolyte", "e_rxn_cathode"))):
        rxn_heads = [{"e_rxn_electrolyte": "E_rxn electrolyte (eV/atom)", "e_rxn_cathode": "E_rxn cathode (eV/atom)"}[k]
                     for k in rxn]
        heads = ["id", "formula", "SG", "E_hull (eV/atom)", "E_red (V)", "E_ox (V)", *rxn_heads, *later]
        lines += ["", f"## {title}", "", *([judged, ""] if judged else []), "| " + " | ".join(heads) + " |",
                  "|" + "---|" * len(heads)]
        if not rows:
            lines.append("| none |" + " |" * (len(heads) - 1))
        for r in rows:
            cells = [r["id"], r["formula"], str(r["spacegroup"] or "–"), _num(r["e_hull"], ".3f"),
                     _num(r["e_red"], ".2f"), _num(r["e_ox"], ".2f"), *(_num(r[k], ".3f") for k in rxn),
                     *(r["later"].get(h) or "–" for h in heads[6 + len(rxn):])]
            lines.append("| " + " | ".join(cells) + " |")
    if below:
        lines += ["", "## Below the reference hull (not judged)", "",
                  ("These candidates relaxed far below the hull of the reference phases: the references lack a phase "
                   "(the edges below have none) or the model errs. They are no finds until a complete hull says so."),
                  "", "| id | formula | E_hull (eV/atom) | hull products | edges without a reference phase |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['id']} | {r['formula']} | {_num(r['e_hull'], '.3f')} | {r['decomposition']} | "
                  f"{r['hull_lacks'] or '–'} |" for r in below]
    lines += list(control_lines)
    return "\n".join(lines) + "\n"


# ---- plots -----------------------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_funnel(steps: list[FunnelStep], path: Path) -> None:
    plt = _pyplot()
    shown = [s for s in steps if s.passed is not None]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(shown) + 1.2))
    y = np.arange(len(shown))[::-1]
    counts = np.array([s.passed for s in shown], dtype=float)
    ax.barh(y, np.where(counts > 0, counts, np.nan), color="tab:blue")
    for yi, s in zip(y, shown):
        ax.text(max(s.passed, 0.8) * 1.08, yi, str(s.passed) + (f"  ({s.note})" if s.note else ""), va="center",
                fontsize=8)
    ax.set_yticks(y, [s.criterion for s in shown], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(0.7, max(counts.max(), 1) * 8)
    ax.set_xlabel("candidates passing (cumulative)")
    ax.set_title("Screening funnel")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_bandgap(store: ResultStore, threshold: float, path: Path) -> None:
    """Histograms of each member's predicted E_g [eV] and of the committee's deciding value, with the threshold."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if store.has("bandgap") and "member_gaps" in store.column_names("bandgap"):
        members, _ = committee_of(store)
        gaps = np.atleast_2d(store.column("bandgap", "member_gaps"))
        series = [(name, gaps[:, i]) for i, name in enumerate(members) if gaps.shape[1] > i]
        series.append(("committee (decided)", store.column("bandgap", "band_gap")))
        finite = np.concatenate([v[np.isfinite(v)] for _, v in series] + [np.array([0.0, threshold + 1])])
        bins = np.linspace(min(finite.min(), 0), finite.max() + 0.1, 30)
        for name, values in series:
            ax.hist(values[np.isfinite(values)], bins=bins, histtype="step", lw=1.5, label=name)
        ax.legend(fontsize=7)
    ax.axvline(threshold, color="k", ls="--", lw=1)
    ax.set_xlabel("predicted E_g (eV)")
    ax.set_ylabel("candidates")
    ax.set_title("Band-gap filter")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_transport(store: ResultStore, settings: MdSettings, path: Path) -> None:
    """σ at the transport temperature against D_framework at the framework temperature (seed Fig. 2)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    d_max = settings.framework_msd_max / (6.0 * settings.production_ps)
    if store.has("md"):
        ids = store.ids("md")
        sigma, d_fw = store.column("md", "sigma"), store.column("md", "d_framework")
        status = store.column("md", "status")
        formula = controls.formulas(store)
        floor = 1e-6 * d_max
        for ok, colour, label in ((True, "tab:green", "pass"), (False, "tab:red", "fail / error")):
            sel = (status == "pass") == ok
            ax.scatter(np.maximum(np.nan_to_num(d_fw[sel], nan=floor), floor),
                       np.where(np.isfinite(sigma[sel]) & (sigma[sel] > 0), sigma[sel], np.nan), c=colour,
                       label=label, s=30)
        for cid, x, y in zip(ids, d_fw, sigma):
            if np.isfinite(y) and y > 0:
                ax.annotate(formula.get(cid, cid), (max(np.nan_to_num(x, nan=floor), floor), y), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
    else:
        ax.text(0.5, 0.75, "MD stage not run", transform=ax.transAxes, ha="center", va="center", color="grey")
    ax.axvline(d_max, color="k", ls="--", lw=1,
               label=f"framework MSD = {settings.framework_msd_max:g} Å² in {settings.production_ps:g} ps")
    ax.axhline(settings.sigma_min, color="k", ls=":", lw=1, label=f"σ = {settings.sigma_min:g} S/cm")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"D_framework({settings.framework_temperature:g} K) (Å²/ps)")
    ax.set_ylabel(f"σ_Li({settings.transport_temperature:g} K) (S/cm)")
    ax.set_title("Li conduction vs framework stability")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_windows(store: ResultStore, crit: CoatingCriteria, path: Path, max_rows: int = 40) -> None:
    """Stability windows [E_red, E_ox] (V vs Li/Li+) of the lowest-E_hull evaluated candidates."""
    plt = _pyplot()
    rows = []
    if store.has("thermo"):
        formula = controls.formulas(store)
        cols = {k: store.column("thermo", k) for k in ("e_red", "e_ox", "e_hull", "anode_coating", "cathode_coating")}
        for i, cid in enumerate(store.ids("thermo")):
            if np.isfinite(cols["e_red"][i]) and np.isfinite(cols["e_ox"][i]):
                rows.append((cols["e_hull"][i], formula.get(cid, cid), cols["e_red"][i], cols["e_ox"][i],
                             bool(cols["anode_coating"][i]), bool(cols["cathode_coating"][i])))
    rows = sorted(rows)[:max_rows][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * max(len(rows), 4) + 1.5))
    for y, (e_hull, name, red, ox, ac, cc) in enumerate(rows):
        colour = "tab:purple" if ac and cc else "tab:blue" if ac else "tab:orange" if cc else "tab:grey"
        ax.barh(y, ox - red, left=red, color=colour, height=0.6)
        if ox - red < 0.05:  # a window that is (nearly) a point: mark it so it does not vanish
            ax.plot([red], [y], marker="|", ms=12, mew=2, color=colour)
    ax.set_yticks(range(len(rows)), [f"{r[1]} ({r[0]:.2f})" for r in rows], fontsize=7)
    if not rows:
        ax.text(0.5, 0.5, "thermo stage not run", transform=ax.transAxes, ha="center", va="center", color="grey")
    partners = stored_partners(store)
    if partners:
        ax.axvspan(partners.electrolyte_e_red_V, partners.electrolyte_e_ox_V, color="tab:green", alpha=0.15,
                   label=f"{partners.electrolyte} window")
    ax.axvline(crit.ac_e_red_max, color="tab:blue", ls="--", lw=1, label=f"AC: E_red < {crit.ac_e_red_max} V")
    ax.axvline(crit.cc_e_ox_min, color="tab:orange", ls="--", lw=1, label=f"CC: E_ox > {crit.cc_e_ox_min} V")
    from matplotlib.patches import Patch

    handles, _ = ax.get_legend_handles_labels()
    handles += [Patch(color=c, label=lab) for c, lab in (("tab:blue", "AC"), ("tab:orange", "CC"),
                                                          ("tab:purple", "AC and CC"), ("tab:grey", "neither"))]
    ax.set_xlabel("potential vs Li/Li⁺ (V)")
    ax.set_title("Electrochemical stability windows (label: formula (E_hull eV/atom))", fontsize=9)
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def write_report(h5_path: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    h5_path = Path(h5_path)
    out = Path(out_dir) if out_dir else h5_path.with_name(h5_path.stem + "_report")
    out.mkdir(parents=True, exist_ok=True)
    with ResultStore(h5_path, "r") as whole:
        cfg = from_stored(whole.metadata()["config"])
        store = RowsExcept(whole, controls.control_ids(whole))  # the controls have a table of their own
        steps = funnel(store, cfg)
        columns = later_columns(store)
        anode, cathode = coating_rows(store, "anode", columns), coating_rows(store, "cathode", columns)
        paths = {"report": out / "report.md", "funnel": out / "funnel.png", "bandgap": out / "bandgap.png",
                 "transport": out / "transport.png", "windows": out / "windows.png"}
        paths["report"].write_text(markdown(store, steps, anode, cathode, below_hull_rows(store),
                                            [head for head, _ in columns], cfg.criteria,
                                            controls.markdown_lines(controls.outcomes(whole, STAGES))))
        plot_funnel(steps, paths["funnel"])
        plot_bandgap(store, float(cfg.bandgap.threshold), paths["bandgap"])
        plot_transport(whole, cfg.md, paths["transport"])
        plot_windows(whole, cfg.criteria, paths["windows"])
        for stage in STAGES:
            if stage.plot is not None and store.has(stage.name):
                stem, draw = stage.plot
                paths[stem] = out / f"{stem}.png"
                draw(store, cfg, paths[stem])
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Funnel table, coating tables and plots of a screening run.")
    parser.add_argument("runs", type=Path, nargs="+", help="the run's HDF5 file, or the files of its shards")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder to write to (default: <run>_report/, or <first shard>_merged_report/)")
    args = parser.parse_args(argv)
    run = args.runs[0]
    if len(args.runs) > 1:  # the shards of one screen: merged first (engine.io.merge), the report is the merged run's
        out = args.out or run.with_name(run.stem + "_merged_report")
        out.mkdir(parents=True, exist_ok=True)
        run = out / "merged.h5"
        run.unlink(missing_ok=True)
        merge(run, args.runs)
        args.out = out
    paths = write_report(run, args.out)
    print(paths["report"].read_text())
    print("written:", ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
