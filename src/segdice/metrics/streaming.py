"""Streaming overlap metrics: ``update`` per batch, ``compute`` once, summed over distributed ranks.

The state is a handful of sums, so memory does not grow with the number of images:

- the pooled counts ``tp, fp, fn, tn`` per class (``[4, C]`` int64): the *global* scores;
- per metric and class, the sum of the per-image scores, how many were defined (``n``) and how many
  were NaN (``n_nan``): the NaN-aware *per-image mean*;
- the same three sums for the per-image macro / micro / weighted averages.

Every one of them is a sum, so combining ranks (or shards of a dataset) is one ``all_reduce(SUM)``;
the result equals what one process would compute on all the data, whatever the batch sizes.
Per-case values are kept only when asked for (``keep_per_case=True``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from segdice._checks import (
    SegDiceError,
    check_choice,
    check_empty_value,
    check_ignore_index,
    check_mode,
    check_number,
)
from segdice.metrics._formulas import METRICS, class_average, ratio_from_counts
from segdice.metrics.overlap import score_from_counts
from segdice.stats import confusion

__all__ = ["SegmentationMetrics"]

_AVERAGES = ("macro", "micro", "weighted")


class SegmentationMetrics:
    """Accumulate overlap metrics over batches; per class, per-image means and pooled scores.

    Parameters
    ----------
    num_classes
        Number of classes ``C`` of the label maps (multiclass) or channels (multilabel); 1 for binary.
    metrics
        Names among ``"dice"``, ``"iou"``, ``"precision"``, ``"recall"``, ``"specificity"``,
        ``"accuracy"``, ``"fbeta"``.
    mode
        ``"binary"``, ``"multiclass"`` or ``"multilabel"``, as for :func:`~segdice.metrics.dice_score`.
    include_background
        Multiclass only: ``False`` leaves class 0 out of every result.
    ignore_index
        Target value whose voxels are excluded from every count.
    empty_value
        Score of an (image, class) absent from both target and prediction: NaN (default; then left
        out of the means and counted in ``n_nan``), 0 or 1.
    class_names
        Names of the reported classes (after ``include_background``), used as keys of the result;
        default the class indices as strings.
    beta
        The F-beta weight, for ``"fbeta"``.
    keep_per_case
        Also keep every image's counts (memory grows with the number of images) and return the
        per-case scores from :meth:`compute`.
    sync_on_compute
        When ``torch.distributed`` is initialised with more than one process, :meth:`compute` sums the
        states of all ranks first (every rank must call it). The local state is left unchanged.
    process_group
        The ``torch.distributed`` group to reduce over (default: the world).

    Raises
    ------
    SegDiceError
        For an invalid option.

    Examples
    --------
    >>> import torch
    >>> m = SegmentationMetrics(3, metrics=("dice",), class_names=("bg", "liver", "tumour"))
    >>> m.update(torch.tensor([[0, 1, 1, 2]]), torch.tensor([[0, 1, 2, 2]]))
    >>> m.update(torch.tensor([[0, 0, 0, 0]]), torch.tensor([[0, 0, 0, 0]]))
    >>> result = m.compute()
    >>> result["dice"]["per_class"]["tumour"]
    {'mean': 0.6666666666666666, 'n': 1, 'n_nan': 1, 'global': 0.6666666666666666}
    >>> result["n_images"]
    2
    >>> m.reset()
    """

    def __init__(
        self,
        num_classes: int,
        metrics: Sequence[str] = ("dice", "iou"),
        *,
        mode: str = "multiclass",
        include_background: bool = True,
        ignore_index: int | None = None,
        empty_value: float = float("nan"),
        class_names: Sequence[str] | None = None,
        beta: float = 1.0,
        keep_per_case: bool = False,
        sync_on_compute: bool = True,
        process_group: Any = None,
    ) -> None:
        self.mode = check_mode(mode)
        check_number("num_classes", num_classes, minimum=1, integer=True)
        self.num_classes = int(num_classes)
        if self.mode == "binary" and self.num_classes != 1:
            raise SegDiceError(f"num_classes: got {num_classes!r}; mode='binary' has one class (use 1)")
        if isinstance(metrics, str):
            metrics = (metrics,)
        if not metrics:
            raise SegDiceError("metrics: got an empty sequence; expected at least one metric name")
        for name in metrics:
            check_choice("metrics", name, METRICS)
        self.metrics = tuple(dict.fromkeys(metrics))
        check_choice("include_background", include_background, (True, False))
        if self.mode != "multiclass" and not include_background:
            raise SegDiceError(
                f"include_background=False: only meaningful in mode='multiclass'; got mode={mode!r}"
            )
        self.include_background = include_background
        self.ignore_index = check_ignore_index(ignore_index)
        self.empty_value = check_empty_value(empty_value)
        check_number("beta", beta, minimum=0)
        self.beta = float(beta)
        first = 0 if include_background else 1
        n_out = self.num_classes - first
        if n_out < 1:
            raise SegDiceError(
                f"num_classes: got {num_classes}; with include_background=False at least 2 classes are needed"
            )
        if class_names is None:
            class_names = [str(c) for c in range(first, self.num_classes)]
        elif isinstance(class_names, str) or len(class_names) != n_out:
            raise SegDiceError(
                f"class_names: got {class_names!r}; expected {n_out} names (one per reported class)"
            )
        names = [str(n) for n in class_names]
        if len(set(names)) != len(names):
            raise SegDiceError(f"class_names: got {names!r}; expected distinct names")
        self.class_names = tuple(names)
        self.keep_per_case = bool(keep_per_case)
        self.sync_on_compute = bool(sync_on_compute)
        self.process_group = process_group
        self.reset()

    # --- state -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every update (start a new epoch)."""
        n_metrics, n_classes = len(self.metrics), len(self.class_names)
        device = getattr(self, "_device", torch.device("cpu"))
        # int64 state: pooled counts, per-class n / n_nan, per-average n / n_nan, image count
        self._counts = torch.zeros(4, n_classes, dtype=torch.int64, device=device)
        self._n = torch.zeros(2, n_metrics, n_classes, dtype=torch.int64, device=device)
        self._agg_n = torch.zeros(2, n_metrics, len(_AVERAGES), dtype=torch.int64, device=device)
        self._n_images = torch.zeros(1, dtype=torch.int64, device=device)
        # float64 state: sums of the defined per-image scores
        self._sum = torch.zeros(n_metrics, n_classes, dtype=torch.float64, device=device)
        self._agg_sum = torch.zeros(n_metrics, len(_AVERAGES), dtype=torch.float64, device=device)
        self._cases: list[torch.Tensor] = []
        self._synced = False

    def _to(self, device: torch.device) -> None:
        self._device = device
        for name in ("_counts", "_n", "_agg_n", "_n_images", "_sum", "_agg_sum"):
            setattr(self, name, getattr(self, name).to(device))

    def _pack(self) -> tuple[torch.Tensor, torch.Tensor]:
        ints = torch.cat(
            [self._counts.reshape(-1), self._n.reshape(-1), self._agg_n.reshape(-1), self._n_images]
        )
        floats = torch.cat([self._sum.reshape(-1), self._agg_sum.reshape(-1)])
        return ints, floats

    def _unpack(self, ints: torch.Tensor, floats: torch.Tensor) -> None:
        sizes = [self._counts.numel(), self._n.numel(), self._agg_n.numel(), 1]
        counts, n, agg_n, n_images = torch.split(ints, sizes)
        self._counts = counts.reshape(self._counts.shape).clone()
        self._n = n.reshape(self._n.shape).clone()
        self._agg_n = agg_n.reshape(self._agg_n.shape).clone()
        self._n_images = n_images.clone()
        s, agg_s = torch.split(floats, [self._sum.numel(), self._agg_sum.numel()])
        self._sum = s.reshape(self._sum.shape).clone()
        self._agg_sum = agg_s.reshape(self._agg_sum.shape).clone()

    # --- public API ----------------------------------------------------------------------------

    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Add one batch: ``pred`` and ``target`` as for :func:`~segdice.metrics.dice_score`.

        Parameters
        ----------
        pred
            Label map ``[B, *spatial]``, masks, or scores ``[B, C, *spatial]``.
        target
            Label map ``[B, *spatial]`` (multiclass) or masks shaped like ``pred``.

        Raises
        ------
        SegDiceError
            For invalid inputs, or after :meth:`sync` (the state is then global; call :meth:`reset`).

        Examples
        --------
        >>> import torch
        >>> m = SegmentationMetrics(2, metrics=("iou",))
        >>> m.update(torch.tensor([[0, 1, 1, 1]]), torch.tensor([[0, 0, 1, 1]]))
        >>> m.compute()["iou"]["per_class"]["1"]["global"]
        0.6666666666666666
        """
        if self._synced:
            raise SegDiceError(
                "update: this SegmentationMetrics was synced across ranks; call reset() before new updates"
            )
        tp, fp, fn, tn = confusion(
            pred,
            target,
            self.num_classes,
            mode=self.mode,
            ignore_index=self.ignore_index,
            per_image=True,
            include_background=self.include_background,
        )
        if tp.device != self._counts.device:
            self._to(tp.device)
        self._counts += torch.stack([tp.sum(0), fp.sum(0), fn.sum(0), tn.sum(0)])
        self._n_images += tp.shape[0]
        for i, name in enumerate(self.metrics):
            per_class = ratio_from_counts(name, tp, fp, fn, tn, self.empty_value, self.beta)
            self._accumulate(per_class, self._sum[i], self._n[:, i])
            per_image = torch.stack(
                [class_average(name, tp, fp, fn, tn, self.empty_value, self.beta, avg) for avg in _AVERAGES],
                1,
            )
            self._accumulate(per_image, self._agg_sum[i], self._agg_n[:, i])
        if self.keep_per_case:
            self._cases.append(torch.stack([tp, fp, fn, tn], 1).cpu())

    @staticmethod
    def _accumulate(values: torch.Tensor, total: torch.Tensor, counts: torch.Tensor) -> None:
        nan = torch.isnan(values)
        total += torch.where(nan, torch.zeros_like(values), values).sum(0)
        counts[0] += (~nan).sum(0)
        counts[1] += nan.sum(0)

    def sync(self) -> None:
        """Sum the state over all ``torch.distributed`` ranks, in place (a collective call).

        Afterwards every rank holds the global state; further :meth:`update` calls raise until
        :meth:`reset`. :meth:`compute` does the same reduction on a copy by itself, so calling
        ``sync`` is only needed to read the global state directly. A no-op without distributed.
        """
        if self._synced or not _distributed():
            return
        ints, floats = self._reduced()
        self._unpack(ints, floats)
        if self.keep_per_case:
            self._cases = self._gathered_cases()
        self._synced = True

    def _reduced(self) -> tuple[torch.Tensor, torch.Tensor]:
        import torch.distributed as dist

        ints, floats = self._pack()
        device = ints.device
        if dist.get_backend(self.process_group) == "nccl" and device.type != "cuda":
            device = torch.device("cuda", torch.cuda.current_device())
        ints, floats = ints.to(device), floats.to(device)
        dist.all_reduce(ints, group=self.process_group)
        dist.all_reduce(floats, group=self.process_group)
        return ints.to(self._counts.device), floats.to(self._counts.device)

    def _gathered_cases(self) -> list[torch.Tensor]:
        import torch.distributed as dist

        local = torch.cat(self._cases) if self._cases else None
        gathered: list[Any] = [None] * dist.get_world_size(self.process_group)
        dist.all_gather_object(gathered, local, group=self.process_group)
        return [g for g in gathered if g is not None]

    def compute(self) -> dict[str, Any]:
        """The metrics of everything seen since the last :meth:`reset`.

        Returns
        -------
        dict
            ``result[metric]`` holds ``"per_class"``: ``{class name: {"mean", "n", "n_nan",
            "global"}}`` and, for each of ``"macro"``, ``"micro"``, ``"weighted"``, the same four keys.
            ``"mean"`` is the NaN-aware mean of the per-image scores over the ``n`` images where it is
            defined (``n_nan`` more were NaN); ``"global"`` is the score of the counts pooled over every
            image. ``result["n_images"]`` is the number of images; with ``keep_per_case=True``,
            ``result["per_case"][metric]`` is a ``[n_images, C]`` tensor of per-image scores.
            ``per_class[name]["mean"]`` equals ``dice_score(all, per_image=True)[:, c]`` averaged over
            images, and ``"global"`` equals ``dice_score(all, per_image=False)[c]``.

        Examples
        --------
        >>> import torch
        >>> m = SegmentationMetrics(2, metrics=("dice",), include_background=False)
        >>> m.update(torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]]), torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]]))
        >>> macro = m.compute()["dice"]["macro"]
        >>> macro["mean"], macro["n"], macro["n_nan"]
        (0.6666666666666666, 1, 1)
        """
        state = self
        if self.sync_on_compute and not self._synced and _distributed():
            state = self._copy()
            state.sync()
        return state._result()

    def _copy(self) -> SegmentationMetrics:
        other = object.__new__(SegmentationMetrics)
        other.__dict__.update(self.__dict__)
        other._cases = list(self._cases)
        return other

    def _result(self) -> dict[str, Any]:
        counts = self._counts.cpu()
        tp, fp, fn, tn = counts
        n, n_nan = self._n.cpu()
        agg_n, agg_n_nan = self._agg_n.cpu()
        sums, agg_sums = self._sum.cpu(), self._agg_sum.cpu()
        result: dict[str, Any] = {}
        for i, name in enumerate(self.metrics):
            pooled = ratio_from_counts(name, tp, fp, fn, tn, self.empty_value, self.beta)
            entry: dict[str, Any] = {"per_class": {}}
            for c, cname in enumerate(self.class_names):
                entry["per_class"][cname] = {
                    "mean": _mean(float(sums[i, c]), int(n[i, c])),
                    "n": int(n[i, c]),
                    "n_nan": int(n_nan[i, c]),
                    "global": float(pooled[c]),
                }
            for a, avg in enumerate(_AVERAGES):
                entry[avg] = {
                    "mean": _mean(float(agg_sums[i, a]), int(agg_n[i, a])),
                    "n": int(agg_n[i, a]),
                    "n_nan": int(agg_n_nan[i, a]),
                    "global": float(
                        score_from_counts(
                            name, tp, fp, fn, tn, empty_value=self.empty_value, average=avg, beta=self.beta
                        )
                    ),
                }
            result[name] = entry
        result["n_images"] = int(self._n_images.item())
        if self.keep_per_case:
            cases = (
                torch.cat(self._cases)
                if self._cases
                else torch.zeros(0, 4, len(self.class_names), dtype=torch.int64)
            )
            result["per_case"] = {
                name: ratio_from_counts(
                    name, cases[:, 0], cases[:, 1], cases[:, 2], cases[:, 3], self.empty_value, self.beta
                )
                for name in self.metrics
            }
        return result

    def __repr__(self) -> str:
        return (
            f"SegmentationMetrics(num_classes={self.num_classes}, metrics={self.metrics!r}, mode={self.mode!r}, "
            f"images={int(self._n_images.item())})"
        )


def _mean(total: float, count: int) -> float:
    return total / count if count else math.nan


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
