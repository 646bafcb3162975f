"""Input validation shared by every part of segdice.

Every check raises :class:`SegDiceError` with a message that names the argument, says what was
received (shape, dtype, value range) and what is expected, so a user never has to decode an
``IndexError`` thrown from deep inside torch.

This module imports no torch: a value can only be a tensor once torch has been imported by its caller, so
the checks look for ``torch.Tensor`` only when torch is already loaded. The command
line's ``--help`` and the evaluator's option checks stay light.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "MODES",
    "REDUCTIONS",
    "SegDiceError",
    "check_choice",
    "check_distributed",
    "check_empty_value",
    "check_finite",
    "check_has_data",
    "check_ignore_index",
    "check_include_background",
    "check_mode",
    "check_number",
    "check_spacing",
    "describe",
]

MODES: tuple[str, ...] = ("binary", "multiclass", "multilabel")
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")


class SegDiceError(ValueError):
    """Raised for invalid input to any segdice function, class or command.

    It subclasses :class:`ValueError`, so ``except ValueError`` keeps working for callers that do not
    know about segdice.
    """


SegDiceError.__module__ = "segdice"  # tracebacks and reprs show the public name, segdice.SegDiceError


def _torch() -> ModuleType | None:
    """torch if some caller has imported it, else ``None``: then no value can be a tensor."""
    return sys.modules.get("torch")


def _is_tensor(x: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def describe(x: Any, *, values: bool = True) -> str:
    """Describe an array-like for an error message: its type, shape, dtype and value range.

    Parameters
    ----------
    x
        A torch tensor, NumPy array or any other object.
    values
        Include the minimum and maximum (skipped for empty arrays).

    Returns
    -------
    str
        For example ``"a tensor of shape (2, 3), dtype torch.float32, values in [-1.5, 2]"``.

    Examples
    --------
    >>> describe(np.zeros((2, 3), dtype=np.uint8))
    'an array of shape (2, 3), dtype uint8, values in [0, 0]'
    """
    if _is_tensor(x):
        kind, dtype = "a tensor", str(x.dtype)
    elif isinstance(x, np.ndarray):
        kind, dtype = "an array", str(x.dtype)
    else:
        return f"{type(x).__name__} {x!r}"[:200]
    text = f"{kind} of shape {tuple(x.shape)}, dtype {dtype}"
    n_elements = x.size if isinstance(x, np.ndarray) else x.numel()
    if values and n_elements:
        lo, hi = _value_range(x)
        text += f", values in [{lo:.6g}, {hi:.6g}]"
    return text


def _value_range(x: torch.Tensor | np.ndarray) -> tuple[float, float]:
    if _is_tensor(x):
        torch = _torch()
        flat = x.detach()
        if flat.dtype == torch.bool:
            flat = flat.to(torch.uint8)
        if flat.is_complex():
            flat = flat.abs()
        return float(flat.min()), float(flat.max())
    arr = x.astype(np.uint8) if x.dtype == bool else x
    return float(np.min(arr)), float(np.max(arr))


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``; raise :class:`SegDiceError` otherwise."""
    choices = tuple(choices)
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise SegDiceError(f"{name}: got {value!r}; expected one of {allowed}")
    return value


def check_mode(mode: Any) -> str:
    """Validate a ``mode`` argument ("binary", "multiclass" or "multilabel")."""
    return check_choice("mode", mode, MODES)


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_min: bool = False,
    strict_max: bool = False,
    integer: bool = False,
) -> float:
    """Validate a real scalar argument and its bounds.

    Parameters
    ----------
    name
        The argument's name, as the user wrote it.
    value
        The value received.
    minimum, maximum
        Optional bounds; ``strict_min``/``strict_max`` make them exclusive.
    integer
        Require an integral value (``bool`` is rejected).

    Returns
    -------
    float or int
        The value, unchanged.

    Raises
    ------
    SegDiceError
        If the value is not a finite real number within the bounds.

    Examples
    --------
    >>> check_number("smooth", 1e-5, minimum=0)
    1e-05
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        kind = "an integer" if integer else "a real number"
        raise SegDiceError(f"{name}: got {value!r} ({type(value).__name__}); expected {kind}")
    if integer and not float(value).is_integer():
        raise SegDiceError(f"{name}: got {value!r}; expected an integer")
    if not math.isfinite(float(value)):
        raise SegDiceError(f"{name}: got {value!r}; expected a finite number")
    if minimum is not None and (value <= minimum if strict_min else value < minimum):
        op = ">" if strict_min else ">="
        raise SegDiceError(f"{name}: got {value!r}; expected a value {op} {minimum}")
    if maximum is not None and (value >= maximum if strict_max else value > maximum):
        op = "<" if strict_max else "<="
        raise SegDiceError(f"{name}: got {value!r}; expected a value {op} {maximum}")
    return value


def check_ignore_index(ignore_index: Any) -> int | None:
    """Validate an ``ignore_index`` argument: ``None`` or an integer label value (e.g. 255 or -100).

    Examples
    --------
    >>> check_ignore_index(255), check_ignore_index(None)
    (255, None)
    """
    if ignore_index is None:
        return None
    check_number("ignore_index", ignore_index, integer=True)
    return int(ignore_index)


def check_finite(name: str, x: torch.Tensor | np.ndarray) -> None:
    """Raise if a floating-point array holds NaN or infinity."""
    if _is_tensor(x):
        torch = _torch()
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            n_bad = int((~torch.isfinite(x)).sum())
            raise SegDiceError(
                f"{name}: got {describe(x, values=False)} with {n_bad} NaN/inf value(s); expected finite values"
            )
    elif np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        n_bad = int((~np.isfinite(x)).sum())
        raise SegDiceError(
            f"{name}: got {describe(x, values=False)} with {n_bad} NaN/inf value(s); expected finite values"
        )


def check_has_data(name: str, x: Any) -> None:
    """Raise for a tensor on the meta device: it has a shape but no values to check, count or copy."""
    if _is_tensor(x) and x.device.type == "meta":
        raise SegDiceError(
            f"{name}: got {describe(x, values=False)} on the meta device; expected a tensor with data "
            "(a meta tensor has a shape but no values to score)"
        )


def check_empty_value(empty_value: Any) -> float:
    """Validate ``empty_value``, the score of a class absent from both masks: NaN or a value in [0, 1].

    Examples
    --------
    >>> check_empty_value(1)
    1.0
    """
    if isinstance(empty_value, bool) or not isinstance(empty_value, (int, float, np.integer, np.floating)):
        raise SegDiceError(
            f"empty_value: got {empty_value!r} ({type(empty_value).__name__}); expected float('nan'), 0 or 1"
        )
    value = float(empty_value)
    if not math.isnan(value) and not 0.0 <= value <= 1.0:
        raise SegDiceError(
            f"empty_value: got {empty_value!r}; expected NaN or a value in [0, 1] (usually 0 or 1)"
        )
    return value


def check_include_background(include_background: Any, mode: str) -> None:
    """Raise if ``include_background=False`` is asked for outside ``mode="multiclass"`` (it means nothing there).

    Examples
    --------
    >>> check_include_background(False, "multiclass")
    """
    if not include_background and mode != "multiclass":
        raise SegDiceError(
            f"include_background: got False in mode {mode!r}; expected True (only 'multiclass' has a background "
            "channel to drop; in binary/multilabel every channel is a foreground)"
        )


def check_distributed(distributed: Any, per_image: Any) -> None:
    """Raise if ``distributed=True`` comes with ``per_image=True``: only batch statistics are pooled over ranks.

    Examples
    --------
    >>> check_distributed(True, False)
    """
    if distributed and per_image:
        raise SegDiceError(
            "distributed: got True with per_image=True; expected per_image=False (pooling statistics over ranks "
            "is the global batch Dice; per-image scores need no communication)"
        )


def check_spacing(
    name: str, spacing: Any, ndim: int, *, where: str | None = None, shape: tuple[int, ...] | None = None
) -> tuple[float, ...]:
    """Validate a voxel spacing: one finite value > 0 per array axis, in array axis order.

    Parameters
    ----------
    name
        The argument's name, as the user wrote it.
    spacing
        ``None`` (1 per axis), a number (the same for every axis), or a sequence, array or tensor with one
        value per axis.
    ndim
        The number of array axes.
    where
        What the spacing belongs to (e.g. a file path), put in front of every message.
    shape
        The array's shape, named in the message when the number of values is wrong.

    Returns
    -------
    tuple of float
        One value per axis.

    Raises
    ------
    SegDiceError
        If the values are not numbers, their count is not ``ndim``, or one is not finite and > 0.

    Examples
    --------
    >>> check_spacing("spacing", [2, 0.5], 2)
    (2.0, 0.5)
    >>> check_spacing("spacing", 0.8, 3)
    (0.8, 0.8, 0.8)
    """
    prefix = f"{where}: " if where is not None else ""
    if spacing is None:
        return (1.0,) * ndim
    if _is_tensor(spacing):
        spacing = spacing.detach().cpu().numpy()
    if isinstance(spacing, (int, float, np.integer, np.floating)) and not isinstance(spacing, bool):
        values = [spacing] * ndim
    else:
        try:
            values = list(np.asarray(spacing, dtype=np.float64).reshape(-1))
        except (TypeError, ValueError):
            raise SegDiceError(
                f"{prefix}{name}: got {spacing!r}; expected {ndim} positive numbers in array axis order"
            ) from None
        if len(values) != ndim:
            what = (
                f"an array of shape {tuple(shape)}"
                if shape is not None
                else f"masks with {ndim} dimension(s)"
            )
            raise SegDiceError(
                f"{prefix}{name}: got {len(values)} value(s) {tuple(float(v) for v in values)} for {what}; "
                f"expected one per axis ({ndim} positive numbers in array axis order)"
            )
    for v in values:
        if not (math.isfinite(float(v)) and float(v) > 0):
            raise SegDiceError(
                f"{prefix}{name}: got {tuple(float(v) for v in values)}; expected finite values > 0 "
                "(voxel size per array axis)"
            )
    return tuple(float(v) for v in values)
