"""Per-class Dice of label maps: segdice against MONAI, torchmetrics, medpy and the bincount reference.

Run ``python benchmarks/metrics.py`` (full, several minutes) or ``python benchmarks/metrics.py --quick``
(small maps, a smoke run). It prints one markdown table per case.

Method: the maps of each case are generated once (seeded, nested ellipsoids; the prediction is the
ground truth shifted by a few voxels plus 1% random labels) and saved to a temporary folder. Every
(case, implementation) pair then runs in a fresh process with 2 threads. In every timed round that
process also times one read of both maps (the floor: ``np.sum`` of each) and the reference, one
``np.bincount(gt * C + pred)`` over every voxel, so each ratio is the median of per-round quotients
measured side by side. Each implementation returns the [image, class] Dice matrix, compared with the
reference's. Peak memory is the rise of the resident set (VmHWM, reset through /proc/self/clear_refs)
during one extra, untimed call. Timings on a shared machine are noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

THREADS = 2

# name: (shape [B, *spatial], classes, stored dtype)
FULL_CASES = {
    "vol4": ((1, 256, 256, 256), 4, "int64"),
    "vol4-u8": ((1, 256, 256, 256), 4, "uint8"),
    "vol14": ((1, 256, 256, 256), 14, "int64"),
    "vol14-u8": ((1, 256, 256, 256), 14, "uint8"),
    "vol113": ((1, 143, 155, 181), 113, "int64"),
    "batch2d": ((64, 512, 512), 4, "int64"),
}
QUICK_CASES = {
    "vol4": ((1, 64, 64, 64), 4, "int64"),
    "vol14-u8": ((1, 64, 64, 64), 14, "uint8"),
    "vol113": ((1, 36, 39, 45), 113, "int64"),
    "batch2d": ((4, 128, 128), 4, "int64"),
}

IMPLEMENTATIONS = {
    "floor": "floor: read both maps once (np.sum of a uint64 view)",
    "bincount": "reference: np.bincount(gt*C + pred), numpy",
    "segdice": "segdice dice_score, numpy arrays",
    "segdice-torch": "segdice dice_score, torch tensors",
    "medpy": "medpy.metric.binary.dc per class",
    "monai": "MONAI DiceMetric, index input (num_classes=C)",
    "torchmetrics": "torchmetrics DiceScore, index input (update+compute)",
}

# torchmetrics one-hots index input to int64 [B, C, *spatial] for both maps (and more temporaries);
# skip it where that alone would exceed this many GiB on a shared machine.
TORCHMETRICS_MAX_GIB = 6.0


# --- data -------------------------------------------------------------------------------------------


def make_maps(shape, num_classes, seed=0):
    """Nested random ellipsoids per image; prediction = shifted ground truth with 1% random labels."""
    rng = np.random.default_rng(seed)
    batch, spatial = shape[0], shape[1:]
    gt = np.zeros(shape, np.int64)
    for b in range(batch):
        grids = np.ogrid[tuple(slice(0, s) for s in spatial)]
        for c in range(1, num_classes):
            center = [rng.uniform(0.2, 0.8) * s for s in spatial]
            radii = [rng.uniform(0.06, 0.35) * s for s in spatial]
            box = tuple(
                slice(max(0, int(c0 - r) - 1), min(s, int(c0 + r) + 2))
                for c0, r, s in zip(center, radii, spatial, strict=True)
            )
            nd = len(spatial)
            sub = [
                g[tuple(box[d] if i == d else slice(None) for i in range(nd))] for d, g in enumerate(grids)
            ]
            dist = sum(((g - c0) / r) ** 2 for g, c0, r in zip(sub, center, radii, strict=True))
            region = gt[b][box]
            region[dist <= 1] = c
    shift = tuple(int(s) for s in rng.integers(-3, 4, len(spatial)))
    pred = np.roll(gt, shift, axis=tuple(range(1, len(shape))))
    noise = rng.random(shape) < 0.01
    pred[noise] = rng.integers(0, num_classes, int(noise.sum()))
    return gt, pred


def reference_dice(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """[B, C] Dice from one bincount of the pair code over every voxel (NaN where both are empty)."""
    batch = gt.shape[0]
    c = num_classes
    code = gt.reshape(batch, -1).astype(np.intp) * c + pred.reshape(batch, -1)
    code += (np.arange(batch) * c * c)[:, None]
    matrix = np.bincount(code.ravel(), minlength=batch * c * c).reshape(batch, c, c)
    tp = np.diagonal(matrix, axis1=1, axis2=2).astype(np.float64)
    den = matrix.sum(1) + matrix.sum(2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 2 * tp / den


# --- implementations (run inside a worker) --------------------------------------------------------------


def build(impl: str, gt: np.ndarray, pred: np.ndarray, num_classes: int):
    """Return a callable computing the [B, C] Dice matrix (or None for the floor)."""
    import torch

    c = num_classes
    if impl == "floor":
        # np.sum of uint8 upcasts every element; a uint64 view reads the same bytes at memory speed
        gt_words = gt.reshape(-1).view(np.uint64) if gt.nbytes % 8 == 0 else gt
        pred_words = pred.reshape(-1).view(np.uint64) if pred.nbytes % 8 == 0 else pred

        def read_both() -> None:
            gt_words.sum()
            pred_words.sum()

        return read_both
    if impl == "bincount":
        return lambda: reference_dice(gt, pred, c)
    if impl == "segdice":
        from segdice.metrics import dice_score

        return lambda: dice_score(pred, gt, num_classes=c).numpy()
    if impl == "segdice-torch":
        from segdice.metrics import dice_score

        tg, tp = torch.from_numpy(gt), torch.from_numpy(pred)
        return lambda: dice_score(tp, tg, num_classes=c).numpy()
    if impl == "medpy":
        from medpy.metric.binary import dc

        def medpy_dice():
            out = np.empty((gt.shape[0], c))
            for b in range(gt.shape[0]):
                for k in range(c):
                    out[b, k] = dc(pred[b] == k, gt[b] == k)
            return out

        return medpy_dice
    if impl == "monai":
        from monai.metrics import DiceMetric

        tg, tp = (
            torch.from_numpy(gt.astype(np.int64))[:, None],
            torch.from_numpy(pred.astype(np.int64))[:, None],
        )

        def monai_dice():
            metric = DiceMetric(include_background=True, reduction="none", num_classes=c)
            metric(tp, tg)
            out = metric.aggregate().double().numpy()
            metric.reset()
            return out

        return monai_dice
    if impl == "torchmetrics":
        from torchmetrics.segmentation import DiceScore

        tg, tp = torch.from_numpy(gt.astype(np.int64)), torch.from_numpy(pred.astype(np.int64))

        def torchmetrics_dice():
            # per image (one update each) so the [B, C] matrix can be compared with the others
            out = []
            for b in range(gt.shape[0]):
                metric = DiceScore(
                    num_classes=c, average="none", input_format="index", include_background=True
                )
                metric.update(tp[b : b + 1], tg[b : b + 1])
                out.append(metric.compute().double().numpy())
            return np.stack(out)

        return torchmetrics_dice
    raise ValueError(impl)


def _rss_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mib(fn) -> float | None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    before = _rss_kib("VmRSS")
    fn()
    peak = _rss_kib("VmHWM")
    return None if before is None or peak is None else max(0, peak - before) / 1024


def worker(data_dir: str, case: str, impl: str, rounds: int) -> dict:
    import torch

    torch.set_num_threads(THREADS)
    meta = json.loads((Path(data_dir) / f"{case}.json").read_text())
    gt = np.load(Path(data_dir) / f"{case}-gt.npy")
    pred = np.load(Path(data_dir) / f"{case}-pred.npy")
    c = meta["classes"]
    floor = build("floor", gt, pred, c)
    ref = build("bincount", gt, pred, c)
    fn = build(impl, gt, pred, c)
    # first call: warm-up, agreement check, and a time estimate to cap the rounds of slow peers
    start = time.perf_counter()
    values = fn()
    first = time.perf_counter() - start
    if first > 5:
        rounds = min(rounds, 2)
    elif first > 1:
        rounds = min(rounds, 3)
    agreement = ""
    if values is not None:
        want = ref()
        both = ~np.isnan(want) & ~np.isnan(values)
        diff = float(np.max(np.abs(values[both] - want[both]))) if both.any() else 0.0
        nan_mismatch = int(np.sum(np.isnan(want) != np.isnan(values)))
        agreement = f"max diff {diff:.1e}" + (f", {nan_mismatch} NaN differ" if nan_mismatch else "")
    floor()
    ref()
    times, vs_ref, vs_floor = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        floor()
        t1 = time.perf_counter()
        ref()
        t2 = time.perf_counter()
        fn()
        t3 = time.perf_counter()
        times.append(t3 - t2)
        vs_ref.append((t3 - t2) / (t2 - t1))
        vs_floor.append((t3 - t2) / (t1 - t0))
    return {
        "ms": 1000 * float(np.median(times)),
        "vs_ref": float(np.median(vs_ref)),
        "vs_floor": float(np.median(vs_floor)),
        "peak_mib": peak_rss_mib(fn),
        "rounds": rounds,
        "agreement": agreement,
    }


# --- driver -----------------------------------------------------------------------------------------------


def run_case(data_dir: str, case: str, impl: str, rounds: int) -> dict:
    env = dict(
        os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS), PYTHONWARNINGS="ignore"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, __file__, "--worker", data_dir, case, impl, str(rounds)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": tail[:120]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small maps and 2 rounds: a smoke run")
    parser.add_argument(
        "--rounds", type=int, default=None, help="timed rounds per implementation (default 7)"
    )
    parser.add_argument("--cases", nargs="*", default=None, help="subset of cases")
    parser.add_argument("--impls", nargs="*", default=None, help="subset of implementations")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        data_dir, case, impl, rounds = args.worker
        print(json.dumps(worker(data_dir, case, impl, int(rounds))))
        return
    cases = QUICK_CASES if args.quick else FULL_CASES
    if args.cases:
        cases = {k: v for k, v in cases.items() if k in args.cases}
    impls = args.impls or list(IMPLEMENTATIONS)
    rounds = args.rounds or (1 if args.quick else 7)
    import torch

    print(f"# segdice metrics benchmark ({'quick' if args.quick else 'full'})\n")
    print(
        f"torch {torch.__version__}, numpy {np.__version__}, {THREADS} threads, each row a fresh process; "
        "ratios are medians of per-round quotients against the reference and the floor timed in the same "
        "round.\n"
    )
    with tempfile.TemporaryDirectory(prefix="segdice-bench-") as data_dir:
        for case, (shape, classes, dtype) in cases.items():
            gt, pred = make_maps(shape, classes, seed=len(case))
            gt, pred = gt.astype(dtype), pred.astype(dtype)
            np.save(Path(data_dir) / f"{case}-gt.npy", gt)
            np.save(Path(data_dir) / f"{case}-pred.npy", pred)
            (Path(data_dir) / f"{case}.json").write_text(json.dumps({"classes": classes}))
            mib = gt.nbytes / 2**20
            print(f"## {case}: label maps {list(shape)} {dtype} ({mib:.0f} MiB each), {classes} classes\n")
            print(
                "| implementation | ms | vs bincount | vs read floor | peak RSS MiB | rounds | agreement with bincount |"
            )
            print("|---|---|---|---|---|---|---|")
            one_hot_gib = 2 * 8 * classes * gt.size / 2**30
            for impl in impls:
                label = IMPLEMENTATIONS[impl]
                if impl == "torchmetrics" and one_hot_gib > TORCHMETRICS_MAX_GIB:
                    print(
                        f"| {label} | skipped | | | | | int64 one-hots of both maps need {one_hot_gib:.1f} GiB |"
                    )
                    continue
                r = run_case(data_dir, case, impl, rounds)
                if "error" in r:
                    print(f"| {label} | failed | | | | | {r['error']} |")
                    continue
                peak = "n/a" if r["peak_mib"] is None else f"{r['peak_mib']:.1f}"
                print(
                    f"| {label} | {r['ms']:.2f} | {r['vs_ref']:.2f}x | {r['vs_floor']:.2f}x | {peak} | "
                    f"{r['rounds']} | {r['agreement']} |"
                )
            print()


if __name__ == "__main__":
    main()
