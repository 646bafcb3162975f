"""Topology-aware overlap: clDice (Shit et al. 2021) from hard skeletons.

``clDice = 2 Tprec Tsens / (Tprec + Tsens)`` with ``Tprec = |S(P) ∩ G| / |S(P)|`` (how much of the
prediction's skeleton lies inside the target) and ``Tsens = |S(G) ∩ P| / |S(G)|`` (how much of the
target's skeleton the prediction covers); ``S`` is the morphological skeleton of scikit-image's
``skeletonize`` (Zhang's thinning in 2-D, Lee's in 3-D), as in MetricsReloaded's ``cldice``. It scores
tubular structures (vessels, airways, roads) by their connectivity: a gap in a thin vessel costs more
than a thick vessel's missing wall.

scikit-image is optional: ``pip install "segdice[skeletons]"``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from segdice._arrays import to_numpy
from segdice._checks import SegDiceError, describe

__all__ = ["cldice_score"]


def _skeletonize(mask: np.ndarray) -> np.ndarray:
    try:
        from skimage.morphology import skeletonize
    except ImportError:  # pragma: no cover - the test environment has scikit-image
        raise SegDiceError(
            'cldice_score needs scikit-image for the skeletons: pip install "segdice[skeletons]" '
            "(or scikit-image>=0.22)"
        ) from None
    return skeletonize(mask)


def _binary_mask(name: str, x: np.ndarray) -> np.ndarray:
    if x.dtype == bool:
        return x
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)) or bool(
        np.any((x != 0) & (x != 1))
    ):
        raise SegDiceError(f"{name}: got {describe(x)}; expected a binary mask (bool or 0/1)")
    return x != 0


def _skeleton_cover(skeleton: np.ndarray, mask: np.ndarray) -> float:
    """``|skeleton ∩ mask| / |skeleton|`` (0 for an empty skeleton: nothing of it is covered)."""
    n = np.count_nonzero(skeleton)
    return np.count_nonzero(skeleton & mask) / n if n else 0.0


def cldice_score(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> float:
    """clDice of two binary masks from their hard skeletons (MetricsReloaded's ``cldice``).

    ``clDice = 2 Tprec Tsens / (Tprec + Tsens)``, ``Tprec = |S(P) ∩ G| / |S(P)|``,
    ``Tsens = |S(G) ∩ P| / |S(G)|``, ``S`` the skeleton (scikit-image ``skeletonize``).

    Parameters
    ----------
    pred, target
        Binary masks ``[*spatial]``, 2-D or 3-D (bool or 0/1), NumPy arrays or torch tensors.

    Returns
    -------
    float
        In [0, 1]. Both masks empty: NaN; exactly one empty: 0; ``Tprec = Tsens = 0`` gives 0.

    Raises
    ------
    SegDiceError
        Shapes differ, a mask is not binary or not 2-D/3-D, or scikit-image is missing.

    Examples
    --------
    >>> vessel = np.zeros((9, 20), dtype=bool); vessel[3:6, 1:19] = True
    >>> broken = vessel.copy(); broken[:, 9:11] = False  # a gap in the vessel
    >>> round(cldice_score(broken, vessel), 4)  # the skeleton of the target is cut
    0.9375
    >>> cldice_score(vessel, vessel)
    1.0
    """
    p, t = to_numpy("pred", pred), to_numpy("target", target)
    if p.shape != t.shape:
        raise SegDiceError(
            f"pred and target must have the same shape: got pred {p.shape} and target {t.shape}"
        )
    if p.ndim not in (2, 3) or 0 in p.shape:
        raise SegDiceError(f"pred: got {describe(p, values=False)}; expected a non-empty 2-D or 3-D mask")
    p, t = _binary_mask("pred", p), _binary_mask("target", t)
    p_any, t_any = bool(p.any()), bool(t.any())
    if not (p_any and t_any):
        return 0.0 if (p_any or t_any) else math.nan
    t_prec = _skeleton_cover(_skeletonize(p), t)
    t_sens = _skeleton_cover(_skeletonize(t), p)
    if t_prec + t_sens == 0:
        return 0.0
    return 2 * t_prec * t_sens / (t_prec + t_sens)
