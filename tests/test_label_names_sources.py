"""``--label-names`` as inline pairs, however long, and as a file whose name holds ``=``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from segdice import SegDiceError
from segdice.evaluation._labels import read_label_names
from segdice.io import save_mask

# 25 pairs of long names: far more than the 255 bytes a file name may have.
NAMES = {k: f"Structure_number_{k:02d}_of_the_atlas" for k in range(1, 26)}
INLINE = ",".join(f"{name}={value}" for value, name in NAMES.items())


def test_long_inline_pairs_are_read_as_pairs():
    assert len(INLINE) > 255
    names, regions = read_label_names(INLINE)
    assert names == NAMES and regions == {}


def test_a_csv_whose_path_holds_an_equals_sign_is_still_a_file(tmp_path):
    folder = tmp_path / "run=3"
    folder.mkdir()
    path = folder / "names=v2.csv"
    path.write_text("1,liver\n2,tumour\n", encoding="utf-8")
    assert read_label_names(str(path)) == ({1: "liver", 2: "tumour"}, {})


def test_neither_pairs_nor_a_file_is_a_clear_error():
    text = ",".join(f"name_{k}=x{k}" for k in range(40))  # values that are no labels, and too long a name
    with pytest.raises(SegDiceError, match="label_names"):
        read_label_names(text)


def test_cli_long_label_names_score_or_fail_cleanly(tmp_path):
    gt = np.zeros((6, 6), np.uint8)
    gt[1:3, 1:3] = 1
    gt[3:5, 3:5] = 25
    for side in ("gt", "pred"):
        (tmp_path / side).mkdir()
        save_mask(tmp_path / side / "a.png", gt)
    base = [sys.executable, "-m", "segdice", "evaluate", str(tmp_path / "pred"), str(tmp_path / "gt"), "-j", "1"]
    ok = subprocess.run([*base, "--label-names", INLINE], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert NAMES[25] in ok.stdout and "Traceback" not in ok.stderr
    bad = ",".join(f"name_{k}=x{k}" for k in range(40))
    proc = subprocess.run([*base, "--label-names", bad], capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "label_names" in proc.stderr
