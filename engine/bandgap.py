"""Band-gap filter stage: a coating must be an electronic insulator, so candidates whose predicted gap
E_g [eV] is not above ``threshold`` (0.5 eV in the reference pipeline) fail.

The default predictor is matgl's multi-fidelity MEGNet band-gap regressor MEGNet-MP-2019.4.1-BandGap-mfi (Chen,
Zuo, Ye, Li & Ong, Nat. Comput. Sci. 1, 46 (2021)) at its PBE fidelity, evaluated on batched graphs. The predictor
is pluggable: ``bandgap.predictor`` names ``megnet`` or a ``package.module:factory`` called as
``factory(cfg, device)`` that returns an object with ``name`` and ``predict(structures) -> E_g [eV]``.

MEGNet's weights ship with the engine (``engine/models/weights/matgl/``), so a fresh clone evaluates E_g offline;
``bandgap.path`` points at another local copy. With ``required: false`` a run whose model cannot be loaded records
every candidate as passing with the reason "E_g not evaluated", visible in the funnel, instead of stopping.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from pymatgen.core import Structure

from engine.models import ModelUnavailableError, sha256_of
from engine.models.matgl import load_matgl, shipped_folder
from engine.rows import NAN, Row, Status
from engine.structures import short_error

log = logging.getLogger(__name__)
NOT_EVALUATED = "E_g not evaluated"


@dataclass
class BandGapSettings:
    """The band-gap filter (``conf/bandgap/``); reference pipeline: E_g > 0.5 eV."""
    predictor: str = "megnet"  # megnet | package.module:factory (called as factory(cfg, device))
    model: str = "MEGNet-MP-2019.4.1-BandGap-mfi"  # shipped (engine/models/weights/matgl/); other names download
    path: str | None = None  # a local copy of a model folder, instead of the name
    fidelity: int = 0  # 0 PBE, 1 GLLB-SC, 2 HSE, 3 SCAN
    threshold: float = 0.5  # eV; pass when E_g > threshold
    required: bool = False  # false: without weights every candidate passes, marked "E_g not evaluated"
    batch_size: int = 256  # structures per forward pass
    chunk_size: int = 2048  # structures per HDF5 append


@dataclass
class BandGapRow(Row):
    """One candidate at the band-gap filter."""
    band_gap: float = NAN  # eV (NaN: not evaluated)


class BandGapPredictor(Protocol):
    name: str

    def predict(self, structures: Sequence[Structure]) -> np.ndarray:
        """E_g [eV] per structure."""


class MegnetBandGap:
    """MEGNet band gap [eV], many structures per forward pass (the model's own ``predict_structure`` does one).

    ``fidelity`` indexes the multi-fidelity state: 0 PBE, 1 GLLB-SC, 2 HSE, 3 SCAN.
    """

    def __init__(self, source: str, fidelity: int = 0, device: str | torch.device = "cpu", batch_size: int = 256):
        from matgl.data.transformer import Normalizer
        from matgl.ext.pymatgen import Structure2Graph

        # matgl pickles its target normaliser in state.pt; torch >= 2.6 loads weights_only unless allow-listed
        torch.serialization.add_safe_globals([Normalizer])
        how = ("Offline, give a local folder: bandgap.path=/path/to/MEGNet-MP-2019.4.1-BandGap-mfi/ holding "
               "model.pt, state.pt and model.json (matgl.load_model(NAME) downloads them when online).")
        if Path(source).is_absolute() and not Path(source).is_dir():
            raise ModelUnavailableError(f"band-gap model folder {source} does not exist. {how}")
        self.model = load_matgl(source, "band-gap model", how)
        source = str(shipped_folder(source) or source)
        self.device = torch.device(device)
        self.model = self.model.to(self.device).eval()
        inner = self.model.model
        self.converter = Structure2Graph(element_types=inner.element_types, cutoff=inner.cutoff)
        self.elements = frozenset(inner.element_types)
        self.fidelity, self.batch_size = int(fidelity), int(batch_size)
        self.name = f"{Path(source).name}[fidelity {self.fidelity}]"
        self.source = source
        self.checksum = sha256_of(source) if Path(source).exists() else ""

    def _graph(self, structure: Structure):
        g, lat, _ = self.converter.get_graph(structure)
        # as in MEGNet.predict_structure: Cartesian positions and periodic shifts from the lattice
        g.pbc_offshift = torch.matmul(g.pbc_offset, lat[0])
        g.pos = g.frac_coords @ lat[0]
        return g

    @torch.no_grad()
    def predict(self, structures: Sequence[Structure]) -> np.ndarray:
        from torch_geometric.data import Batch

        out = []
        for start in range(0, len(structures), self.batch_size):
            chunk = structures[start:start + self.batch_size]
            batch = Batch.from_data_list([self._graph(s) for s in chunk]).to(self.device)
            state = torch.full((len(chunk),), self.fidelity, dtype=torch.long, device=self.device)
            out.append(self.model(g=batch, state_attr=state).reshape(-1).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def unsupported(self, structure: Structure) -> list[str]:
        return sorted({el.symbol for el in structure.composition.elements} - self.elements)


def load_predictor(cfg, device) -> BandGapPredictor:
    if cfg.predictor == "megnet":
        return MegnetBandGap(str(cfg.get("path") or cfg.model), int(cfg.fidelity), device, int(cfg.batch_size))
    module, _, factory = str(cfg.predictor).partition(":")
    if not factory:
        raise ValueError(f"bandgap.predictor {cfg.predictor!r}: use 'megnet' or 'package.module:factory'")
    return getattr(importlib.import_module(module), factory)(cfg, device)


def predict_with_reasons(predictor: BandGapPredictor, structures: Sequence[Structure]) -> tuple[np.ndarray, list[str]]:
    """E_g [eV] and an error reason per structure; a batch that fails is retried one structure at a time so
    one bad candidate (an element the model lacks, a graph it cannot build) does not take its batch with it."""
    gaps, errors = np.full(len(structures), np.nan), [""] * len(structures)
    unsupported = getattr(predictor, "unsupported", lambda s: [])
    ok = []
    for i, s in enumerate(structures):
        missing = unsupported(s)
        if missing:
            errors[i] = f"band-gap model lacks elements: {', '.join(missing)}"
        else:
            ok.append(i)
    try:
        gaps[ok] = predictor.predict([structures[i] for i in ok])
    except Exception:  # noqa: BLE001 - find the culprit below
        for i in ok:
            try:
                gaps[i] = predictor.predict([structures[i]])[0]
            except Exception as exc:  # noqa: BLE001
                errors[i] = f"band-gap prediction failed: {short_error(exc)}"
    for i in ok:
        if not errors[i] and not np.isfinite(gaps[i]):
            errors[i] = "band-gap prediction is not finite"
    return gaps, errors


def verdicts(gaps: np.ndarray, errors: list[str], threshold: float) -> tuple[list[Status], list[str]]:
    """Status and reason per structure from E_g [eV] (n,) and prediction errors (n,)."""
    status, reason = [], []
    for gap, err in zip(gaps, errors):
        if err:
            status.append(Status.ERROR), reason.append(err)
        elif gap > threshold:
            status.append(Status.PASS), reason.append("")
        else:
            status.append(Status.FAIL), reason.append(f"E_g: {gap:.2f} eV <= {threshold} eV")
    return status, reason


def run_stage(run) -> None:
    """Predict E_g for every candidate that passed validity and is not yet in ``bandgap/``, in chunks."""
    cfg = run.cfg.bandgap
    todo = run.pending("bandgap")
    if not todo:
        return
    try:
        predictor = load_predictor(cfg, run.device)
    except ModelUnavailableError as exc:
        if cfg.required:
            raise
        log.warning("%s; every candidate passes the band-gap filter unevaluated (bandgap.required=false)", exc)
        run.store.append_rows("bandgap", [BandGapRow(cid, Status.PASS, f"{NOT_EVALUATED}: model unavailable")
                                          for cid in todo])
        return
    if hasattr(predictor, "source"):
        run.store.record_models({"bandgap": {"name": predictor.name, "kind": "bandgap", "source": predictor.source,
                                             "sha256": getattr(predictor, "checksum", "")}})
    threshold = float(cfg.threshold)
    chunk = int(cfg.chunk_size)
    with run.progress("bandgap", len(todo)) as bar:
        for start in range(0, len(todo), chunk):
            ids = todo[start:start + chunk]
            structures = run.input_structures("bandgap", ids)
            gaps, errors = predict_with_reasons(predictor, [structures[i] for i in ids])
            status, reason = verdicts(gaps, errors, threshold)
            run.store.append_rows("bandgap", [BandGapRow(*row) for row in zip(ids, status, reason, gaps.tolist())])
            bar.update(len(ids))


def funnel(store, cfg) -> list[tuple[str, set[str] | None, str]]:
    """The report\'s funnel steps: (criterion, ids passing it or None for this stage\'s pass rows, note)."""
    reasons = store.column("bandgap", "reason") if store.has("bandgap") else []
    note = "not evaluated (no band-gap model)" if len(reasons) and all(
        r.startswith(NOT_EVALUATED) for r in reasons) else ""
    return [(f"E_g > {cfg.bandgap.threshold} eV", None, note)]
