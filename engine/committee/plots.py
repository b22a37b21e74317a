"""The report's committee plot: each member's E_hull of every candidate the committee judged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def plot_committee(store, cfg, path: Path, max_rows: int = 40) -> None:
    """Per-member E_hull [eV/atom] (one marker per member, each on its own hull) of the committee's candidates,
    lowest run-model E_hull first, against the E_hull cut; a candidate's label carries its id and the verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = json.loads(store.attrs("committee").get("models", "[]"))
    ids, e_hull = store.ids("committee"), store.column("committee", "e_hull")
    verdict = store.column("committee", "verdict")
    formula = store.column_by_id("candidates", "formula")
    order = sorted(range(len(ids)), key=lambda i: np.nan_to_num(e_hull[i][0], nan=np.inf))[:max_rows][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * max(len(order), 4) + 1.5))
    markers = "osD^v<>px*"
    for k, model in enumerate(models):
        ax.scatter([e_hull[i][k] for i in order], range(len(order)), marker=markers[k % len(markers)], s=22,
                   label=model, zorder=3)
    ax.axvline(cfg.criteria.e_hull_max, color="grey", ls="--", lw=1, label=f"E_hull cut {cfg.criteria.e_hull_max}")
    ax.set_yticks(range(len(order)), [f"{formula.get(ids[i], '?')} {ids[i]} ({verdict[i]})" for i in order], fontsize=7)
    if not order:
        ax.text(0.5, 0.5, "no candidate reached the committee", transform=ax.transAxes, ha="center", va="center",
                color="grey")
    ax.set_xlabel("E_hull on the member's own hull (eV/atom)")
    ax.set_title("Committee of uMLIPs: E_hull per member (label: formula id (verdict))", fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
