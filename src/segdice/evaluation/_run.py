"""The body of :func:`segdice.evaluation.evaluate`: options, pairing, labels, scoring, summary, outputs."""

from __future__ import annotations

import math
import multiprocessing
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from segdice._checks import SegDiceError, check_number
from segdice._version import __version__
from segdice.evaluation._pairing import CasePair, pair_cases
from segdice.evaluation._scoring import (
    BOUNDARY_METRICS,
    OVERLAP_METRICS,
    Item,
    ScoringSpec,
    case_columns,
    gt_label_set,
    score_case,
)
from segdice.evaluation._summary import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE, summarize_rows
from segdice.report.tables import CaseCSVWriter, read_case_csv, write_case_csv, write_summary_json

__all__ = ["ALL_METRICS", "DEFAULT_METRICS", "EvaluationResult", "evaluate"]

DEFAULT_METRICS: tuple[str, ...] = ("dice", "iou", "precision", "recall", "hd95", "assd", "nsd")
ALL_METRICS: tuple[str, ...] = OVERLAP_METRICS + BOUNDARY_METRICS
_EMPTY_POLICIES = {"nan": math.nan, "0": 0.0, "1": 1.0}

ProgressCallback = Callable[[int, int], None]


@dataclass
class EvaluationResult:
    """What :func:`evaluate` returns.

    Attributes
    ----------
    per_case
        One dict per case x label/region, with the columns of ``per_case.csv``.
    summary
        The content of ``summary.json``: statistics per label/region and metric, the definitions
        used, the inputs and counts.
    out
        The output folder, or ``None`` when nothing was written.
    """

    per_case: list[dict]
    summary: dict
    out: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def failed_cases(self) -> dict[str, str]:
        """Cases with an error, mapped to the error text."""
        return dict(self.summary["failed_cases"])

    @property
    def n_failed(self) -> int:
        """How many cases could not be scored cleanly."""
        return len(self.summary["failed_cases"])


# --- argument normalisation -----------------------------------------------------------------------


def _as_int(name: str, value: object) -> int:
    check_number(name, value, integer=True)
    return int(value)  # type: ignore[arg-type]


def _parse_metrics(metrics: str | Sequence[str]) -> tuple[str, ...]:
    names = [m.strip().lower() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    if not names or not all(isinstance(m, str) and m for m in names):
        raise SegDiceError(f"metrics: got {metrics!r}; expected names from {', '.join(ALL_METRICS)}")
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown:
        raise SegDiceError(f"metrics: got unknown {unknown}; expected names from {', '.join(ALL_METRICS)}")
    return tuple(dict.fromkeys(names))


def _parse_empty(empty: str | float) -> tuple[str, float]:
    key = str(empty).strip().lower()
    key = {"0.0": "0", "1.0": "1"}.get(key, key)
    if key not in _EMPTY_POLICIES:
        raise SegDiceError(f"empty: got {empty!r}; expected one of 'nan', '0', '1'")
    return key, _EMPTY_POLICIES[key]


def _names_by_label(label_names: Mapping | None) -> dict[int, str]:
    if not label_names:
        return {}
    names: dict[int, str] = {}
    for key, value in label_names.items():
        # Accept {"liver": 1} (as on the command line) and {1: "liver"}.
        name, label = (key, value) if isinstance(key, str) else (value, key)
        if not isinstance(name, str) or not name:
            raise SegDiceError(f"label_names: got {key!r}: {value!r}; expected name=label pairs like liver=1")
        label = _as_int(f"label_names[{name!r}]", label)
        if label in names:
            raise SegDiceError(f"label_names: label {label} is named twice ({names[label]!r} and {name!r})")
        names[label] = name
    return names


def _regions(regions: Mapping[str, Sequence[int]] | None) -> list[Item]:
    items = []
    for name, labels in (regions or {}).items():
        if not isinstance(name, str) or not name:
            raise SegDiceError(f"regions: got name {name!r}; expected a non-empty string")
        if isinstance(labels, (int, str)) or not len(labels):
            raise SegDiceError(f"regions[{name!r}]: got {labels!r}; expected a non-empty list of labels")
        ids = tuple(sorted({_as_int(f"regions[{name!r}]", v) for v in labels}))
        items.append(Item(name=name, ids=ids, region=True))
    return items


def _items(
    labels: Sequence[int],
    label_names: dict[int, str],
    regions: list[Item],
) -> tuple[Item, ...]:
    items = [Item(name=label_names.get(label, str(label)), ids=(label,)) for label in labels]
    items += regions
    seen: dict[str, Item] = {}
    for item in items:
        if item.name in seen:
            raise SegDiceError(
                f"labels/regions: the name {item.name!r} is used by both {seen[item.name].label_text} and "
                f"{item.label_text}; names must be unique"
            )
        seen[item.name] = item
    return tuple(items)


# --- running --------------------------------------------------------------------------------------


def _init_worker() -> None:
    # Each worker scores one case at a time; intra-op threads would only fight the other workers.
    import torch

    torch.set_num_threads(1)


@contextmanager
def _executor(workers: int, n_tasks: int) -> Iterator[ProcessPoolExecutor | None]:
    """A pool of worker processes, or ``None`` when one process is enough.

    Workers never fork the caller (its threads, such as a progress bar's, may hold locks). Where the
    platform has it, a fork server imports the scoring code (torch, SciPy) once and forks every worker
    from that clean process, which halves the pool's start-up against spawning each worker afresh.
    """
    if workers <= 1 or n_tasks <= 1:
        yield None
        return
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # SciPy's ndimage and spatial are imported lazily by the boundary metrics: preload them too
        context.set_forkserver_preload(["segdice.evaluation._scoring", "scipy.ndimage", "scipy.spatial"])
    else:
        context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=min(workers, n_tasks), mp_context=context, initializer=_init_worker
    ) as pool:
        yield pool


def _map(
    function: Callable,
    args: Sequence[tuple],
    pool: ProcessPoolExecutor | None,
    workers: int,
    on_result: Callable[[int, object], None],
) -> None:
    """Call ``on_result(i, function(*args[i]))`` for every task, in completion order.

    With a pool, at most two tasks per worker are queued at once, so an interrupt leaves little
    work to cancel and results stream out as they finish.
    """
    if pool is None:
        for index, arg in enumerate(args):
            on_result(index, function(*arg))
        return
    window = 2 * workers
    pending: dict[Future, int] = {}
    next_index = 0
    try:
        while next_index < len(args) or pending:
            while next_index < len(args) and len(pending) < window:
                pending[pool.submit(function, *args[next_index])] = next_index
                next_index += 1
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                on_result(pending.pop(future), future.result())
    except BaseException:
        for future in pending:
            future.cancel()
        raise


def _rich_progress(total: int) -> tuple[ProgressCallback, Callable[[], None]]:
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
    except ImportError:  # pragma: no cover - rich comes with the cli extra
        return (lambda done, total: None), (lambda: None)
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=False,
    )
    task = bar.add_task("scoring cases", total=total)
    bar.start()
    return (lambda done, total: bar.update(task, completed=done)), bar.stop


# --- the public entry point -----------------------------------------------------------------------


def evaluate(
    pred: str | os.PathLike[str],
    gt: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    labels: str | Sequence[int] = "auto",
    label_names: Mapping[str, int] | Mapping[int, str] | None = None,
    regions: Mapping[str, Sequence[int]] | None = None,
    ignore_label: int | None = None,
    metrics: str | Sequence[str] = DEFAULT_METRICS,
    nsd_tolerance: float = 1.0,
    spacing: Sequence[float] | None = None,
    empty: str = "nan",
    workers: int | None = None,
    pred_suffix: str = "",
    gt_suffix: str = "",
    resume: bool = False,
    progress: bool | ProgressCallback = False,
) -> EvaluationResult:
    """Score predicted label maps against ground truth, per case and label/region, with statistics.

    Parameters
    ----------
    pred, gt
        Files or folders of masks (NIfTI, PNG/BMP, TIFF, ``.npy``/``.npz``). Cases pair by file name;
        ground truth defines the cases.
    out
        Output folder for ``per_case.csv``, ``summary.json`` and ``report.html``; ``None`` writes nothing.
    labels
        ``"auto"`` (every label > 0 in any ground-truth file, less ``ignore_label``) or a list of labels.
        A voxel whose label is in neither the list nor a region flags its case with an error.
    label_names
        Display names, ``{"liver": 1, "tumour": 2}`` (or ``{1: "liver"}``).
    regions
        Named unions of labels scored as one mask, e.g. ``{"WT": [1, 2, 3]}``.
    ignore_label
        Ground-truth label whose voxels are left out of every count and of both surfaces.
    metrics
        Names (or one comma-separated string) from ``dice, iou, precision, recall, specificity,
        accuracy, hd, hd95, assd, masd, nsd``.
    nsd_tolerance
        Tolerance of the normalised surface Dice, in physical units.
    spacing
        Voxel spacing in array axis order, overriding the file headers (and their mismatch check).
    empty
        Overlap metrics when prediction and ground truth are both empty: ``"nan"`` (left out of
        statistics, counted in ``n_nan``), ``"0"`` or ``"1"``.
    workers
        Worker processes; ``None`` uses every core, ``1`` runs in this process.
    pred_suffix, gt_suffix
        Stripped from file stems before pairing (e.g. ``"_pred"``, ``"_seg"``).
    resume
        Keep the rows of cases already in ``out/per_case.csv`` (those without an error) and score
        only the others.
    progress
        ``True`` for a progress bar on the terminal, or a callable ``(done, total)``.

    Returns
    -------
    EvaluationResult
        ``per_case`` rows, the ``summary`` dict, and the written files.

    Raises
    ------
    SegDiceError
        For invalid arguments, missing inputs, no labels to evaluate, or a ``per_case.csv`` that cannot
        be resumed. Problems with single cases never raise: they become rows with an ``error``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from segdice.io import save_mask
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "gt").mkdir(); (root / "pred").mkdir()
    >>> truth = np.zeros((8, 8), np.uint8); truth[2:6, 2:6] = 1
    >>> guess = np.zeros((8, 8), np.uint8); guess[2:6, 2:4] = 1
    >>> _ = save_mask(root / "gt" / "a.png", truth); _ = save_mask(root / "pred" / "a.png", guess)
    >>> result = evaluate(root / "pred", root / "gt", metrics="dice,recall", workers=1)
    >>> round(result.per_case[0]["dice"], 4), result.per_case[0]["recall"]
    (0.6667, 0.5)
    """
    metric_names = _parse_metrics(metrics)
    empty_key, empty_value = _parse_empty(empty)
    check_number("nsd_tolerance", nsd_tolerance, minimum=0, strict_min=True)
    if ignore_label is not None:
        ignore_label = _as_int("ignore_label", ignore_label)
    if spacing is not None:
        if isinstance(spacing, (int, float)) or not len(spacing):
            raise SegDiceError(f"spacing: got {spacing!r}; expected one value per array axis")
        spacing = tuple(float(check_number("spacing", s, minimum=0, strict_min=True)) for s in spacing)
    if workers is None:
        workers = os.cpu_count() or 1
    workers = _as_int("workers", workers)
    if workers < 1:
        raise SegDiceError(f"workers: got {workers}; expected a value >= 1 (or None for every core)")
    names = _names_by_label(label_names)
    region_items = _regions(regions)
    if not (isinstance(labels, str) and labels == "auto"):
        if isinstance(labels, (str, int)):
            raise SegDiceError(f"labels: got {labels!r}; expected 'auto' or a list of integer labels")
        labels = sorted({_as_int("labels", v) for v in labels})
        if 0 in labels:
            raise SegDiceError("labels: 0 is the background and is not scored; list foreground labels only")
    if resume and out is None:
        raise SegDiceError("resume: needs out, the folder whose per_case.csv holds the finished cases")

    pairs, extras = pair_cases(pred, gt, pred_suffix=pred_suffix, gt_suffix=gt_suffix)
    out_dir = Path(out) if out is not None else None
    csv_path = out_dir / "per_case.csv" if out_dir is not None else None

    with ExitStack() as stack:
        # One pool serves both passes: spawning workers (each imports torch) is the slow part.
        pool = stack.enter_context(_executor(workers, len(pairs)))
        if isinstance(labels, str):  # "auto": one cheap pass over the ground truth fixes the label list
            found: set[int] = set()
            _map(
                gt_label_set,
                [(p.gt, ignore_label) for p in pairs],
                pool,
                workers,
                lambda _i, ids: found.update(ids),  # type: ignore[arg-type]
            )
            labels = sorted(found)
        items = _items(labels, names, region_items)
        if not items:
            raise SegDiceError(
                "labels: nothing to evaluate; the ground truth holds only background (pass labels or regions)"
            )
        spec = ScoringSpec(
            items=items,
            metrics=metric_names,
            ignore_label=ignore_label,
            nsd_tolerance=float(nsd_tolerance),
            spacing=spacing,
            empty_value=empty_value,
        )
        columns = case_columns(metric_names)

        kept: dict[str, list[dict]] = {}
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            if resume and csv_path.exists():
                kept = _resumable_rows(csv_path, columns, pairs, items)
                write_case_csv(csv_path, columns, [r for p in pairs for r in kept.get(p.name, [])])

        todo = [p for p in pairs if p.name not in kept]
        results: dict[str, list[dict]] = dict(kept)
        report_progress, stop_progress = _progress(progress, len(pairs))
        stack.callback(stop_progress)
        if csv_path is not None:
            writer = stack.enter_context(CaseCSVWriter(csv_path, columns, append=resume))
        report_progress(len(kept), len(pairs))

        def on_result(index: int, rows: object) -> None:
            results[todo[index].name] = rows  # type: ignore[assignment]
            if csv_path is not None:
                writer.write_rows(rows)  # type: ignore[arg-type]
            report_progress(len(results), len(pairs))

        _map(score_case, [(p, spec) for p in todo], pool, workers, on_result)

    per_case = [row for p in pairs for row in results[p.name]]
    summary = _summary(
        per_case, pairs, extras, items, metric_names, spec, empty_key,
        inputs={"pred": str(pred), "gt": str(gt), "pred_suffix": pred_suffix, "gt_suffix": gt_suffix},
    )  # fmt: skip
    result = EvaluationResult(per_case=per_case, summary=summary, out=out_dir)
    if out_dir is not None:
        write_case_csv(csv_path, columns, per_case)  # final order: case, then label/region
        write_summary_json(out_dir / "summary.json", summary)
        result.files = {"per_case": csv_path, "summary": out_dir / "summary.json"}
        try:
            import jinja2  # noqa: F401
            import matplotlib  # noqa: F401

            from segdice.report.html import write_report
        except ImportError as exc:  # matplotlib/jinja2 come with the "report" extra
            warnings.warn(
                f"report.html not written: {exc}; pip install 'segdice[report]'", RuntimeWarning, stacklevel=2
            )
        else:
            result.files["report"] = write_report(result, out_dir / "report.html")
    return result


def _progress(progress: bool | ProgressCallback, total: int) -> tuple[ProgressCallback, Callable[[], None]]:
    if callable(progress):
        return progress, lambda: None
    if progress:
        return _rich_progress(total)
    return (lambda done, total: None), (lambda: None)


def _resumable_rows(
    csv_path: Path, columns: list[str], pairs: Sequence[CasePair], items: Sequence[Item]
) -> dict[str, list[dict]]:
    """Rows of an earlier run to keep: cases scored without error for the same items and files."""
    found_columns, rows = read_case_csv(csv_path)
    if found_columns != columns:
        raise SegDiceError(
            f"resume: {csv_path} has columns {found_columns}, but this run writes {columns}; "
            "resume with the same metrics, or start a new output folder"
        )
    by_case: dict[str, list[dict]] = {}
    for row in rows:
        by_case.setdefault(row["case"], []).append(row)
    expected = [(item.name, item.label_text) for item in items]
    kept = {}
    for pair in pairs:
        mine = by_case.get(pair.name, [])
        pred_file = str(pair.pred) if pair.pred is not None else ""
        if [(r["item"], r["labels"]) for r in mine] == expected and all(
            not r["error"] and r["pred_file"] == pred_file for r in mine
        ):
            kept[pair.name] = mine
    return kept


def _summary(
    per_case: list[dict],
    pairs: Sequence[CasePair],
    extras: Sequence[Path],
    items: Sequence[Item],
    metrics: Sequence[str],
    spec: ScoringSpec,
    empty_key: str,
    inputs: dict,
) -> dict:
    failed: dict[str, str] = {}
    for row in per_case:
        if row["error"] and row["case"] not in failed:
            failed[row["case"]] = row["error"]
    empty_text = {
        "nan": "NaN: left out of the statistics and counted in n_nan",
        "0": "0",
        "1": "1",
    }[empty_key]
    return {
        "segdice_version": __version__,
        "inputs": {
            **inputs,
            "labels": [i.ids[0] for i in items if not i.region],
            "regions": {i.name: list(i.ids) for i in items if i.region},
            "ignore_label": spec.ignore_label,
            "metrics": list(metrics),
            "spacing_override": list(spec.spacing) if spec.spacing is not None else None,
        },
        "definitions": {
            "empty": empty_key,
            "both_empty_overlap": f"overlap metrics when prediction and ground truth are both empty: {empty_text}",
            "gt_empty_prediction_not": "Dice and IoU 0: the false positive is always counted",
            "hd95": (
                "the larger of the two directed 95th percentiles (linear interpolation) of the distances "
                "between surface voxels (mask XOR its face-connected erosion), exact Euclidean distance "
                "transform with the voxel spacing"
            ),
            "hd": "the largest surface distance in either direction",
            "assd": "mean of the surface distances of both directions pooled",
            "masd": "mean of the two directed mean surface distances",
            "nsd": "normalised surface Dice at the tolerance, surfel-area definition of Nikolov et al.",
            "nsd_tolerance": spec.nsd_tolerance,
            "worst_case": (
                "distance metrics with exactly one side empty: the image diagonal in physical units, "
                "sqrt(sum((shape_i * spacing_i)**2)); both sides empty: NaN"
            ),
            "missing_prediction": (
                "scored as an empty prediction (Dice 0 where the ground truth has the label, distances at "
                "the worst case) and counted in n_missing"
            ),
            "errors": "rows with an error are left out of the statistics and counted in n_error",
            "ignore_label": "ground-truth voxels with this label are left out of every count and surface",
            "spacing": (
                "array axis order, from the ground-truth header (NIfTI pixdim, ImageJ TIFF, .npz 'spacing'), "
                "1 per axis when the file has none; spacing_override replaces it"
            ),
            "statistics": (
                "over cases, NaN left out: mean, std (ddof=1), median and quartiles (linear interpolation), "
                "min, max"
            ),
            "bootstrap": {
                "method": "percentile bootstrap of the mean over cases",
                "confidence": CONFIDENCE,
                "n_resamples": BOOTSTRAP_RESAMPLES,
                "seed": BOOTSTRAP_SEED,
            },
        },
        "counts": {
            "cases": len(pairs),
            "scored": len(pairs) - len(failed),
            "failed": len(failed),
            "missing_predictions": sum(1 for p in pairs if p.pred is None),
            "extra_predictions": len(extras),
        },
        "extra_predictions": [str(p) for p in extras],
        "failed_cases": failed,
        "items": [{"name": i.name, "labels": list(i.ids), "region": i.region} for i in items],
        "results": summarize_rows(per_case, [i.name for i in items], metrics),
    }
