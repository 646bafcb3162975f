"""``SegDiceMetric``: a ``torchmetrics.Metric`` over the sums that :class:`segdice.SegmentationMetrics` keeps.

Everything a torchmetrics user relies on then works: ``MetricCollection``, Lightning's
``self.log(name, metric)``, ``.to(device)``, ``reset()`` and the synchronisation across
``torch.distributed`` ranks. The state is the O(C) table of sums of ``SegmentationMetrics``, each
declared with ``add_state(..., dist_reduce_fx="sum")``: nothing grows with the number of images, and
the scores come from the same counting pass and formulas as every other segdice metric.

This module needs torchmetrics (``pip install torchmetrics``); segdice itself does not.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

try:
    from torchmetrics import Metric
except ImportError as exc:  # segdice never requires torchmetrics: say what to install, and why
    raise ImportError(
        "segdice.integrations.torchmetrics: could not import torchmetrics "
        f"({type(exc).__name__}: {exc}); expected it installed (pip install torchmetrics). segdice itself "
        "does not need it: segdice.SegmentationMetrics gives the same metrics without torchmetrics."
    ) from exc

import numpy as np
import torch

from segdice._checks import SegDiceError, check_choice
from segdice.metrics import SegmentationMetrics
from segdice.metrics.overlap import AVERAGES

__all__ = ["SegDiceMetric"]


class SegDiceMetric(Metric):
    """One overlap metric (Dice by default) as a ``torchmetrics.Metric``, with O(C) state.

    ``compute()`` returns the value that :func:`segdice.metrics.dice_score` (or the chosen metric)
    gives on every image seen since the last ``reset()``, with the same ``per_image`` and ``average``:
    per image first (the NaN-aware mean over images, torchmetrics' ``DiceScore`` default) or pooled
    over the images.

    Parameters
    ----------
    num_classes
        Number of classes ``C`` (multiclass), channels (multilabel), or 1 (binary).
    metric
        One of ``"dice"``, ``"iou"``, ``"precision"``, ``"recall"``, ``"specificity"``, ``"accuracy"``,
        ``"fbeta"``.
    mode
        ``"binary"``, ``"multiclass"`` or ``"multilabel"``; inputs as for
        :func:`~segdice.metrics.dice_score` (label maps, masks, or scores ``[B, C, *spatial]``).
    average
        ``"macro"`` (default), ``"micro"``, ``"weighted"``: a scalar, what ``self.log`` takes;
        ``"none"``: one value per reported class, ``[C]``.
    per_image
        ``True`` (default): average over images of the per-image values; ``False``: the counts pooled
        over all images.
    include_background, ignore_index, empty_value, beta
        As for :class:`~segdice.SegmentationMetrics`.
    **kwargs
        Passed on to ``torchmetrics.Metric`` (``dist_sync_on_step``, ``process_group``,
        ``sync_on_compute``, ...).

    Raises
    ------
    SegDiceError
        For an invalid option.

    Notes
    -----
    The state is not saved with a model's ``state_dict`` by default, like every torchmetrics
    metric; ``metric.persistent(True)`` puts it there, so that a checkpoint resumes it.

    Examples
    --------
    >>> import torch
    >>> from segdice.integrations.torchmetrics import SegDiceMetric
    >>> dice = SegDiceMetric(3)
    >>> float(dice(torch.tensor([[0, 1, 1, 2]]), torch.tensor([[0, 1, 2, 2]])))  # this batch
    0.7777777777777777
    >>> float(dice(torch.tensor([[0, 0, 0, 0]]), torch.tensor([[0, 0, 0, 0]])))
    1.0
    >>> float(dice.compute())  # both images: (7/9 + 1) / 2
    0.8888888888888888
    """

    full_state_update = False  # forward counts each batch once and adds its sums to the state
    is_differentiable = False
    higher_is_better = True
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        num_classes: int,
        metric: str = "dice",
        *,
        mode: str = "multiclass",
        average: str = "macro",
        per_image: bool = True,
        include_background: bool = True,
        ignore_index: int | None = None,
        empty_value: float = float("nan"),
        beta: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(metric, str):
            raise SegDiceError(f"metric: got {metric!r}; expected one metric name such as 'dice'")
        if metric == "gds":  # one value of all classes: no per-class values for `average` to reduce
            raise SegDiceError(
                "metric: got 'gds'; expected a per-class metric (the generalized Dice score has no classes "
                "to average: use SegmentationMetrics(metrics=('gds',)))"
            )
        self.average = check_choice("average", average, AVERAGES)
        self.per_image = check_choice("per_image", per_image, (True, False))
        self.metric = metric
        # The counting and the formulas: one SegmentationMetrics, used batch by batch and never synced
        # itself (torchmetrics syncs the states below before compute).
        self._scores = SegmentationMetrics(
            num_classes,
            metrics=(metric,),
            mode=mode,
            include_background=include_background,
            ignore_index=ignore_index,
            empty_value=empty_value,
            beta=beta,
            sync_on_compute=False,
        )
        template = self._scores.state_dict()
        self._state_names = tuple(template["sums"])
        for name, zeros in template["sums"].items():
            self.add_state(name, default=zeros, dist_reduce_fx="sum")
        # MetricCollection merges metrics whose states are equal after the first batch into one compute
        # group. Two SegDiceMetrics with other settings (dice and iou, another ignore_index, ...) can have
        # equal sums on one batch by chance; a state that encodes the settings keeps them apart. It also
        # lets compute() refuse a state loaded from a metric with other settings.
        settings = sorted((k, v) for k, v in template["config"].items() if k != "class_names")
        self._settings_code = zlib.crc32(repr(settings).encode())
        self.add_state("settings", default=torch.tensor([self._settings_code]), dist_reduce_fx="max")

    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Add one batch: ``pred`` and ``target`` as for :func:`~segdice.metrics.dice_score`.

        Raises
        ------
        SegDiceError
            For invalid inputs (nothing is added then).
        """
        self._scores.reset()
        self._scores.update(pred, target)
        for name, value in self._scores.state_dict()["sums"].items():
            state = getattr(self, name)
            state += value.to(state.device)

    def compute(self) -> torch.Tensor:
        """The metric over every batch since the last ``reset()``: a 0-dim tensor, or ``[C]`` for ``average="none"``.

        NaN when nothing defines it (no image, or every (image, class) empty with ``empty_value=nan``).
        torchmetrics returns a one-element result as a 0-dim tensor (binary ``average="none"``).

        Raises
        ------
        SegDiceError
            If the state was loaded from a ``SegDiceMetric`` with other settings.
        """
        if int(self.settings.max()) != self._settings_code:
            raise SegDiceError(
                f"SegDiceMetric state: got the state of a metric with other settings (code "
                f"{int(self.settings.max())}); expected that of {self._settings_repr()} (code {self._settings_code})"
            )
        state = self._scores.state_dict()
        state["sums"] = {name: getattr(self, name) for name in self._state_names}
        self._scores.load_state_dict(state)
        result = self._scores.compute()[self.metric]
        statistic = "mean" if self.per_image else "global"
        if self.average == "none":
            values: Any = [result["per_class"][name][statistic] for name in self._scores.class_names]
        else:
            values = result[self.average][statistic]
        dtype = torch.float32 if self.device.type == "mps" else torch.float64  # MPS has no float64
        return torch.tensor(values, dtype=dtype, device=self.device)

    def _settings_repr(self) -> str:
        s = self._scores
        empty = "nan" if math.isnan(s.empty_value) else s.empty_value
        return (
            f"num_classes={s.num_classes}, metric={self.metric!r}, mode={s.mode!r}, "
            f"include_background={s.include_background}, ignore_index={s.ignore_index}, "
            f"empty_value={empty}, beta={s.beta}"
        )

    def extra_repr(self) -> str:
        """The settings, shown by ``repr(metric)``."""
        return f"{self._settings_repr()}, average={self.average!r}, per_image={self.per_image}"
