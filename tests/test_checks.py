"""The shared validators (segdice._checks) and array conversions (segdice._arrays)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from segdice._arrays import as_array, device_of, to_contiguous_numpy, to_numpy, to_torch
from segdice._checks import (
    SegDiceError,
    check_distributed,
    check_empty_value,
    check_ignore_index,
    check_include_background,
    check_spacing,
    describe,
)


@given(values=st.lists(st.floats(1e-6, 1e6), min_size=1, max_size=4))
def test_check_spacing_returns_one_float_per_axis(values):
    for given_as in (values, tuple(values), np.array(values), torch.tensor(values, dtype=torch.float64)):
        got = check_spacing("spacing", given_as, len(values))
        assert got == tuple(float(v) for v in values)
        assert all(type(v) is float for v in got)


def test_check_spacing_none_and_scalar():
    assert check_spacing("spacing", None, 3) == (1.0, 1.0, 1.0)
    assert check_spacing("spacing", 2, 2) == (2.0, 2.0)
    assert check_spacing("spacing", np.float32(0.5), 1) == (0.5,)


@pytest.mark.parametrize(
    ("spacing", "match"),
    [
        ([1.0, 1.0, 1.0], r"spacing: got 3 value\(s\) \(1.0, 1.0, 1.0\) for masks with 2 dimension\(s\)"),
        ([1.0, 0.0], r"spacing: got \(1.0, 0.0\); expected finite values > 0"),
        ([1.0, math.nan], r"expected finite values > 0"),
        (-1.0, r"expected finite values > 0"),
        (["a", "b"], r"spacing: got \['a', 'b'\]; expected 2 positive numbers"),
        (True, r"got 1 value\(s\) \(1.0,\)"),  # a bool is not a number here
    ],
)
def test_check_spacing_rejects(spacing, match):
    with pytest.raises(SegDiceError, match=match):
        check_spacing("spacing", spacing, 2)


def test_check_spacing_names_where_and_shape():
    with pytest.raises(
        SegDiceError,
        match=r"^case\.nii: spacing: got 1 value\(s\) \(2.0,\) for an array of shape \(3, 4\); expected one per axis",
    ):
        check_spacing("spacing", [2.0], 2, where="case.nii", shape=(3, 4))


def test_check_ignore_index():
    assert check_ignore_index(None) is None
    assert check_ignore_index(np.int16(-100)) == -100
    assert type(check_ignore_index(255.0)) is int
    for bad in (0.5, "255", True, math.inf):
        with pytest.raises(SegDiceError, match="ignore_index"):
            check_ignore_index(bad)


def test_check_empty_value():
    assert math.isnan(check_empty_value(float("nan")))
    assert check_empty_value(0) == 0.0 and check_empty_value(np.float32(1)) == 1.0
    with pytest.raises(SegDiceError, match=r"empty_value: got 2; expected NaN or a value in \[0, 1\]"):
        check_empty_value(2)
    with pytest.raises(SegDiceError, match=r"empty_value: got True \(bool\)"):
        check_empty_value(True)


@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_include_background_only_in_multiclass(mode):
    check_include_background(True, mode)
    check_include_background(False, "multiclass")
    with pytest.raises(SegDiceError, match=rf"include_background: got False in mode '{mode}'; expected True"):
        check_include_background(False, mode)


def test_distributed_needs_batch_statistics():
    check_distributed(True, False)
    check_distributed(False, True)
    with pytest.raises(
        SegDiceError, match=r"distributed: got True with per_image=True; expected per_image=False"
    ):
        check_distributed(True, True)


def test_the_same_messages_come_from_losses_metrics_and_stats():
    """One message per fact, whichever entry point raises it."""
    from segdice import DiceLoss, dice_loss
    from segdice.stats import confusion, soft_stats

    x, t = torch.zeros(1, 2, 3), torch.zeros(1, 2, 3)
    bg = []
    for call in (
        lambda: DiceLoss("multilabel", include_background=False),
        lambda: dice_loss(x, t, "multilabel", include_background=False),
        lambda: confusion(t.long(), t.long(), mode="multilabel", include_background=False),
    ):
        with pytest.raises(SegDiceError) as info:
            call()
        bg.append(str(info.value))
    assert len(set(bg)) == 1 and "include_background: got False in mode 'multilabel'" in bg[0]
    dist = []
    for call in (
        lambda: DiceLoss("multiclass", per_image=True, distributed=True),
        lambda: soft_stats(x, t.argmax(1), "multiclass", per_image=True, distributed=True),
    ):
        with pytest.raises(SegDiceError) as info:
            call()
        dist.append(str(info.value))
    assert len(set(dist)) == 1 and dist[0].startswith("distributed: got True with per_image=True")


def test_array_conversions():
    b = torch.tensor([[True, False]])
    assert to_contiguous_numpy(b).dtype == np.uint8 and to_contiguous_numpy(b).tolist() == [[1, 0]]
    assert to_contiguous_numpy(torch.tensor([7], dtype=torch.uint16)).dtype == np.int64
    strided = np.arange(12).reshape(3, 4)[:, ::2]
    assert to_contiguous_numpy(strided).flags.c_contiguous
    assert to_contiguous_numpy(np.array([True])).dtype == np.uint8
    assert to_numpy("pred", b).dtype == np.bool_  # as it is: no dtype change
    a = np.zeros(3)
    assert to_numpy("pred", a) is a
    assert to_torch(strided).tolist() == strided.tolist()
    assert device_of(np.zeros(1), torch.zeros(1)) == torch.device("cpu")
    with pytest.raises(SegDiceError, match=r"pred: got list \[1\]; expected a NumPy array"):
        to_numpy("pred", [1])
    with pytest.raises(SegDiceError, match=r"expected a torch\.Tensor or a numpy\.ndarray"):
        as_array("target", [1])
    with pytest.raises(SegDiceError, match="expected real or integer values"):
        as_array("pred", np.zeros(2, complex))
    with pytest.raises(SegDiceError, match="expected a numeric array"):
        as_array("pred", np.array(["a"]))


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_describe_skips_nan_and_counts_nan_and_inf(kind):
    values = [0.0, 3.0, float("nan"), 1.5, float("nan"), float("-inf")]
    x = np.array(values, np.float32) if kind == "numpy" else torch.tensor(values)
    text = describe(x)
    # by hand: the values other than NaN are 0, 3, 1.5, -inf; two NaN, one infinite value
    assert text.endswith("values in [-inf, 3], 2 NaN, 1 inf"), text
    finite = np.array([[0.0, 3.0]]) if kind == "numpy" else torch.tensor([[0.0, 3.0]])
    assert describe(finite).endswith("values in [0, 3]")
    nan = np.full((2, 2), np.nan) if kind == "numpy" else torch.full((2, 2), float("nan"))
    assert describe(nan).endswith("every value NaN") and "[nan" not in describe(nan)


def test_describe_a_meta_tensor_gives_its_shape_without_values():
    assert describe(torch.empty(2, 3, device="meta")) == "a tensor of shape (2, 3), dtype torch.float32"
