"""Draw the documentation's figures with segdice itself.

Run from the repository root (it writes PNG files into ``docs/assets`` unless ``--out`` says otherwise)::

    PYTHONPATH=src python docs/scripts/make_figures.py

Every number printed on a figure is computed by segdice's metrics or losses at drawing time, so a
figure cannot drift away from what the library does. The ``report`` figure is a screenshot of the HTML
report of ``segdice evaluate`` and needs a headless Chromium (``apt-get install chromium-headless-shell``).
``demo`` (drawn only when named) runs ``segdice demo`` and keeps its figures and ``results.json``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "assets"


def disk(shape: tuple[int, int], center: tuple[float, float], radius: float) -> np.ndarray:
    """A boolean disk on a pixel grid."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius**2


def accuracy_and_dice(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    from segdice.metrics import accuracy, dice_score

    acc = float(accuracy(pred[None], target[None], mode="binary"))
    dice = float(dice_score(pred[None], target[None], mode="binary"))
    return acc, dice


def figure_accuracy_vs_dice(out: Path) -> None:
    """Three predictions of a target covering 0.1% of a 256x256 image."""
    import matplotlib.pyplot as plt

    shape = (256, 256)
    target = disk(shape, (128, 128), 4.5)  # 69 pixels: 0.1% of the image
    half_radius = np.sqrt(target.sum() / 2 / np.pi)
    predictions = {
        "predicts nothing": np.zeros(shape, dtype=bool),
        "shifted": np.roll(target, 4, axis=1),
        "close": disk(shape, (128, 128.6), 4.5) & ~disk(shape, (128, 124), half_radius * 0.6),
    }
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.7), constrained_layout=True)
    crop = (slice(108, 148), slice(108, 148))
    for ax, (name, pred) in zip(axes, predictions.items(), strict=True):
        acc, dice = accuracy_and_dice(pred.astype(np.uint8), target.astype(np.uint8))
        rgb = np.ones((*shape, 3))
        rgb[target & ~pred] = (0.85, 0.2, 0.2)  # missed: false negative
        rgb[pred & ~target] = (0.2, 0.45, 0.85)  # false positive
        rgb[pred & target] = (0.15, 0.6, 0.3)  # found
        ax.imshow(rgb[crop], interpolation="nearest")
        ax.set_title(f"{name}\naccuracy {acc:.2%}   Dice {dice:.2f}", fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
        print(f"accuracy-vs-dice: {name}: accuracy={acc:.5f} dice={dice:.4f}")
    fig.suptitle(
        "Target = 0.1% of a 256×256 image (zoomed).  green: found   red: missed   blue: false positive",
        fontsize=10,
    )
    fig.savefig(out / "accuracy-vs-dice.png", dpi=110)
    plt.close(fig)


def figure_foreground_fraction(out: Path) -> None:
    """Accuracy and Dice of 'predict nothing' and 'find half' as the target shrinks."""
    import matplotlib.pyplot as plt

    n = 100_000
    fractions = np.logspace(-4, np.log10(0.5), 25)
    curves: dict[str, list[float]] = {k: [] for k in ("acc0", "dice0", "acc_half", "dice_half")}
    for f in fractions:
        n_fg = max(2, round(f * n) // 2 * 2)
        target = np.zeros((1, n), dtype=np.uint8)
        target[0, :n_fg] = 1
        half = np.zeros_like(target)
        half[0, : n_fg // 2] = 1
        nothing = np.zeros_like(target)
        for key, pred in (("0", nothing), ("_half", half)):
            acc, dice = accuracy_and_dice(pred[0], target[0])
            curves["acc" + key].append(acc)
            curves["dice" + key].append(dice)
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    ax.semilogx(fractions, curves["acc0"], "-", color="tab:red", label="accuracy, predicts nothing")
    ax.semilogx(fractions, curves["acc_half"], "--", color="tab:orange", label="accuracy, finds half")
    ax.semilogx(fractions, curves["dice0"], "-", color="tab:blue", label="Dice, predicts nothing")
    ax.semilogx(fractions, curves["dice_half"], "--", color="tab:green", label="Dice, finds half")
    ax.set_xlabel("foreground fraction of the image")
    ax.set_ylabel("score")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="center left")
    ax.set_title("Accuracy rewards missing small targets; Dice does not")
    fig.savefig(out / "foreground-fraction.png", dpi=110)
    plt.close(fig)
    print(
        f"foreground-fraction: smallest fraction {fractions[0]:.1e}: accuracy(nothing)={curves['acc0'][0]:.5f}"
    )


def figure_smoothing(out: Path) -> None:
    """Dice loss of an empty target against the predicted mass, for two smoothing constants."""
    import matplotlib.pyplot as plt
    import torch

    import segdice

    masses = np.logspace(-7, 2, 200)
    fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for smooth, color in ((1e-5, "tab:blue"), (1.0, "tab:orange")):
        losses, grads = [], []
        for mass in masses:
            # One image of 100 pixels whose predicted probabilities add up to `mass`; empty target.
            probs = torch.full((1, 1, 100), mass / 100, dtype=torch.float64, requires_grad=True)
            target = torch.zeros(1, 1, 100, dtype=torch.float64)
            loss = segdice.dice_loss(probs, target, "binary", from_logits=False, smooth=smooth)
            loss.backward()
            losses.append(loss.item())
            grads.append(probs.grad[0, 0, 0].item())
        ax_loss.semilogx(masses, losses, color=color, label=f"smooth = {smooth:g}")
        ax_grad.loglog(masses, grads, color=color, label=f"smooth = {smooth:g}")
    ax_loss.set_xlabel("predicted foreground mass  P = Σp  (pixels)")
    ax_loss.set_ylabel("Dice loss, empty target")
    ax_grad.set_xlabel("predicted foreground mass  P = Σp  (pixels)")
    ax_grad.set_ylabel("∂loss/∂p of one pixel")
    for ax in (ax_loss, ax_grad):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    ax_loss.set_title("Loss: 1 − s / (P + s)")
    ax_grad.set_title("Gradient: vanishes once P ≫ s")
    fig.savefig(out / "smoothing.png", dpi=110)
    plt.close(fig)


def _browser() -> str | None:
    for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def figure_report(out: Path) -> None:
    """A screenshot of the HTML report of ``segdice evaluate`` on a small synthetic dataset."""
    import segdice
    from segdice.io import save_mask

    browser = _browser()
    if browser is None:
        print("report: skipped, no headless Chromium found (apt-get install chromium-headless-shell)")
        return
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "gt").mkdir()
        (root / "pred").mkdir()
        for i in range(12):
            truth = np.zeros((40, 40, 12), dtype=np.uint8)
            c = rng.integers(14, 26, size=2)
            r = rng.integers(7, 11)
            yy, xx = np.mgrid[:40, :40]
            organ = (yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= r**2
            truth[organ, 2:10] = 1
            lesion = (yy - c[0]) ** 2 + (xx - c[1] - 2) ** 2 <= (r // 3) ** 2
            if i % 4:
                truth[lesion, 4:8] = 2
            pred = np.roll(truth, tuple(rng.integers(-2, 3, size=2)), axis=(0, 1))
            if i % 5 == 0:
                pred[pred == 2] = 1  # the lesion is missed
            save_mask(root / "gt" / f"case{i:02d}.nii.gz", truth, (0.8, 0.8, 3.0))
            save_mask(root / "pred" / f"case{i:02d}.nii.gz", pred, (0.8, 0.8, 3.0))
        segdice.evaluate(
            root / "pred",
            root / "gt",
            out=root / "results",
            label_names={"organ": 1, "lesion": 2},
            regions={"organ+lesion": [1, 2]},
            metrics=("dice", "hd95", "nsd"),
            workers=1,
        )
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1100,1500",
                f"--screenshot={out / 'report.png'}",
                (root / "results" / "report.html").as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def figure_demo(out: Path) -> None:
    """Run ``segdice demo`` (about 1.5 minutes) and keep its two figures and its numbers for the docs."""
    import json

    import segdice

    with tempfile.TemporaryDirectory() as tmp:
        result = segdice.run_demo(Path(tmp) / "demo", seed=0, threads=1)
        shutil.copy(result.out / "examples.png", out / "demo-examples.png")
        shutil.copy(result.out / "training_curves.png", out / "demo-training-curves.png")
        results = json.loads((result.out / "results.json").read_text())
    for method in results["methods"].values():
        method.pop("history", None)  # per-epoch curves: in the figure, not needed in the table
    results.pop("files", None)  # paths of a temporary folder
    (out / "demo-results.json").write_text(json.dumps(results, indent=1) + "\n")
    print("demo: copy the table printed by `segdice demo` into docs/guide/choosing-a-loss.md")


FIGURES = {
    "accuracy-vs-dice": figure_accuracy_vs_dice,
    "foreground-fraction": figure_foreground_fraction,
    "smoothing": figure_smoothing,
    "report": figure_report,
    "demo": figure_demo,
}
# Drawn only when named: the demo trains three networks.
SLOW = {"demo"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNG files")
    parser.add_argument(
        "names", nargs="*", help=f"figures to draw, among {', '.join(FIGURES)} (default: all)"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(FIGURES))
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; expected some of {', '.join(FIGURES)}")

    import matplotlib

    matplotlib.use("Agg")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or [n for n in FIGURES if n not in SLOW]:
        FIGURES[name](args.out)
        print(f"wrote {args.out / (name + '.png')}")


if __name__ == "__main__":
    main()
