"""Candidate generation with WyFormer (Kazeev, Nong, Romanov, Ustyuzhanin et al., "Wyckoff Transformer: Generation of
Symmetric Crystals", ICML 2025; PyPI ``wyckoff-transformer``), through the package's own API.

WyFormer samples Wyckoff representations (space group; per site an element and a Wyckoff position). In CSX mode
every sample must contain the required elements (Li) and may only use allowed elements; the generator masks the
rest. Samples that are not ``n_elements``-ary are dropped, and sampling goes on in rounds until ``n_structures``
genes are kept. Each gene becomes a crystal with pyxtal's ``from_random`` on exactly those Wyckoff sites
(Fredericks et al., Comput. Phys. Commun. 261, 107810 (2021)); a gene pyxtal cannot place is kept as a candidate
with the reason, so the funnel counts it.

The model is a HuggingFace name (``SymmetryAdvantage/...``, downloaded when online) or a local folder holding
``best_model_params.pt``, ``config.yaml`` and ``wyckoff_processor.json`` (what the package's trainer writes).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Element

from engine.candidates.readers import Candidate, CandidatesSettings
from engine.candidates.sampler import SEED_ALLOWED_ELEMENTS, symmetric_crystal
from engine.core.rows import short_error
from engine.models import ModelUnavailableError

log = logging.getLogger(__name__)
MODEL_FILES = ("best_model_params.pt", "config.yaml", "wyckoff_processor.json")


@dataclass
class WyformerCandidates(CandidatesSettings):
    """WyFormer in CSX mode (``candidates=wyformer``)."""
    source: str = "wyformer"
    model: str | None = None  # a HuggingFace repo id (SymmetryAdvantage/...), downloaded when online
    model_path: str | None = None  # or a folder with best_model_params.pt, config.yaml, wyckoff_processor.json
    n_structures: int = 1000  # genes to keep (CSX-conforming)
    samples_per_round: int = 1100  # genes sampled per call; rounds go on until n_structures are kept
    max_rounds: int = 20
    temperature: float = 1.0  # softmax temperature of every generated token
    required_elements: list[str] = field(default_factory=lambda: ["Li"])
    allowed_elements: list[str] = field(default_factory=lambda: list(SEED_ALLOWED_ELEMENTS))
    n_elements: int | None = 3  # ternary; null = any
    pyxtal_attempts: int = 10  # random placements tried per gene before it is recorded as unbuildable
    max_atoms: int = 80  # larger generated cells are recorded as errors
    seed: int = 0


def load_wyformer(model: str | None, model_path: str | None, device: str | torch.device = "cpu"):
    """The package's ``WyckoffTrainer`` with trained weights, ready to generate."""
    os.environ.setdefault("WANDB_MODE", "disabled")  # the package imports wandb; generation logs nothing
    try:
        from omegaconf import OmegaConf
        from wyckoff_transformer.trainer import WyckoffTrainer, load_model_weights
    except ImportError as exc:
        raise ModelUnavailableError("candidates=wyformer needs the wyckoff-transformer package "
                                    "(pip install wyckoff-transformer; setup.sh installs it)") from exc
    device = torch.device(device)
    if model_path:
        folder = Path(model_path).expanduser()
        missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
        if missing:
            raise ModelUnavailableError(f"WyFormer model folder {folder} lacks {', '.join(missing)}; a folder "
                                        "written by wyckoff-transformer's trainer holds them")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = WyckoffTrainer.from_config(OmegaConf.load(folder / "config.yaml"), device=device,
                                                 use_cached_tensors=False, run_path=folder, load_datasets=False)
        load_model_weights(trainer.model, folder / "best_model_params.pt", device)
    elif model:
        try:
            trainer = WyckoffTrainer.from_huggingface(model, device=device)
        except Exception as exc:
            raise ModelUnavailableError(
                f"WyFormer model {model!r} could not be loaded from HuggingFace ({type(exc).__name__}); offline, "
                f"give candidates.model_path=FOLDER holding {', '.join(MODEL_FILES)}") from exc
    else:
        raise ModelUnavailableError("candidates=wyformer needs candidates.model (a HuggingFace name) or "
                                    "candidates.model_path (a local model folder)")
    trainer.model.eval()
    return trainer


def element_vocabulary(trainer) -> set[str]:
    """Element symbols the model can generate."""
    out = set()
    for token in trainer.tokenisers["elements"]:
        symbol = token.symbol if isinstance(token, Element) else str(token).removeprefix("Element ")
        if Element.is_valid_symbol(symbol):
            out.add(symbol)
    return out


def is_csx(gene: dict, required: set[str], allowed: set[str], n_elements: int | None) -> bool:
    species = set(gene["species"])
    return required <= species <= allowed and (n_elements is None or len(species) == n_elements)


def generate_genes(trainer, n_structures: int, required: list[str], allowed: list[str], n_elements: int | None,
                   samples_per_round: int, max_rounds: int, temperature: float = 1.0) -> list[dict]:
    """Up to ``n_structures`` CSX Wyckoff genes (pyxtal ``from_random`` form: group, species, numIons, sites)."""
    vocab = element_vocabulary(trainer)
    lacking = sorted(set(required) - vocab)
    if lacking:
        raise ValueError(f"the WyFormer model cannot generate required elements {lacking}")
    allowed_here = sorted((set(allowed) | set(required)) & vocab)
    kept: list[dict] = []
    for _ in range(max_rounds):
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            genes = trainer.generate_structures(n_structures=samples_per_round, calibrate=False,
                                                required_element_set="-".join(required),
                                                allowed_element_set="-".join(allowed_here), temperature=temperature)
        kept += [g for g in genes if is_csx(g, set(required), set(allowed_here), n_elements)]
        if len(kept) >= n_structures:
            break
    if len(kept) < n_structures:
        log.warning("WyFormer gave %d/%d CSX genes in %d rounds of %d samples", len(kept), n_structures,
                    max_rounds, samples_per_round)
    return kept[:n_structures]


def gene_to_structure(gene: dict, seed: int, attempts: int = 10):
    """A pymatgen structure on exactly the gene's Wyckoff sites (pyxtal), or (None, reason)."""
    last = "pyxtal found no arrangement"
    for k in range(attempts):
        try:
            structure = symmetric_crystal(gene["group"], gene["species"], gene["numIons"], seed + k,
                                          sites=gene["sites"])
            if structure is not None:
                return structure, ""
        except Exception as exc:  # noqa: BLE001 - pyxtal raises many kinds for impossible genes
            last = short_error(exc)
    return None, f"unbuildable gene: {last}"


def gene_label(gene: dict) -> str:
    sites = {sp: list(ws) for sp, ws in zip(gene["species"], gene["sites"])}
    return f"wyformer:sg{gene['group']}:{json.dumps(sites, separators=(',', ':'))}"


def generate_candidates(cfg, device: str | torch.device = "cpu") -> list[Candidate]:
    """``cfg.n_structures`` candidates from WyFormer in CSX mode, reproducible from ``cfg.seed``."""
    torch.manual_seed(int(cfg.seed))
    trainer = load_wyformer(cfg.get("model"), cfg.get("model_path"), device)
    genes = generate_genes(trainer, int(cfg.n_structures), list(cfg.required_elements), list(cfg.allowed_elements),
                           cfg.get("n_elements"), int(cfg.samples_per_round), int(cfg.max_rounds),
                           float(cfg.temperature))
    rng = np.random.default_rng(int(cfg.seed))
    out = []
    for i, gene in enumerate(genes):
        structure, reason = gene_to_structure(gene, int(rng.integers(1 << 31)), int(cfg.pyxtal_attempts))
        if structure is not None and len(structure) > int(cfg.max_atoms):
            structure, reason = None, f"too many atoms: {len(structure)} > {cfg.max_atoms}"
        out.append(Candidate(f"wyformer-{i:06d}", gene_label(gene), structure, reason))
    return out
