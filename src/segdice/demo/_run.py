"""The body of :func:`segdice.demo.run_demo`: check the configuration, train, score, write the report."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from segdice._checks import SegDiceError, check_number, describe
from segdice._progress import ProgressBars
from segdice._version import __version__
from segdice.demo._data import SyntheticSlices, make_synthetic_dataset
from segdice.demo._plots import pick_examples, plot_examples, plot_training_curves
from segdice.demo._runtime import reproducible, resolve_device
from segdice.demo._scores import COLUMNS, score_predictions, validation_scores
from segdice.demo._training import TrainConfig, predict, train_model
from segdice.evaluation import evaluate
from segdice.report.tables import to_json_safe

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["DemoConfig", "DemoResult", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of a demo run. :meth:`default` fits in about 3 minutes on 2 CPU cores, :meth:`quick` in 1.

    Attributes
    ----------
    size
        Height and width of the slices.
    n_train, n_val
        Number of training and validation slices.
    epochs
        Training epochs of every trained method.
    batch_size, lr
        Mini-batch size and peak learning rate (AdamW, cosine decay).
    """

    size: int = 96
    n_train: int = 192
    n_val: int = 64
    epochs: int = 12
    # Small batches: more optimiser steps per second of CPU, which is what the Dice+CE model needs to
    # leave the all-background solution that cross-entropy pulls every model into first.
    batch_size: int = 4
    lr: float = 1e-2

    @classmethod
    def default(cls) -> DemoConfig:
        """The full demo."""
        return cls()

    @classmethod
    def quick(cls) -> DemoConfig:
        """A smoke run on smaller slices (what the tests use)."""
        return cls(size=64, n_train=96, n_val=32)


# The methods of the table, in display order: key -> (display name, description of the loss).
METHODS: dict[str, tuple[str, str]] = {
    "all_background": ("All background", "no training: predicts background everywhere"),
    "cross_entropy": ("Cross-entropy", "torch.nn.CrossEntropyLoss()"),
    "dice": ("DiceLoss", "segdice.DiceLoss('multiclass', include_background=False)"),
    "dice_ce": ("DiceCELoss", "segdice.DiceCELoss('multiclass', include_background=False)"),
}


def _make_loss(key: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if key == "cross_entropy":
        return torch.nn.CrossEntropyLoss()
    from segdice.losses import DiceCELoss, DiceLoss

    # Background excluded from the Dice term, as in nnU-Net: the lesion's Dice is the whole signal.
    if key == "dice":
        return DiceLoss("multiclass", include_background=False)
    return DiceCELoss("multiclass", include_background=False)


@dataclass
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes
    ----------
    results
        The content of ``results.json``: configuration, dataset statistics, and per method its scores
        (``results["methods"][key]["metrics"]``), training history and training time.
    out
        The report folder.
    files
        Name -> path of every file written (``results``, ``training_curves``, ``examples``,
        ``evaluation_report``, ...).
    """

    results: dict[str, Any]
    out: Path
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, dict[str, float]]:
        """Method key -> its table row (``accuracy``, ``dice_global``, ...)."""
        return {key: m["metrics"] for key, m in self.results["methods"].items()}


def _split_stats(data: SyntheticSlices) -> dict[str, float | int]:
    return {
        "n": len(data),
        "n_empty": data.n_empty,
        "foreground_fraction": data.foreground_fraction,
    }


def _save_cases(folder: Path, masks: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("slice_*.npy"):
        old.unlink()
    for i, mask in enumerate(masks):
        np.save(folder / f"slice_{i:03d}.npy", mask.astype(np.uint8), allow_pickle=False)


def run_demo(
    out: str | os.PathLike[str] = "segdice-demo",
    *,
    quick: bool = False,
    epochs: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    threads: int = 1,
    progress: bool = False,
    console: Console | None = None,
    config: DemoConfig | None = None,
) -> DemoResult:
    """Train the tiny U-Net with three losses on synthetic lesions and write the report folder.

    Parameters
    ----------
    out
        Report folder (created; files of an earlier run are overwritten).
    quick
        Use :meth:`DemoConfig.quick` (a sub-minute smoke run) instead of :meth:`DemoConfig.default`.
    epochs
        Override the number of training epochs.
    seed
        Seed of the dataset, the initial weights and the batch order. The same seed, thread count and
        torch build give the same numbers (timings aside).
    device
        ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``. Results are bitwise
        reproducible on the CPU; GPUs use deterministic kernels where torch has them.
    threads
        Torch CPU threads during the run (the caller's setting is restored afterwards). One by default:
        the network is so small that a second thread gains little, while on a busy machine an
        oversubscribed OpenMP pool is several times slower.
    progress
        Show Rich progress bars for data generation and training.
    console
        The Rich console for the progress bars (default: a new one on stderr).
    config
        Full control of the sizes; overrides ``quick``.

    Returns
    -------
    DemoResult
        The numbers of ``results.json`` and the paths of the files written.

    Raises
    ------
    SegDiceError
        If an argument is invalid, the device is not available or ``out`` is an existing file.

    Examples
    --------
    A tiny run (the real one is ``run_demo("segdice-demo")``, or ``segdice demo`` in a shell):

    >>> import tempfile
    >>> tiny = DemoConfig(size=32, n_train=8, n_val=4, epochs=1)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     result = run_demo(out, config=tiny, seed=1)
    ...     sorted(p.name for p in result.out.iterdir())
    ['evaluation', 'examples.png', 'results.json', 'training_curves.png']
    >>> list(result.metrics)
    ['all_background', 'cross_entropy', 'dice', 'dice_ce']
    >>> result.metrics["all_background"]["accuracy"] > 0.99
    True
    """
    cfg = _checked_config(config, quick, epochs, seed, threads)
    dev = resolve_device(device)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SegDiceError(f"out: got {str(out)!r}, an existing file; expected a folder")
    out.mkdir(parents=True, exist_ok=True)
    if progress and console is None:
        from rich.console import Console

        console = Console(stderr=True)

    started = time.perf_counter()
    with reproducible(int(threads), dev), ProgressBars(progress, console) as bars:
        step = bars.task("Generating slices", cfg.n_train + cfg.n_val)
        train = make_synthetic_dataset(cfg.n_train, cfg.size, seed, callback=step)
        val = make_synthetic_dataset(cfg.n_val, cfg.size, seed, offset=cfg.n_train, callback=step)
        data_seconds = time.perf_counter() - started
        predictions, histories, seconds = _train_methods(train, val, cfg, int(seed), dev, bars)

        score_start = time.perf_counter()
        scores = {key: score_predictions(pred, val.masks) for key, pred in predictions.items()}
        trained = ("cross_entropy", "dice", "dice_ce")
        best = max(
            trained, key=lambda k: (np.nan_to_num(scores[k]["dice_global"], nan=-1.0), -trained.index(k))
        )
        files = _write_report(out, val, predictions, histories, best, scores["all_background"])
        report_seconds = time.perf_counter() - score_start

    timing = {
        "data_seconds": data_seconds,
        "train_seconds": seconds,
        "scoring_and_report_seconds": report_seconds,
        "total_seconds": time.perf_counter() - started,
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs",
    }
    run = {"seed": int(seed), "device": str(dev), "threads": int(threads)}
    results = _results_json(cfg, run, (train, val), scores, histories, best, timing, files, out)
    files["results"] = out / "results.json"
    files["results"].write_text(json.dumps(to_json_safe(results), indent=2) + "\n", encoding="utf-8")
    return DemoResult(results=results, out=out, files=files)


def _checked_config(
    config: DemoConfig | None, quick: bool, epochs: int | None, seed: int, threads: int
) -> DemoConfig:
    """The sizes of the run (``config``, else quick or default, with ``epochs`` applied), checked."""
    cfg = config if config is not None else (DemoConfig.quick() if quick else DemoConfig.default())
    if not isinstance(cfg, DemoConfig):
        raise SegDiceError(f"config: got {describe(cfg)}; expected a DemoConfig")
    if epochs is not None:
        check_number("epochs", epochs, minimum=1, integer=True)
        cfg = replace(cfg, epochs=int(epochs))
    check_number("seed", seed, minimum=0, maximum=2**63 - 1, integer=True)
    check_number("threads", threads, minimum=1, integer=True)
    for name in ("size", "n_train", "n_val", "epochs", "batch_size"):
        check_number(f"config.{name}", getattr(cfg, name), minimum=32 if name == "size" else 1, integer=True)
    check_number("config.lr", cfg.lr, minimum=0, strict_min=True)
    if cfg.size % 4:
        raise SegDiceError(f"config.size: got {cfg.size}; expected a multiple of 4 (the U-Net pools twice)")
    return cfg


def _train_methods(
    train: SyntheticSlices,
    val: SyntheticSlices,
    cfg: DemoConfig,
    seed: int,
    device: torch.device,
    bars: ProgressBars,
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, list[float]]], dict[str, float]]:
    """Train one model per loss: validation predictions (with the all-background one), histories, seconds."""
    train_cfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed % 2**31)
    steps = cfg.epochs * math.ceil(cfg.n_train / cfg.batch_size)
    predictions: dict[str, np.ndarray] = {"all_background": np.zeros_like(val.masks)}
    histories: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, float] = {}
    for key in ("cross_entropy", "dice", "dice_ce"):
        step = bars.task(f"Training: {METHODS[key][0]}", steps)
        model, history = train_model(
            _make_loss(key),
            train,
            val,
            train_cfg,
            device=device,
            validate=validation_scores,
            on_step=lambda loss, step=step: step(info=f"loss {loss:.3f}"),
        )
        predictions[key] = predict(model, val.images, device)
        histories[key] = history.as_dict()
        seconds[key] = history.seconds
    return predictions, histories, seconds


def _results_json(
    cfg: DemoConfig,
    run: dict[str, Any],
    splits: tuple[SyntheticSlices, SyntheticSlices],
    scores: dict[str, dict[str, Any]],
    histories: dict[str, dict[str, list[float]]],
    best: str,
    timing: dict[str, Any],
    files: dict[str, Path],
    out: Path,
) -> dict[str, Any]:
    """The content of ``results.json``, in file order."""
    return {
        "segdice_version": __version__,
        "torch_version": torch.__version__,
        "config": {**asdict(cfg), **run},
        "dataset": {"train": _split_stats(splits[0]), "validation": _split_stats(splits[1])},
        "methods": {
            key: {
                "name": name,
                "loss": description,
                "metrics": scores[key],
                "history": histories.get(key),
            }
            for key, (name, description) in METHODS.items()
        },
        "best_method": best,
        "columns": {key: header for key, (header, _) in COLUMNS.items()},
        "timing": timing,
        "files": {name: str(path.relative_to(out)) for name, path in files.items()},
    }


def _write_report(
    out: Path,
    val: SyntheticSlices,
    predictions: dict[str, np.ndarray],
    histories: dict[str, dict[str, list[float]]],
    best: str,
    trivial: dict[str, Any],
) -> dict[str, Path]:
    names = {key: METHODS[key][0] for key in predictions}
    files = {
        "training_curves": plot_training_curves(
            {names[k]: h for k, h in histories.items()},
            out / "training_curves.png",
            baseline=(
                names["all_background"],
                {"val_dice": trivial["dice_global"], "val_accuracy": trivial["accuracy"]},
            ),
        ),
        "examples": plot_examples(
            val.images,
            val.masks,
            {names[k]: p for k, p in predictions.items()},
            pick_examples(val.masks),
            out / "examples.png",
        ),
    }
    # The evaluator reads files, so the best model's validation predictions and the ground truth are
    # written as .npy label maps and scored exactly as a user's own folders would be.
    evaluation = out / "evaluation"
    _save_cases(evaluation / "predictions", predictions[best])
    _save_cases(evaluation / "ground_truth", val.masks)
    evaluate(
        evaluation / "predictions",
        evaluation / "ground_truth",
        out=evaluation,
        labels=[1],
        label_names={1: "lesion"},
        workers=1,  # 64 small slices: a process pool would cost more than it saves
    )
    files["evaluation_report"] = evaluation / "report.html"
    files["evaluation_csv"] = evaluation / "per_case.csv"
    files["evaluation_summary"] = evaluation / "summary.json"
    return files
