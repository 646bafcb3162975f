"""Size and build time of ``report.html`` at many labels (default 200 labels x 100 cases).

Data: synthetic NIfTI pairs of 40 x 40 x 20 voxels (spacing 1 x 1 x 2 mm, RAS affine) holding ``labels``
boxes of 3 x 3 x 2 voxels (label k at its own place); each case's prediction shifts some boxes by a
voxel, drops a few and erodes others, seeded by the case number, so every label has a spread of
scores. The evaluation runs once (``evaluate(..., out=None)``); then :func:`segdice.report.html.render_report`
is timed alone (wall clock and this process's CPU time, which a loaded machine inflates less), and the
page's size is measured.

Usage: ``python benchmarks/report_scale.py [--labels 200] [--cases 100] [--workers 2] [--keep DIR]``.
Prints a markdown table. ``make_dataset`` is also what ``docs/scripts/report_screenshots.py`` draws
its screenshots from.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE = (40, 40, 20)
SPACING = (1.0, 1.0, 2.0)
# Where label k's box starts: a grid of 3 x 3 x 2 boxes with a voxel of background between them.
_STEP = (4, 4, 3)


def _box(k: int) -> tuple[slice, slice, slice]:
    per_row, per_plane = SHAPE[0] // _STEP[0] - 1, (SHAPE[0] // _STEP[0] - 1) * (SHAPE[1] // _STEP[1] - 1)
    z, rest = divmod(k, per_plane)
    y, x = divmod(rest, per_row)
    start = (1 + x * _STEP[0], 1 + y * _STEP[1], 1 + z * _STEP[2])
    return tuple(slice(s, s + size) for s, size in zip(start, (3, 3, 2), strict=True))  # type: ignore[return-value]


def make_dataset(root: str | os.PathLike[str], n_labels: int, n_cases: int) -> tuple[Path, Path]:
    """Write ``n_cases`` ground-truth/prediction NIfTI pairs with ``n_labels`` labels under ``root``.

    Returns
    -------
    tuple of Path
        The prediction and ground-truth folders.
    """
    from segdice.io import save_mask

    capacity = (SHAPE[0] // _STEP[0] - 1) * (SHAPE[1] // _STEP[1] - 1) * (SHAPE[2] // _STEP[2])
    if n_labels > capacity:
        raise SystemExit(f"--labels: at most {capacity} fit in {SHAPE}")
    root = Path(root)
    pred_dir, gt_dir = root / "pred", root / "gt"
    pred_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    gt = np.zeros(SHAPE, np.uint8 if n_labels < 256 else np.uint16)
    for k in range(n_labels):
        gt[_box(k)] = k + 1
    for case in range(n_cases):
        rng = np.random.default_rng(case)
        pred = np.zeros_like(gt)
        for k in range(n_labels):
            fate = rng.random()
            box = _box(k)
            if fate < 0.05:
                continue  # missed entirely
            if fate < 0.35:  # shifted by a voxel along a random axis
                axis = int(rng.integers(0, 3))
                shift = [int(axis == a) for a in range(3)]
                box = tuple(slice(b.start + d, b.stop + d) for b, d in zip(box, shift, strict=True))
            pred[box] = k + 1
            if 0.35 <= fate < 0.6:  # a corner eroded
                pred[box[0].start, box[1].start, box[2]] = 0
        name = f"case_{case:03d}.nii.gz"
        save_mask(gt_dir / name, gt, SPACING)
        save_mask(pred_dir / name, pred, SPACING)
    return pred_dir, gt_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="write the data and report here")
    args = parser.parse_args(argv)

    from segdice.evaluation import evaluate
    from segdice.report.html import render_report

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        pred, gt = make_dataset(root, args.labels, args.cases)
        start = time.perf_counter()
        result = evaluate(pred, gt, workers=args.workers, metrics="dice,iou,precision,recall,hd95,assd,nsd")
        scored = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        html = render_report(result)
        built, built_cpu = time.perf_counter() - start, time.process_time() - cpu
        if args.keep:
            (root / "report.html").write_text(html, encoding="utf-8")
    size = len(html.encode("utf-8"))
    images = html.count('src="data:image/png')
    print(f"load: {os.getloadavg()[0]:.1f} (1-min average), python {sys.version.split()[0]}")
    print(
        "| labels | cases | rows | scoring (s) | report build (s, wall) | (s, CPU) | report size (MB) | images |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.labels} | {args.cases} | {len(result.per_case)} | {scored:.1f} | {built:.1f} | "
        f"{built_cpu:.1f} | {size / 1e6:.2f} | {images} |"
    )


if __name__ == "__main__":
    main()
