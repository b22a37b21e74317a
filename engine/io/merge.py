"""Merge the run files of the shards of one screen: ``python -m engine.merge OUT.h5 SHARD.h5 [SHARD.h5 ...]``.

The shards must come from one screen: the config sections that define results (:func:`engine.config.frozen_on_resume`) must be the
same in every file, and no candidate may appear in two shards. Rows are copied group by group, shard after shard;
reference phases (one row per phase, computed by every shard that needed them) are kept once; probe grids and MD
trajectories are copied along; group attributes come from the first shard that has them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from engine.config import frozen_on_resume
from engine.io.store import ResultStore

SHARED_ROWS = ("references",)  # per reference phase, not per candidate: every shard may hold the same row
ARRAY_TREES = ("pes/grids", "md/trajectories")  # per-candidate arrays below these groups, one child per id


class MergeError(ValueError):
    """Files that are not shards of one screen."""


def _frozen(store: ResultStore) -> dict:
    cfg = yaml.safe_load(store.metadata()["config"] or "") or {}
    return {k: cfg.get(k) for k in frozen_on_resume()}


def merge(out: str | Path, inputs: list[str | Path]) -> dict[str, int]:
    """Write ``out`` from the shard files ``inputs``; returns the rows per group."""
    if Path(out).exists():
        raise MergeError(f"{out} exists; merge into a new file")
    stores = [ResultStore(p, "r") for p in inputs]
    try:
        first = _frozen(stores[0])
        for s in stores[1:]:
            changed = [k for k, v in _frozen(s).items() if v != first[k]]
            if changed:
                raise MergeError(f"{s.path} was made with other {', '.join(changed)} settings than {stores[0].path}")
        owner: dict[tuple[str, str], Path] = {}
        for s in stores:
            for group in s.groups():
                if group in SHARED_ROWS:
                    continue
                for cid in s.ids(group):
                    if (group, cid) in owner:
                        raise MergeError(f"{group}/{cid} is in both {owner[group, cid]} and {s.path}")
                    owner[group, cid] = s.path
        with ResultStore(out, "w") as dest:
            _copy(stores, dest)
            return {g: len(dest.ids(g)) for g in dest.groups()}
    finally:
        for s in stores:
            s.close()


def _copy(stores: list[ResultStore], dest: ResultStore) -> None:
    meta = stores[0].metadata()
    models = {}
    for s in stores:
        models.update(s.metadata()["models"])
    dest.write_metadata(meta["config"], meta["versions"], models)
    dest.set_attrs("/", {"merged_from": json.dumps([str(s.path) for s in stores])})
    groups = list(dict.fromkeys(g for s in stores for g in s.groups()))
    for group in groups:
        seen: set[str] = set()
        for s in stores:
            if not s.has(group):
                continue
            ids = s.ids(group)
            dest.copy_rows_from(s, group, [i for i, cid in enumerate(ids) if cid not in seen])
            seen |= set(ids)
            if not dest.attrs(group):
                dest.set_attrs(group, s.attrs(group))
    for tree in ARRAY_TREES:
        for s in stores:
            for name in s.children(tree):
                if dest.exists(f"{tree}/{name}"):  # a subgroup level (pes/grids/<approach>) holds ids below it
                    for sub in s.children(f"{tree}/{name}"):
                        dest.copy_from(s, f"{tree}/{name}/{sub}")
                else:
                    dest.copy_from(s, f"{tree}/{name}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Merge the shard files of one screen into one run file.")
    ap.add_argument("out", type=Path)
    ap.add_argument("shards", type=Path, nargs="+")
    args = ap.parse_args(argv)
    try:
        counts = merge(args.out, args.shards)
    except MergeError as exc:
        raise SystemExit(f"engine.io.merge: {exc}") from None
    print(f"{args.out}: " + ", ".join(f"{g} {n}" for g, n in counts.items()))


if __name__ == "__main__":
    main()
