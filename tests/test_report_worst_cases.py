"""The report's worst cases: pictures drawn from the label maps as the scores saw them, and a ranking that
exists whatever metrics were asked for.

Real files (PNG through Pillow, NIfTI through nibabel), real evaluations, the real report.html; the colours
of each thumbnail are read back from its PNG and compared with what the case holds, counted by hand.
"""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from segdice import evaluate
from segdice.io import save_mask
from segdice.report import plots


def _colour_present(pixels: np.ndarray, key: str) -> bool:
    """Whether any pixel of the thumbnail has the overlay colour ``key`` (antialiasing tolerated)."""
    colour = np.array([round(255 * c) for c in plots.OVERLAY_COLOURS[key]])
    return bool((np.abs(pixels.astype(int) - colour).sum(axis=2) < 30).any())


def _thumbnails(html: str) -> dict[str, np.ndarray]:
    found = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="overlay of ([^"]+)">', html)
    return {
        case: np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
        for data, case in found
    }


def _folders(tmp_path, cases: dict[str, tuple[np.ndarray, np.ndarray]], suffix=".png", spacing=None):
    for side in ("gt", "pred"):
        (tmp_path / side).mkdir()
    for name, (pred, gt) in cases.items():
        save_mask(tmp_path / "gt" / f"{name}{suffix}", gt, spacing)
        save_mask(tmp_path / "pred" / f"{name}{suffix}", pred, spacing)
    return tmp_path / "pred", tmp_path / "gt"


def _report(pred, gt, out, **options) -> str:
    evaluate(pred, gt, out=out, workers=1, **options)
    return (out / "report.html").read_text(encoding="utf-8")


def test_binarized_255_prediction_shows_no_wrong_label(tmp_path):
    # ground truth 0/1, prediction 0/255 covering 6 of the 8 foreground pixels: Dice 2*6/(6+8) = 0.857
    gt = np.zeros((10, 10), np.uint8)
    gt[3:5, 3:7] = 1
    pred = np.zeros_like(gt)
    pred[3:5, 3:6] = 255
    html = _report(*_folders(tmp_path, {"a": (pred, gt)}), tmp_path / "out", metrics="dice", binarize=True)
    assert re.search(r"<td>a</td><td>0\.8571</td>", html)  # the worst-case table: its voxel Dice
    pixels = _thumbnails(html)["a"]
    assert _colour_present(pixels, "agree") and _colour_present(pixels, "missed")
    # unmapped, every predicted pixel (255) would differ from the ground truth's 1
    assert not _colour_present(pixels, "wrong label") and not _colour_present(pixels, "extra")


def test_labels_outside_the_list_and_the_ignore_label_are_background_in_the_picture(tmp_path):
    gt = np.zeros((12, 12), np.uint8)
    gt[2:6, 2:6] = 1
    gt[8:11, 8:11] = 9  # ignored: left out of every count
    pred = np.zeros_like(gt)
    pred[2:6, 2:5] = 1  # 12 of 16 found
    pred[8:11, 8:11] = 1  # predicted inside the ignored area: not counted
    pred[0, 8:12] = 3  # label 3 is not scored (--labels 1): background for the scores
    html = _report(
        *_folders(tmp_path, {"a": (pred, gt)}), tmp_path / "out", metrics="dice", labels=[1], ignore_label=9
    )
    assert re.search(r"<td>a</td><td>0\.8571</td>", html)  # 2*12/(12+16)
    pixels = _thumbnails(html)["a"]
    assert _colour_present(pixels, "agree") and _colour_present(pixels, "missed")
    assert not _colour_present(pixels, "extra") and not _colour_present(pixels, "wrong label")


def test_a_reoriented_prediction_is_drawn_on_the_ground_truths_grid(tmp_path):
    nib = pytest.importorskip("nibabel")
    gt = np.zeros((8, 9, 5), np.uint8)
    gt[1:4, 2:7, 1:4] = 1
    gt[5:7, 1:3, 2:4] = 2
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    flipped = affine.copy()  # the same world grid with array axis 0 stored backwards
    flipped[0, 0], flipped[0, 3] = -1.0, 7.0
    for side in ("gt", "pred"):
        (tmp_path / side).mkdir()
    nib.save(nib.Nifti1Image(gt, affine), tmp_path / "gt" / "a.nii.gz")
    nib.save(nib.Nifti1Image(gt[::-1].copy(), flipped), tmp_path / "pred" / "a.nii.gz")
    html = _report(tmp_path / "pred", tmp_path / "gt", tmp_path / "out", metrics="dice", reorient=True)
    assert re.search(r"<td>a</td><td>1</td>", html)  # a perfect prediction, once turned
    pixels = _thumbnails(html)["a"]
    assert _colour_present(pixels, "agree")
    for key in ("missed", "extra", "wrong label"):  # as stored, the flipped labels would disagree
        assert not _colour_present(pixels, key), key


def test_worst_cases_are_ranked_without_dice_among_the_metrics(tmp_path):
    # case Dice by hand: "good" 2*15/(15+16) = 0.968, "bad" 2*4/(4+16) = 0.4, "mid" 2*8/(8+16) = 0.667
    gt = np.zeros((8, 8), np.uint8)
    gt[2:6, 2:6] = 1
    cases = {}
    for name, kept in (("good", 15), ("bad", 4), ("mid", 8)):
        pred = np.zeros_like(gt)
        pred.ravel()[np.flatnonzero(gt.ravel())[:kept]] = 1
        cases[name] = (pred, gt)
    html = _report(*_folders(tmp_path, cases), tmp_path / "out", metrics="mcc,gds,biou,cldice")
    assert 'id="worst"' in html and "2&nbsp;TP / (2&nbsp;TP + FP + FN)" in html
    table = html[html.index('id="worst-table"') :]
    table = table[: table.index("</table>")]
    shown = re.findall(r"<tr><td>(\w+)</td><td>([^<]+)</td>", table)
    assert [case for case, _ in shown] == ["bad", "mid", "good"]
    assert [float(v) for _, v in shown] == pytest.approx([0.4, 2 / 3, 30 / 31], abs=1e-4)
    assert set(_thumbnails(html)) == {"bad", "mid", "good"}
