"""Instance and lesion-wise scores side by side: segdice vs panoptica, MONAI's panoptic quality and the
BraTS 2023 algorithm as the challenge script runs it.

Cases:

* ``brats``: a 240x240x155 BraTS-style label map (1 NCR, 2 SNFH, 3 ET) with ~30 whole-tumour components
  (tumours, satellites, specks), a prediction that shifts, grows, misses and adds; three regions (WT, TC,
  ET), 1 mm.
* ``nuclei``: a 1000x1000 instance map of ~1,500 touching nuclei and a prediction that erodes, shifts,
  drops and splits them.
* ``nuclei-tile``: a 500x500 crop of it (~375 nuclei): MONAI's ``compute_panoptic_quality`` keeps one
  int32 mask per instance of each side (12 GB for the full image), so it runs on the tile only.

Per case, the same work in each library (equal results are checked where the definitions coincide):

* ``lesion``: segdice ``brats_lesion_scores`` vs the challenge's algorithm (full-volume dilation of every
  lesion, one full-volume mask per lesion, DeepMind surface distances; the port in
  ``tests/test_instances_peers.py``);
* ``dice+hd95``: one-to-one matching at IoU 0.5 with per-instance Dice and HD95: segdice
  ``instance_scores`` vs panoptica's ``Panoptica_Evaluator`` (``NaiveThresholdMatching``);
* ``pq``: panoptic quality: segdice ``panoptic_quality`` vs MONAI ``compute_panoptic_quality`` (the
  components labelled by ``scipy.ndimage.label`` for MONAI, which has no labelling of its own) and
  panoptica (DSC/IoU only).

Usage::

    python benchmarks/instances.py            # every case, median of 3 rounds (1 round when > 10 s)
    python benchmarks/instances.py --quick    # one round, no slow references

Prints one table per case with seconds and the ratio peer / segdice (> 1: segdice is faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

REGIONS = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}


# --- data ------------------------------------------------------------------------------------------


def make_brats(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (240, 240, 155)
    gt = np.zeros(shape, dtype=np.uint8)
    pred = np.zeros(shape, dtype=np.uint8)

    def draw(target: np.ndarray, centre, radius: float) -> None:
        box = tuple(
            slice(max(int(c - radius - 2), 0), min(int(c + radius + 3), n))
            for c, n in zip(centre, shape, strict=True)
        )
        grids = np.ogrid[box]
        d2 = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True))
        local = target[box]
        local[(d2 <= radius**2) & (local == 0)] = 2
        local[d2 <= (0.75 * radius) ** 2] = 3
        local[d2 <= (0.45 * radius) ** 2] = 1

    for _ in range(30):
        centre = tuple(float(rng.uniform(20, n - 20)) for n in shape)
        radius = float(rng.choice([1.0, 2.0, 3.5, 6.0, 10.0, 16.0], p=[0.15, 0.2, 0.25, 0.2, 0.12, 0.08]))
        draw(gt, centre, radius)
        if rng.random() < 0.85:
            moved = tuple(c + rng.normal(0, 1.5) for c in centre)
            draw(pred, moved, radius * rng.uniform(0.8, 1.2))
    for _ in range(8):  # false positives
        draw(pred, tuple(float(rng.uniform(10, n - 10)) for n in shape), float(rng.choice([1.0, 2.5, 4.0])))
    return pred, gt


def make_nuclei(size: int = 1000, n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    seeds = np.zeros((size, size), dtype=np.int32)
    points = rng.integers(0, size, size=(n, 2))
    seeds[points[:, 0], points[:, 1]] = np.arange(1, n + 1)
    dist, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    gt = np.where(dist <= 9, seeds[iy, ix], 0).astype(np.int32)  # touching Voronoi nuclei of radius <= 9
    pred = np.roll(gt, 1, axis=0)
    pred = ndimage.grey_erosion(pred, size=(2, 2))
    ids = np.arange(1, n + 1)
    drop = rng.choice(ids, size=n // 10, replace=False)
    pred[np.isin(pred, drop)] = 0
    split = rng.choice(ids, size=n // 10, replace=False)
    yy, _ = np.indices(pred.shape)
    halves = np.isin(pred, split) & (yy % 2 == 0)
    pred[halves] += n
    return pred.astype(np.int32), gt


# --- implementations -------------------------------------------------------------------------------


def segdice_lesion(pred, gt):
    from segdice.metrics import brats_lesion_scores

    out = brats_lesion_scores(pred, gt, spacing=(1.0, 1.0, 1.0), challenge="GLI")
    return {r: (out[r]["lesion_dice"], out[r]["lesion_hd95"]) for r in REGIONS}


def challenge_lesion(pred, gt):
    from test_instances_peers import brats_reference

    out = brats_reference(pred, gt, (1.0, 1.0, 1.0), "GLI")
    return {r: (out[r]["lesion_dice"], out[r]["lesion_hd95"]) for r in REGIONS}


def _regions(pred, gt, instances):
    if instances == "labels":
        return {"all": (pred, gt)}
    return {r: (np.isin(pred, m), np.isin(gt, m)) for r, m in REGIONS.items()}


def segdice_dice_hd95(pred, gt, instances):
    from segdice.metrics import instance_scores

    out = {}
    for r, (p, g) in _regions(pred, gt, instances).items():
        s = instance_scores(
            p, g, instances=instances, threshold=0.5 - 1e-12, method="greedy", metrics=("dice", "hd95")
        )
        out[r] = (s.tp, s.fp, s.fn, s.matched_dice)
    return out


def panoptica_run(pred, gt, instances, metrics):
    import panoptica
    from panoptica.utils.citation_reminder import disable_citation_reminder

    disable_citation_reminder()
    kind = panoptica.InputType.UNMATCHED_INSTANCE if instances == "labels" else panoptica.InputType.SEMANTIC
    evaluator = panoptica.Panoptica_Evaluator(
        expected_input=kind,
        instance_approximator=panoptica.ConnectedComponentsInstanceApproximator(),
        instance_matcher=panoptica.NaiveThresholdMatching(),
        instance_metrics=[getattr(panoptica.Metric, m) for m in metrics],
        global_metrics=[panoptica.Metric.DSC],
    )
    out = {}
    for r, (p, g) in _regions(pred, gt, instances).items():
        res = evaluator.evaluate(p.astype(np.int32), g.astype(np.int32), verbose=False)["ungrouped"]
        out[r] = (res.tp, res.fp, res.fn, res.sq_dsc)
    return out


def segdice_pq(pred, gt, instances):
    from segdice.metrics import panoptic_quality

    return {
        r: panoptic_quality(p, g, instances=instances)["pq"]
        for r, (p, g) in _regions(pred, gt, instances).items()
    }


def monai_pq(pred, gt, instances):
    import torch
    from monai.metrics.panoptic_quality import compute_panoptic_quality

    out = {}
    full = np.ones((3,) * pred.ndim, dtype=bool)
    for r, (p, g) in _regions(pred, gt, instances).items():
        if instances != "labels":
            p, g = ndimage.label(p, structure=full)[0], ndimage.label(g, structure=full)[0]
        out[r] = compute_panoptic_quality(
            torch.from_numpy(p.astype(np.int32)), torch.from_numpy(g.astype(np.int32))
        ).item()
    return out


# --- timing ----------------------------------------------------------------------------------------


def timed(fn, *args, rounds: int):
    fn(*args)  # warm-up: imports, caches
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
        if times[-1] > 10:
            break
    return statistics.median(times), result


def run_case(name: str, pred, gt, rounds: int, quick: bool) -> None:
    instances = "labels" if name.startswith("nuclei") else "components"
    rows = []
    if name == "brats":
        base, ref = timed(segdice_lesion, pred, gt, rounds=rounds)
        rows.append(("lesion", "segdice", base, None))
        if not quick:
            t, out = timed(challenge_lesion, pred, gt, rounds=1)
            same = all(np.allclose(out[r], ref[r], rtol=1e-12) for r in REGIONS)
            rows.append(("lesion", f"BraTS-2023 algorithm (equal: {same})", t, t / base))
    base, ref = timed(segdice_dice_hd95, pred, gt, instances, rounds=rounds)
    rows.append(("dice+hd95", "segdice", base, None))
    t, out = timed(panoptica_run, pred, gt, instances, ("DSC", "HD95"), rounds=rounds)
    same = all(out[r][:3] == ref[r][:3] and np.isclose(out[r][3], ref[r][3]) for r in ref)
    rows.append(("dice+hd95", f"panoptica (equal counts/Dice: {same})", t, t / base))
    base, ref = timed(segdice_pq, pred, gt, instances, rounds=rounds)
    rows.append(("pq", "segdice", base, None))
    t, _ = timed(panoptica_run, pred, gt, instances, ("DSC", "IOU"), rounds=rounds)
    rows.append(("pq", "panoptica (DSC, IoU)", t, t / base))
    if name != "nuclei":
        t, out = timed(monai_pq, pred, gt, instances, rounds=rounds)
        same = all(np.isclose(out[r], ref[r], rtol=1e-5) for r in ref)
        rows.append(("pq", f"MONAI (equal: {same})", t, t / base))
    if instances == "labels":
        objects = f"{len(np.unique(gt)) - 1} target nuclei"
    else:
        objects = "target components per region " + ", ".join(
            f"{r} {ndimage.label(np.isin(gt, m), structure=np.ones((3, 3, 3)))[1]}"
            for r, m in REGIONS.items()
        )
    print(f"\n## {name}: shape {pred.shape}, {objects}")
    print("| task | implementation | seconds | peer / segdice |\n|---|---|---|---|")
    for task, impl, seconds, ratio in rows:
        print(f"| {task} | {impl} | {seconds:.3f} | {'' if ratio is None else f'{ratio:.1f}x'} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", nargs="*", default=["brats", "nuclei", "nuclei-tile"])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rounds = 1 if args.quick else 3
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs, OMP_NUM_THREADS=1")
    for name in args.case:
        if name == "brats":
            pred, gt = make_brats()
        else:
            pred, gt = make_nuclei()
            if name == "nuclei-tile":
                pred, gt = pred[:500, :500], gt[:500, :500]
        run_case(name, pred, gt, rounds, args.quick)
    import cc3d

    mask = np.isin(make_brats()[1], REGIONS["WT"])
    t_cc3d, _ = timed(lambda: cc3d.connected_components(mask, connectivity=26), rounds=rounds)
    t_scipy, _ = timed(lambda: ndimage.label(mask, structure=np.ones((3, 3, 3))), rounds=rounds)
    print(f"\nlabelling 240x240x155 (26-connected): cc3d {t_cc3d * 1e3:.1f} ms, scipy {t_scipy * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
