"""Where and how the demo runs: the device, and reproducible torch settings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from segdice._checks import SegDiceError

__all__ = ["reproducible", "resolve_device"]


def resolve_device(device: str | torch.device) -> torch.device:
    """The ``torch.device`` for ``device`` ("auto" picks CUDA when present); SegDiceError if unavailable."""
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise SegDiceError(
            f"device: got {device!r}; expected 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"
        ) from exc
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available() and (dev.index is None or dev.index < torch.cuda.device_count()),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
    }
    if not available.get(dev.type, False):
        raise SegDiceError(f"device: got {device!r}, which is not available here; expected 'cpu' or 'auto'")
    return dev


@contextlib.contextmanager
def reproducible(threads: int, device: torch.device) -> Iterator[None]:
    """Fixed thread count, deterministic kernels and a private RNG; the caller's settings are restored."""
    saved_threads = torch.get_num_threads()
    saved_det = torch.are_deterministic_algorithms_enabled()
    saved_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    saved_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    cuda = [device.index or 0] if device.type == "cuda" else []
    try:
        torch.set_num_threads(threads)
        # warn_only on GPUs: a few CUDA kernels have no deterministic version; on the CPU all ours do.
        torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        torch.set_num_threads(saved_threads)
        torch.use_deterministic_algorithms(saved_det, warn_only=saved_warn)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved_cudnn
