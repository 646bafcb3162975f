"""Input validation shared by every part of segdice.

Every check raises :class:`SegDiceError` with a message that names the argument, says what was
received (shape, dtype, value range) and what is expected, so a user never has to decode an
``IndexError`` thrown from deep inside torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "MODES",
    "REDUCTIONS",
    "SegDiceError",
    "check_choice",
    "check_finite",
    "check_mode",
    "check_ndim",
    "check_number",
    "check_same_shape",
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
    if isinstance(x, torch.Tensor):
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
    if isinstance(x, torch.Tensor):
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


def check_ndim(
    name: str, x: torch.Tensor | np.ndarray, allowed: Sequence[int] | range, expected: str
) -> None:
    """Raise if ``x.ndim`` is not in ``allowed``; ``expected`` says the layout, e.g. ``"[B, C, *spatial]"``."""
    if x.ndim not in allowed:
        raise SegDiceError(f"{name}: got {describe(x, values=False)}; expected {expected}")


def check_same_shape(
    name_a: str, a: torch.Tensor | np.ndarray, name_b: str, b: torch.Tensor | np.ndarray
) -> None:
    """Raise if two arrays differ in shape, naming both."""
    if tuple(a.shape) != tuple(b.shape):
        raise SegDiceError(
            f"{name_a} and {name_b} must have the same shape: got {name_a} {tuple(a.shape)} "
            f"and {name_b} {tuple(b.shape)}"
        )


def check_finite(name: str, x: torch.Tensor | np.ndarray) -> None:
    """Raise if a floating-point array holds NaN or infinity."""
    if isinstance(x, torch.Tensor):
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
