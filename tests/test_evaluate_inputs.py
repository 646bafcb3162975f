"""`segdice evaluate` on the inputs users really have: geometry, labels, layouts (DESIGN §7).

Each hostile input is built here with the library that writes it (nibabel, SimpleITK); expected values
come from tests/_evaluate_reference.py (NumPy masks, textbook formulas), never from segdice.
"""

import json
import math

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from _evaluate_reference import boundary, overlap
from segdice import SegDiceError, evaluate
from segdice.cli import app
from segdice.io import save_mask

runner = CliRunner()
SPACING = (0.8, 1.1, 2.5)
# A world placement with an origin away from 0 and voxel size SPACING: i -> x, j -> y, k -> z.
AFFINE = np.array(
    [[0.8, 0.0, 0.0, -40.0], [0.0, 1.1, 0.0, 12.5], [0.0, 0.0, 2.5, 30.0], [0.0, 0.0, 0.0, 1.0]]
)


def ellipsoid_labels(shape=(20, 18, 10), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    labels = np.zeros(shape, np.uint8)
    for label, size in ((1, 0.3), (2, 0.18), (3, 0.1)):
        centre = [rng.uniform(n * 0.3, n * 0.7) for n in shape]
        radii = [max(1.5, n * size) for n in shape]
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii, strict=True)) <= 1
        labels[inside] = label
    return labels


def shifted(labels: np.ndarray, shift=1) -> np.ndarray:
    return np.roll(labels, shift, axis=0)


def folders(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    return pred, gt


def rows_by(result, case=None) -> dict[str, dict]:
    return {r["item"]: r for r in result.per_case if case is None or r["case"] == case}


# --- geometry -------------------------------------------------------------------------------------


def flipped_and_permuted(labels: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same world image stored with axis 0 reversed and axes 1 and 2 swapped, affine to match."""
    n0 = labels.shape[0]
    stored = labels[::-1].transpose(0, 2, 1)
    # stored[i, j, k] = labels[n0 - 1 - i, k, j]: the voxel-to-voxel map, composed with the GT affine.
    index_map = np.array([[-1, 0, 0, n0 - 1], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=float)
    return np.ascontiguousarray(stored), affine @ index_map


def test_a_flipped_prediction_is_refused_then_perfect_with_reorient(tmp_path):
    pred_dir, gt_dir = folders(tmp_path)
    truth = ellipsoid_labels()
    nib.save(nib.Nifti1Image(truth, AFFINE), gt_dir / "c.nii.gz")
    stored, affine = flipped_and_permuted(truth, AFFINE)
    nib.save(nib.Nifti1Image(stored, affine), pred_dir / "c.nii.gz")

    plain = evaluate(pred_dir, gt_dir, metrics="dice", workers=1)
    error = plain.per_case[0]["error"]
    assert error == (
        "shape mismatch: prediction (20, 10, 18) vs ground truth (20, 18, 10) (--reorient / reorient=True "
        "aligns predictions that differ only by axis order and flips)"
    )
    assert plain.failed_cases == {"c": error}

    fixed = evaluate(pred_dir, gt_dir, metrics="dice,hd95", workers=1, reorient=True)
    assert fixed.failed_cases == {}
    for row in fixed.per_case:
        assert row["dice"] == 1.0 and row["hd95"] == 0.0
        assert row["note"] == "reoriented the prediction from LSA to RAS"
        assert row["error"] == ""


def test_an_mha_prediction_of_a_nifti_ground_truth_aligns_with_reorient(tmp_path):
    """SimpleITK arrays are (z, y, x) and LPS+; nibabel arrays are (i, j, k) and RAS+."""
    pred_dir, gt_dir = folders(tmp_path)
    truth = ellipsoid_labels()
    nib.save(nib.Nifti1Image(truth, AFFINE), gt_dir / "c.nii.gz")
    image = sitk.GetImageFromArray(truth.transpose(2, 1, 0).copy())  # ITK index (x, y, z) = (i, j, k)
    image.SetSpacing(SPACING)
    image.SetOrigin((40.0, -12.5, 30.0))  # the RAS origin (-40, 12.5, 30) in LPS
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))  # RAS axes in LPS
    sitk.WriteImage(image, str(pred_dir / "c.mha"))
    result = evaluate(pred_dir, gt_dir, metrics="dice", workers=1, reorient=True)
    assert result.failed_cases == {}
    assert {r["dice"] for r in result.per_case} == {1.0}
    assert result.per_case[0]["note"] == "reoriented the prediction from SAR to RAS"


def test_origin_and_direction_mismatches_name_both_values(tmp_path):
    pred_dir, gt_dir = folders(tmp_path)
    truth = ellipsoid_labels()
    nib.save(nib.Nifti1Image(truth, AFFINE), gt_dir / "moved.nii.gz")
    nib.save(nib.Nifti1Image(truth, AFFINE), gt_dir / "turned.nii.gz")
    moved = AFFINE.copy()
    moved[0, 3] += 5.0
    nib.save(nib.Nifti1Image(truth, moved), pred_dir / "moved.nii.gz")
    turned = AFFINE.copy()  # axes 0 and 1 turned 10 degrees about z: still nearest to R and A
    cos, sin = math.cos(math.radians(10)), math.sin(math.radians(10))
    turned[:3, 0], turned[:3, 1] = 0.8 * np.array([cos, sin, 0.0]), 1.1 * np.array([-sin, cos, 0.0])
    nib.save(nib.Nifti1Image(truth, turned), pred_dir / "turned.nii.gz")
    result = evaluate(pred_dir, gt_dir, metrics="dice", workers=1, reorient=True)
    assert result.failed_cases["moved"] == (
        "origin mismatch: prediction (-35.0, 12.5, 30.0) vs ground truth (-40.0, 12.5, 30.0) (world mm, "
        "RAS+; --spacing scores the arrays voxel by voxel regardless of the headers)"
    )
    assert result.failed_cases["turned"] == (
        "direction mismatch: prediction ((0.984808, 0.173648, 0.0), (-0.173648, 0.984808, 0.0), (0.0, 0.0, 1.0)) vs ground "
        "truth ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)) (a unit vector per array axis, RAS+)"
    )
    # --spacing takes the arrays voxel by voxel: the headers are not compared.
    forced = evaluate(pred_dir, gt_dir, metrics="dice", workers=1, spacing=SPACING)
    assert forced.failed_cases == {} and {r["dice"] for r in forced.per_case} == {1.0}


# --- labels ---------------------------------------------------------------------------------------


def test_a_stray_predicted_label_gets_dice_zero_and_fails_nothing(tmp_path):
    pred_dir, gt_dir = folders(tmp_path)
    truth = ellipsoid_labels()
    guess = shifted(truth)
    stray = guess.copy()
    stray[0:3, 0:3, 0:3] = 7  # 27 voxels of a label the ground truth never has
    assert not (truth[0:3, 0:3, 0:3]).any() and not (guess[0:3, 0:3, 0:3]).any()
    for case, pred in (("clean", guess), ("stray", stray)):
        save_mask(gt_dir / f"{case}.nii.gz", truth, SPACING)
        save_mask(pred_dir / f"{case}.nii.gz", pred, SPACING)
    result = evaluate(pred_dir, gt_dir, metrics="dice,hd95", workers=1)
    assert result.failed_cases == {}
    assert [r["item"] for r in result.per_case] == ["1", "2", "3", "7"] * 2
    seven = rows_by(result, "stray")["7"]
    assert (seven["dice"], seven["gt_voxels"], seven["pred_voxels"], seven["error"]) == (0.0, 0, 27, "")
    assert math.isnan(rows_by(result, "clean")["7"]["dice"])  # in neither mask: NaN, left out
    for label in (1, 2, 3):
        expected = overlap(guess == label, truth == label)["dice"]
        assert rows_by(result, "stray")[str(label)]["dice"] == pytest.approx(expected)
        assert rows_by(result, "clean")[str(label)]["dice"] == pytest.approx(expected)
    stats = result.summary["results"]
    assert stats["7"]["dice"]["n"] == 1 and stats["7"]["dice"]["mean"] == 0.0
    assert stats["1"]["dice"]["n"] == 2 and stats["1"]["dice"]["n_error"] == 0


def test_an_explicit_label_list_counts_other_values_as_background(tmp_path):
    pred_dir, gt_dir = folders(tmp_path)
    truth = ellipsoid_labels()
    truth[15:, 10:, 6:] = 5  # labels 3-6 are present but not asked for
    truth[0:2, 0:2, :] = 6
    guess = shifted(truth)
    save_mask(gt_dir / "c.nii.gz", truth, SPACING)
    save_mask(pred_dir / "c.nii.gz", guess, SPACING)
    result = evaluate(pred_dir, gt_dir, labels=[1, 2], metrics="dice,hd95", workers=1)
    assert result.failed_cases == {}
    assert [r["item"] for r in result.per_case] == ["1", "2"]
    for label in (1, 2):
        row = rows_by(result)[str(label)]
        assert row["dice"] == pytest.approx(overlap(guess == label, truth == label)["dice"])
        assert row["hd95"] == pytest.approx(boundary(guess == label, truth == label, SPACING)["hd95"])


def test_binarize_scores_0_1_truth_against_0_255_predictions(tmp_path):
    pred_dir, gt_dir = folders(tmp_path)
    truth = (ellipsoid_labels() > 0).astype(np.uint8)
    guess = shifted(truth) * 255
    save_mask(gt_dir / "c.png", truth[:, :, 5])
    save_mask(pred_dir / "c.png", guess[:, :, 5].astype(np.uint8))
    as_labels = evaluate(pred_dir, gt_dir, metrics="dice", workers=1)
    assert {r["item"]: r["dice"] for r in as_labels.per_case} == {"1": 0.0, "255": 0.0}
    result = evaluate(pred_dir, gt_dir, metrics="dice", workers=1, binarize=True)
    assert [(r["item"], r["labels"]) for r in result.per_case] == [("1", "1")]
    expected = overlap(guess[:, :, 5] > 0, truth[:, :, 5] > 0)["dice"]
    assert result.per_case[0]["dice"] == pytest.approx(expected) and expected > 0.5
    with pytest.raises(SegDiceError, match=r"binarize: scores one foreground class \(1\); got labels \[2\]"):
        evaluate(pred_dir, gt_dir, workers=1, binarize=True, labels=[2])


def test_region_ranges_and_label_names_from_files(tmp_path):
    pred_dir, gt_dir = folders(tmp_path)
    truth = ellipsoid_labels()
    guess = shifted(truth)
    save_mask(gt_dir / "c.nii.gz", truth, SPACING)
    save_mask(pred_dir / "c.nii.gz", guess, SPACING)
    table = tmp_path / "names.csv"
    table.write_text('value,name\n1,"edema, peritumoral"\n2,necrosis\n3,enhancing\n')
    result = evaluate(pred_dir, gt_dir, metrics="dice", workers=1, label_names=table, regions={"WT": "1-3"})
    assert [(r["item"], r["labels"]) for r in result.per_case] == [
        ("edema, peritumoral", "1"), ("necrosis", "2"), ("enhancing", "3"), ("WT", "1+2+3"),
    ]  # fmt: skip
    assert rows_by(result)["WT"]["dice"] == pytest.approx(overlap(guess > 0, truth > 0)["dice"])

    dataset = tmp_path / "dataset.json"
    dataset.write_text(
        json.dumps(
            {
                "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing": 3},
                "regions_class_order": [1, 2, 3],
            }
        )
    )
    result = evaluate(pred_dir, gt_dir, metrics="dice", workers=1, label_names=dataset)
    assert [(r["item"], r["labels"]) for r in result.per_case] == [
        ("1", "1"), ("2", "2"), ("enhancing", "3"), ("whole tumor", "1+2+3"), ("tumor core", "2+3"),
    ]  # fmt: skip
    assert rows_by(result)["tumor core"]["dice"] == pytest.approx(
        overlap(np.isin(guess, [2, 3]), np.isin(truth, [2, 3]))["dice"]
    )
    (tmp_path / "bad.csv").write_text("1,liver\ntwo,spleen\n")
    with pytest.raises(SegDiceError, match=r"bad\.csv line 2: got 'two'; expected an integer label value"):
        evaluate(pred_dir, gt_dir, workers=1, label_names=tmp_path / "bad.csv")


def test_cli_label_options(tmp_path):
    pred_dir, gt_dir = folders(tmp_path)
    truth = ellipsoid_labels()
    save_mask(gt_dir / "c.nii.gz", truth, SPACING)
    save_mask(pred_dir / "c.nii.gz", shifted(truth), SPACING)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "liver"}}))
    out = tmp_path / "out"
    args = ["evaluate", str(pred_dir), str(gt_dir), "-j", "1", "--no-progress", "--metrics", "dice"]
    result = runner.invoke(
        app,
        [*args, "--label-names", str(tmp_path / "dataset.json"), "--region", "TC=2-3", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    _, *lines = (out / "per_case.csv").read_text().splitlines()
    assert [line.split(",")[1:3] for line in lines] == [["liver", "1"], ["2", "2"], ["3", "3"], ["TC", "2+3"]]
    bad = runner.invoke(app, [*args, "--region", "TC=3-2"])
    assert bad.exit_code == 2
    assert "regions['TC']: the range '3-2' is empty or spans more than 65536 labels" in bad.output


# --- layouts --------------------------------------------------------------------------------------


def test_an_nnunet_output_folder_with_npz_beside_each_case(tmp_path):
    pred_dir, gt_dir = folders(tmp_path)
    truth = ellipsoid_labels()
    for case in ("a", "b"):
        save_mask(gt_dir / f"{case}.nii.gz", truth, SPACING)
        save_mask(pred_dir / f"{case}.nii.gz", truth, SPACING)
        probabilities = np.random.default_rng(0).random((4, *truth.shape)).astype(np.float16)
        np.savez_compressed(pred_dir / f"{case}.npz", probabilities=probabilities)
        (pred_dir / f"{case}.pkl").write_bytes(b"\x80\x04K\x01.")
    result = evaluate(pred_dir, gt_dir, metrics="dice", workers=1)
    assert result.failed_cases == {}
    assert {r["pred_file"] for r in result.per_case} == {
        str(pred_dir / "a.nii.gz"),
        str(pred_dir / "b.nii.gz"),
    }
    # A ground truth of another format leaves the choice open: the message names the files and the option.
    npy_gt = tmp_path / "gt_npy"
    npy_gt.mkdir()
    np.save(npy_gt / "a.npy", truth)
    with pytest.raises(SegDiceError) as info:
        evaluate(pred_dir, npy_gt, metrics="dice", workers=1)
    assert str(info.value) == (
        "pred: 2 files give the case name 'a': a.nii.gz, a.npz; choose which files are masks with "
        "--pred-glob (API: pred_glob), e.g. --pred-glob '*.nii.gz', or tell the names apart with --pred-suffix"
    )
    chosen = evaluate(pred_dir, npy_gt, metrics="dice", workers=1, pred_glob="*.nii.gz")
    assert chosen.per_case[0]["dice"] == 1.0


def test_a_brats_folder_per_case_layout_with_recursive(tmp_path):
    gt_dir, pred_dir = tmp_path / "BraTS2023", tmp_path / "pred"
    pred_dir.mkdir()
    truths = {}
    for number in (1, 2):
        case = f"BraTS-GLI-{number:05d}-000"
        (gt_dir / case).mkdir(parents=True)
        truth = ellipsoid_labels(seed=number)
        truths[case] = truth
        save_mask(gt_dir / case / f"{case}-seg.nii.gz", truth, SPACING)
        save_mask(gt_dir / case / f"{case}-t1c.nii.gz", (truth * 40).astype(np.int16), SPACING)
        save_mask(pred_dir / f"{case}.nii.gz", shifted(truth), SPACING)
    with pytest.raises(SegDiceError, match=r"holds no mask file \(pass --recursive to search sub-folders\)"):
        evaluate(pred_dir, gt_dir, workers=1)
    result = evaluate(
        pred_dir, gt_dir, metrics="dice", workers=1, recursive=True, gt_glob="*-seg.nii.gz", gt_suffix="-seg",
        regions={"WT": "1-3"},
    )  # fmt: skip
    assert result.failed_cases == {} and result.summary["counts"]["cases"] == 2
    for case, truth in truths.items():
        expected = overlap(shifted(truth) > 0, truth > 0)["dice"]
        assert rows_by(result, case)["WT"]["dice"] == pytest.approx(expected)
    # The same through the command line.
    cli = runner.invoke(
        app,
        ["evaluate", str(pred_dir), str(gt_dir), "--recursive", "--gt-glob", "*-seg.nii.gz", "--gt-suffix", "-seg",
         "-j", "1", "--no-progress", "--metrics", "dice", "--strict"],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert "2 case(s): 2 scored, 0 failed" in cli.output


def test_ground_truth_entries_that_are_not_files_become_error_rows(tmp_path):
    pred_dir, gt_dir = folders(tmp_path)
    truth = ellipsoid_labels()
    for case in ("good", "linked", "folder"):
        save_mask(pred_dir / f"{case}.nii.gz", truth, SPACING)
    save_mask(gt_dir / "good.nii.gz", truth, SPACING)
    (gt_dir / "linked.nii.gz").symlink_to(tmp_path / "moved-away.nii.gz")
    (gt_dir / "folder.nii.gz").mkdir()
    result = evaluate(pred_dir, gt_dir, metrics="dice", workers=1)
    assert result.failed_cases == {
        "folder": f"{gt_dir / 'folder.nii.gz'}: a folder, not a mask file; expected a file",
        "linked": (
            f"{gt_dir / 'linked.nii.gz'}: a symbolic link to {tmp_path / 'moved-away.nii.gz'}, which does not "
            "exist; expected a mask file"
        ),
    }
    assert rows_by(result, "good")["1"]["dice"] == 1.0
    cli = runner.invoke(
        app,
        ["evaluate", str(pred_dir), str(gt_dir), "-j", "1", "--no-progress", "--metrics", "dice", "--strict"],
    )
    assert cli.exit_code == 1
    assert "3 case(s): 1 scored, 2 failed" in cli.output


def test_a_dicom_seg_without_its_empty_frames_is_placed_on_the_ground_truth_grid(tmp_path):
    """highdicom leaves empty frames out by default: the SEG spans slices 1-3 of a 5-slice CT."""
    from _synthetic_dicom import ct_series, write_seg

    pred_dir, gt_dir = folders(tmp_path)
    source = ct_series(tmp_path / "ct", shape=(5, 6, 5))
    labels = np.zeros((5, 6, 5), np.uint8)
    labels[1:4, 2:5, 1:4] = 1
    labels[2, 0, 0] = 2
    write_seg(pred_dir / "c.dcm", source, labels, omit_empty_frames=True)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "ct")))
    truth = sitk.GetImageFromArray(labels)
    truth.CopyInformation(reader.Execute())  # the ground truth on the CT's grid, as a converter writes it
    sitk.WriteImage(truth, str(gt_dir / "c.nrrd"))
    result = evaluate(pred_dir, gt_dir, metrics="dice,hd95", workers=1)
    assert result.failed_cases == {}
    assert {(r["item"], r["dice"], r["hd95"]) for r in result.per_case} == {("1", 1.0, 0.0), ("2", 1.0, 0.0)}
    assert (
        result.per_case[0]["note"]
        == "placed the DICOM-SEG's 3x6x5 voxels at (1, 0, 0) in the ground-truth grid"
    )
