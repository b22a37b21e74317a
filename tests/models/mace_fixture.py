"""A small, randomly initialised MACE built with mace-torch's own classes (no foundation weights offline).
Its interaction energy is scaled up so forces are O(0.1 eV/Å) and agreement tests discriminate."""

import numpy as np
import torch

ZS = [3, 8, 9, 13, 17]  # Li O F Al Cl


def small_random_mace(seed: int = 0, zs=ZS) -> torch.nn.Module:
    from e3nn import o3
    from mace import modules

    torch.manual_seed(seed)
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    model = modules.ScaleShiftMACE(
        r_max=4.5, num_bessel=6, num_polynomial_cutoff=5, max_ell=2,
        interaction_cls=block, interaction_cls_first=block, num_interactions=2,
        num_elements=len(zs), hidden_irreps=o3.Irreps("8x0e + 8x1o"), MLP_irreps=o3.Irreps("8x0e"),
        atomic_energies=np.linspace(-2.0, -4.0, len(zs)), avg_num_neighbors=10.0, atomic_numbers=list(zs),
        correlation=2, gate=torch.nn.functional.silu, atomic_inter_scale=200.0, atomic_inter_shift=0.0,
    )
    return model.double()
