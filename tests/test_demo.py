"""`segdice demo`: synthetic data, tiny U-Net, scoring against naive references, the report, the CLI.

One quick demo run (through the CLI, module-scoped) serves every end-to-end check; each check recomputes
what it can from the files the run wrote, with plain NumPy, instead of trusting the run's own numbers.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from scipy import ndimage
from typer.testing import CliRunner

from segdice import SegDiceError
from segdice.cli import app
from segdice.demo import DemoConfig, demo_story, demo_table, run_demo
from segdice.demo._data import make_synthetic_dataset
from segdice.demo._model import TinyUNet
from segdice.demo._plots import pick_examples
from segdice.demo._scores import _lesions_found

runner = CliRunner()
TINY = DemoConfig(size=32, n_train=16, n_val=8, epochs=1, batch_size=8)


# --- synthetic data -------------------------------------------------------------------------------


def test_same_seed_same_slices_and_other_seed_other_slices():
    a = make_synthetic_dataset(6, size=48, seed=3)
    b = make_synthetic_dataset(6, size=48, seed=3)
    c = make_synthetic_dataset(6, size=48, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert not np.array_equal(a.images, c.images)


def test_slices_ignore_the_global_random_state():
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002 - the legacy global state is the point
    a = make_synthetic_dataset(3, size=32, seed=0)
    torch.manual_seed(7)
    np.random.seed(7)  # noqa: NPY002
    b = make_synthetic_dataset(3, size=32, seed=0)
    np.testing.assert_array_equal(a.images, b.images)


def test_splits_at_different_offsets_differ():
    train = make_synthetic_dataset(4, size=32, seed=0)
    val = make_synthetic_dataset(4, size=32, seed=0, offset=4)
    assert not any(np.array_equal(t, v) for t in train.images for v in val.images)


@given(
    n=st.integers(1, 12),
    size=st.sampled_from([32, 48, 64, 96]),
    seed=st.integers(0, 2**32),
)
def test_dataset_layout_and_imbalance(n, size, seed):
    data = make_synthetic_dataset(n, size=size, seed=seed)
    assert data.images.shape == (n, 1, size, size) and data.images.dtype == np.float32
    assert data.masks.shape == (n, size, size) and data.masks.dtype == np.int64
    assert np.isfinite(data.images).all()
    assert set(np.unique(data.masks)) <= {0, 1}
    # Exactly round(n/4) healthy slices; every other slice has 0.1-1% lesion pixels (pixelisation of
    # tiny ellipses allows a little slack, and a lesion is at least one pixel).
    per_slice = data.masks.reshape(n, -1).mean(axis=1)
    assert (per_slice == 0).sum() == round(n / 4) == data.n_empty
    lesioned = per_slice[per_slice > 0]
    assert (lesioned <= 0.013).all()
    assert (lesioned >= min(0.0005, 1.5 / size**2)).all()
    # The trivial predictor's accuracy is 1 - foreground fraction: at least 99% by construction.
    assert data.foreground_fraction < 0.01


def test_lesions_are_brighter_than_the_brain_around_them():
    data = make_synthetic_dataset(16, size=96, seed=0)
    for image, mask in zip(data.images[:, 0], data.masks, strict=True):
        if not mask.any():
            continue
        ring = ndimage.binary_dilation(mask, iterations=3) & ~ndimage.binary_dilation(mask, iterations=1)
        assert image[mask == 1].mean() > image[ring].mean()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"n": 0}, "n"), ({"n": 2, "size": 8}, "size"), ({"n": 2, "seed": -1}, "seed"), ({"n": 1.5}, "n")],
)
def test_bad_dataset_arguments_raise_named_errors(kwargs, name):
    with pytest.raises(SegDiceError, match=f"^{name}: got"):
        make_synthetic_dataset(**kwargs)


# --- model ----------------------------------------------------------------------------------------


def test_tiny_unet_size_shape_and_gradients():
    net = TinyUNet(1, 2).eval()  # eval: batch-norm statistics would couple every pixel
    n_params = sum(p.numel() for p in net.parameters())
    assert 10_000 <= n_params <= 100_000  # "a few tens of thousands"
    x = torch.randn(2, 1, 48, 48, requires_grad=True)
    y = net(x)
    assert y.shape == (2, 2, 48, 48)
    y[:, 1, 10, 10].sum().backward()
    # A U-Net output pixel sees a neighbourhood, not the whole image and not a single pixel.
    grad = x.grad.abs().sum(dim=(0, 1))
    assert grad[10, 10] > 0 and grad[10, 47] == 0


def test_tiny_unet_rejects_sizes_it_cannot_pool():
    with pytest.raises(SegDiceError, match=r"x: got a tensor of shape \(1, 1, 30, 30\)"):
        TinyUNet()(torch.zeros(1, 1, 30, 30))


# --- scoring helpers ------------------------------------------------------------------------------


def test_lesions_found_counts_touched_components():
    target = np.zeros((2, 10, 10), dtype=np.int64)
    target[0, 1:3, 1:3] = 1  # lesion A
    target[0, 6:8, 6:8] = 1  # lesion B
    target[1, 4, 4] = 1  # lesion C
    target[1, 5, 5] = 1  # diagonal neighbour of C: the same 8-connected lesion
    pred = np.zeros_like(target)
    pred[0, 2, 2] = 1  # touches A
    pred[0, 0, 9] = 1  # false positive, touches nothing
    pred[1, 5, 5] = 1  # touches C
    assert _lesions_found(pred, target) == (2, 3)


def test_pick_examples_spans_small_to_large_lesions_and_skips_empty_slices():
    masks = np.zeros((7, 8, 8), dtype=np.int64)
    for i, area in enumerate([0, 5, 1, 0, 9, 3, 7]):
        masks[i].flat[:area] = 1
    # Lesion slices by area: 2 (1 px), 5 (3), 1 (5), 6 (7), 4 (9); three picks: smallest, median, largest.
    assert pick_examples(masks, k=3) == [2, 1, 4]
    assert pick_examples(np.zeros((2, 4, 4), dtype=np.int64), k=4) == [0, 1]


# --- argument checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"epochs": 0}, "^epochs: got 0"),
        ({"seed": -3}, "^seed: got -3"),
        ({"threads": 0}, "^threads: got 0"),
        ({"device": "tpu:0"}, "^device: got 'tpu:0'"),
        ({"device": "cuda:99"}, "^device: got 'cuda:99'"),
        ({"config": DemoConfig(size=30)}, "^config.size: got 30"),
        ({"config": DemoConfig(size=16)}, "^config.size: got 16"),
        ({"config": DemoConfig(n_val=0)}, "^config.n_val: got 0"),
        ({"config": {"size": 64}}, "^config: got dict"),
    ],
)
def test_bad_run_arguments_raise_before_any_work(tmp_path, kwargs, pattern):
    with pytest.raises(SegDiceError, match=pattern):
        run_demo(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out" / "results.json").exists()


def test_out_must_not_be_a_file(tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    with pytest.raises(SegDiceError, match=r"^out: got .*an existing file"):
        run_demo(target, config=TINY)


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--epochs", "0"], "epochs: got 0"), (["--device", "nonsense"], "device: got 'nonsense'")],
)
def test_cli_turns_bad_arguments_into_one_line_and_exit_code_2(tmp_path, args, needle):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "o"), "--no-progress", *args])
    assert result.exit_code == 2
    assert needle in result.output
    assert "Traceback" not in result.output


# --- a tiny end-to-end run: reproducibility and hygiene -------------------------------------------


def _numbers(results: dict) -> dict:
    """Everything of results.json that must not change between runs with the same seed."""
    return {k: v for k, v in results.items() if k not in ("timing",)}


def test_same_seed_same_numbers_and_caller_state_restored(tmp_path):
    import io

    from rich.console import Console

    torch.set_num_threads(1)
    rng_before = torch.get_rng_state()
    det_before = torch.are_deterministic_algorithms_enabled()
    # The first run also draws its progress bars: they must not change a single number.
    bars = io.StringIO()
    first = run_demo(
        tmp_path / "a", config=TINY, seed=5, threads=1, progress=True, console=Console(file=bars, width=120)
    )
    second = run_demo(tmp_path / "b", config=TINY, seed=5, threads=1)
    assert json.dumps(_numbers(first.results)) == json.dumps(_numbers(second.results))
    for label in (
        "Generating slices",
        "Training: Cross-entropy",
        "Training: DiceLoss",
        "Training: DiceCELoss",
    ):
        assert label in bars.getvalue()
    # The demo borrows the process's torch settings and gives them back.
    assert torch.get_num_threads() == 1
    assert torch.are_deterministic_algorithms_enabled() == det_before
    assert torch.equal(torch.get_rng_state(), rng_before)


# --- the quick demo, end to end through the CLI ---------------------------------------------------


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "report"
    result = runner.invoke(app, ["demo", "--quick", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return out, results, result.output


@pytest.mark.slow
def test_quick_run_table_has_every_method(quick_run):
    _, results, output = quick_run
    assert list(results["methods"]) == ["all_background", "cross_entropy", "dice", "dice_ce"]
    for method in results["methods"].values():
        assert method["name"] in output
        assert set(method["metrics"]) >= {
            "accuracy",
            "dice_per_image",
            "dice_global",
            "iou_global",
            "hd95",
            "sensitivity",
        }


@pytest.mark.slow
def test_quick_run_trivial_row_has_high_accuracy_and_zero_dice(quick_run):
    _, results, _ = quick_run
    trivial = results["methods"]["all_background"]["metrics"]
    val = results["dataset"]["validation"]
    assert trivial["accuracy"] >= 0.99
    assert trivial["accuracy"] == pytest.approx(1 - val["foreground_fraction"], abs=1e-12)
    assert trivial["dice_global"] == 0 and trivial["dice_per_image"] == 0
    assert trivial["sensitivity"] == 0 and trivial["lesions_found"] == 0
    # Every lesion slice is a miss scored at the image diagonal.
    size = results["config"]["size"]
    assert trivial["hd95"] == pytest.approx(math.hypot(size, size))


@pytest.mark.slow
def test_quick_run_dice_trained_models_beat_the_trivial_one(quick_run):
    _, results, _ = quick_run
    m = results["methods"]
    for key in ("dice", "dice_ce"):
        assert m[key]["metrics"]["dice_global"] > 0.2 > m["all_background"]["metrics"]["dice_global"]
        assert m[key]["metrics"]["sensitivity"] > 0.2
        assert m[key]["metrics"]["hd95"] < m["all_background"]["metrics"]["hd95"]
        assert len(m[key]["history"]["val_dice"]) == results["config"]["epochs"]


@pytest.mark.slow
def test_quick_run_numbers_match_a_naive_recount_of_the_saved_predictions(quick_run):
    out, results, _ = quick_run
    pred_files = sorted((out / "evaluation" / "predictions").glob("*.npy"))
    gt_files = sorted((out / "evaluation" / "ground_truth").glob("*.npy"))
    assert len(pred_files) == len(gt_files) == results["dataset"]["validation"]["n"]
    pred = np.stack([np.load(f) for f in pred_files]) == 1
    gt = np.stack([np.load(f) for f in gt_files]) == 1
    tp, fp, fn = (pred & gt).sum(), (pred & ~gt).sum(), (~pred & gt).sum()
    best = results["methods"][results["best_method"]]["metrics"]
    assert best["accuracy"] == pytest.approx((pred == gt).mean())
    assert best["dice_global"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert best["iou_global"] == pytest.approx(tp / (tp + fp + fn))
    assert best["sensitivity"] == pytest.approx(tp / (tp + fn))
    per_image = [
        2 * (p & g).sum() / (p.sum() + g.sum()) for p, g in zip(pred, gt, strict=True) if p.any() or g.any()
    ]
    assert best["dice_per_image"] == pytest.approx(np.mean(per_image))
    assert gt.mean() == pytest.approx(results["dataset"]["validation"]["foreground_fraction"])


@pytest.mark.slow
def test_quick_run_writes_the_report_files(quick_run):
    out, results, _ = quick_run
    for name in ("training_curves.png", "examples.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 400 and image.height > 200
    report = (out / "evaluation" / "report.html").read_text(encoding="utf-8")
    assert "<html" in report.lower()
    assert (out / "evaluation" / "per_case.csv").stat().st_size > 0
    json.loads((out / "evaluation" / "summary.json").read_text(encoding="utf-8"))
    for rel in results["files"].values():
        assert (out / rel).exists()


@pytest.mark.slow
def test_quick_run_story_and_table_render_from_results_json(quick_run):
    _, results, output = quick_run
    from rich.console import Console

    console = Console(width=100, record=True)
    console.print(demo_table(results))
    text = console.export_text()
    assert "All background" in text and "Accuracy" in text
    lines = demo_story(results)
    assert lines[0].startswith("All background: pixel accuracy 99.")
    assert lines[0] in output.replace("\n", " ") or "yet Dice 0.000" in output


@pytest.mark.slow
def test_quick_run_evaluate_report_agrees_with_the_demo_table(quick_run):
    # Two routes to the same numbers: the demo scores arrays in memory, segdice.evaluate reads the
    # saved .npy files; both skip slices where prediction and ground truth are empty.
    out, results, _ = quick_run
    summary = json.loads((out / "evaluation" / "summary.json").read_text(encoding="utf-8"))
    lesion = summary["results"]["lesion"]
    best = results["methods"][results["best_method"]]["metrics"]
    assert lesion["dice"]["mean"] == pytest.approx(best["dice_per_image"])
    assert lesion["hd95"]["mean"] == pytest.approx(best["hd95"])
    assert lesion["dice"]["n_nan"] == best["n_nan"]
