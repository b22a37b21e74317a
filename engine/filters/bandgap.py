"""Band-gap filter stage: a coating must be an electronic insulator, so candidates whose predicted gap E_g [eV] is
not above ``threshold`` (0.5 eV in the reference pipeline) fail.

E_g comes from a committee of predictors (:mod:`engine.filters.bandgap_models`): by default matgl's multi-fidelity MEGNet at
its PBE fidelity (structure-based, trained on Materials Project PBE gaps) and BandGap-ml's composition model (trained
on experimental gaps). Their errors are of different kinds — a graph network that has not seen the structure type, a
composition model blind to polymorphs — so the default rule rejects a candidate only when every member predicts
E_g <= threshold (``rule: agree_below``); ``majority`` and ``all_above`` are stricter. Each row records every
member's E_g, their spread and which member decided. ``bandgap.members`` may name a ``package.module:factory``
called as ``factory(cfg, device)`` that returns an object with ``name`` and ``predict(structures) -> E_g [eV]``
(``bandgap.predictor=...`` runs such a model alone).

The weights of both members ship (MEGNet in ``engine/models/weights/matgl/``, BandGap-ml in its package), so a fresh
clone evaluates E_g offline. With ``required: false`` a member that cannot be loaded is left out with a warning;
without any member every candidate passes with the reason "E_g not evaluated", visible in the funnel.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import numpy as np
from pymatgen.core import Structure

from engine.core.rows import NAN, Row, Status, short_error
from engine.filters.bandgap_models import CompositionBandGap, MegnetBandGap
from engine.models import ModelUnavailableError

log = logging.getLogger(__name__)
NOT_EVALUATED = "E_g not evaluated"


class CommitteeRule(StrEnum):
    """How the members' E_g become the committee's verdict; an unknown value stops the run before any work."""
    agree_below = "agree_below"  # fail only when every member predicts E_g <= threshold
    majority = "majority"  # fail when at least half of the members predict E_g <= threshold
    all_above = "all_above"  # pass only when every member predicts E_g > threshold


@dataclass
class BandGapSettings:
    """The band-gap filter (``conf/bandgap/``); reference pipeline: E_g > 0.5 eV."""
    members: list[str] = field(default_factory=lambda: ["megnet", "composition"])  # megnet | composition | mod:fn
    predictor: str | None = None  # a package.module:factory run alone (replaces members)
    rule: CommitteeRule = CommitteeRule.agree_below
    model: str = "MEGNet-MP-2019.4.1-BandGap-mfi"  # shipped (engine/models/weights/matgl/); other names download
    path: str | None = None  # a local copy of a MEGNet model folder, instead of the name
    fidelity: int = 0  # MEGNet's: 0 PBE, 1 GLLB-SC, 2 HSE, 3 SCAN
    composition_model: str = "best_model"  # BandGap-ml's model folder (best_model: random forests)
    threshold: float = 0.5  # eV; pass when E_g > threshold
    required: bool = False  # false: a member that cannot be loaded is left out ("E_g not evaluated" if all are)
    batch_size: int = 256  # structures per MEGNet forward pass
    chunk_size: int = 2048  # structures per HDF5 append


@dataclass
class BandGapRow(Row):
    """One candidate at the band-gap filter; the group's attribute ``members`` (JSON) names the members in order."""
    band_gap: float = NAN  # eV, the value that decided (agree_below: the largest, all_above: the smallest member's)
    member_gaps: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (n_members,) eV, NaN where not evaluated
    spread: float = NAN  # eV, largest minus smallest member's E_g
    decided_by: str = ""  # the member whose E_g decided; "all" when the members agree


class BandGapPredictor(Protocol):
    name: str

    def predict(self, structures: Sequence[Structure]) -> np.ndarray:
        """E_g [eV] per structure."""


def load_member(name: str, cfg, device) -> BandGapPredictor:
    if name == "megnet":
        return MegnetBandGap(str(cfg.get("path") or cfg.model), int(cfg.fidelity), device, int(cfg.batch_size))
    if name == "composition":
        return CompositionBandGap(str(cfg.composition_model))
    module, _, factory = str(name).partition(":")
    if not factory:
        raise ValueError(f"band-gap member {name!r}: use 'megnet', 'composition' or 'package.module:factory'")
    return getattr(importlib.import_module(module), factory)(cfg, device)


def load_committee(cfg, device) -> list[BandGapPredictor]:
    """The members that load; with ``required`` a member that cannot be loaded stops the run."""
    members = []
    for name in [cfg.predictor] if cfg.get("predictor") else list(cfg.members):
        try:
            member = load_member(name, cfg, device)
            member.label = name if ":" not in name else member.name  # what reasons and the report call it
            members.append(member)
        except ModelUnavailableError as exc:
            if cfg.required:
                raise
            log.warning("band-gap member %s left out: %s", name, exc)
    return members


def predict_with_reasons(predictor: BandGapPredictor, structures: Sequence[Structure]) -> tuple[np.ndarray, list[str]]:
    """E_g [eV] and an error reason per structure; a batch that fails is retried one structure at a time so
    one bad candidate (an element the model lacks, a graph it cannot build) does not take its batch with it."""
    gaps, errors = np.full(len(structures), np.nan), [""] * len(structures)
    unsupported = getattr(predictor, "unsupported", lambda s: [])
    ok = []
    for i, s in enumerate(structures):
        missing = unsupported(s)
        if missing:
            errors[i] = f"lacks elements: {', '.join(missing)}"
        else:
            ok.append(i)
    try:
        gaps[ok] = predictor.predict([structures[i] for i in ok])
    except Exception:  # noqa: BLE001 - find the culprit below
        for i in ok:
            try:
                gaps[i] = predictor.predict([structures[i]])[0]
            except Exception as exc:  # noqa: BLE001
                errors[i] = f"prediction failed: {short_error(exc)}"
    for i in ok:
        if not errors[i] and not np.isfinite(gaps[i]):
            errors[i] = "prediction is not finite"
    return gaps, errors


def committee_rows(ids: Sequence[str], names: Sequence[str], gaps: np.ndarray, errors: list[list[str]],
                   threshold: float, rule: CommitteeRule = CommitteeRule.agree_below) -> list[BandGapRow]:
    """One row per structure from the members' E_g [eV] (n_members, n) and their error reasons (n_members, n).
    A member that could not evaluate a structure is left out of its verdict (and named in the reason); a structure
    no member evaluated is an error."""
    rows = []
    for j, cid in enumerate(ids):
        col = gaps[:, j]
        ok = [i for i in range(len(names)) if not errors[i][j]]
        notes = [f"{names[i]}: {errors[i][j]}" for i in range(len(names)) if errors[i][j]]
        values = ", ".join(f"{names[i]} {col[i]:.2f}" for i in ok)
        if not ok:
            rows.append(BandGapRow(cid, Status.ERROR, "band gap: " + "; ".join(notes), member_gaps=col.copy()))
            continue
        above = [i for i in ok if col[i] > threshold]
        if rule == CommitteeRule.agree_below:
            passed, deciding = bool(above), max(ok, key=lambda i: col[i])
        elif rule == CommitteeRule.all_above:
            passed, deciding = len(above) == len(ok), min(ok, key=lambda i: col[i])
        else:
            passed = len(above) > len(ok) / 2
            deciding = sorted(ok, key=lambda i: col[i])[len(ok) // 2]
        agree = len(above) in (0, len(ok))
        reason = "" if passed else f"E_g <= {threshold} eV: {values} eV"
        if passed and not agree:
            reason = f"members disagree: {values} eV"
        reason = "; ".join(([reason] if reason else []) + [f"not evaluated by {n}" for n in notes])
        rows.append(BandGapRow(cid, Status.PASS if passed else Status.FAIL, reason, band_gap=float(col[deciding]),
                               member_gaps=col.copy(), spread=float(np.ptp(col[ok])),
                               decided_by="all" if agree and len(ok) > 1 else names[deciding]))
    return rows


def run_stage(run) -> None:
    """Predict E_g with every member for every candidate that passed validity and is not yet in ``bandgap/``."""
    cfg = run.cfg.bandgap
    todo = run.pending("bandgap")
    if not todo:
        return
    members = load_committee(cfg, run.device)
    if not members:
        log.warning("no band-gap model could be loaded; every candidate passes the band-gap filter unevaluated "
                    "(bandgap.required=false)")
        run.store.append_rows("bandgap", [BandGapRow(cid, Status.PASS, f"{NOT_EVALUATED}: model unavailable")
                                          for cid in todo])
        return
    names = [m.label for m in members]
    run.store.record_models({f"bandgap:{m.name}": {"name": m.name, "kind": "bandgap", "source": m.source,
                                                   "sha256": getattr(m, "checksum", "")}
                             for m in members if hasattr(m, "source")})
    run.store.set_attrs("bandgap", {"members": json.dumps(names), "rule": str(cfg.rule)})

    def compute(ids):
        structures = run.input_structures("bandgap", ids)
        predicted = [predict_with_reasons(m, [structures[i] for i in ids]) for m in members]
        gaps = np.array([p[0] for p in predicted]).reshape(len(members), len(ids))
        return committee_rows(ids, names, gaps, [p[1] for p in predicted], float(cfg.threshold),
                              CommitteeRule(cfg.rule))

    run.run_chunks("bandgap", todo, cfg.chunk_size, compute)


def committee_of(store) -> tuple[list[str], str]:
    """(member names in column order of ``member_gaps``, rule) of a run file's band-gap group."""
    attrs = store.attrs("bandgap")
    return json.loads(str(attrs.get("members", "[]"))), str(attrs.get("rule", CommitteeRule.agree_below))


def funnel(store, cfg) -> list[tuple[str, set[str] | None, str]]:
    """The report's funnel steps: (criterion, ids passing it or None for this stage's pass rows, note)."""
    if not store.has("bandgap"):
        return [(f"E_g > {cfg.bandgap.threshold} eV", None, "")]
    reasons = store.column("bandgap", "reason")
    if len(reasons) and all(r.startswith(NOT_EVALUATED) for r in reasons):
        return [(f"E_g > {cfg.bandgap.threshold} eV", None, "not evaluated (no band-gap model)")]
    members, rule = committee_of(store)
    split = sum(r.startswith("members disagree") for r in reasons)
    note = f"{rule} of {', '.join(members)}" if members else ""
    if split:
        note += f"; {split} passed on one member's word"
    return [(f"E_g > {cfg.bandgap.threshold} eV", None, note)]
