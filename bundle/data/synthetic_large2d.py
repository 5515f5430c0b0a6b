# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Synthetic large grey 2D images with tiny lesions and image-level labels (for high-resolution saliency).

Each image (default 512 x 512) is a textured grey background: a slowly varying illumination field,
a medium-scale mottled texture and pixel noise. Both classes contain the same three kinds of
distractors: large faint bright blobs, thin bright curvilinear fibres and small dark spots the size of
the lesions. *Positive* images (label 1, ``"lesion"``) additionally contain 1-2 small bright round
lesions with a soft edge, 4-6 px in radius by default, i.e. about 1 % of the image width; *negative*
images (label 0, ``"normal"``) contain none. The fibres are as bright as the lesions, so the brightest
pixel, and after per-image min-max scaling the mean intensity, do not give the label away
(``tests/data/test_synthetic_large2d.py`` keeps such image-level statistics near chance). A classifier
therefore has to find something small, bright and round, and at a quarter of the resolution (the usual
network input) a lesion is only a few pixels across: the setting in which a coarse saliency map cannot
say exactly where the lesion is, and which GLAM-style global-local saliency (:mod:`bundle.localization.glam`) addresses.

Array layout: an image is ``[H, W]`` (rows, columns), float32 in ``[0, 1]`` from the generator and
8-bit grey PNG on disk (``round(255 * image)``); a lesion mask is ``[H, W]`` uint8, 1 inside lesions,
stored as a PNG with values 0/1 (multiply by 255 to view it). ``transforms.LoadVolumed`` reads the PNG
as ``[1, H, W]`` and ``transforms.ToBagd`` makes it a bag of one slice ``[1, 1, H, W]``.

Everything is numpy, vectorised, and driven by one :class:`numpy.random.Generator`, so a seed fixes
the data exactly. A 512 x 512 image takes about 30 ms.

Example:
    >>> import numpy as np
    >>> image, mask = generate_case(np.random.default_rng(0), positive=True)
    >>> image.shape, image.dtype, int(mask.max())
    ((512, 512), dtype('float32'), 1)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from bundle.data.datalist_writer import write_datalist
from bundle.data.labelled_cases import check_counts, write_labelled_cases
from bundle.data.synthetic_oct import _pair, _smooth_noise

__all__ = [
    "DEFAULT_SIZE",
    "LABEL_NAMES",
    "SyntheticLarge2DCase",
    "SyntheticLarge2DConfig",
    "generate_case",
    "make_synthetic_large2d_dataset",
    "simulate_case",
    "to_uint8",
]

#: Default image size ``(H, W)``.
DEFAULT_SIZE: tuple[int, int] = (512, 512)

#: Class index -> name of the synthetic task.
LABEL_NAMES: dict[str, str] = {"0": "normal", "1": "lesion"}

_EDGE = 0.15  # width of the soft edge of lesions and spots, as a fraction of the radius


@dataclass(frozen=True)
class SyntheticLarge2DConfig:
    """Parameters of the synthetic large-image generator (ranges are inclusive ``(min, max)`` pairs).

    Args:
        num_lesions: number of lesions in a positive image. Default ``(1, 2)``.
        lesion_radius: lesion radius in pixels. Default ``(4.0, 6.0)`` (about 1 % of a 512-px width).
        lesion_contrast: brightness a lesion adds at its centre, in units of the ``[0, 1]`` range.
            Default ``(0.25, 0.4)``.
        num_blobs: large faint bright blobs per image (both classes). Default ``(2, 5)``.
        blob_radius: their radius (Gaussian sigma) in pixels. Default ``(15.0, 40.0)``.
        blob_contrast: brightness they add at their centre. Default ``(0.05, 0.15)``.
        num_fibres: thin bright curvilinear fibres per image (both classes). Default ``(3, 6)``.
        fibre_contrast: brightness a fibre adds on its axis. Default ``(0.3, 0.55)``: at least as bright as
            the lesions, so that the brightest pixel of an image is usually on a fibre in both classes (with
            fainter fibres the lesion set the maximum, and after the per-image min-max scaling of the bundle
            the mean intensity alone told the classes apart: AUROC 0.89 for lesions of 6-9 px).
        num_dark_spots: small dark spots per image (both classes), sized like lesions. Default ``(2, 6)``.
        dark_spot_contrast: brightness a dark spot removes at its centre. Default ``(0.15, 0.3)``.
        noise_std: standard deviation of the additive Gaussian pixel noise. Default 0.03.
        contrast_jitter: per-image gain drawn from ``1 +- contrast_jitter``. Default 0.1.
        brightness_jitter: per-image offset drawn from ``+- brightness_jitter``. Default 0.05.
    """

    num_lesions: tuple[int, int] = (1, 2)
    lesion_radius: tuple[float, float] = (4.0, 6.0)
    lesion_contrast: tuple[float, float] = (0.25, 0.4)
    num_blobs: tuple[int, int] = (2, 5)
    blob_radius: tuple[float, float] = (15.0, 40.0)
    blob_contrast: tuple[float, float] = (0.05, 0.15)
    num_fibres: tuple[int, int] = (3, 6)
    fibre_contrast: tuple[float, float] = (0.3, 0.55)
    num_dark_spots: tuple[int, int] = (2, 6)
    dark_spot_contrast: tuple[float, float] = (0.15, 0.3)
    noise_std: float = 0.03
    contrast_jitter: float = 0.1
    brightness_jitter: float = 0.05

    def __post_init__(self) -> None:
        for name in ("num_lesions", "num_blobs", "num_fibres", "num_dark_spots"):
            minimum = 1 if name == "num_lesions" else 0
            object.__setattr__(self, name, _pair(getattr(self, name), name, integer=True, minimum=minimum))
        for name in ("lesion_radius", "blob_radius"):
            object.__setattr__(self, name, _pair(getattr(self, name), name, minimum=1.0))
        for name in ("lesion_contrast", "blob_contrast", "fibre_contrast", "dark_spot_contrast"):
            lo, hi = _pair(getattr(self, name), name)
            if hi > 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {(lo, hi)!r}.")
            object.__setattr__(self, name, (lo, hi))
        for name in ("noise_std", "contrast_jitter", "brightness_jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")


@dataclass
class SyntheticLarge2DCase:
    """One simulated image with its ground truth.

    Attributes:
        image: ``[H, W]`` float32 intensities in ``[0, 1]``.
        mask: ``[H, W]`` uint8, 1 inside lesions (all zero for negatives).
        lesions: one dict per lesion with its ``center`` ``(row, column)``, ``radius`` (px) and
            ``contrast``.
    """

    image: np.ndarray
    mask: np.ndarray
    lesions: list[dict] = field(default_factory=list)


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or any(int(s) != s for s in size):
        raise ValueError(f"size must be two integers (H, W), got {size!r}.")
    h, w = (int(s) for s in size)
    if h < 64 or w < 64:
        raise ValueError(f"size must have H >= 64 and W >= 64, got {size!r}.")
    return h, w


def _disc(
    rows: np.ndarray, cols: np.ndarray, center: Sequence[float], radius: float
) -> tuple[tuple[slice, slice], np.ndarray]:
    """Normalised radius ``r`` (1 on the rim) of a disc on its bounding box (2 px margin)."""
    (h,), (w,) = rows.shape, cols.shape
    box = tuple(
        slice(max(0, int(np.floor(c - radius - 2))), min(n, int(np.ceil(c + radius + 2)) + 1))
        for c, n in zip(center, (h, w))
    )
    r = np.sqrt((rows[box[0], None] - center[0]) ** 2 + (cols[None, box[1]] - center[1]) ** 2) / radius
    return box, r


def _soft_disc(r: np.ndarray) -> np.ndarray:
    """1 inside, 0 outside, with a soft rim ``_EDGE`` wide (a logistic step at ``r = 1``)."""
    return 1.0 / (1.0 + np.exp((r - 1.0) / _EDGE))


def _place_lesions(
    rng: np.random.Generator, size: tuple[int, int], cfg: SyntheticLarge2DConfig
) -> list[dict]:
    """Centres, radii and contrasts of the lesions: inside the image and at least 4 px apart."""
    h, w = size
    lesions: list[dict] = []
    for _ in range(int(rng.integers(cfg.num_lesions[0], cfg.num_lesions[1] + 1))):
        radius = float(rng.uniform(*cfg.lesion_radius))
        contrast = float(rng.uniform(*cfg.lesion_contrast))
        margin = radius + 3.0
        for _attempt in range(100):
            center = (float(rng.uniform(margin, h - 1 - margin)), float(rng.uniform(margin, w - 1 - margin)))
            if all(np.hypot(center[0] - o["center"][0], center[1] - o["center"][1]) > radius + o["radius"] + 4.0
                   for o in lesions):
                break
        lesions.append({"center": center, "radius": radius, "contrast": contrast})
    return lesions


def simulate_case(
    rng: np.random.Generator,
    positive: bool,
    size: Sequence[int] = DEFAULT_SIZE,
    config: SyntheticLarge2DConfig | None = None,
) -> SyntheticLarge2DCase:
    """Simulate one large grey image and return it with its ground truth.

    Args:
        rng: the only source of randomness; the same generator state gives the same case.
        positive: add 1-2 small bright lesions (label 1) or none (label 0).
        size: ``(H, W)``, both >= 64. Default ``(512, 512)``.
        config: generator parameters; default :class:`SyntheticLarge2DConfig()`.

    Returns:
        A :class:`SyntheticLarge2DCase` (image, mask, lesion list).

    Raises:
        ValueError: for an invalid ``size``.
    """
    cfg = config if config is not None else SyntheticLarge2DConfig()
    h, w = _check_size(size)
    rows, cols = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)

    # 1. Background: slow illumination, a mottled texture about 20 px across, and fine grain.
    image = 0.2 + 0.25 * _smooth_noise(rng, (h, w), (4, 4))
    image = image + 0.1 * _smooth_noise(rng, (h, w), (h / 20, w / 20))
    image = image + 0.04 * _smooth_noise(rng, (h, w), (h / 4, w / 4))

    # 2. Distractors of both classes. Large faint bright blobs (Gaussian profile).
    for _ in range(int(rng.integers(cfg.num_blobs[0], cfg.num_blobs[1] + 1))):
        cy, cx = rng.uniform(0, h - 1), rng.uniform(0, w - 1)
        sigma = rng.uniform(*cfg.blob_radius)
        image = image + rng.uniform(*cfg.blob_contrast) * np.exp(
            -0.5 * (((rows[:, None] - cy) ** 2 + (cols[None, :] - cx) ** 2) / sigma**2)
        )
    # Thin bright fibres: a gently waving line segment of random orientation, about 1-2 px wide.
    for _ in range(int(rng.integers(cfg.num_fibres[0], cfg.num_fibres[1] + 1))):
        theta = rng.uniform(0, np.pi)
        cy, cx = rng.uniform(0, h - 1), rng.uniform(0, w - 1)
        u = (cols[None, :] - cx) * np.cos(theta) + (rows[:, None] - cy) * np.sin(theta)
        v = -(cols[None, :] - cx) * np.sin(theta) + (rows[:, None] - cy) * np.cos(theta)
        period, amplitude = rng.uniform(0.3, 1.0) * max(h, w), rng.uniform(2.0, 12.0)
        axis = amplitude * np.sin(2 * np.pi * u / period + rng.uniform(0, 2 * np.pi))
        half_length = rng.uniform(0.1, 0.4) * max(h, w)
        along = 1.0 / (1.0 + np.exp((np.abs(u) - half_length) / 3.0))
        width = rng.uniform(0.7, 1.5)
        image = image + rng.uniform(*cfg.fibre_contrast) * along * np.exp(-0.5 * ((v - axis) / width) ** 2)
    # Small dark spots, sized like the lesions.
    for _ in range(int(rng.integers(cfg.num_dark_spots[0], cfg.num_dark_spots[1] + 1))):
        radius = rng.uniform(*cfg.lesion_radius)
        center = (rng.uniform(0, h - 1), rng.uniform(0, w - 1))
        box, r = _disc(rows, cols, center, radius)
        image[box] = image[box] - rng.uniform(*cfg.dark_spot_contrast) * _soft_disc(r)

    # 3. Lesions (positives only): small bright discs with a soft rim.
    mask = np.zeros((h, w), dtype=np.uint8)
    lesions = _place_lesions(rng, (h, w), cfg) if positive else []
    for lesion in lesions:
        box, r = _disc(rows, cols, lesion["center"], lesion["radius"])
        image[box] = image[box] + lesion["contrast"] * _soft_disc(r)
        mask[box] |= (r <= 1.0).astype(np.uint8)

    # 4. Acquisition: additive noise, per-image gain and offset, clip to [0, 1].
    image = image + rng.normal(0.0, cfg.noise_std, size=(h, w))
    gain = 1.0 + rng.uniform(-cfg.contrast_jitter, cfg.contrast_jitter)
    offset = rng.uniform(-cfg.brightness_jitter, cfg.brightness_jitter)
    image = np.clip(gain * image + offset, 0.0, 1.0).astype(np.float32)
    return SyntheticLarge2DCase(image=image, mask=mask, lesions=lesions)


def generate_case(
    rng: np.random.Generator,
    positive: bool,
    size: Sequence[int] = DEFAULT_SIZE,
    config: SyntheticLarge2DConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one synthetic large image and its lesion mask.

    Args:
        rng: the only source of randomness; the same generator state gives the same arrays.
        positive: add 1-2 small bright lesions (label 1) or none (label 0).
        size: ``(H, W)``. Default ``(512, 512)``.
        config: generator parameters; default :class:`SyntheticLarge2DConfig()`.

    Returns:
        ``(image, mask)``: ``[H, W]`` float32 in ``[0, 1]`` and ``[H, W]`` uint8 (1 in lesions).
    """
    case = simulate_case(rng, positive, size=size, config=config)
    return case.image, case.mask


def to_uint8(image: np.ndarray) -> np.ndarray:
    """The 8-bit grey values written to the PNG: ``round(255 * image)``."""
    return np.round(255.0 * image).astype(np.uint8)


def make_synthetic_large2d_dataset(
    out_dir: str | os.PathLike,
    num_train: int = 240,
    num_val: int = 60,
    num_test: int = 60,
    positive_fraction: float = 0.5,
    seed: int = 0,
    size: Sequence[int] = DEFAULT_SIZE,
    overwrite: bool = False,
    progress: bool = True,
    config: SyntheticLarge2DConfig | None = None,
) -> Path:
    """Write a synthetic large-image dataset as PNG files plus a decathlon-style datalist.

    Layout under ``out_dir``::

        datalist.json          {"training": [{"image": "images/case_0000.png", "label": 1,
                                              "mask": "masks/case_0000.png"}, ...],
                                "validation": [...], "test": [...], ...}
        images/case_XXXX.png   [H, W] 8-bit grey, round(255 * image)
        masks/case_XXXX.png    [H, W] 8-bit lesion mask, values 0/1 (all zero for label 0)

    Cases are numbered consecutively over training, validation and test. Each split has exactly
    ``round(n * positive_fraction)`` positives in a random order. Every case gets its own random
    stream spawned from ``seed`` (:class:`numpy.random.SeedSequence`), so the same arguments give
    identical files.

    Args:
        out_dir: output folder (created if needed).
        num_train: number of training images. Default 240.
        num_val: number of validation images. Default 60.
        num_test: number of test images. Default 60.
        positive_fraction: fraction of label-1 images in each split, in ``[0, 1]``. Default 0.5.
        seed: random seed. Default 0.
        size: ``(H, W)`` of every image. Default ``(512, 512)``.
        overwrite: replace an existing dataset in ``out_dir`` (its ``datalist.json`` and its
            ``case_*.png`` files); otherwise refuse when any of them exists.
        progress: show a progress bar.
        config: generator parameters; default :class:`SyntheticLarge2DConfig()`.

    Returns:
        The path of ``out_dir/datalist.json``.

    Raises:
        FileExistsError: when ``out_dir`` already holds a dataset and ``overwrite`` is ``False``.
        ValueError: for negative counts, an empty dataset, ``positive_fraction`` outside
            ``[0, 1]`` or an invalid ``size``.
    """
    counts = check_counts(num_train, num_val, num_test, positive_fraction)
    size = _check_size(size)
    cfg = config if config is not None else SyntheticLarge2DConfig()

    def save(image: np.ndarray, mask: np.ndarray, image_path: Path, mask_path: Path) -> None:
        Image.fromarray(to_uint8(image)).save(image_path)
        Image.fromarray(mask).save(mask_path)

    datalist_path, splits = write_labelled_cases(
        Path(out_dir), counts, positive_fraction, seed, overwrite, progress, ".png",
        lambda rng, positive: generate_case(rng, positive=positive, size=size, config=cfg), save, "synthetic large 2D",
    )

    h, w = size
    return write_datalist(
        datalist_path,
        name="synthetic_large2d",
        description=(
            f"Synthetic large grey 2D images [H, W] = [{h}, {w}] (8-bit PNG; a bag of one slice). Label 1: "
            f"1-2 small bright round lesions of radius {cfg.lesion_radius[0]:g}-{cfg.lesion_radius[1]:g} px; "
            "label 0: none. Both classes contain large faint bright blobs, thin bright fibres and small dark "
            "spots. Lesion masks (values 0/1) under 'mask'. Generated by "
            "bundle.data.synthetic_large2d.make_synthetic_large2d_dataset."
        ),
        labels=LABEL_NAMES,
        training=splits["training"],
        validation=splits["validation"],
        test=splits["test"],
        extra={
            "tensorImageSize": "2D",
            "modality": {"0": "grey image (synthetic)"},
            "generator": {"seed": int(seed), "size": [h, w], "positive_fraction": float(positive_fraction),
                          "config": asdict(cfg)},
        },
        overwrite=True,
    )
