"""A deterministic synthetic dataset of MRI-like 2D slices with a few small lesions.

Each slice is drawn from its own child of ``numpy.random.SeedSequence(seed)``: slice ``i`` depends only on
the seed, its index, the image size and whether it has lesions, never on the order in which slices are
generated or on the global NumPy/torch random state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from segdice._checks import check_number

__all__ = ["SyntheticSlices", "make_slice", "make_synthetic_dataset"]

# Fraction of each slice's pixels covered by lesions when it has any; the task's imbalance.
FOREGROUND_RANGE = (0.001, 0.01)
# Share of slices without any lesion, as in real scans where most slices are healthy.
EMPTY_FRACTION = 0.25
MAX_LESIONS = 3


@dataclass(frozen=True)
class SyntheticSlices:
    """Images and lesion masks of one split.

    Attributes
    ----------
    images
        ``float32`` array ``[N, 1, H, W]``, intensities roughly in ``[0, 1.5]``.
    masks
        ``int64`` label maps ``[N, H, W]``: 0 background, 1 lesion.
    """

    images: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def foreground_fraction(self) -> float:
        """Fraction of all pixels that are lesion."""
        return float(self.masks.mean()) if self.masks.size else 0.0

    @property
    def n_empty(self) -> int:
        """Number of slices without any lesion pixel."""
        return int((self.masks.reshape(len(self), -1).max(axis=1) == 0).sum())


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with correlation length ``sigma`` pixels."""
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-12)


def _ellipse(yy, xx, cy, cx, ry, rx, angle) -> np.ndarray:
    """Normalised elliptic radius: < 1 inside the ellipse, 1 on its border."""
    c, s = np.cos(angle), np.sin(angle)
    dy, dx = yy - cy, xx - cx
    u = (c * dx + s * dy) / rx
    v = (-s * dx + c * dy) / ry
    return np.sqrt(u * u + v * v)


def make_slice(rng: np.random.Generator, size: int, n_lesions: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one slice: a head with skull, grey/white matter texture, ventricles and ``n_lesions`` lesions.

    Parameters
    ----------
    rng
        The generator to draw from (consumed).
    size
        Height and width in pixels.
    n_lesions
        Number of lesions; their total area is 0.1-1% of the slice.

    Returns
    -------
    image : numpy.ndarray
        ``float32 [size, size]``, with a smooth multiplicative bias field and Rician noise.
    mask : numpy.ndarray
        ``int64 [size, size]`` lesion mask (0/1).
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    centre = size / 2 + rng.uniform(-0.04, 0.04, 2) * size
    head_r = size * np.array([rng.uniform(0.40, 0.46), rng.uniform(0.33, 0.40)])
    head_angle = rng.uniform(-0.3, 0.3)
    head = _ellipse(yy, xx, centre[0], centre[1], head_r[0], head_r[1], head_angle)
    brain = head < 0.90
    skull = (head >= 0.90) & (head < 1.0)

    # Grey and white matter: a thresholded smooth field, softened so tissue borders are not steps.
    matter = _smooth_noise(rng, size, size / 14)
    white = 1 / (1 + np.exp(-3 * matter))
    image = np.where(brain, 0.45 + 0.22 * white, 0.0)
    image = image + 0.04 * _smooth_noise(rng, size, size / 40) * brain
    image[skull] = 0.75

    # Two ventricles, dark (CSF), near the centre.
    vent = np.zeros_like(brain)
    for side in (-1, 1):
        cy = centre[0] + rng.uniform(-0.03, 0.03) * size
        cx = centre[1] + side * rng.uniform(0.05, 0.08) * size
        r = size * np.array([rng.uniform(0.08, 0.13), rng.uniform(0.025, 0.04)])
        vent |= _ellipse(yy, xx, cy, cx, r[0], r[1], head_angle + side * rng.uniform(0.1, 0.4)) < 1
    image[vent] = 0.15

    # Bright non-lesion spots (vessels, partial volume): a brightness threshold alone is not enough.
    for _ in range(rng.integers(2, 6)):
        cy, cx = centre + rng.uniform(-0.3, 0.3, 2) * size
        r = rng.uniform(0.6, 1.6)
        spot = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        image += 0.22 * spot * brain

    # Lesions: hyperintense ellipses inside the brain, away from the ventricles and the skull.
    mask = np.zeros((size, size), dtype=bool)
    if n_lesions:
        total = np.exp(rng.uniform(*np.log(FOREGROUND_RANGE))) * size * size
        shares = rng.dirichlet(np.full(n_lesions, 2.0))
        allowed = ndimage.binary_erosion(brain & ~vent, iterations=max(2, size // 24))
        candidates = np.argwhere(allowed)
        for share in shares:
            area = max(share * total, 3.0)
            aspect = rng.uniform(0.6, 1.0)
            rx = np.sqrt(area / (np.pi * aspect))
            cy, cx = candidates[rng.integers(len(candidates))] + rng.uniform(-0.5, 0.5, 2)
            d = _ellipse(yy, xx, cy, cx, rx * aspect, rx, rng.uniform(0, np.pi))
            lesion = d < 1
            if not lesion.any():  # sub-pixel lesion: keep the centre pixel
                lesion[round(cy), round(cx)] = True
            mask |= lesion
            contrast = rng.uniform(0.28, 0.42)
            image += contrast * np.clip(1.25 - d, 0, 1) ** 0.7

    # Scanner effects: a smooth multiplicative bias field, then Rician noise (magnitude of complex noise).
    ny, nx = (yy / size - 0.5), (xx / size - 0.5)
    a = rng.uniform(-0.35, 0.35, 5)
    bias = np.exp(a[0] * ny + a[1] * nx + a[2] * ny * nx + a[3] * ny * ny + a[4] * nx * nx)
    image = ndimage.gaussian_filter(image, 0.6) * bias
    sigma = rng.uniform(0.03, 0.06)
    real = image + sigma * rng.standard_normal(image.shape)
    imag = sigma * rng.standard_normal(image.shape)
    image = np.sqrt(real * real + imag * imag)
    return image.astype(np.float32), mask.astype(np.int64)


def make_synthetic_dataset(
    n: int,
    size: int = 96,
    seed: int = 0,
    *,
    offset: int = 0,
    callback: Callable[[], None] | None = None,
) -> SyntheticSlices:
    """Generate ``n`` slices deterministically from ``seed``.

    Parameters
    ----------
    n
        Number of slices.
    size
        Height and width of each slice (at least 32).
    seed
        Seed of the whole dataset; slice ``offset + i`` is drawn from child ``offset + i`` of
        ``numpy.random.SeedSequence(seed)``.
    offset
        Index of the first slice, so that disjoint splits come from disjoint children.
    callback
        Called once per generated slice (progress bars).

    Returns
    -------
    SyntheticSlices
        About a quarter of the slices (exactly ``round(n / 4)``) have no lesion; the others have one to
        three lesions covering 0.1-1% of their pixels.

    Raises
    ------
    SegDiceError
        If ``n``, ``size``, ``seed`` or ``offset`` is out of range.

    Examples
    --------
    >>> data = make_synthetic_dataset(8, size=48, seed=1)
    >>> data.images.shape, data.masks.shape, data.n_empty
    ((8, 1, 48, 48), (8, 48, 48), 2)
    >>> 0 < data.foreground_fraction < 0.01
    True
    """
    check_number("n", n, minimum=1, integer=True)
    check_number("size", size, minimum=32, integer=True)
    check_number("seed", seed, minimum=0, integer=True)
    check_number("offset", offset, minimum=0, integer=True)
    n, size = int(n), int(size)
    root = np.random.SeedSequence(int(seed))
    children = root.spawn(int(offset) + n)[int(offset) :]
    # Which slices are empty is decided once per split so every split has the same share of them.
    split_rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(offset), n]))
    n_empty = round(n * EMPTY_FRACTION)
    empty = np.zeros(n, dtype=bool)
    empty[split_rng.permutation(n)[:n_empty]] = True
    images = np.empty((n, 1, size, size), dtype=np.float32)
    masks = np.empty((n, size, size), dtype=np.int64)
    for i, child in enumerate(children):
        rng = np.random.default_rng(child)
        n_lesions = 0 if empty[i] else int(rng.integers(1, MAX_LESIONS + 1))
        images[i, 0], masks[i] = make_slice(rng, size, n_lesions)
        if callback is not None:
            callback()
    return SyntheticSlices(images=images, masks=masks)
