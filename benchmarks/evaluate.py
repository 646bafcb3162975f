"""Throughput of `segdice evaluate` against a plain medpy loop and seg-metrics, in cases per second.

Data: synthetic NIfTI pairs (default 50 of 128x128x96, spacing 0.8 x 0.8 x 2.0, 3 labels: ellipsoids of
different sizes; the prediction shifts, grows or shrinks each one, and misses the smallest in some
cases). Every implementation reads the same .nii.gz files and computes Dice, IoU, precision, recall,
HD, HD95 and ASSD per label; segdice also computes MASD and NSD (medpy has no NSD). Runs:

- segdice `evaluate()` with 1 and 2 worker processes (scores only), and with 1 worker writing the
  CSV, JSON and HTML report;
- a plain serial medpy loop (`nibabel.load` + `medpy.metric.binary` per label), the usual script;
- seg-metrics `write_metrics` where installed (`pip install seg-metrics`), on a subset of cases
  because its Dice step walks voxels in Python (see shared/reference/peer-performance.md).

Usage: ``python benchmarks/evaluate.py [--quick] [--cases N] [--seg-metrics-cases K]``. Prints a
markdown table; ratios are against segdice with 1 worker from the same run.

``python benchmarks/evaluate.py --adaptive [--cases N]`` measures the adaptive start of the local pool
instead: the pool's start-up (fork server and 2 workers, to the first result of a trivial task), and
cases/s of ``-j 1``, ``-j 2`` (adaptive: the pool starts only when the rest of the work pays for it) and
``-j 2`` with the pool always started (the behaviour before), on small cases (48x48x32, 3 labels, Dice +
HD95: 0.2-0.26 s each at a load average of 13-15 on the shared 2-core machine). Each run is a fresh
interpreter, so every pool starts cold.

``python benchmarks/evaluate.py --scale [--cases N] [--heavy-cases K]`` measures the backends of issue 17
on one machine: cases/s of 1 and 2 local workers (``workers=``) and of 1 and 2 Dask workers
(``scheduler=`` a ``LocalCluster`` on 127.0.0.1, started and warmed before the clock starts; its start-up
is printed apart), on small cases (48x48x32, 3 labels, Dice + HD95) and heavy ones (64x64x48, 100
labels, every metric of ``ALL_METRICS``); the per-task overhead of each backend (trivial tasks through
``imap``); and what the client does per case (its CSV writer: one case of 100 rows written and flushed).

Two more tables (``--sections formats,labels``):

- formats: ``segdice.io.read_mask`` of one label volume (default 256x256x128, 3 labels) stored as
  NIfTI (``.nii``, ``.nii.gz``), MHA and NRRD (SimpleITK, raw and gzip), median of 7 interleaved reads, beside the
  library's own read (nibabel / SimpleITK) to show what segdice's header checks cost;
- labels: ``evaluate()`` on 50 cases of 96x96x64 with 100 labels (an atlas-like partition; the
  prediction shifts it by a voxel), Dice + IoU + HD95, in cases/s.

Usage: ``python benchmarks/evaluate.py [--quick] [--cases N] [--seg-metrics-cases K]
[--sections main,formats,labels]``. Prints markdown tables; ratios are against segdice with 1 worker
from the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

SPACING = (0.8, 0.8, 2.0)
LABELS = (1, 2, 3)
SEGDICE_METRICS = ("dice", "iou", "precision", "recall", "hd", "hd95", "assd", "masd", "nsd")


def _ellipsoid(shape, centre, radii):
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii, strict=True)) <= 1.0


def make_dataset(folder: Path, n_cases: int, shape: tuple[int, int, int], seed: int = 0) -> tuple[Path, Path]:
    """Write ``n_cases`` ground-truth/prediction NIfTI pairs; return (pred folder, gt folder)."""
    from segdice.io import save_mask

    rng = np.random.default_rng(seed)
    gt_dir, pred_dir = folder / "gt", folder / "pred"
    gt_dir.mkdir(parents=True, exist_ok=True)
    pred_dir.mkdir(parents=True, exist_ok=True)
    sizes = {1: 0.22, 2: 0.12, 3: 0.05}  # a large organ, a medium structure, a small lesion
    for case in range(n_cases):
        gt = np.zeros(shape, dtype=np.uint8)
        pred = np.zeros(shape, dtype=np.uint8)
        for label in LABELS:
            radii = [max(2.0, n * sizes[label] * rng.uniform(0.8, 1.2)) for n in shape]
            centre = [rng.uniform(r + 1, n - r - 1) for n, r in zip(shape, radii, strict=True)]
            gt[_ellipsoid(shape, centre, radii)] = label
            if label == 3 and rng.uniform() < 0.2:
                continue  # the small lesion is missed in about one case in five
            moved = [c + rng.normal(0, 2.0) for c in centre]
            scaled = [r * rng.uniform(0.85, 1.15) for r in radii]
            pred[_ellipsoid(shape, moved, scaled)] = label
        save_mask(gt_dir / f"case_{case:03d}.nii.gz", gt, SPACING)
        save_mask(pred_dir / f"case_{case:03d}.nii.gz", pred, SPACING)
    return pred_dir, gt_dir


def run_segdice(pred_dir: Path, gt_dir: Path, workers: int, out: Path | None) -> tuple[float, dict]:
    from segdice.evaluation import evaluate

    start = time.perf_counter()
    result = evaluate(
        pred_dir, gt_dir, metrics=SEGDICE_METRICS, workers=workers, out=out, labels=list(LABELS)
    )
    elapsed = time.perf_counter() - start
    if result.n_failed:
        raise RuntimeError(f"segdice failed cases: {result.failed_cases}")
    return elapsed, _means(result.per_case)


def run_medpy(pred_dir: Path, gt_dir: Path) -> tuple[float, dict]:
    import nibabel as nib
    from medpy.metric import binary

    rows = []
    warnings.simplefilter("ignore", RuntimeWarning)  # medpy's precision divides 0 by 0 on empty masks
    start = time.perf_counter()
    for gt_path in sorted(gt_dir.iterdir()):
        gt_image = nib.load(gt_path)
        gt = np.asanyarray(gt_image.dataobj)
        pred = np.asanyarray(nib.load(pred_dir / gt_path.name).dataobj)
        spacing = gt_image.header.get_zooms()[:3]
        for label in LABELS:
            p, g = pred == label, gt == label
            row = {"item": str(label), "dice": binary.dc(p, g), "iou": binary.jc(p, g)}
            row["precision"] = binary.precision(p, g)
            row["recall"] = binary.recall(p, g)
            if p.any() and g.any():  # medpy raises on an empty mask; a script has to special-case it
                row["hd"] = binary.hd(p, g, voxelspacing=spacing)
                row["hd95"] = binary.hd95(p, g, voxelspacing=spacing)
                row["assd"] = binary.assd(p, g, voxelspacing=spacing)
            rows.append(row)
    return time.perf_counter() - start, _means(rows)


def run_seg_metrics(pred_dir: Path, gt_dir: Path, n_cases: int, workdir: Path) -> tuple[float, int] | str:
    try:
        import seg_metrics.seg_metrics as sg
    except ImportError:
        return "not installed (pip install seg-metrics)"
    gt_files = sorted(gt_dir.iterdir())[:n_cases]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for index, gt_path in enumerate(gt_files):
            sg.write_metrics(
                labels=list(LABELS),
                gdth_path=str(gt_path),
                pred_path=str(pred_dir / gt_path.name),
                csv_file=str(workdir / f"seg_metrics_{index}.csv"),
                metrics=["dice", "jaccard", "precision", "recall", "hd", "hd95", "msd"],
                verbose=False,
            )
    return time.perf_counter() - start, len(gt_files)


def _means(rows: list[dict]) -> dict:
    """Mean Dice and HD95 per label; ``hd95_both``: HD95 over the cases where both masks are non-empty."""
    means = {}
    for label in LABELS:
        mine = [r for r in rows if r["item"] == str(label)]
        both = [r for r in mine if not r.get("empty_gt", False) and not r.get("empty_pred", False)]
        means[label] = {
            "dice": float(np.nanmean([r["dice"] for r in mine])),
            "hd95": float(np.nanmean([r.get("hd95", np.nan) for r in mine])),
            "hd95_both": float(np.nanmean([r.get("hd95", np.nan) for r in both])),
        }
    return means


def pool_startup(pred_dir: Path, gt_dir: Path, workers: int, root: Path) -> float:
    """Seconds for ``evaluate`` on two cases with a pool: mostly spawning workers that import torch."""
    small_pred, small_gt = root / "startup" / "pred", root / "startup" / "gt"
    small_pred.mkdir(parents=True)
    small_gt.mkdir(parents=True)
    for path in sorted(gt_dir.iterdir())[:2]:
        (small_gt / path.name).symlink_to(path)
        (small_pred / path.name).symlink_to(pred_dir / path.name)
    os.environ["SEGDICE_POOL_START"] = "always"  # two cases alone never pay for a pool: force one
    try:
        return run_segdice(small_pred, small_gt, workers, None)[0]
    finally:
        del os.environ["SEGDICE_POOL_START"]


_TIMED_RUN = """
import sys, time
from segdice.evaluation import evaluate
if __name__ == "__main__":
    began = time.perf_counter()
    result = evaluate(sys.argv[1], sys.argv[2], metrics="dice,hd95", workers=int(sys.argv[3]))
    print(time.perf_counter() - began, result.workers_started, result.n_failed)
"""

_TIMED_START = """
import os, time
from segdice.evaluation._pool import LocalPool
if __name__ == "__main__":
    os.environ["SEGDICE_POOL_START"] = "always"
    began = time.perf_counter()
    with LocalPool(2) as pool:
        list(pool.imap(abs, [(-1,), (-2,)]))
        print(time.perf_counter() - began)
"""


def _fresh(code: str, *args: str, env: dict | None = None) -> list[float]:
    import subprocess

    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                          env={**os.environ, **(env or {})})  # fmt: skip
    return [float(v) for v in done.stdout.split()]


def adaptive_start(n_cases: int, repeats: int = 2) -> None:
    """The adaptive start of the local pool against 1 worker and an always-started pool (issue 17)."""
    with tempfile.TemporaryDirectory(prefix="segdice-bench-") as tmp:
        pred_dir, gt_dir = make_dataset(Path(tmp), n_cases, (48, 48, 32))
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        starts = [_fresh(_TIMED_START)[0] for _ in range(repeats)]
        runs = {}
        for name, workers, env in (("-j 1", 1, None), ("-j 2, adaptive start", 2, None),
                                   ("-j 2, pool always started", 2, {"SEGDICE_POOL_START": "always"})):  # fmt: skip
            runs[name] = [_fresh(_TIMED_RUN, str(pred_dir), str(gt_dir), str(workers), env=env)
                          for _ in range(repeats)]  # fmt: skip
        load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n#### adaptive pool start: {n_cases} small cases (48x48x32, 3 labels, dice + hd95)\n")
    print(f"Machine: {os.cpu_count()} logical CPU(s); load average {load:.1f} before, {load_after:.1f} after. "
          f"Best of {repeats} fresh interpreters each (imports excluded, pool start-up included).\n")  # fmt: skip
    print(f"Pool start-up (fork server + 2 workers, first trivial result): "
          f"{min(starts):.2f} s (runs: {', '.join(f'{s:.2f}' for s in starts)})\n")  # fmt: skip
    print("| run | seconds | cases/s | vs -j 1 | workers started |")
    print("|---|---|---|---|---|")
    base = min(r[0] for r in runs["-j 1"])
    for name, results in runs.items():
        seconds, started, failed = min(results)
        assert not failed
        print(
            f"| {name} | {seconds:.2f} | {n_cases / seconds:.3g} | {base / seconds:.2f}x | {int(started)} |"
        )


def _atlas_dataset(root: Path, n_cases: int, shape: tuple[int, int, int], n_labels: int) -> tuple[Path, Path]:
    """``n_cases`` pairs of an atlas-like ``n_labels`` partition; the prediction moved by one voxel."""
    from segdice.io import save_mask

    rng = np.random.default_rng(2)
    gt_dir, pred_dir = root / "gt", root / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir()
    for case in range(n_cases):
        truth = _partition(shape, n_labels, rng)
        save_mask(gt_dir / f"case_{case:03d}.nii.gz", truth, SPACING)
        save_mask(pred_dir / f"case_{case:03d}.nii.gz", np.roll(truth, 1, axis=case % 3), SPACING)
    return pred_dir, gt_dir


def _per_task_seconds(pool, n_tasks: int = 200) -> float:
    """Seconds per trivial task through ``pool.imap`` (after a first round that starts or warms it)."""
    list(pool.imap(abs, [(-i,) for i in range(4)]))
    began = time.perf_counter()
    found = dict(pool.imap(abs, [(-i,) for i in range(n_tasks)]))
    elapsed = time.perf_counter() - began
    assert found == {i: i for i in range(n_tasks)}
    return elapsed / n_tasks


def _csv_seconds_per_case(rows: list[dict], root: Path) -> tuple[float, int]:
    """What the client pays per case for the CSV: the rows of one case written and flushed, median of 20."""
    from segdice.evaluation._scoring import case_columns
    from segdice.report.tables import CaseCSVWriter

    case = rows[0]["case"]
    mine = [r for r in rows if r["case"] == case]
    columns = list(mine[0])
    assert set(columns) >= set(case_columns(()))
    times = []
    with CaseCSVWriter(root / "writer.csv", columns) as writer:
        for _ in range(20):
            began = time.perf_counter()
            writer.write_rows(mine)
            times.append(time.perf_counter() - began)
    return float(np.median(times)), len(mine)


def scale(n_small: int, n_heavy: int) -> None:
    """Cases/s of 1 and 2 local workers and 1 and 2 Dask workers, small and heavy cases (issue 17)."""
    import dask
    import distributed

    from segdice.evaluation import ALL_METRICS, evaluate
    from segdice.evaluation._dask_pool import LOCAL_CLUSTER_CONFIG, DaskPool
    from segdice.evaluation._pool import LocalPool

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="segdice-bench-") as tmp:
        root = Path(tmp)
        small = (*make_dataset(root / "small", n_small, (48, 48, 32)), "dice,hd95", n_small)
        heavy = (*_atlas_dataset(root / "heavy", n_heavy, (64, 64, 48), 100), ALL_METRICS, n_heavy)
        datasets = {"small (48x48x32, 3 labels, dice+hd95)": small,
                    f"heavy (64x64x48, 100 labels, {len(ALL_METRICS)} metrics)": heavy}  # fmt: skip
        results = []  # (dataset, backend, workers, seconds, workers started)
        reference = {}

        def timed(name, backend, count, **where):
            pred, gt, metrics, _ = datasets[name]
            began = time.perf_counter()
            result = evaluate(pred, gt, metrics=metrics, **where)
            seconds = time.perf_counter() - began
            if result.n_failed:
                raise RuntimeError(f"failed cases: {result.failed_cases}")
            values = [(r["case"], r["item"], r.get("dice"), r.get("hd95")) for r in result.per_case]
            if reference.setdefault(name, values) != values:
                raise RuntimeError(f"{backend} with {count} worker(s) gave other values on {name}")
            results.append((name, backend, count, seconds, result.workers_started))
            return result

        warm = {}  # one case of each dataset: its first-use imports (SciPy, scikit-image) paid untimed
        for name, (pred, gt, metrics, _) in datasets.items():
            first = sorted(gt.iterdir())[0].name
            (root / name / "gt").mkdir(parents=True)
            (root / name / "pred").mkdir()
            (root / name / "gt" / first).symlink_to(gt / first)
            (root / name / "pred" / first).symlink_to(pred / first)
            warm[name] = (root / name / "pred", root / name / "gt", metrics)
            evaluate(warm[name][0], warm[name][1], metrics=metrics, workers=1)
        overhead = {}
        for name in datasets:
            for workers in (1, 2):
                result = timed(name, "local pool (adaptive start)", workers, workers=workers)
        csv_seconds, csv_rows = _csv_seconds_per_case(result.per_case, root)
        os.environ["SEGDICE_POOL_START"] = "always"
        try:
            with LocalPool(2) as pool:
                overhead["local pool, 2 workers"] = _per_task_seconds(pool)
        finally:
            del os.environ["SEGDICE_POOL_START"]
        starts = {}
        for workers in (1, 2):
            began = time.perf_counter()
            with dask.config.set(LOCAL_CLUSTER_CONFIG), distributed.LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, silence_logs=50,
            ) as cluster, distributed.Client(cluster, set_as_default=False) as client:  # fmt: skip
                client.run(__import__, "segdice.evaluation._run")
                starts[workers] = time.perf_counter() - began
                for pred, gt, metrics in warm.values():  # every worker pays its first-use imports untimed
                    for _ in range(workers):
                        evaluate(pred, gt, metrics=metrics, scheduler=client)
                for name in datasets:
                    timed(name, "Dask LocalCluster", workers, scheduler=client)
                with DaskPool(client) as pool:
                    overhead[f"Dask, {workers} worker(s)"] = _per_task_seconds(pool)
    load_after = os.getloadavg()[0]
    print(f"\n#### local pool vs Dask workers on one machine ({os.cpu_count()} logical CPUs)\n")
    print(f"Load average {load:.1f} before, {load_after:.1f} after. One run each; every run gave the same "
          "values. One case of each dataset was scored first, untimed, in this process and on the Dask "
          "workers (first-use imports). The local pool's seconds include its start-up (fork server, "
          "workers importing torch and SciPy) when it started; the Dask clusters were started first: "
          + ", ".join(f"{w} worker(s) {s:.1f} s" for w, s in starts.items()) + ".\n")  # fmt: skip
    print(
        "| cases | backend | workers | seconds | cases/s | s per case | vs local 1 worker | workers started |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, backend, workers, seconds, started in results:
        n = datasets[name][3]
        base = next(r[3] for r in results if r[0] == name and r[2] == 1 and r[1].startswith("local"))
        print(f"| {name} | {backend} | {workers} | {seconds:.2f} | {n / seconds:.3g} | {seconds / n:.3f} | "
              f"{base / seconds:.2f}x | {started} |")  # fmt: skip
    print("\n| per-task overhead (trivial tasks through imap) | ms per task |")
    print("|---|---|")
    for name, seconds in overhead.items():
        print(f"| {name} | {seconds * 1e3:.2f} |")
    print(f"\nThe client's CSV writer: {csv_seconds * 1e3:.2f} ms per case of {csv_rows} rows (written and "
          "flushed; median of 20).")  # fmt: skip


def _median_seconds(*functions, repeats: int = 7) -> list[float]:
    """Median wall time of each function, the calls interleaved so that drifts in load hit all alike."""
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for mine, function in zip(times, functions, strict=True):
            start = time.perf_counter()
            function()
            mine.append(time.perf_counter() - start)
    return [float(np.median(mine)) for mine in times]


def bench_formats(root: Path, shape: tuple[int, int, int]) -> None:
    """read_mask of one volume in every spatial format, against the library's own reader."""
    import nibabel as nib
    import SimpleITK as sitk

    from segdice.io import read_mask, save_mask

    rng = np.random.default_rng(1)
    volume = np.zeros(shape, np.uint8)
    for label in LABELS:
        radii = [n * 0.1 * label for n in shape]
        centre = [rng.uniform(r + 1, n - r - 1) for n, r in zip(shape, radii, strict=True)]
        volume[_ellipsoid(shape, centre, radii)] = label
    folder = root / "formats"
    folder.mkdir()
    files = {}
    for suffix in (".nii", ".nii.gz"):
        files[suffix] = save_mask(folder / f"v{suffix}", volume, SPACING)
    image = sitk.GetImageFromArray(volume.transpose(2, 1, 0).copy())  # the same voxels, ITK order
    image.SetSpacing(SPACING)
    for suffix, compress in ((".mha", False), (".mha", True), (".nrrd", False), (".nrrd", True)):
        name = f"v{'_gz' if compress else ''}{suffix}"
        sitk.WriteImage(image, str(folder / name), useCompression=compress)
        files[f"{suffix}{' gzip' if compress else ' raw'}"] = folder / name
    print(f"\n#### read_mask: one {shape} uint8 volume, 3 labels, median of 7 interleaved reads\n")
    print("| format | file MB | segdice read_mask s | library read s | library |")
    print("|---|---|---|---|---|")
    for label, path in files.items():
        if path.name.endswith((".nii", ".nii.gz")):
            library = "nibabel"

            def theirs(path=path):
                return np.asarray(nib.load(path).dataobj)
        else:
            library = "SimpleITK"

            def theirs(path=path):
                return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))

        ours_s, theirs_s = _median_seconds(lambda path=path: read_mask(path), theirs)
        size = path.stat().st_size / 1e6
        print(f"| {label} | {size:.2f} | {ours_s:.4f} | {theirs_s:.4f} | {library} |")
    print(
        "\n`.nii` is memory-mapped by nibabel in both columns: its bytes are read on first use. The other "
        "rows decompress or copy the whole volume."
    )


def _partition(shape: tuple[int, int, int], n_labels: int, rng: np.random.Generator) -> np.ndarray:
    """An atlas-like map: every voxel takes the label of its nearest of ``n_labels`` random seeds."""
    from scipy.spatial import cKDTree

    seeds = rng.uniform(0, 1, (n_labels, 3)) * np.asarray(shape)
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1).reshape(-1, 3)
    nearest = cKDTree(seeds).query(grid)[1]
    labels = (nearest + 1).astype(np.uint8 if n_labels < 255 else np.uint16).reshape(shape)
    labels[:2] = 0  # some background
    return labels


def bench_many_labels(root: Path, n_cases: int, shape: tuple[int, int, int], n_labels: int) -> None:
    """evaluate() cases/s on a 100-label atlas-like dataset."""
    from segdice.evaluation import evaluate
    from segdice.io import save_mask

    rng = np.random.default_rng(2)
    gt_dir, pred_dir = root / "atlas" / "gt", root / "atlas" / "pred"
    gt_dir.mkdir(parents=True)
    pred_dir.mkdir()
    start = time.perf_counter()
    for case in range(n_cases):
        truth = _partition(shape, n_labels, rng)
        save_mask(gt_dir / f"case_{case:03d}.nii.gz", truth, SPACING)
        save_mask(pred_dir / f"case_{case:03d}.nii.gz", np.roll(truth, 1, axis=case % 3), SPACING)
    print(f"made {n_cases} {n_labels}-label pairs in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    print(f"\n#### evaluate(): {n_cases} cases of {shape}, {n_labels} labels, dice + iou + hd95\n")
    print("| workers | seconds | cases/s | rows |")
    print("|---|---|---|---|")
    for workers in (1, 2):
        start = time.perf_counter()
        result = evaluate(pred_dir, gt_dir, metrics="dice,iou,hd95", workers=workers)
        seconds = time.perf_counter() - start
        if result.n_failed:
            raise RuntimeError(f"segdice failed cases: {result.failed_cases}")
        print(f"| {workers} | {seconds:.1f} | {n_cases / seconds:.3g} | {len(result.per_case)} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 cases of 64x64x48 (a smoke run)")
    parser.add_argument(
        "--cases", type=int, default=None, help="number of cases (default 50; 6 with --quick)"
    )
    parser.add_argument("--seg-metrics-cases", type=int, default=2, help="cases given to seg-metrics (slow)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="segdice worker counts")
    parser.add_argument("--adaptive", action="store_true", help="the adaptive pool start (small cases)")
    parser.add_argument("--scale", action="store_true", help="local pool vs Dask workers (issue 17)")
    parser.add_argument("--heavy-cases", type=int, default=6, help="heavy cases of --scale (100 labels)")
    parser.add_argument(
        "--sections", default="main,formats,labels", help="comma-separated: main, formats, labels"
    )
    args = parser.parse_args(argv)
    if args.adaptive:
        adaptive_start(args.cases or 50)
        return
    if args.scale:
        scale(args.cases or 50, args.heavy_cases)
        return
    sections = {part.strip() for part in args.sections.split(",")}
    if "formats" in sections or "labels" in sections:
        with tempfile.TemporaryDirectory(prefix="segdice-bench-") as tmp:
            if "formats" in sections:
                bench_formats(Path(tmp), (128, 128, 64) if args.quick else (256, 256, 128))
            if "labels" in sections:
                bench_many_labels(
                    Path(tmp), 6 if args.quick else 50, (48, 48, 32) if args.quick else (96, 96, 64), 100
                )
    if "main" not in sections:
        return
    shape = (64, 64, 48) if args.quick else (128, 128, 96)
    n_cases = args.cases or (6 if args.quick else 50)

    with tempfile.TemporaryDirectory(prefix="segdice-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        pred_dir, gt_dir = make_dataset(root, n_cases, shape)
        print(f"made {n_cases} pairs of {shape} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

        results = []  # (name, workers, cases, seconds, note)
        means = {}
        for workers in args.workers:
            seconds, means[f"segdice-{workers}"] = run_segdice(pred_dir, gt_dir, workers, None)
            name = f"segdice evaluate() (scores only, {len(SEGDICE_METRICS)} metrics)"
            results.append((name, workers, n_cases, seconds, ""))
            if workers > 1:
                startup = pool_startup(pred_dir, gt_dir, workers, root)
                note = f"derived: minus {startup:.1f} s of pool start-up (evaluate() of 2 cases with {workers} workers)"
                if seconds > startup:
                    results.append((name, workers, n_cases, seconds - startup, note))
        seconds, _ = run_segdice(pred_dir, gt_dir, 1, root / "out")
        results.append(
            ("segdice evaluate() + per_case.csv, summary.json, report.html", 1, n_cases, seconds, "")
        )
        seconds, means["medpy"] = run_medpy(pred_dir, gt_dir)
        results.append(
            ("medpy loop (dc, jc, precision, recall, hd, hd95, assd; no NSD)", 1, n_cases, seconds, "")
        )
        outcome = run_seg_metrics(pred_dir, gt_dir, min(args.seg_metrics_cases, n_cases), root)
        if isinstance(outcome, str):
            results.append(("seg-metrics write_metrics", 1, 0, float("nan"), outcome))
        else:
            results.append(
                (
                    "seg-metrics write_metrics (dice, jaccard, precision, recall, hd, hd95, msd)",
                    1,
                    outcome[1],
                    outcome[0],
                    f"first {outcome[1]} case(s) only",
                )
            )

    base = n_cases / results[0][3]
    print(f"\n#### evaluate throughput: {n_cases} NIfTI pairs {shape}, 3 labels, spacing {SPACING}\n")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} logical CPU(s), Python {platform.python_version()}. "
          "Wall time of one run each; the machine is shared, so timings are noisy.\n")  # fmt: skip
    print("| implementation | workers | cases | seconds | cases/s | vs segdice 1 worker | note |")
    print("|---|---|---|---|---|---|---|")
    for name, workers, cases, seconds, note in results:
        rate = cases / seconds if cases and seconds == seconds else float("nan")
        ratio = f"{rate / base:.3g}x" if rate == rate else ""
        rate_text = f"{rate:.3g}" if rate == rate else "n/a"
        seconds_text = f"{seconds:.1f}" if seconds == seconds else "n/a"
        print(f"| {name} | {workers} | {cases} | {seconds_text} | {rate_text} | {ratio} | {note} |")

    print("\nMean over cases per label (agreement check; medpy's HD95 pools both directions, segdice takes the larger directed one):\n")  # fmt: skip
    print("| label | segdice Dice | medpy Dice | segdice HD95, all cases | segdice HD95, both masks present | medpy HD95 (both present) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for label in LABELS:
        s, m = means[next(iter(means))][label], means["medpy"][label]
        print(f"| {label} | {s['dice']:.4f} | {m['dice']:.4f} | {s['hd95']:.3f} | {s['hd95_both']:.3f} | {m['hd95']:.3f} |")  # fmt: skip
    print(
        "\nsegdice scores a missed structure at the worst case (the image diagonal, here "
        f"{np.sqrt(sum((n * d) ** 2 for n, d in zip(shape, SPACING, strict=True))):.1f} mm); "
        "a medpy loop has to skip it (medpy raises on an empty mask)."
    )


if __name__ == "__main__":
    main()
