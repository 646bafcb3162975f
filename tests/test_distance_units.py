"""Distances say "mm" only when every scored case had its spacing from its file header.

Real files (NIfTI through nibabel, PNG through Pillow, NumPy), scored by :func:`segdice.evaluate` and by the
command line; the unit is read back from ``per_case.csv``, ``summary.json``, the terminal table and
``report.html``. Every distance here is checked against a hand count, so the unit matches the values.
"""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

import segdice
from segdice.cli import app
from segdice.io import save_mask


def _square_pair(shape=(12, 12)):
    """A 4x4 square and the same square shifted by 2 along axis 0: HD = 2 steps along that axis."""
    gt = np.zeros(shape, np.uint8)
    gt[3:7, 3:7] = 1
    return gt, np.roll(gt, 2, axis=0)


def _write(folder, name, array, spacing=None):
    folder.mkdir(exist_ok=True)
    save_mask(folder / name, array, spacing)


def _run(tmp_path, files, **options):
    """``files``: {name: spacing or None}; returns (rows, summary, report text)."""
    gt, pred = _square_pair()
    for name, spacing in files.items():
        _write(tmp_path / "gt", name, gt, spacing)
        _write(tmp_path / "pred", name, pred, spacing)
    out = tmp_path / "out"
    segdice.evaluate(tmp_path / "pred", tmp_path / "gt", out=out, metrics="dice,hd", workers=1, **options)
    with open(out / "per_case.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return rows, summary, (out / "report.html").read_text(encoding="utf-8")


def _report_units(html: str) -> set[str]:
    return set(re.findall(r"hd \(([^)<]*)\)", html))


def test_nifti_spacing_is_millimetres(tmp_path):
    rows, summary, html = _run(tmp_path, {"a.nii.gz": (0.5, 1.0), "b.nii.gz": (0.5, 1.0)})
    assert {r["spacing_source"] for r in rows} == {"header"}
    assert [float(r["hd"]) for r in rows] == [1.0, 1.0]  # 2 steps of 0.5 mm
    assert summary["spacing_sources"] == {"header": 2}
    assert summary["distance_unit"] == "mm"
    assert _report_units(html) == {"mm"}


@pytest.mark.parametrize("suffix", [".png", ".npy"])
def test_files_without_spacing_are_in_voxels(tmp_path, suffix):
    rows, summary, html = _run(tmp_path, {f"a{suffix}": None, f"b{suffix}": None})
    assert {r["spacing_source"] for r in rows} == {"none"}
    assert [float(r["hd"]) for r in rows] == [2.0, 2.0]  # 2 steps of 1 (no spacing: 1 per axis)
    assert summary["spacing_sources"] == {"none": 2}
    assert summary["distance_unit"] == "voxels"
    assert _report_units(html) == {"voxels"}
    assert "(mm)" not in html and " mm." not in html


def test_a_mix_of_headers_and_no_spacing_says_so(tmp_path):
    rows, summary, html = _run(tmp_path, {"a.nii.gz": (0.5, 1.0), "b.npy": None})
    sources = {r["case"]: r["spacing_source"] for r in rows}
    assert sources == {"a": "header", "b": "none"}
    assert summary["spacing_sources"] == {"header": 1, "none": 1}
    assert summary["distance_unit"] == "mm or voxels"
    assert _report_units(html) == {"mm or voxels"}


def test_spacing_override_is_in_spacing_units(tmp_path):
    rows, summary, html = _run(tmp_path, {"a.png": None}, spacing=[3.0, 1.0])
    assert {r["spacing_source"] for r in rows} == {"override"}
    assert float(rows[0]["hd"]) == 6.0  # 2 steps of 3
    assert summary["distance_unit"] == "spacing units"
    assert _report_units(html) == {"spacing units"}


def test_failed_cases_do_not_decide_the_unit(tmp_path):
    gt, pred = _square_pair()
    _write(tmp_path / "gt", "a.nii.gz", gt, (1.0, 1.0))
    _write(tmp_path / "pred", "a.nii.gz", pred, (1.0, 1.0))
    _write(tmp_path / "gt", "b.npy", gt)
    _write(tmp_path / "pred", "b.npy", np.zeros((5, 5), np.uint8))  # shape mismatch: an error row
    result = segdice.evaluate(tmp_path / "pred", tmp_path / "gt", metrics="hd", workers=1)
    assert result.n_failed == 1
    assert result.summary["spacing_sources"] == {"header": 1}
    assert result.summary["distance_unit"] == "mm"


def test_terminal_table_and_json_carry_the_unit(tmp_path):
    gt, pred = _square_pair()
    for name in ("a.png", "b.png"):
        _write(tmp_path / "gt", name, gt)
        _write(tmp_path / "pred", name, pred)
    runner = CliRunner()
    args = ["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt"), "-j", "1", "--metrics", "dice,hd95"]
    table = runner.invoke(app, [*args, "--no-progress"])
    assert table.exit_code == 0, table.output
    header = next(line for line in table.stdout.splitlines() if line.startswith("label / region"))
    assert "hd95 (voxels)" in header and "mm" not in header
    as_json = runner.invoke(app, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["distance_unit"] == "voxels"


def test_resume_keeps_the_sources_of_the_earlier_rows(tmp_path):
    gt, pred = _square_pair()
    _write(tmp_path / "gt", "a.nii.gz", gt, (1.0, 1.0))
    _write(tmp_path / "pred", "a.nii.gz", pred, (1.0, 1.0))
    out = tmp_path / "out"
    segdice.evaluate(tmp_path / "pred", tmp_path / "gt", out=out, metrics="hd", workers=1)
    _write(tmp_path / "gt", "b.npy", gt)
    _write(tmp_path / "pred", "b.npy", pred)
    result = segdice.evaluate(
        tmp_path / "pred", tmp_path / "gt", out=out, metrics="hd", workers=1, resume=True
    )
    assert result.summary["spacing_sources"] == {"header": 1, "none": 1}
    assert result.summary["distance_unit"] == "mm or voxels"
