"""Array conversions shared by the core and the metrics: torch tensors and NumPy arrays, one way each.

Two conversions to NumPy exist on purpose: :func:`to_numpy` hands over a tensor's or an array's values as
they are (the boundary metrics read masks), while :func:`to_contiguous_numpy` gives the counting engine a
C-contiguous array of a dtype ``np.bincount`` can take (``bool`` as ``uint8``, wide unsigned as ``int64``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from segdice._checks import SegDiceError, check_has_data, describe

__all__ = ["as_array", "device_of", "to_contiguous_numpy", "to_numpy", "to_torch"]


def as_array(name: str, x: object) -> torch.Tensor | np.ndarray:
    """Return ``x`` if it is a real-valued torch tensor with data (not on the meta device) or a numeric
    NumPy array; raise otherwise.

    Examples
    --------
    >>> as_array("pred", np.zeros(2)).shape
    (2,)
    """
    if isinstance(x, (torch.Tensor, np.ndarray)):
        check_has_data(name, x)
        if (isinstance(x, torch.Tensor) and x.is_complex()) or (
            isinstance(x, np.ndarray) and x.dtype.kind == "c"
        ):
            raise SegDiceError(f"{name}: got {describe(x, values=False)}; expected real or integer values")
        if isinstance(x, np.ndarray) and x.dtype.kind not in "biuf":
            raise SegDiceError(f"{name}: got {describe(x, values=False)}; expected a numeric array")
        return x
    raise SegDiceError(f"{name}: got {describe(x)}; expected a torch.Tensor or a numpy.ndarray")


def to_torch(x: torch.Tensor | np.ndarray, device: torch.device | None = None) -> torch.Tensor:
    """A tensor of ``x`` (zero-copy for a contiguous array), moved to ``device`` if one is given."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t if device is None else t.to(device)


def to_contiguous_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """A C-contiguous NumPy array of ``x`` for counting: ``bool`` viewed as ``uint8``, uint16-64 as int64.

    Examples
    --------
    >>> to_contiguous_numpy(torch.tensor([True, False])).dtype
    dtype('uint8')
    """
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype == torch.bool:
            x = x.view(torch.uint8)
        elif x.dtype in (torch.uint16, torch.uint32, torch.uint64):
            x = x.to(torch.int64)
        return x.contiguous().numpy()
    if x.dtype == np.bool_:
        x = x.view(np.uint8)
    return np.ascontiguousarray(x)


def to_numpy(name: str, x: Any) -> np.ndarray:
    """The values of a tensor (detached, on the CPU) or an array, as they are; anything else (a meta
    tensor too) raises.

    Examples
    --------
    >>> to_numpy("pred", torch.tensor([1, 0])).tolist()
    [1, 0]
    """
    if isinstance(x, torch.Tensor):
        check_has_data(name, x)
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise SegDiceError(f"{name}: got {describe(x)}; expected a NumPy array or a torch tensor")


def device_of(*xs: object) -> torch.device:
    """The one device of the tensors among ``xs`` (CPU when there are none); raise if they differ."""
    devices = {x.device for x in xs if isinstance(x, torch.Tensor)}
    if len(devices) > 1:
        raise SegDiceError(f"pred and target must be on the same device: got {sorted(map(str, devices))}")
    return devices.pop() if devices else torch.device("cpu")
