"""The run's config schema: the settings dataclasses of the stages, registered with Hydra's ConfigStore.

The dataclasses hold every setting and its default; the YAML files in ``conf/`` hold only what differs from them
(the seed's numbers where they are not the defaults, presets, the model files). Every config node is typed, so an
unknown key in a config file or on the command line stops the run before any work, naming the key
(``python -m engine.screen relax.fmx=0.1``: "Key 'fmx' not in 'RelaxSettings'").
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from engine.candidates.readers import CandidatesSettings
from engine.candidates.stage import BuiltinCandidates, FilesCandidates, ShardSettings
from engine.candidates.wyformer import WyformerCandidates
from engine.filters.bandgap import BandGapSettings
from engine.filters.novelty import NoveltySettings
from engine.filters.relaxed_novelty import RelaxedNoveltySettings
from engine.md.protocol import MdSettings
from engine.models import ModelSettings, model_config
from engine.pes.stage import PesSettings
from engine.references.sources import ReferencesSettings
from engine.relax.fire import RelaxSettings
from engine.stability.phonons import PhononSettings
from engine.stability.plausibility import PlausibilitySettings
from engine.thermo.criteria import CoatingCriteria
from engine.thermo.stage import ThermoSettings

# Config sections that must not change when a run is resumed (or between the shards of one screen): they define
# what is already in the file. ``shard`` and ``output`` differ between shards; ``stages``, ``device`` and
# ``threads`` may change between runs on one file.
FROZEN_ON_RESUME = ("model", "candidates", "bandgap", "novelty", "relax", "references", "relaxed_novelty", "thermo",
                    "criteria", "plausibility", "phonons", "pes", "md")
BATCHING_KEYS = ("max_atoms_per_batch", "cpu_atoms_per_batch", "init_chunk", "candidates_per_chunk",
                 "frames_per_flush")  # how work is batched, not what it computes: free to change on resume
CANDIDATE_SOURCES = {"builtin": BuiltinCandidates, "files": FilesCandidates, "wyformer": WyformerCandidates}
DEFAULT_STAGES = ["candidates", "bandgap", "novelty", "relax", "references", "relaxed_novelty", "thermo", "plausibility",
                  "phonons", "pes"]


@dataclass
class ScreenConfig:
    """The whole run's config: one section per conf group, plus the run's own settings."""
    model: ModelSettings = field(default_factory=ModelSettings)  # the run's uMLIP (relax, references, default)
    candidates: CandidatesSettings = MISSING  # one of CANDIDATE_SOURCES, chosen by the conf group
    bandgap: BandGapSettings = field(default_factory=BandGapSettings)
    novelty: NoveltySettings = field(default_factory=NoveltySettings)
    relaxed_novelty: RelaxedNoveltySettings = field(default_factory=RelaxedNoveltySettings)
    relax: RelaxSettings = field(default_factory=RelaxSettings)
    references: ReferencesSettings = field(default_factory=ReferencesSettings)
    thermo: ThermoSettings = field(default_factory=ThermoSettings)
    criteria: CoatingCriteria = field(default_factory=CoatingCriteria)
    plausibility: PlausibilitySettings = field(default_factory=PlausibilitySettings)
    phonons: PhononSettings = field(default_factory=PhononSettings)
    pes: PesSettings = field(default_factory=PesSettings)
    md: MdSettings = field(default_factory=MdSettings)
    stages: list[str] = field(default_factory=lambda: list(DEFAULT_STAGES))  # run in this order (engine.stages)
    shard: ShardSettings = field(default_factory=ShardSettings)  # this process's slice of the candidates
    device: str = "auto"  # auto = cuda when available, else cpu
    threads: int | None = None  # torch CPU threads (null: torch's default)
    output: str = "runs/screen.h5"  # one HDF5 file per run; rerunning the same command resumes it


# settings that name another model than the run's (null, a file in conf/model/, or a model config)
MODEL_SPECS = (("phonons", "model"), ("pes", "interstitial_model"), ("pes", "framework_model"), ("md", "model"))


def check_model_specs(cfg) -> None:
    """Each model a stage names exists as a config and has only known keys; raises ValueError naming the setting."""
    for section, key in MODEL_SPECS:
        spec = cfg[section][key]
        if spec is None:
            continue
        try:
            model_config(spec if isinstance(spec, str) else OmegaConf.to_container(spec))
        except Exception as exc:  # noqa: BLE001 - omegaconf and file errors alike, reported with the setting
            raise ValueError(f"{section}.{key}: {str(exc).splitlines()[0]}") from None


def register() -> None:
    """Register the schema (``screen_schema``) and each candidate source's (``candidates/<source>_schema``)."""
    cs = ConfigStore.instance()
    cs.store(name="screen_schema", node=ScreenConfig)
    for source, node in CANDIDATE_SOURCES.items():
        cs.store(group="candidates", name=f"{source}_schema", node=node)


def from_stored(config_yaml: str) -> ScreenConfig:
    """The typed config of a run file (its root ``config`` attribute); keys the schema does not know (a file
    written by an older version) are left out, missing sections take their defaults."""
    data = yaml.safe_load(config_yaml or "") or {}
    schema = OmegaConf.structured(ScreenConfig)
    source = (data.get("candidates") or {}).get("source", "builtin")
    schema.candidates = OmegaConf.structured(CANDIDATE_SOURCES.get(source, BuiltinCandidates))
    known = {}
    for f in fields(ScreenConfig):
        if f.name not in data:
            continue
        value = data[f.name]
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k in schema[f.name].keys()}
        known[f.name] = value
    return OmegaConf.to_object(OmegaConf.merge(schema, known))
