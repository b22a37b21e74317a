"""Relaxations whose result does not depend on the batch: the Fréchet cell filter's ``exp`` of a lone cell taken as
in a batch.

The Fréchet cell filter (ASE's ``FrechetCellFilter``, torch-sim's ``CellFilter.frechet``) moves each cell through the
matrix exponential of its log-deformation. ``torch.matrix_exp`` takes, for a batch of one matrix, the lowest Padé
degree that suits its norm, and for a larger batch degree 18 with scaling and squaring chosen per matrix (ATen's
``mexp_impl``): a structure left alone in the batch (the last of a relaxation, a joiner initialised on its own)
stepped about 1e-16 (relative) away from where it steps beside others, so a screen and its shards, or two atom
budgets, ended with relaxed structures about 1e-15 Å apart. torch-sim calls ``torch.matrix_exp`` from inside its FIRE
step, with no hook, so :func:`batch_independent_cell_filter` puts :func:`matrix_exp_batched` in its place while a
relaxation runs. (torch-sim's ``expm_frechet`` for the cell forces also scales a batch together, by its largest
1-norm, but only above 4.74, a deformation that a relaxation marks as exploded long before.)
"""

from __future__ import annotations

import contextlib
import threading

import torch

_TORCH_MATRIX_EXP = torch.matrix_exp
_LOCK = threading.RLock()


def matrix_exp_batched(a: torch.Tensor) -> torch.Tensor:
    """``torch.matrix_exp`` of ``a`` (…, n, n); a batch of one matrix goes through the batched path, padded with a
    zero matrix."""
    if a.dim() == 3 and a.shape[0] == 1:
        return _TORCH_MATRIX_EXP(torch.cat([a, torch.zeros_like(a)]))[:1]
    return _TORCH_MATRIX_EXP(a)


@contextlib.contextmanager
def batch_independent_cell_filter():
    """While inside, ``torch.matrix_exp`` is :func:`matrix_exp_batched` (re-entrant; one thread at a time)."""
    with _LOCK:
        saved = torch.matrix_exp
        if saved is matrix_exp_batched:  # already inside
            yield
            return
        torch.matrix_exp = matrix_exp_batched
        try:
            yield
        finally:
            torch.matrix_exp = saved
