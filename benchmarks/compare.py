"""Time of `segdice compare` on a large comparison, against SciPy's per-series bootstrap.

Data: synthetic runs in the exact files `segdice evaluate` writes (its schema is taken from a real
one-case run): by default 5 runs x 1,000 cases x 100 labels x 4 metrics (dice, nsd, hd95, assd), so
10 pairs x 100 labels x 4 metrics = 4,000 paired comparisons, with 10,000 bootstrap resamples (the
default). Stages timed separately:

- load: reading and checking the five runs (per_case.csv + summary.json, the ground-truth check);
- statistics: `compare(..., out=None)` as a whole (load included), i.e. every CI, test, effect size
  and ranking with its bootstrap distribution and Kendall tau;
- outputs: writing comparison.csv, .json and .html.

The reference is what a user would write with SciPy: `scipy.stats.bootstrap((a, b), paired=True,
vectorized=True, method="percentile")` of the mean difference, one call per comparison; it is timed on a
few comparisons and extrapolated to all of them (the ratio says how much faster the shared-index-matrix
bootstrap is on the same work, the CIs only, without tests or rankings).

The timed stages run in a fresh child process, so its peak RSS is the comparison's own.

Usage: ``python benchmarks/compare.py [--quick] [--runs R] [--cases N] [--items I] [--resamples B]``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

METRICS = ("dice", "nsd", "hd95", "assd")


def _template(folder: Path) -> tuple[list[str], dict, dict]:
    """Columns, one row and the summary of a real one-case `segdice evaluate` run."""
    import segdice
    from segdice.io import save_mask
    from segdice.report.tables import read_case_csv

    folder = folder / "template"
    (folder / "gt").mkdir(parents=True)
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 1
    save_mask(folder / "gt" / "a.npy", mask)
    segdice.evaluate(folder / "gt", folder / "gt", out=folder / "out", metrics=",".join(METRICS), workers=1)
    columns, rows = read_case_csv(folder / "out" / "per_case.csv")
    summary = json.loads((folder / "out" / "summary.json").read_text())
    return columns, rows[0], summary


def make_runs(folder: Path, n_runs: int, n_cases: int, n_items: int, seed: int = 0) -> list[Path]:
    """Write ``n_runs`` runs on the same synthetic ground truth; each run is a little better than the last."""
    from segdice.report.tables import write_case_csv, write_summary_json

    columns, row0, summary = _template(folder)
    rng = np.random.default_rng(seed)
    difficulty = rng.uniform(0.5, 0.9, (n_items, n_cases))  # shared by all runs: paired data
    gt_voxels = rng.integers(100, 10000, (n_items, n_cases))
    paths = []
    for r in range(n_runs):
        dice = np.clip(difficulty + 0.005 * r + rng.normal(0, 0.03, difficulty.shape), 0, 1)
        values = {
            "dice": dice,
            "nsd": np.clip(dice + rng.normal(0, 0.02, dice.shape), 0, 1),
            "hd95": 20 * (1 - dice) + rng.exponential(1.0, dice.shape),
            "assd": 5 * (1 - dice) + rng.exponential(0.3, dice.shape),
        }
        rows = []
        for k in range(n_cases):
            for i in range(n_items):
                row = dict(row0)
                row.update(
                    case=f"case{k:05d}",
                    item=f"label{i + 1}",
                    labels=str(i + 1),
                    gt_voxels=int(gt_voxels[i, k]),
                )
                for metric in METRICS:
                    row[metric] = float(values[metric][i, k])
                rows.append(row)
        path = folder / f"run{r}"
        path.mkdir()
        write_case_csv(path / "per_case.csv", columns, rows)
        meta = copy.deepcopy(summary)
        meta["counts"]["cases"] = n_cases
        meta["items"] = [
            {"name": f"label{i + 1}", "labels": [i + 1], "region": False} for i in range(n_items)
        ]
        meta["inputs"]["labels"] = list(range(1, n_items + 1))
        write_summary_json(path / "summary.json", meta)
        paths.append(path)
    return paths


def _scipy_bootstrap_seconds(paths: list[Path], n_resamples: int, n_series: int) -> tuple[float, int]:
    """CPU seconds per comparison of scipy.stats.bootstrap (paired), measured on ``n_series`` comparisons."""
    from scipy import stats

    from segdice.report.tables import read_case_csv

    _, rows_a = read_case_csv(paths[0] / "per_case.csv")
    _, rows_b = read_case_csv(paths[1] / "per_case.csv")
    items = sorted({r["item"] for r in rows_a})[:n_series]
    start = time.process_time()
    for item in items:
        a = np.array([r["dice"] for r in rows_a if r["item"] == item])
        b = np.array([r["dice"] for r in rows_b if r["item"] == item])
        stats.bootstrap(
            (a, b),
            lambda x, y, axis: np.mean(x - y, axis=axis),
            paired=True,
            vectorized=True,
            n_resamples=n_resamples,
            method="percentile",
            rng=np.random.default_rng(0),
        )
    return (time.process_time() - start) / len(items), len(items)


class _Clock:
    """Wall and CPU seconds of named stages (CPU time shows the work on a shared machine)."""

    def __init__(self) -> None:
        self.seconds: dict[str, tuple[float, float]] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.seconds[name] = (time.perf_counter() - wall, time.process_time() - cpu)


def _measure(paths: list[Path], n_resamples: int, out: Path) -> dict:
    """Time the stages in this (fresh) process; its peak RSS is the comparison's own."""
    import scipy.stats  # noqa: F401  (imported before timing: its import is not the comparison's cost)

    from segdice.comparison import compare
    from segdice.comparison._runs import check_same_ground_truth, load_run

    clock = _Clock()
    with clock("load"):
        runs = [load_run(p, p.name) for p in paths]
        check_same_ground_truth(runs, runs[0].items)
    del runs
    with clock("compare"):
        result = compare(paths, resamples=n_resamples)
    with clock("write"):
        result.write(out)
    return {
        "seconds": clock.seconds,
        "n_comparisons": len(result.comparisons),
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2 runs x 200 cases x 10 labels x 1,000 resamples"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--resamples", type=int, default=10000)
    parser.add_argument(
        "--scipy-series", type=int, default=10, help="comparisons timed with scipy.stats.bootstrap"
    )
    parser.add_argument("--child", nargs=2, metavar=("ROOT", "RESAMPLES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        root = Path(args.child[0])
        paths = sorted(p for p in root.iterdir() if p.name.startswith("run"))
        print(json.dumps(_measure(paths, int(args.child[1]), root / "out")))
        return
    if args.quick:
        args.runs, args.cases, args.items, args.resamples, args.scipy_series = 2, 200, 10, 1000, 3

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        paths = make_runs(root, args.runs, args.cases, args.items)
        print(
            f"wrote {args.runs} runs x {args.cases} cases x {args.items} labels in {time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(root), str(args.resamples)],
            capture_output=True,
            text=True,
            check=True,
        )
        measured = json.loads(child.stdout.strip().splitlines()[-1])
        per_series, n_timed = _scipy_bootstrap_seconds(paths, args.resamples, args.scipy_series)
    seconds = measured["seconds"]
    n_comparisons = measured["n_comparisons"]
    scipy_total = per_series * n_comparisons
    load = os.getloadavg()
    print(
        f"\n{args.runs} runs x {args.cases} cases x {args.items} labels x {len(METRICS)} metrics = "
        f"{n_comparisons} paired comparisons, {args.resamples} resamples"
    )
    print(
        f"python {platform.python_version()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, peak RSS of the comparison "
        f"{measured['peak_mib']:.0f} MiB\n"
    )
    print("| stage | wall s | CPU s |")
    print("|---|---:|---:|")
    for key, label in (
        ("load", "load + ground-truth check"),
        ("compare", "compare(): statistics, load included"),
        ("write", "write csv + json + html"),
    ):
        wall, cpu = seconds[key]
        print(f"| {label} | {wall:.2f} | {cpu:.2f} |")
    statistics_wall = seconds["compare"][0] - seconds["load"][0]
    statistics_cpu = seconds["compare"][1] - seconds["load"][1]
    print(f"| statistics alone (compare minus load) | {statistics_wall:.2f} | {statistics_cpu:.2f} |")
    print(
        f"\nscipy.stats.bootstrap, paired, one call per comparison: {per_series:.3f} CPU s x {n_comparisons} = "
        f"{scipy_total:.0f} CPU s (extrapolated from {n_timed}) for the CIs alone; "
        f"ratio to compare()'s statistics = {scipy_total / statistics_cpu:.0f}x"
    )


if __name__ == "__main__":
    main()
