"""The body of :func:`segdice.evaluation.evaluate`: options, pairing, labels, scoring, summary, outputs.

Data flows one way: files -> :mod:`segdice.io` -> :mod:`segdice.metrics` (in worker processes, one
case at a time) -> rows streamed to ``per_case.csv`` -> statistics -> ``summary.json`` and
``report.html`` (written by :mod:`segdice.report`).
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from segdice._checks import SegDiceError
from segdice._progress import ProgressBars
from segdice.evaluation._dask_pool import DaskPool, check_scheduler
from segdice.evaluation._instances import (
    InstanceSpec,
    LesionLog,
    add_object_summary,
    fill_missing,
    instance_columns,
    lesion_columns,
    with_object_options,
)
from segdice.evaluation._options import DEFAULT_METRICS, Options, build_items, normalise_options
from segdice.evaluation._output import locked_output_folder, output_error
from segdice.evaluation._pairing import CasePair, pair_cases
from segdice.evaluation._pool import LocalPool, TaskLost, TaskPool
from segdice.evaluation._scoring import (
    CaseViews,
    Item,
    ScoringSpec,
    case_columns,
    case_label_set,
    check_item_names,
    error_rows,
    row_items,
    score_case,
    scoring_spec,
)
from segdice.evaluation._summary import build_summary
from segdice.evaluation.result import EvaluationResult
from segdice.report.tables import (
    CASE_COLUMNS,
    CaseCSVWriter,
    read_case_csv,
    write_case_csv,
    write_summary_json,
)

__all__ = ["ProgressCallback", "evaluate"]

ProgressCallback = Callable[[int, int], None]

# Test-only fault injection: a worker process asked to score the case of this name exits at once, as
# if it had crashed (tests/test_evaluate_robust.py sets it in a subprocess's environment, and
# tests/test_evaluate_dask.py in its Dask workers'). Never set by segdice; ignored in the main process.
CRASH_CASE_ENV = "SEGDICE_TEST_CRASH_CASE"


def evaluate(
    pred: str | os.PathLike[str],
    gt: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    labels: str | Sequence[int] = "auto",
    label_names: Mapping[str, int] | Mapping[int, str] | str | os.PathLike[str] | None = None,
    regions: Mapping[str, Sequence[int] | str] | None = None,
    ignore_label: int | None = None,
    metrics: str | Sequence[str] = DEFAULT_METRICS,
    nsd_tolerance: float = 1.0,
    spacing: Sequence[float] | None = None,
    empty: str = "nan",
    hd95: str = "max",
    surface: str = "voxels",
    workers: int | None = None,
    pred_suffix: str = "",
    gt_suffix: str = "",
    resume: bool = False,
    progress: bool | ProgressCallback = False,
    reorient: bool = False,
    binarize: bool = False,
    recursive: bool = False,
    pred_glob: str | None = None,
    gt_glob: str | None = None,
    instances: str | None = None,
    match: str = "iou",
    match_threshold: float = 0.5,
    dilation: int = 0,
    min_volume: float = 0.0,
    protocol: str | None = None,
    scheduler: object = None,
) -> EvaluationResult:
    """Score predicted label maps against ground truth, per case and label/region, with statistics.

    Parameters
    ----------
    pred, gt
        Files or folders of masks (NIfTI, MHA/MHD, NRRD/NHDR, DICOM-SEG, PNG/BMP, TIFF,
        ``.npy``/``.npz``; see :mod:`segdice.io`). Cases pair by file name; ground truth defines the
        cases. Prediction and ground truth must share shape, spacing, origin and direction.
    out
        Output folder for ``per_case.csv``, ``summary.json`` and ``report.html``; ``None`` writes nothing.
    labels
        ``"auto"`` (every label > 0 in any ground-truth **or prediction** file, less ``ignore_label``: a
        label only the model predicts is scored, Dice 0 where it appears) or a list of labels; values
        outside the list count as background for them.
    label_names
        Display names: ``{"liver": 1, "tumour": 2}`` (or ``{1: "liver"}``), a text
        ``"liver=1,tumour=2"``, or the path of a CSV of ``value,name`` rows or of an nnU-Net
        ``dataset.json`` (whose label lists become regions).
    regions
        Named unions of labels scored as one mask, e.g. ``{"WT": [1, 2, 3]}`` or ``{"WT": "1-3"}``.
    ignore_label
        Ground-truth label whose voxels are left out of every count and of both surfaces.
    metrics
        Names (or one comma-separated string) from :data:`segdice.evaluation.ALL_METRICS`: the overlap
        metrics and the confusion family (``dice, iou, precision, recall, specificity, accuracy,
        sensitivity, npv, fpr, fnr, fdr, for, ba, mcc, fmi, bm, mk, pt, vs, rvd``), ``gds`` (the
        generalized Dice of all scored labels at once, square weights: one value per case, on an extra
        row per case whose item is ``"all"``; see ``summary["across_labels"]``) and the boundary
        metrics (``hd, hd95, assd, masd, nsd, biou, cldice``).
    nsd_tolerance
        Tolerance of the normalised surface Dice, in physical units.
    spacing
        Voxel spacing in array axis order, overriding the file headers: the arrays are then compared
        voxel by voxel, without checking the headers' spacing, origin or direction.
    empty
        Overlap metrics when prediction and ground truth are both empty: ``"nan"`` (left out of
        statistics, counted in ``n_nan``), ``"0"`` or ``"1"``.
    hd95
        ``"max"``: the larger of the two directed 95th percentiles (MONAI, DeepMind); ``"pooled"``: the
        95th percentile of both directions pooled (medpy's ``hd95``).
    surface
        ``"voxels"`` (surface voxels, MONAI) or ``"surfels"`` (DeepMind's area-weighted surfels, 2D/3D) for
        HD, HD percentiles, ASSD and MASD.
    workers
        Worker processes; ``None`` uses every core, ``1`` runs in this process. The first cases are
        always scored in this process; the workers start only when the cases left pay for their
        start-up (see ``EvaluationResult.workers_started``). A case whose worker dies is retried once,
        then gets an error row.
    pred_suffix, gt_suffix
        Stripped from file stems before pairing (e.g. ``"_pred"``, ``"_seg"``).
    resume
        Keep the rows of cases already in ``out/per_case.csv`` (those without an error) and score
        only the others.
    progress
        ``True`` for a progress bar on the terminal, or a callable ``(done, total)``.
    reorient
        Undo axis permutations and flips between a prediction and its ground truth on the same world
        grid (both files need a geometry); the rows say so in ``note``.
    binarize
        Score every value > 0 as one foreground class, ``1``, on both sides (0/255 masks, instance
        masks).
    recursive
        Search sub-folders of ``pred`` and ``gt`` (BraTS keeps one folder per case).
    pred_glob, gt_glob
        Only files matching the pattern are masks, e.g. ``"*-seg.nii.gz"`` (on the file name, or on
        the path below the folder when the pattern holds a ``/``).
    instances
        Object columns per label/region (:func:`segdice.metrics.instance_scores`): ``"components"``
        (objects are connected components) or ``"labels"`` (the files are instance label maps, scored as
        one item ``objects``). Adds ``objects_tp/fp/fn``, detection precision/recall/F1, ``pq``, ``sq``,
        ``rq`` and ``lesion_<m>`` / ``matched_<m>`` for the per-object metrics among ``metrics``, and
        writes ``lesions.csv`` (one row per object).
    match
        ``"iou"`` or ``"dice"`` (optimal one-to-one matching on that score), ``"overlap"`` (any shared
        voxel) or ``"brats"`` (the BraTS 2023 rule).
    match_threshold
        A pair matches when its score is > this (``"iou"``, ``"dice"``).
    dilation, min_volume
        Target objects within ``dilation`` dilations merge; targets of volume <= ``min_volume`` (units of
        the spacing cubed) are not counted.
    protocol
        ``"brats2023-gli"``, ``-ssa``, ``-men``, ``-ped`` or ``-met``: the regions WT/TC/ET, matching,
        metrics and edge cases of the challenge; ``dice``/``hd95``/``recall``/``specificity`` hold its
        legacy Dice, HD95, sensitivity and specificity, the object columns its lesion-wise scores.
    scheduler
        Where the cases are scored. ``None``: here and in ``workers`` local processes. A Dask scheduler
        address (``"tcp://host:port"``, reached within 10 s or ``SEGDICE_SCHEDULER_TIMEOUT`` seconds),
        ``"local:N"`` (a ``LocalCluster`` of ``N`` worker processes on 127.0.0.1, closed at the end) or
        a ``distributed.Client``: every case is one task, its files read and scored on a worker (the
        workers must see the same paths), its rows streamed back as it ends; ``workers`` is then
        unused. Needs the ``distributed`` extra (``pip install 'segdice[distributed]'``). A case whose
        worker dies is retried by the scheduler, then gets an error row.

    Returns
    -------
    EvaluationResult
        ``per_case`` rows, the ``summary`` dict, and the written files.

    Raises
    ------
    SegDiceError
        For invalid arguments, missing inputs, no labels to evaluate, a ``per_case.csv`` that cannot
        be resumed, an ``out`` that is a file, cannot be written, fills the disk or is in use by another
        run (its lock, ``out/.segdice.lock``), a ``scheduler`` that cannot be reached (or is lost while
        the cases run: the rows written stay, ``resume`` continues), or ``distributed`` not installed.
        Problems with single cases never raise: they become rows with an ``error``.

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
    options = normalise_options(
        pred, gt, out=out, labels=labels, label_names=label_names, regions=regions,
        ignore_label=ignore_label, metrics=metrics, nsd_tolerance=nsd_tolerance, spacing=spacing,
        empty=empty, workers=workers, pred_suffix=pred_suffix, gt_suffix=gt_suffix, resume=resume,
        reorient=reorient, binarize=binarize, recursive=recursive, pred_glob=pred_glob, gt_glob=gt_glob,
        hd95=hd95, surface=surface,
    )  # fmt: skip
    scheduler = check_scheduler(scheduler)
    pairs, extras = pair_cases(
        pred, gt, pred_suffix=pred_suffix, gt_suffix=gt_suffix, pred_glob=pred_glob, gt_glob=gt_glob,
        recursive=recursive,
    )  # fmt: skip
    options, objects = with_object_options(
        options, instances=instances, match=match, match_threshold=match_threshold, dilation=dilation,
        min_volume=min_volume, protocol=protocol,
    )  # fmt: skip
    columns = case_columns(options.metrics) + instance_columns(objects)
    with ExitStack() as locked:
        if options.out is not None:  # held until every output is written
            locked.enter_context(locked_output_folder(options.out))
        items, rows, object_rows, workers_started = _run_cases(
            options, objects, pairs, columns, progress, scheduler
        )
        per_case = [row for p in pairs for row in rows[p.name]]
        summary = build_summary(per_case, pairs, extras, items, options)
        if objects is not None:
            lesions = [r for p in pairs for r in object_rows.get(p.name, [])]
            add_object_summary(summary, per_case, objects, protocol, lesions)
        result = EvaluationResult(
            per_case=per_case, summary=summary, out=options.out, workers_started=workers_started,
            read_case=CaseViews({p.name: p for p in pairs}, scoring_spec(options, items, objects)),
        )  # fmt: skip
        if options.out is not None:
            try:
                result.files = _write_outputs(result, options.out, columns)
            except OSError as exc:
                raise output_error(options.out, exc) from None
            if objects is not None:
                result.files["lesions"] = options.out / "lesions.csv"
    return result


def _run_cases(
    options: Options,
    objects: InstanceSpec | None,
    pairs: Sequence[CasePair],
    columns: list[str],
    progress: bool | ProgressCallback,
    scheduler: object = None,
) -> tuple[tuple[Item, ...], dict[str, list[dict]], dict[str, list[dict]], int]:
    """Resolve the items, keep the resumable rows, score the other cases, streaming rows to the CSV.

    Returns the items, the rows of every case, the per-object rows of every case (``--instances``)
    and how many worker processes were started. An
    interrupt or a write error tears the pool down at once and leaves the rows written so far.
    """
    with ExitStack() as stack:
        # One pool serves both passes. A local one starts only once the work left pays for its start-up;
        # a Dask one connects (or starts its LocalCluster) here.
        pool = stack.enter_context(LocalPool(options.workers) if scheduler is None else DaskPool(scheduler))
        items = _resolve_items(options, pairs, pool)
        spec = scoring_spec(options, items, objects)
        try:
            kept = _open_out(options, columns, pairs, items)
        except OSError as exc:
            raise output_error(options.out, exc) from None  # type: ignore[arg-type]
        collected = _Collected(
            rows=dict(kept), total=len(pairs), report=_reporter(stack, progress, len(pairs))
        )
        if objects is not None:
            collected.object_columns = instance_columns(objects)
            if options.out is not None:
                collected.lesions = LesionLog(
                    options.out / "lesions.csv", lesion_columns(objects), keep_cases=kept
                )
                collected.objects.update(collected.lesions.rows)  # those of the kept cases
                stack.callback(collected.lesions.close, [p.name for p in pairs])
        if options.csv_path is not None:
            try:
                collected.writer = stack.enter_context(
                    CaseCSVWriter(options.csv_path, columns, append=options.resume)
                )
            except OSError as exc:
                raise output_error(options.out, exc) from None  # type: ignore[arg-type]
        collected.report(len(kept), len(pairs))
        _score_cases([p for p in pairs if p.name not in kept], spec, pool, collected)
    return items, collected.rows, collected.objects, pool.started


@dataclass
class _Collected:
    """The rows of every finished case, streamed to ``per_case.csv`` and counted on the progress bar."""

    rows: dict[str, list[dict]]
    total: int
    report: ProgressCallback
    writer: CaseCSVWriter | None = None
    object_columns: list[str] = field(default_factory=list)  # --instances: rows carry their objects
    lesions: LesionLog | None = None
    objects: dict[str, list[dict]] = field(default_factory=dict)  # per case, its lesions.csv rows

    def add(self, pair: CasePair, rows: list[dict]) -> None:
        if self.object_columns:
            objects = fill_missing(rows, self.object_columns)
            self.objects[pair.name] = objects
            if self.lesions is not None:
                self.lesions.add(pair.name, objects)
        if self.writer is not None:
            try:
                self.writer.write_rows(rows)
            except OSError as exc:  # a full disk: stop cleanly; the rows on disk stay readable
                raise output_error(self.writer.path, exc) from None
        self.rows[pair.name] = rows
        self.report(len(self.rows), self.total)


def _resolve_items(options: Options, pairs: Sequence[CasePair], pool: TaskPool) -> tuple[Item, ...]:
    """The labels and regions to score; ``"auto"`` reads every case once to find the labels."""
    labels = options.labels
    if isinstance(labels, str):  # "auto": one pass over ground truth and predictions fixes the labels
        found: set[int] = set()
        for _index, ids in pool.imap(case_label_set, [(p, options.ignore_label) for p in pairs]):
            if not isinstance(ids, TaskLost):  # the scoring pass reports that case on its own rows
                found.update(ids)  # type: ignore[arg-type]
        labels = tuple(sorted(found))
    items = build_items(labels, options)
    check_item_names(items, options.metrics)
    if not items:
        raise SegDiceError(
            "labels: nothing to evaluate; ground truth and predictions hold only background "
            "(pass labels or regions)"
        )
    return items


def _open_out(
    options: Options, columns: list[str], pairs: Sequence[CasePair], items: Sequence[Item]
) -> dict[str, list[dict]]:
    """On resume, the kept rows of an earlier run (rewritten alone to the CSV: a cut last row goes)."""
    if options.out is None:
        return {}
    csv_path = options.csv_path
    if not (options.resume and csv_path.exists()):
        return {}
    kept = _resumable_rows(csv_path, columns, pairs, items)
    write_case_csv(csv_path, columns, [r for p in pairs for r in kept.get(p.name, [])])
    return kept


def _reporter(stack: ExitStack, progress: bool | ProgressCallback, total: int) -> ProgressCallback:
    """The ``(done, total)`` callback for ``progress``: the caller's own, a Rich bar, or nothing."""
    if callable(progress):
        return progress
    bars = stack.enter_context(ProgressBars(bool(progress)))
    step = bars.task("scoring cases", total)
    return lambda done, total: step(completed=done)


def _score_cases(todo: Sequence[CasePair], spec: ScoringSpec, pool: TaskPool, collected: _Collected) -> None:
    """Score every case of ``todo`` (here or in the pool), handing each case's rows on as it ends.

    A case whose worker process died twice gets error rows; the other cases go on.
    """
    for index, rows in pool.imap(_score_in_worker, [(p, spec) for p in todo]):
        pair = todo[index]
        if isinstance(rows, TaskLost):
            rows = error_rows(pair, spec, rows.reason)
        collected.add(pair, rows)  # type: ignore[arg-type]


def _score_in_worker(pair: CasePair, spec: ScoringSpec) -> list[dict]:
    """:func:`score_case`, with the test-only crash of :data:`CRASH_CASE_ENV` in worker processes."""
    if pair.name == os.environ.get(CRASH_CASE_ENV) and multiprocessing.parent_process() is not None:
        os._exit(70)
    return score_case(pair, spec)


def _write_outputs(result: EvaluationResult, out: Path, columns: list[str]) -> dict[str, Path]:
    """Write ``per_case.csv``, ``summary.json`` and (with the report extra) ``report.html``."""
    csv_path = out / "per_case.csv"
    # The streamed CSV is in completion order (and appended to on resume): rewrite it in case order,
    # then label/region, so that the same inputs always give the same file.
    write_case_csv(csv_path, columns, result.per_case)
    write_summary_json(out / "summary.json", result.summary)
    files = {"per_case": csv_path, "summary": out / "summary.json"}
    try:
        import jinja2  # noqa: F401
        import matplotlib  # noqa: F401

        from segdice.report.html import write_report
    except ImportError as exc:  # matplotlib/jinja2 come with the "report" extra
        # stacklevel 3: the warning points at the caller of evaluate()
        warnings.warn(
            f"report.html not written: {exc}; pip install 'segdice[report]'", RuntimeWarning, stacklevel=3
        )
    else:
        files["report"] = write_report(result, out / "report.html")
    return files


def _resumable_rows(
    csv_path: Path, columns: list[str], pairs: Sequence[CasePair], items: Sequence[Item]
) -> dict[str, list[dict]]:
    """Rows of an earlier run to keep: cases scored without error for the same items and files."""
    found_columns, rows = read_case_csv(csv_path)
    # A file of an earlier segdice that lacks a fixed column (spacing_source came later) cannot be kept:
    # the cell is a fact of the run that wrote the row, and a guess would mislabel its distances' unit.
    lacking = [column for column in CASE_COLUMNS if column not in found_columns]
    if lacking:
        raise SegDiceError(
            f"resume: {csv_path} has no {', '.join(lacking)} column{'s' if len(lacking) > 1 else ''}: an earlier "
            "version of segdice wrote it, and its rows cannot be kept; run without --resume to score every "
            "case again (it replaces the file), or write to a new output folder"
        )
    if found_columns != columns:
        raise SegDiceError(
            f"resume: {csv_path} has columns {found_columns}, but this run writes {columns}; "
            "resume with the same metrics, or start a new output folder"
        )
    by_case: dict[str, list[dict]] = {}
    for row in rows:
        by_case.setdefault(row["case"], []).append(row)
    expected = [(item.name, item.label_text) for item in row_items(items, columns)]
    kept = {}
    for pair in pairs:
        mine = by_case.get(pair.name, [])
        pred_file = str(pair.pred) if pair.pred is not None else ""
        if [(r["item"], r["labels"]) for r in mine] == expected and all(
            not r["error"] and r["pred_file"] == pred_file for r in mine
        ):
            kept[pair.name] = mine
    return kept
