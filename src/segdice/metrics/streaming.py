"""Streaming overlap metrics: ``update`` per batch, ``compute`` once, summed over distributed ranks.

The state is a handful of sums, so memory does not grow with the number of images:

- the pooled counts ``tp, fp, fn, tn`` per class (``[4, C]`` int64): the *global* scores;
- per metric and class, the sum of the per-image scores, how many were defined (``n``) and how many
  were NaN (``n_nan``): the NaN-aware *per-image mean*;
- the same three sums for the per-image macro / micro / weighted averages;
- with ``"gds"`` among the metrics, the same three sums of the per-image generalized Dice score (one value
  per image over every reported class; its pooled value comes from the pooled counts).

Every one of them is a sum, so combining ranks (or shards of a dataset) is one ``all_reduce(SUM)``;
the result equals what one process would compute on all the data, whatever the batch sizes.
Per-case values are kept only when asked for (``keep_per_case=True``).

The same object serves training loops: calling it returns the batch's values while accumulating them,
``to`` moves the state, ``state_dict`` / ``load_state_dict`` checkpoint it (the sums are the state), and
``compute(flat=True)`` gives the flat dict that Lightning's ``log_dict`` takes. The state is declared
once, in ``_STATE``, and everything that touches it walks that table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from segdice.metrics._formulas import (
    AVERAGES,
    GDS_WEIGHTS,
    METRICS,
    class_average,
    generalized_dice_from_counts,
    ratio_from_counts,
)
from segdice.stats import confusion

__all__ = ["STATE_VERSION", "SegmentationMetrics"]

# The averages over classes that the state keeps per image ("none" is the per-class values themselves).
_AVERAGES = tuple(a for a in AVERAGES if a != "none")

#: Layout version of :meth:`SegmentationMetrics.state_dict`, raised whenever that layout changes
#: (2: the generalized Dice sums ``gds_n``, ``gds_sum`` and the ``gds_weight`` setting).
STATE_VERSION = 2

# The metric of all classes at once: a function of the per-class counts of an image (or of the pool), so
# the state holds it as one more sum; it has no per-class values and no averages over classes.
_GDS = "gds"

# The state, declared once: (name, shape from (number of metrics, number of classes), dtype). Every entry
# is a sum over images, so reset, device moves, state_dict and the distributed all_reduce all walk this
# table, and a new entry needs no code anywhere else.
_STATE: tuple[tuple[str, Callable[[int, int], tuple[int, ...]], torch.dtype], ...] = (
    ("counts", lambda m, c: (4, c), torch.int64),  # tp, fp, fn, tn pooled over images: the global scores
    ("n", lambda m, c: (2, m, c), torch.int64),  # per metric and class: images with a defined / NaN score
    ("agg_n", lambda m, c: (2, m, len(_AVERAGES)), torch.int64),  # the same for each class average
    ("n_images", lambda m, c: (1,), torch.int64),
    ("sum", lambda m, c: (m, c), torch.float64),  # per metric and class: sum of the defined image scores
    ("agg_sum", lambda m, c: (m, len(_AVERAGES)), torch.float64),  # the same for each class average
    ("gds_n", lambda m, c: (2,), torch.int64),  # images with a defined / NaN generalized Dice score
    ("gds_sum", lambda m, c: (1,), torch.float64),  # the sum of the defined ones
)
# The entries grouped by dtype: one flat tensor, and one all_reduce, per group.
_BY_DTYPE: dict[torch.dtype, tuple[str, ...]] = {
    dtype: tuple(name for name, _, d in _STATE if d == dtype) for _, _, dtype in _STATE
}

# The keys of a state_dict; "config" holds the settings that give the sums their meaning.
_STATE_DICT_KEYS = ("version", "config", "synced", "sums", "cases")


class SegmentationMetrics:
    """Accumulate overlap metrics over batches; per class, per-image means and pooled scores.

    It serves both evaluation scripts (:meth:`update` per batch, :meth:`compute` once) and training
    loops: calling it (:meth:`forward`) returns the batch's values and accumulates them, as a
    torchmetrics metric does; :meth:`to` moves the state, :meth:`state_dict` / :meth:`load_state_dict`
    checkpoint it, and ``compute(flat=True)`` gives a flat ``{"dice/macro": ...}`` dict for
    Lightning's ``self.log_dict``.

    Parameters
    ----------
    num_classes
        Number of classes ``C`` of the label maps (multiclass) or channels (multilabel); 1 for binary.
    metrics
        Names among ``"dice"``, ``"iou"``, ``"precision"``, ``"recall"``, ``"specificity"``,
        ``"accuracy"``, ``"fbeta"``, the confusion family (``segdice.metrics.METRICS``), and ``"gds"``:
        the generalized Dice score of every reported class at once
        (:func:`~segdice.metrics.generalized_dice_score`), which has a per-image mean and a pooled value
        but no per-class values or averages.
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
        Names of the reported classes, used as keys of the result; default the class indices as
        strings. With ``include_background=False`` either the reported classes' names or all
        ``num_classes`` names (the background's first; it is then dropped). ``"macro"``, ``"micro"``,
        ``"weighted"`` and names starting with ``"global/"`` are taken by the flat result's keys.
    beta
        The F-beta weight, for ``"fbeta"``.
    gds_weight
        The class weights of ``"gds"``: ``"square"`` (``1/G²``, default), ``"simple"`` or ``"uniform"``.
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
        gds_weight: str = "square",
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
            check_choice("metrics", name, (*METRICS, _GDS))
        self.metrics = tuple(dict.fromkeys(metrics))
        # the per-class ratios: the state's [M, C] sums hold these, the gds sums the other one
        self._ratios = tuple(name for name in self.metrics if name != _GDS)
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
        self.gds_weight = check_choice("gds_weight", gds_weight, GDS_WEIGHTS)
        if not include_background and self.num_classes < 2:
            raise SegDiceError(
                f"num_classes: got {num_classes}; with include_background=False at least 2 classes are needed"
            )
        self.class_names = self._reported_names(class_names)
        self.keep_per_case = bool(keep_per_case)
        self.sync_on_compute = bool(sync_on_compute)
        self.process_group = process_group
        self._device = torch.device("cpu")
        self.reset()

    def _reported_names(self, class_names: Sequence[str] | None) -> tuple[str, ...]:
        first = 0 if self.include_background else 1
        n_out = self.num_classes - first
        if class_names is None:
            return tuple(str(c) for c in range(first, self.num_classes))
        if isinstance(class_names, str):
            raise SegDiceError(f"class_names: got the string {class_names!r}; expected a sequence of names")
        if not isinstance(class_names, Iterable):
            raise SegDiceError(
                f"class_names: got {class_names!r} ({type(class_names).__name__}); expected a sequence of names"
            )
        names = [str(n) for n in class_names]
        if not self.include_background and len(names) == self.num_classes:
            names = names[1:]  # all names given: the background's is known but not reported
        if len(names) != n_out:
            also = "" if self.include_background else f", or {self.num_classes} with the background's first"
            raise SegDiceError(
                f"class_names: got {len(names)} names {names!r}; expected {n_out} (one per reported class{also})"
            )
        if len(set(names)) != len(names):
            raise SegDiceError(f"class_names: got {names!r}; expected distinct names")
        for name in names:
            if name in _AVERAGES or name.startswith("global/"):
                raise SegDiceError(
                    f"class_names: got {name!r}; expected a name other than 'macro', 'micro', 'weighted' "
                    "or 'global/...' (the flat result's keys for the averages and pooled scores)"
                )
        return tuple(names)

    # --- state -------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        """The device that holds the state (that of the last batch, or the one given to :meth:`to`)."""
        return self._device

    def reset(self) -> None:
        """Forget every update (start a new epoch); the state stays on its device."""
        self._sums = self._zeros(self._device)
        self._cases: list[torch.Tensor] = []
        self._synced = False

    def _zeros(self, device: torch.device) -> dict[str, torch.Tensor]:
        sizes = (len(self._ratios), len(self.class_names))
        return {name: torch.zeros(shape(*sizes), dtype=dtype, device=device) for name, shape, dtype in _STATE}

    def to(self, device: torch.device | str) -> SegmentationMetrics:
        """Move the state to ``device`` and return ``self`` (as ``torch.nn.Module.to`` does).

        :meth:`update` also moves the state to the device of its inputs by itself; per-case counts
        (``keep_per_case=True``) always stay on the CPU.

        Examples
        --------
        >>> m = SegmentationMetrics(2).to("cpu")
        >>> m.device
        device(type='cpu')
        """
        moved = {name: value.to(device) for name, value in self._sums.items()}
        self._sums = moved
        self._device = moved["counts"].device  # "cuda" becomes "cuda:0": compare like with like
        return self

    def _pack(self) -> list[torch.Tensor]:
        """The state as one flat tensor per dtype."""
        return [torch.cat([self._sums[name].reshape(-1) for name in names]) for names in _BY_DTYPE.values()]

    def _unpack(self, flats: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        sums = {}
        for names, flat in zip(_BY_DTYPE.values(), flats, strict=True):
            parts = torch.split(flat, [self._sums[name].numel() for name in names])
            for name, part in zip(names, parts, strict=True):
                sums[name] = part.reshape(self._sums[name].shape).clone()
        return sums

    def _config(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "metrics": list(self.metrics),
            "mode": self.mode,
            "include_background": self.include_background,
            "ignore_index": self.ignore_index,
            "empty_value": self.empty_value,
            "beta": self.beta,
            "gds_weight": self.gds_weight,
            "keep_per_case": self.keep_per_case,
            "class_names": list(self.class_names),
        }

    def state_dict(self) -> dict[str, Any]:
        """The accumulated state as plain data, for ``torch.save`` and checkpoints.

        Returns
        -------
        dict
            ``"version"`` (:data:`STATE_VERSION`), ``"config"`` (the settings that give the sums their
            meaning), ``"synced"``, ``"sums"`` (``{name: tensor}``, copies on the state's device) and
            ``"cases"`` (the per-image counts ``[n_images, 4, C]`` on the CPU with
            ``keep_per_case=True``, else ``None``). Only tensors, numbers, strings and lists: it loads
            with ``torch.load(..., weights_only=True)``.

        Examples
        --------
        >>> import torch
        >>> m = SegmentationMetrics(2, metrics=("dice",))
        >>> m.update(torch.tensor([[0, 1, 1, 1]]), torch.tensor([[0, 0, 1, 1]]))
        >>> resumed = SegmentationMetrics(2, metrics=("dice",))
        >>> resumed.load_state_dict(m.state_dict())
        >>> resumed.compute()["dice"]["per_class"]["1"]["global"]
        0.8
        """
        cases = None
        if self.keep_per_case:
            empty = torch.zeros(0, 4, len(self.class_names), dtype=torch.int64)
            cases = torch.cat(self._cases) if self._cases else empty
        return {
            "version": STATE_VERSION,
            "config": self._config(),
            "synced": self._synced,
            "sums": {name: value.detach().clone() for name, value in self._sums.items()},
            "cases": cases,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`, onto this object's device.

        The sums are replaced (not added): the result is exactly that of the saved object. The state
        must come from a ``SegmentationMetrics`` with the same settings (``class_names`` may differ:
        they only label the results); nothing is changed when a check fails.

        Parameters
        ----------
        state_dict
            The dict :meth:`state_dict` returned (possibly after ``torch.save`` / ``torch.load``, and
            from another device).

        Raises
        ------
        SegDiceError
            If it is not such a dict, has another version, was saved with other settings, or holds
            tensors of the wrong shape or dtype.
        """
        state = _checked_state(state_dict, self._config())
        sums = state["sums"]
        for name, shape, dtype in _STATE:
            want = shape(len(self._ratios), len(self.class_names))
            got = sums[name]
            if not isinstance(got, torch.Tensor) or tuple(got.shape) != want or got.dtype != dtype:
                raise SegDiceError(
                    f"state_dict['sums'][{name!r}]: got {_describe_state(got)}; "
                    f"expected a tensor of shape {want}, dtype {dtype}"
                )
        cases = state["cases"]
        n_images = int(sums["n_images"].item())
        if self.keep_per_case:
            want = (n_images, 4, len(self.class_names))
            if (
                not isinstance(cases, torch.Tensor)
                or tuple(cases.shape) != want
                or cases.dtype != torch.int64
            ):
                raise SegDiceError(
                    f"state_dict['cases']: got {_describe_state(cases)}; expected a tensor of shape {want}, "
                    "dtype torch.int64 (keep_per_case=True)"
                )
        self._sums = {name: sums[name].detach().to(self._device, copy=True) for name, _, _ in _STATE}
        self._cases = [cases.detach().to("cpu", copy=True)] if self.keep_per_case and n_images else []
        self._synced = bool(state["synced"])

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
        self._refuse_after_sync("update")
        self._add(*self._batch(pred, target))

    def forward(
        self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, *, flat: bool = False
    ) -> dict[str, Any]:
        """Add one batch, as :meth:`update` does, and return the metrics of that batch alone.

        One counting pass serves both (torchmetrics' ``forward`` with ``full_state_update=False``).
        Calling the object is the same: ``metrics(pred, target)``.

        Parameters
        ----------
        pred, target
            As for :meth:`update`.
        flat
            Return the flat dict of ``compute(flat=True)`` instead of the nested one.

        Returns
        -------
        dict
            What :meth:`compute` would return after a :meth:`reset` and this one batch (never summed
            over ranks: the batch's local values, as torchmetrics logs per step).

        Raises
        ------
        SegDiceError
            As for :meth:`update`.

        Examples
        --------
        >>> import torch
        >>> m = SegmentationMetrics(2, metrics=("dice",))
        >>> m(torch.tensor([[0, 1, 1, 1]]), torch.tensor([[0, 0, 1, 1]]), flat=True)["dice/1"]
        0.8
        >>> m(torch.tensor([[1, 1, 0, 0]]), torch.tensor([[0, 0, 1, 1]]), flat=True)["dice/1"]
        0.0
        >>> m.compute(flat=True)["dice/1"]  # the mean over both images
        0.4
        """
        self._refuse_after_sync("forward")
        sums, cases = self._batch(pred, target)
        self._add(sums, cases)
        return self._result(sums, [] if cases is None else [cases], flat=flat)

    def __call__(
        self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, *, flat: bool = False
    ) -> dict[str, Any]:
        """The same as :meth:`forward`."""
        return self.forward(pred, target, flat=flat)

    def _refuse_after_sync(self, method: str) -> None:
        if self._synced:
            raise SegDiceError(
                f"{method}: this SegmentationMetrics was synced across ranks; call reset() before new updates"
            )

    def _batch(
        self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The state of one batch alone (and its per-image counts when those are kept)."""
        tp, fp, fn, tn = confusion(
            pred,
            target,
            self.num_classes,
            mode=self.mode,
            ignore_index=self.ignore_index,
            per_image=True,
            include_background=self.include_background,
        )
        b, c = tp.shape
        per_class, per_average = [], []
        for name in self._ratios:
            per_class.append(ratio_from_counts(name, tp, fp, fn, tn, self.empty_value, self.beta))
            averages = [
                class_average(name, tp, fp, fn, tn, self.empty_value, self.beta, a) for a in _AVERAGES
            ]
            per_average.append(torch.stack(averages, 1))
        sums = {
            "counts": torch.stack([tp.sum(0), fp.sum(0), fn.sum(0), tn.sum(0)]),
            "n_images": torch.tensor([b], dtype=torch.int64, device=tp.device),
        }

        def none(k: int) -> torch.Tensor:  # no per-class ratio asked for: metrics=("gds",)
            return torch.zeros(0, b, k, dtype=torch.float64, device=tp.device)

        sums["sum"], sums["n"] = _score_sums(torch.stack(per_class) if per_class else none(c))
        sums["agg_sum"], sums["agg_n"] = _score_sums(
            torch.stack(per_average) if per_average else none(len(_AVERAGES))
        )
        if _GDS in self.metrics:
            gds = generalized_dice_from_counts(tp, fp, fn, self.gds_weight, self.empty_value)  # [B]
            total, defined = _score_sums(gds.reshape(1, b, 1))
            sums["gds_sum"], sums["gds_n"] = total.reshape(1), defined.reshape(2)
        else:
            sums["gds_sum"] = torch.zeros(1, dtype=torch.float64, device=tp.device)
            sums["gds_n"] = torch.zeros(2, dtype=torch.int64, device=tp.device)
        cases = torch.stack([tp, fp, fn, tn], 1).cpu() if self.keep_per_case else None
        return sums, cases

    def _add(self, sums: dict[str, torch.Tensor], cases: torch.Tensor | None) -> None:
        if sums["counts"].device != self._device:
            self.to(sums["counts"].device)
        for name, total in self._sums.items():  # the table's names: a batch missing one is a bug, raised here
            total += sums[name]
        if cases is not None:
            self._cases.append(cases)

    def sync(self) -> None:
        """Sum the state over all ``torch.distributed`` ranks, in place (a collective call).

        Afterwards every rank holds the global state; further :meth:`update` calls raise until
        :meth:`reset`. :meth:`compute` does the same reduction on a copy by itself, so calling
        ``sync`` is only needed to read the global state directly. A no-op without distributed.
        """
        if self._synced or not _distributed():
            return
        self._sums = self._reduced()
        if self.keep_per_case:
            self._cases = self._gathered_cases()
        self._synced = True

    def _reduced(self) -> dict[str, torch.Tensor]:
        import torch.distributed as dist

        device = self._device
        if dist.get_backend(self.process_group) == "nccl" and device.type != "cuda":
            device = torch.device("cuda", torch.cuda.current_device())
        flats = [flat.to(device) for flat in self._pack()]
        for flat in flats:
            dist.all_reduce(flat, group=self.process_group)
        return {name: value.to(self._device) for name, value in self._unpack(flats).items()}

    def _gathered_cases(self) -> list[torch.Tensor]:
        import torch.distributed as dist

        local = torch.cat(self._cases) if self._cases else None
        gathered: list[Any] = [None] * dist.get_world_size(self.process_group)
        dist.all_gather_object(gathered, local, group=self.process_group)
        return [g for g in gathered if g is not None]

    def compute(self, *, flat: bool = False) -> dict[str, Any]:
        """The metrics of everything seen since the last :meth:`reset`.

        Parameters
        ----------
        flat
            ``True``: one level of ``{"<metric>/<key>": float}``, ready for Lightning's
            ``self.log_dict``: for each metric, ``"<metric>/macro"``, ``"/micro"``, ``"/weighted"``
            and ``"/<class name>"`` hold the per-image means (the nested ``"mean"``), and
            ``"<metric>/global/macro"``, ... ``"<metric>/global/<class name>"`` the pooled scores
            (the nested ``"global"``). ``n``, ``n_nan``, ``n_images`` and ``per_case`` are left out.

        Returns
        -------
        dict
            ``result[metric]`` holds ``"per_class"``: ``{class name: {"mean", "n", "n_nan",
            "global"}}`` and, for each of ``"macro"``, ``"micro"``, ``"weighted"``, the same four keys.
            ``"mean"`` is the NaN-aware mean of the per-image scores over the ``n`` images where it is
            defined (``n_nan`` more were NaN); ``"global"`` is the score of the counts pooled over every
            image. ``result["n_images"]`` is the number of images; with ``keep_per_case=True``,
            ``result["per_case"][metric]`` is a ``[n_images, C]`` tensor of per-image scores.
            ``result["gds"]`` (with ``"gds"`` among the metrics) holds ``"mean"``, ``"n"``, ``"n_nan"``
            and ``"global"`` directly: the NaN-aware mean of ``generalized_dice_score(all,
            per_image=True)`` and ``generalized_dice_score(all, per_image=False)``; its ``per_case``
            entry is ``[n_images]``, its flat keys ``"gds"`` and ``"gds/global"``.
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
        >>> m.compute(flat=True)
        {'dice/macro': 0.6666666666666666, 'dice/micro': 0.6666666666666666, 'dice/weighted': 0.6666666666666666, 'dice/1': 0.6666666666666666, 'dice/global/macro': 0.6666666666666666, 'dice/global/micro': 0.6666666666666666, 'dice/global/weighted': 0.6666666666666666, 'dice/global/1': 0.6666666666666666}
        """
        sums, cases = self._sums, self._cases
        if self.sync_on_compute and not self._synced and _distributed():
            sums = self._reduced()
            if self.keep_per_case:
                cases = self._gathered_cases()
        return self._result(sums, cases, flat=flat)

    def _result(
        self, sums: dict[str, torch.Tensor], cases: list[torch.Tensor], *, flat: bool
    ) -> dict[str, Any]:
        tp, fp, fn, tn = sums["counts"].cpu()
        # plain lists: one conversion each instead of a tensor index per number
        n, n_nan = sums["n"].cpu().tolist()
        agg_n, agg_n_nan = sums["agg_n"].cpu().tolist()
        totals, agg_totals = sums["sum"].cpu().tolist(), sums["agg_sum"].cpu().tolist()
        result: dict[str, Any] = {}
        for i, name in enumerate(self._ratios):
            pooled = ratio_from_counts(name, tp, fp, fn, tn, self.empty_value, self.beta).tolist()
            entry: dict[str, Any] = {"per_class": {}}
            for c, cname in enumerate(self.class_names):
                entry["per_class"][cname] = {
                    "mean": _mean(totals[i][c], n[i][c]),
                    "n": n[i][c],
                    "n_nan": n_nan[i][c],
                    "global": pooled[c],
                }
            for a, avg in enumerate(_AVERAGES):
                entry[avg] = {
                    "mean": _mean(agg_totals[i][a], agg_n[i][a]),
                    "n": agg_n[i][a],
                    "n_nan": agg_n_nan[i][a],
                    "global": float(class_average(name, tp, fp, fn, tn, self.empty_value, self.beta, avg)),
                }
            result[name] = entry
        if _GDS in self.metrics:
            (gds_total,), (gds_n, gds_n_nan) = sums["gds_sum"].cpu().tolist(), sums["gds_n"].cpu().tolist()
            result[_GDS] = {
                "mean": _mean(gds_total, gds_n),
                "n": gds_n,
                "n_nan": gds_n_nan,
                "global": float(generalized_dice_from_counts(tp, fp, fn, self.gds_weight, self.empty_value)),
            }
            result = {name: result[name] for name in self.metrics}  # the order asked for
        if flat:
            return _flat(result, self.class_names)
        result["n_images"] = int(sums["n_images"].item())
        if self.keep_per_case:
            counts = (
                torch.cat(cases) if cases else torch.zeros(0, 4, len(self.class_names), dtype=torch.int64)
            )
            result["per_case"] = {
                name: (
                    generalized_dice_from_counts(
                        counts[:, 0], counts[:, 1], counts[:, 2], self.gds_weight, self.empty_value
                    )
                    if name == _GDS
                    else ratio_from_counts(
                        name,
                        counts[:, 0],
                        counts[:, 1],
                        counts[:, 2],
                        counts[:, 3],
                        self.empty_value,
                        self.beta,
                    )
                )
                for name in self.metrics
            }
        return result

    def __repr__(self) -> str:
        return (
            f"SegmentationMetrics(num_classes={self.num_classes}, metrics={self.metrics!r}, mode={self.mode!r}, "
            f"images={int(self._sums['n_images'].item())})"
        )


def _score_sums(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image scores ``[M, B, K]`` -> the sum of the defined ones ``[M, K]`` and ``[2, M, K]`` counts
    of defined and NaN scores."""
    nan = torch.isnan(values)
    total = torch.where(nan, torch.zeros_like(values), values).sum(1)
    return total, torch.stack([(~nan).sum(1), nan.sum(1)])


def _flat(result: dict[str, Any], class_names: Sequence[str]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for statistic, prefix in (("mean", ""), ("global", "global/")):
        for name, entry in result.items():
            if name == _GDS:  # one value of all classes: "gds" (per-image mean) and "gds/global"
                flat[f"{name}/global" if prefix else name] = entry[statistic]
                continue
            for key in (*_AVERAGES, *class_names):
                value = entry[key] if key in _AVERAGES else entry["per_class"][key]
                flat[f"{name}/{prefix}{key}"] = value[statistic]
    return flat


def _checked_state(state_dict: Any, config: dict[str, Any]) -> Mapping[str, Any]:
    """``state_dict`` if it is a state of a SegmentationMetrics with ``config``; a SegDiceError if not."""
    expected = "the dict that SegmentationMetrics.state_dict() returns"
    if not isinstance(state_dict, Mapping):
        raise SegDiceError(f"state_dict: got {type(state_dict).__name__}; expected {expected}")
    missing = [key for key in _STATE_DICT_KEYS if key not in state_dict]
    if "version" in missing:
        raise SegDiceError(
            f"state_dict: got a dict with keys {sorted(map(str, state_dict))}; expected {expected}"
        )
    if state_dict["version"] == 1 and not missing:
        state_dict = _upgraded_from_version_1(state_dict, config)
    if state_dict["version"] != STATE_VERSION:
        raise SegDiceError(
            f"state_dict['version']: got {state_dict['version']!r}; expected {STATE_VERSION} or 1 "
            "(the state layouts this segdice reads)"
        )
    if missing:
        raise SegDiceError(f"state_dict: missing keys {missing}; expected {expected}")
    saved = state_dict["config"]
    if not isinstance(saved, Mapping):
        raise SegDiceError(f"state_dict['config']: got {type(saved).__name__}; expected {expected}")
    for key, want in config.items():
        if key == "class_names":
            continue  # names only label the results; renaming them on resume is allowed
        got = saved.get(key)
        if not _same_setting(got, want):
            raise SegDiceError(
                f"state_dict: saved with {key}={got!r}, but this SegmentationMetrics has {key}={want!r}; "
                "create it with the settings of the saved one to load its state"
            )
    sums = state_dict["sums"]
    names = [name for name, _, _ in _STATE]
    if not isinstance(sums, Mapping) or sorted(sums) != sorted(names):
        got = sorted(sums) if isinstance(sums, Mapping) else type(sums).__name__
        raise SegDiceError(f"state_dict['sums']: got {got}; expected a dict with the keys {names}")
    return state_dict


def _upgraded_from_version_1(state_dict: Mapping[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A version-1 state in the version-2 layout: no generalized Dice sums and no ``gds_weight`` yet.

    Version 1 could not compute ``gds``, so its sums are zero (no image scored); the saved metrics then
    differ from any setting that asks for ``gds`` and the config check refuses such a resume by name.
    """
    upgraded = dict(state_dict)
    upgraded["version"] = STATE_VERSION
    saved = state_dict["config"]
    if isinstance(saved, Mapping) and "gds_weight" not in saved:
        upgraded["config"] = {**saved, "gds_weight": config.get("gds_weight")}
    sums = state_dict["sums"]
    if isinstance(sums, Mapping) and "gds_n" not in sums and "gds_sum" not in sums:
        upgraded["sums"] = {
            **sums,
            "gds_n": torch.zeros(2, dtype=torch.int64),
            "gds_sum": torch.zeros(1, dtype=torch.float64),
        }
    return upgraded


def _same_setting(got: Any, want: Any) -> bool:
    if isinstance(want, float) and math.isnan(want):
        return isinstance(got, float) and math.isnan(got)
    if isinstance(want, list):
        return isinstance(got, (list, tuple)) and list(got) == want
    return type(got) is type(want) and got == want


def _describe_state(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:120]


def _mean(total: float, count: int) -> float:
    return total / count if count else math.nan


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
