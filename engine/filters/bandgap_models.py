"""Band-gap predictors: each has ``name``, ``predict(structures) -> E_g [eV]`` and ``unsupported(structure)``.

- :class:`MegnetBandGap`: matgl's multi-fidelity MEGNet (Chen, Zuo, Ye, Li & Ong, Nat. Comput. Sci. 1, 46 (2021)),
  structure-based, trained on Materials Project PBE gaps (and GLLB-SC, HSE, SCAN at the other fidelities).
- :class:`CompositionBandGap`: BandGap-ml's random forests (A. Krasnov, MIT licence; PyPI ``bandgap-ml``), a
  metal/non-metal classifier and a gap regressor on composition features, trained on experimental gaps.

Why MEGNet needs a fix here: its weights were trained with matgl's DGL backend, where a MEGNet convolution averages
each edge's message into the edge's *destination* node. matgl's PyG port (matgl >= 2, "post-#761") averages into
the *source* node. The edge update takes (v_src, v_dst, e, u), not symmetric, so the two are different networks:
on the weights as shipped the source convention collapses most insulators towards 0 eV (MgO -0.01, Li2O 0.11, CaO
0.00 eV) and turns CsCl's published PBE gap of 4.825 eV into 2.717 eV. :class:`DestinationMeanConv` restores the
training convention on the loaded instance only, and every load checks matgl's published CsCl gaps at all four
fidelities (:data:`MEGNET_CSCL_PUBLISHED`), so a later change of matgl cannot go unnoticed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Composition, Lattice, Structure

from engine.models import ModelUnavailableError, sha256_of
from engine.models.matgl import load_matgl, shipped_folder

log = logging.getLogger(__name__)


def missing_elements(structure: Structure, known: frozenset[str]) -> list[str]:
    """The elements of ``structure`` a predictor does not know, sorted."""
    return sorted({el.symbol for el in structure.composition.elements} - known)

# matgl's example "Using Pre-trained MEGNet or M3GNet for Property Predictions.ipynb" (run under the DGL backend the
# weights were trained with): CsCl, Pm-3m, a = 4.1437 Å; E_g [eV] at fidelity 0 PBE, 1 GLLB-SC, 2 HSE, 3 SCAN
MEGNET_CSCL_PUBLISHED = (4.825, 8.323, 6.317, 5.965)
MEGNET_CSCL_TOLERANCE_EV = 0.01


def _destination_mean_conv():
    from matgl.layers._graph_convolution import MEGNetGraphConv
    from torch_geometric.utils import scatter

    class DestinationMeanConv(MEGNetGraphConv):
        """MEGNet convolution whose node update averages the messages of the edges that end at a node (DGL's
        ``update_all(copy_e, mean)``, the convention the shipped weights were trained with)."""

        def node_update_(self, edge_index, edge_feat, node_feat, u_per_node, num_nodes):
            ve = scatter(edge_feat, edge_index[1].long(), dim=0, dim_size=num_nodes, reduce="mean")
            return self.node_func(torch.hstack([node_feat, ve, u_per_node]))

    return DestinationMeanConv


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
        conv = _destination_mean_conv()
        for block in inner.blocks:
            block.conv.__class__ = conv
        self.converter = Structure2Graph(element_types=inner.element_types, cutoff=inner.cutoff)
        self.elements = frozenset(inner.element_types)
        self.fidelity, self.batch_size = int(fidelity), int(batch_size)
        self.name = f"{Path(source).name}[fidelity {self.fidelity}]"
        self.source = source
        self.checksum = sha256_of(source) if Path(source).exists() else ""
        if Path(source).name == "MEGNet-MP-2019.4.1-BandGap-mfi":
            self.check_published()

    def check_published(self) -> None:
        """Raise unless the loaded model reproduces matgl's published CsCl gaps at every fidelity."""
        cscl = Structure.from_spacegroup("Pm-3m", Lattice.cubic(4.1437), ["Cs", "Cl"], [[0, 0, 0], [0.5] * 3])
        fidelity = self.fidelity
        try:
            got = []
            for self.fidelity in range(len(MEGNET_CSCL_PUBLISHED)):
                got.append(float(self.predict([cscl])[0]))
        finally:
            self.fidelity = fidelity
        if np.abs(np.array(got) - MEGNET_CSCL_PUBLISHED).max() > MEGNET_CSCL_TOLERANCE_EV:
            raise ModelUnavailableError(
                f"MEGNet band-gap model does not reproduce its published CsCl gaps {MEGNET_CSCL_PUBLISHED} eV "
                f"(got {tuple(round(g, 3) for g in got)}): the installed matgl computes another network than the "
                "one the weights were trained as; see engine/bandgap_models.py")

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
        return missing_elements(structure, self.elements)


# electrons left on a closed-shell ion: noble gas; d10 (Cu+, Zn2+, Ga3+); d10 s2 (Sn2+, Pb2+, Bi3+); [Xe] 4f14 (Hf4+)
CLOSED_SHELL_ELECTRONS = frozenset({2, 10, 18, 36, 54, 86, 28, 46, 78, 30, 48, 80, 68})


def closed_shell_ionic(composition) -> bool:
    """Whether ``composition`` is a valence-precise ionic compound: some charge-balanced assignment of common oxidation
    states (pymatgen's ``oxi_state_guesses``) leaves every ion, cations and anions alike, with a closed shell.
    Such compounds (LiF, Li2ZrCl6, Li3YCl6, CsAu, Li3Sb) are insulators or semiconductors; the rule says nothing
    of the rest (intermetallics, mixed valence, d^n ions)."""
    from pymatgen.core import Element

    if len(composition.elements) < 2:
        return False
    for guess in composition.oxi_state_guesses(max_sites=-50):
        states = {el: float(q) for el, q in guess.items()}
        if not any(q > 0 for q in states.values()) or not any(q < 0 for q in states.values()):
            continue
        if all(q == int(q) and Element(el).Z - int(q) in CLOSED_SHELL_ELECTRONS for el, q in states.items()):
            return True
    return False


class CompositionBandGap:
    """BandGap-ml's composition model (random forests on 136 composition features, trained on experimental gaps):
    E_g [eV] = its regressor's gap for a non-metal, 0 for a metal.

    Metal or not: a valence-precise closed-shell ionic composition (:func:`closed_shell_ionic`) is a non-metal;
    for the rest, BandGap-ml's own classifier decides. Its classifier alone calls ZrF4, Li3YCl6 and Li2ZrCl6 metals
    (probabilities 0.17-0.39 of a gap), which would make it useless as a second opinion on halide coatings.
    ``model_type``: ``best_model`` (random forests, the package's default) or another folder of its ``models/``.
    """

    def __init__(self, model_type: str = "best_model"):
        import warnings

        try:
            from band_gap_ml.band_gap_predictor import BandGapPredictor
        except ImportError as exc:
            raise ModelUnavailableError("the composition band-gap model needs the package bandgap-ml "
                                        "(bash setup.sh installs it; or pip install --no-deps bandgap-ml)") from exc
        with warnings.catch_warnings():  # pickled with scikit-learn 1.5; the README's validation covers the reload
            warnings.simplefilter("ignore")
            self.predictor = BandGapPredictor(model_type=model_type)
            self.predictor.config.classification_model  # noqa: B018 - load the pickles now, not at the first batch
        self.elements = frozenset(self.predictor.vectorizer.elements_df.index)
        self.name = f"bandgap-ml[{model_type}]"
        self.source = str(self.predictor.config.MODELS_DIR / model_type)
        self.checksum = sha256_of(self.source)

    def predict(self, structures: Sequence[Structure]) -> np.ndarray:
        import warnings

        import pandas as pd

        formulas = [s.composition.reduced_formula for s in structures]
        unique = sorted(set(formulas))
        if not unique:
            return np.zeros(0)
        vectorizer = self.predictor.vectorizer
        features = pd.DataFrame([vectorizer.vectorize_formula(f) for f in unique], columns=vectorizer.column_names)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = self.predictor.predict_with_probabilities(features)
        nonmetal = result["is_semiconductor"].to_numpy() == 1
        nonmetal |= np.array([closed_shell_ionic(Composition(f)) for f in unique])
        gap = np.where(nonmetal, result["band_gap"].to_numpy(float), 0.0)
        by_formula = dict(zip(unique, gap))
        return np.array([by_formula[f] for f in formulas], dtype=float)

    def unsupported(self, structure: Structure) -> list[str]:
        return missing_elements(structure, self.elements)
