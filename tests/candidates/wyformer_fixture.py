"""A tiny WyFormer trained for a few hundred full-batch steps with wyckoff-transformer's own pipeline: its dataset
cache (pyxtal Wyckoff records), its tokeniser and its ``train_from_config`` (W&B disabled). The run folder it
writes is a model folder the adapter loads like any other."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

DATASET, TOKENISER = "tiny_li_co_o", "tiny_sg_multiplicity"

TOKENISER_CONFIG = {
    "name": TOKENISER, "dtype": "int16",
    "token_fields": {
        "pure_categorical": ["site_symmetries", "elements", "sites_enumeration"],
        "engineered": {"multiplicity": {"type": "map",
                                        "inputs": ["spacegroup_number", "site_symmetries", "sites_enumeration"]}}},
    # no Wyckoff augmentation: a handful of structures does not contain every relabelled token
    "augmented_token_fields": [],
    "sequence_fields": {"space_group": ["spacegroup_number"], "counters": {"composition": "elements"}},
}


def model_config(epochs: int) -> dict:
    """The package's pilot architecture, smaller."""
    return {
        "dataset": DATASET,
        "model": {
            "start_token": "spacegroup_number",
            "cascade": {"order": ["elements", "site_symmetries", "sites_enumeration"],
                        "is_target": {"elements": True, "site_symmetries": True, "sites_enumeration": True},
                        "embedding_size": {"elements": 4, "site_symmetries": 4, "sites_enumeration": 2}},
            "WyckoffTrainer_args": {"multiclass_next_token_with_order_permutation": True, "target": "NextToken",
                                    "evaluation_samples": 2},
            "CascadeTransformer_args": {
                "start_type": "one_hot", "perceptron_shape": "pyramid", "concat_token_counts": False,
                "concat_token_presence": False, "aggregate_after_encoder": False, "mixer_layers": 1,
                "token_aggregation": None, "include_start_in_aggregation": False, "aggregation_inclsion": None,
                "outputs": "token_scores", "num_fully_connected_layers": 2, "learned_positional_encoding_max_size": 0,
                "learned_positional_encoding_only_masked": True,
                "TransformerEncoderLayer_args": {"nhead": 2, "dim_feedforward": 16, "dropout": 0.1},
                "TransformerEncoder_args": {"num_layers": 1, "enable_nested_tensor": False}}},
        "optimisation": {"optimiser": {"name": "AdamW", "config": {"lr": 0.01}},
                         "scheduler": {"name": "ReduceLROnPlateau", "config": {"factor": 0.8, "patience": 20}},
                         "validation_period": 10, "early_stopping_patience_epochs": 1000, "clip_grad_norm": 2.0,
                         "epochs": epochs},
        "tokeniser": {"name": TOKENISER},
        "evaluation": {"n_structures_to_generate": 0},
    }


@contextmanager
def _environment(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def train_tiny_wyformer(structures, workdir: Path, model_dir: Path, epochs: int = 300, seed: int = 0) -> Path:
    """Train on ``structures`` (train/val/test 4:1:1) and copy the run folder to ``model_dir``."""
    import torch
    import wandb
    from omegaconf import OmegaConf

    stores = {k: workdir / d for k, d in (("WYFORMER_DATA", "data"), ("WYFORMER_CACHE", "cache"),
                                          ("WYFORMER_RUNS", "runs"))}
    for path in stores.values():
        path.mkdir(parents=True, exist_ok=True)
    with _environment(**{k: str(v) for k, v in stores.items()}, WANDB_DIR=str(workdir), WANDB_MODE="disabled",
                      WANDB_SILENT="true"):
        from wyckoff_transformer.cli.cache_dataset import cache_dataset
        from wyckoff_transformer.tokenization import (
            TENSOR_CACHE_SUFFIX,
            save_tensor_cache,
            tokenise_dataset,
        )
        from wyckoff_transformer.trainer import train_from_config
        from wyckoff_transformer.wyckoff_processor import WyckoffProcessor

        n = len(structures)
        splits = {"train": structures[: 4 * n // 6], "val": structures[4 * n // 6: 5 * n // 6],
                  "test": structures[5 * n // 6:]}
        data = stores["WYFORMER_DATA"] / DATASET
        data.mkdir(exist_ok=True)
        for name, part in splits.items():
            pd.DataFrame({"cif": [s.to(fmt="cif") for s in part]}).to_csv(data / f"{name}.csv")
        frames = cache_dataset(DATASET, n_jobs=1, allow_obsolete_dataset=True)
        tok_cfg = OmegaConf.create(TOKENISER_CONFIG)
        tensors, tokenisers, engineers = tokenise_dataset(frames, tok_cfg, n_jobs=1)
        cache = stores["WYFORMER_CACHE"] / DATASET
        (cache / "tensors").mkdir(parents=True, exist_ok=True)
        save_tensor_cache(tensors, cache / "tensors" / f"{TOKENISER}{TENSOR_CACHE_SUFFIX}")
        WyckoffProcessor(config=tok_cfg, tokenisers=tokenisers, token_engineers=engineers).save_pretrained(
            cache / "tokenisers" / f"{TOKENISER}.json")

        torch.manual_seed(seed)
        config = model_config(epochs)
        run = wandb.init(mode="disabled", config=config)
        try:
            train_from_config(config, torch.device("cpu"), run_path=stores["WYFORMER_RUNS"],
                              allow_obsolete_dataset=True, no_test=True)
            run_dir = stores["WYFORMER_RUNS"] / run.id
        finally:
            wandb.finish()
    shutil.copytree(run_dir, model_dir)
    return model_dir
