# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Synthetic OCT-like volumes with volume-level labels: the bundle's embedded default data.

Each volume imitates a macular OCT cube: a curved retinal band made of horizontal layers of
different reflectivity (bright nerve fibre layer on top, dark nuclear layers, bright ellipsoid zone
and RPE at the bottom), dark vitreous above, a textured choroid that fades with depth below,
shadows cast by retinal vessels, multiplicative speckle and a little Gaussian noise.
*Positive* volumes (label 1, ``"cyst"``) additionally contain 1-3 small dark intraretinal cysts
(soft-edged ellipsoids spanning a few B-scans near the centre of the cube; the numbers are those of the
``"default"`` preset, see :data:`PRESETS`); *negative* volumes
(label 0, ``"normal"``) contain none. Both classes contain the same confounders (vessel shadows and
small faint dark speckle clusters), so a classifier has to find the cysts: a small lesion somewhere
in a large volume, which is the multiple-instance setting of MIMS-CNN.

Array layout: every volume is ``[H, W, D]`` = (depth/axial, lateral, slice). ``H`` runs down the
A-scan (vitreous at small ``h``), ``arr[:, :, d]`` is the ``d``-th B-scan, so ``slice_axis = 2``
yields B-scans. Images are ``float32`` in ``[0, 1]``; lesion masks are ``uint8`` (1 inside cysts).

Everything is numpy, vectorised, and driven by one :class:`numpy.random.Generator`, so a seed fixes
the data exactly. A default ``64 x 96 x 32`` volume takes a few milliseconds.

Presets (:data:`PRESETS`, :func:`preset_config`): ``"default"`` is :class:`SyntheticOCTConfig` as it is
(the bundle's demo data); ``"hard"`` has the same cysts anywhere in the central 30 B-scans instead of the
central 16, so that training bags of 12-18 of the 30 central B-scans may miss them and the evidence is no longer
concentrated near the centre of the cube (calibrated: docs/results/synthetic_oct_hard_calibration.md).

Example:
    >>> import numpy as np
    >>> image, mask = generate_case(np.random.default_rng(0), positive=True)
    >>> image.shape, image.dtype, int(mask.max())
    ((64, 96, 32), dtype('float32'), 1)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from bundle.data.datalist_writer import write_datalist
from bundle.data.labelled_cases import check_counts, write_labelled_cases
from bundle.data.nifti_io import save_nifti

__all__ = [
    "DEFAULT_SHAPE",
    "LABEL_NAMES",
    "PRESETS",
    "SyntheticOCTCase",
    "SyntheticOCTConfig",
    "generate_case",
    "make_synthetic_oct_dataset",
    "preset_config",
    "simulate_case",
]

#: Default volume shape ``(H, W, D)``: 64 rows (depth) x 96 columns (lateral) x 32 B-scans.
DEFAULT_SHAPE: tuple[int, int, int] = (64, 96, 32)

#: Class index -> name of the synthetic task.
LABEL_NAMES: dict[str, str] = {"0": "normal", "1": "cyst"}

# Retinal layers as (upper boundary in relative depth t, reflectivity), t = 0 at the inner limiting
# membrane and t = 1 at the bottom of the RPE. Boundaries are jittered per volume.
_LAYERS: tuple[tuple[float, float], ...] = (
    (0.00, 0.80),  # RNFL, bright
    (0.10, 0.45),  # GCL
    (0.22, 0.62),  # IPL
    (0.32, 0.30),  # INL, dark
    (0.42, 0.55),  # OPL
    (0.49, 0.16),  # ONL, darkest
    (0.72, 0.40),  # ELM
    (0.76, 0.24),  # myoid zone
    (0.79, 0.85),  # ellipsoid zone, bright
    (0.84, 0.35),  # interdigitation zone
    (0.88, 0.97),  # RPE, brightest
)
_DISPLAY_SCALE = 0.7  # keeps bright layers times speckle mostly below 1 (little clipping)
_VITREOUS = 0.03  # reflectivity of the vitreous; cysts are pulled towards it


def _pair(value: Sequence[float], name: str, integer: bool = False, minimum: float = 0.0) -> tuple:
    if len(value) != 2:
        raise ValueError(f"{name} must be a (min, max) pair, got {value!r}.")
    lo, hi = (int(v) for v in value) if integer else (float(v) for v in value)
    if integer and tuple(value) != (lo, hi):
        raise ValueError(f"{name} must hold integers, got {value!r}.")
    if not minimum <= lo <= hi:
        raise ValueError(f"{name} must satisfy {minimum} <= min <= max, got {value!r}.")
    return lo, hi


@dataclass(frozen=True)
class SyntheticOCTConfig:
    """Parameters of the synthetic OCT generator (all ranges are inclusive ``(min, max)`` pairs).

    Args:
        num_lesions: number of cysts in a positive volume. Default ``(1, 3)``.
        lesion_radius: semi-axes of a cyst in the B-scan plane (``H`` and ``W``), in pixels; each
            is drawn independently. Default ``(4.0, 8.0)``. The axial semi-axis is reduced when the
            retina is too thin at the chosen place.
        lesion_slices: number of consecutive B-scans a cyst spans. Default ``(3, 6)``.
        lesion_darkening: how far a cyst's centre is pulled from the tissue towards the vitreous darkness
            (0: not at all, 1: fully), drawn per cyst; the edge is soft. Default ``(0.85, 0.97)``.
        central_slices: cysts lie entirely within this many central B-scans
            (``D // 2 - central_slices // 2`` onwards). Default 16; clipped to ``D``.
        num_vessels: vessels per volume (both classes); each casts a dark vertical shadow.
            Default ``(1, 3)``.
        vessel_shadow: fraction of the signal removed under a vessel. Default ``(0.35, 0.7)``.
        num_confounders: small faint dark speckle clusters per volume (both classes), anywhere in
            the retina. Default ``(2, 6)``.
        confounder_radius: their in-plane semi-axes in pixels. Default ``(1.0, 2.5)``.
        confounder_darkening: fraction of the signal they remove. Default ``(0.25, 0.55)``.
        speckle_looks: shape parameter ``L`` of the unit-mean gamma speckle (variance ``1/L``);
            smaller is grainier. Default 3.0.
        noise_std: standard deviation of the additive Gaussian noise. Default 0.02.
        contrast_jitter: per-volume gain drawn from ``1 +- contrast_jitter``. Default 0.15.
        brightness_jitter: per-volume offset drawn from ``+- brightness_jitter``. Default 0.04.
    """

    num_lesions: tuple[int, int] = (1, 3)
    lesion_radius: tuple[float, float] = (4.0, 8.0)
    lesion_slices: tuple[int, int] = (3, 6)
    lesion_darkening: tuple[float, float] = (0.85, 0.97)
    central_slices: int = 16
    num_vessels: tuple[int, int] = (1, 3)
    vessel_shadow: tuple[float, float] = (0.35, 0.7)
    num_confounders: tuple[int, int] = (2, 6)
    confounder_radius: tuple[float, float] = (1.0, 2.5)
    confounder_darkening: tuple[float, float] = (0.25, 0.55)
    speckle_looks: float = 3.0
    noise_std: float = 0.02
    contrast_jitter: float = 0.15
    brightness_jitter: float = 0.04

    def __post_init__(self) -> None:
        for name in ("num_lesions", "lesion_slices", "num_vessels", "num_confounders"):
            minimum = 1 if name in ("num_lesions", "lesion_slices") else 0
            object.__setattr__(self, name, _pair(getattr(self, name), name, integer=True, minimum=minimum))
        for name in ("lesion_radius", "confounder_radius"):
            object.__setattr__(self, name, _pair(getattr(self, name), name, minimum=0.5))
        for name in ("lesion_darkening", "vessel_shadow", "confounder_darkening"):
            lo, hi = _pair(getattr(self, name), name)
            if hi > 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {(lo, hi)!r}.")
            object.__setattr__(self, name, (lo, hi))
        if self.central_slices < self.lesion_slices[1]:
            raise ValueError(
                f"central_slices ({self.central_slices}) must be >= the largest lesion_slices "
                f"({self.lesion_slices[1]})."
            )
        if self.speckle_looks <= 0:
            raise ValueError(f"speckle_looks must be > 0, got {self.speckle_looks}.")
        for name in ("noise_std", "contrast_jitter", "brightness_jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")


#: Named generator settings: preset name -> the :class:`SyntheticOCTConfig` fields it sets (the others keep
#: their defaults). ``"hard"`` is candidate D of docs/results/synthetic_oct_hard_calibration.md, frozen on
#: 2026-12-01 (seed 0): MIMS-CNN learned it (test AUROC 1.000), mean pooling did not (0.570). Candidates with
#: fewer, smaller or fainter cysts (A-C there) were learned by neither.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "hard": {
        "central_slices": 30,
    },
}


def preset_config(preset: str = "default", **overrides: Any) -> SyntheticOCTConfig:
    """The generator settings of a named preset, with some fields replaced.

    Args:
        preset: a key of :data:`PRESETS`. Default ``"default"``.
        overrides: :class:`SyntheticOCTConfig` fields that take precedence over the preset's values.

    Returns:
        The validated :class:`SyntheticOCTConfig`.

    Raises:
        ValueError: for an unknown preset or field name, or invalid values.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic OCT preset {preset!r}; valid presets: {', '.join(PRESETS)}.")
    unknown = sorted(set(overrides) - {f.name for f in fields(SyntheticOCTConfig)})
    if unknown:
        raise ValueError(f"unknown SyntheticOCTConfig fields {unknown}.")
    return SyntheticOCTConfig(**{**PRESETS[preset], **overrides})


@dataclass
class SyntheticOCTCase:
    """One simulated volume with its ground truth.

    Attributes:
        image: ``[H, W, D]`` float32 intensities in ``[0, 1]``.
        mask: ``[H, W, D]`` uint8, 1 inside cysts (all zero for negatives).
        top: ``[W, D]`` float, row of the inner retinal boundary (ILM) per A-scan.
        bottom: ``[W, D]`` float, row of the outer retinal boundary (bottom of the RPE).
        lesions: one dict per cyst with its ``center`` ``(h, w, d)``, ``radii`` ``(rh, rw, rd)``
            and ``slices`` (the B-scan indices it covers).
    """

    image: np.ndarray
    mask: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    lesions: list[dict] = field(default_factory=list)


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    if len(shape) != 3 or any(int(s) != s for s in shape):
        raise ValueError(f"shape must be three integers (H, W, D), got {shape!r}.")
    h, w, d = (int(s) for s in shape)
    if h < 32 or w < 32 or d < 1:
        raise ValueError(f"shape must have H >= 32, W >= 32 and D >= 1, got {shape!r}.")
    return h, w, d


def _upsample_linear(coarse: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Separable linear interpolation of a small grid to ``shape`` (corners aligned)."""
    out = coarse
    for axis, n in enumerate(shape):
        m = out.shape[axis]
        pos = np.linspace(0.0, m - 1.0, n)
        i0 = np.floor(pos).astype(np.intp)
        i1 = np.minimum(i0 + 1, m - 1)
        frac = (pos - i0).reshape([n if a == axis else 1 for a in range(out.ndim)])
        lo = np.take(out, i0, axis=axis)
        out = lo + (np.take(out, i1, axis=axis) - lo) * frac
    return out


def _smooth_noise(rng: np.random.Generator, shape: Sequence[int], cells: Sequence[int]) -> np.ndarray:
    """Smooth random field in ``[0, 1]`` with roughly ``cells`` independent values per axis."""
    return _upsample_linear(rng.random([max(2, int(c)) for c in cells]), shape)


def _surfaces(rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Inner (ILM) and outer (RPE) retinal boundaries, each ``[W, D]`` rows."""
    h, w, d = shape
    u = np.linspace(-0.5, 0.5, w)[:, None]  # lateral coordinate
    v = (np.linspace(-0.5, 0.5, d)[None, :]) if d > 1 else np.zeros((1, 1))  # slice coordinate
    # Global shape shared by both boundaries: tilt, bowl-shaped curvature, slow undulation.
    shared = rng.uniform(-0.10, 0.10) * h * u + rng.uniform(-0.04, 0.04) * h * v
    shared = shared + rng.uniform(0.0, 0.25) * h * (u**2 + 0.3 * v**2)
    for _ in range(2):
        period = rng.uniform(0.6, 1.8)
        phase = rng.uniform(0, 2 * np.pi) + rng.uniform(-1.5, 1.5) * v  # drifts slowly along D
        shared = shared + rng.uniform(0.005, 0.025) * h * np.sin(2 * np.pi * u / period + phase)
    base = rng.uniform(0.20, 0.28) * h
    thickness = rng.uniform(0.38, 0.44) * h
    # Foveal pit: the inner boundary dips towards the RPE near the centre of the cube.
    fu, fv = rng.uniform(-0.12, 0.12), rng.uniform(-0.12, 0.12)
    su, sv = rng.uniform(0.06, 0.10), rng.uniform(0.10, 0.16)
    pit = rng.uniform(0.25, 0.45) * thickness * np.exp(-0.5 * (((u - fu) / su) ** 2 + ((v - fv) / sv) ** 2))
    top = base + shared + pit
    bottom = base + thickness + shared + 0.01 * h * np.sin(2 * np.pi * (u * rng.uniform(1, 3) + rng.random()))
    # Keep the band inside the image: shift it up if it would run into the lower fifth.
    overflow = max(0.0, float(bottom.max()) - 0.8 * h)
    top, bottom = top - overflow, bottom - overflow
    top = np.maximum(top, 2.0)
    return np.broadcast_to(top, (w, d)).copy(), np.broadcast_to(bottom, (w, d)).copy()


def _layer_profile(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Control points ``(t, reflectivity)`` of the layer profile, with soft 0.015-wide transitions."""
    bounds = np.array([b for b, _ in _LAYERS] + [1.0])
    bounds[1:-1] += rng.uniform(-0.012, 0.012, len(bounds) - 2)
    values = np.array([v for _, v in _LAYERS]) * rng.uniform(0.9, 1.1, len(_LAYERS))
    ramp = 0.015
    xp, fp = [-ramp, 0.0], [_VITREOUS, values[0]]
    for k, value in enumerate(values):
        lo, hi = bounds[k] + (ramp if k else 0.0), bounds[k + 1] - ramp
        xp += [lo, max(lo, hi)]
        fp += [value, value]
    xp.append(1.0 + ramp)  # the profile ends below the RPE, where the choroid takes over
    fp.append(0.0)
    return np.asarray(xp), np.clip(np.asarray(fp), 0.0, 1.0)


def _ellipsoid(
    grid: tuple[np.ndarray, np.ndarray, np.ndarray], center: Sequence[float], radii: Sequence[float]
) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """Normalised radius ``r`` (1 on the surface) of an ellipsoid on its bounding box."""
    box = []
    for c, r, n in zip(center, radii, (len(grid[0]), len(grid[1]), len(grid[2]))):
        box.append(slice(max(0, int(np.floor(c - r - 2))), min(n, int(np.ceil(c + r + 2)) + 1)))
    hh, ww, dd = (g[s] for g, s in zip(grid, box))
    r2 = ((hh[:, None, None] - center[0]) / radii[0]) ** 2
    r2 = r2 + ((ww[None, :, None] - center[1]) / radii[1]) ** 2 + ((dd[None, None, :] - center[2]) / radii[2]) ** 2
    return (box[0], box[1], box[2]), np.sqrt(r2)


def _place_lesion(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    top: np.ndarray,
    bottom: np.ndarray,
    cfg: SyntheticOCTConfig,
) -> dict:
    """Choose centre and semi-axes of one cyst inside the retina and the central B-scans."""
    h, w, d = shape
    central = min(cfg.central_slices, d)
    first_central = (d - central) // 2
    n_slices = int(rng.integers(cfg.lesion_slices[0], min(cfg.lesion_slices[1], central) + 1))
    best = None
    for _ in range(30):
        rh, rw = rng.uniform(*cfg.lesion_radius, size=2)
        start = int(rng.integers(first_central, first_central + central - n_slices + 1))
        wc = rng.uniform(rw + 1.0, w - rw - 2.0)
        ws = slice(max(0, int(np.floor(wc - rw))), min(w, int(np.ceil(wc + rw)) + 1))
        ds = slice(start, start + n_slices)
        top_max = float(top[ws, ds].max())
        # Cysts sit in the inner/outer nuclear and plexiform layers, above the photoreceptors.
        low_limit = float((top[ws, ds] + 0.74 * (bottom[ws, ds] - top[ws, ds])).min())
        room = (low_limit - top_max - 2.0) / 2.0  # largest axial semi-axis that fits (1 px margin)
        if room >= rh:
            hc = rng.uniform(top_max + 1.0 + rh, low_limit - 1.0 - rh)
            best = (hc, wc, rh, rw, start)
            break
        if best is None or room > best[2]:
            best = ((top_max + low_limit) / 2.0, wc, max(room, 1.0), rw, start)
    hc, wc, rh, rw, start = best
    dc = start + (n_slices - 1) / 2.0
    return {
        "center": (float(hc), float(wc), float(dc)),
        "radii": (float(rh), float(rw), n_slices / 2.0),
        "slices": list(range(start, start + n_slices)),
    }


def simulate_case(
    rng: np.random.Generator,
    positive: bool,
    shape: Sequence[int] = DEFAULT_SHAPE,
    config: SyntheticOCTConfig | None = None,
) -> SyntheticOCTCase:
    """Simulate one OCT-like volume and return it with its ground truth.

    Args:
        rng: the only source of randomness; the same generator state gives the same case.
        positive: add ``config.num_lesions`` cysts (label 1) or none (label 0).
        shape: ``(H, W, D)`` = (depth rows, lateral columns, B-scans); ``H, W >= 32``.
            Default ``(64, 96, 32)``.
        config: generator parameters; default :class:`SyntheticOCTConfig()`.

    Returns:
        A :class:`SyntheticOCTCase` (image, mask, retinal boundaries, lesion list).

    Raises:
        ValueError: for an invalid ``shape``.
    """
    cfg = config if config is not None else SyntheticOCTConfig()
    shape = _check_shape(shape)
    h, w, d = shape
    grid = (np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), np.arange(d, dtype=np.float64))
    hh = grid[0][:, None, None]

    # 1. Layered retina between the two boundaries.
    top, bottom = _surfaces(rng, shape)
    t = (hh - top[None]) / (bottom - top)[None]
    xp, fp = _layer_profile(rng)
    retina = np.interp(t, xp, fp)
    # Lateral texture of the layers (reflectivity varies slowly along W and D).
    retina *= 0.8 + 0.4 * _smooth_noise(rng, shape, (h / 6, w / 8, d / 4 + 1))
    # Choroid: bright, blotchy (large vessels), fading with depth below the RPE.
    below = hh - bottom[None]
    texture = _smooth_noise(rng, shape, (h / 3, w / 4, d / 2 + 1))
    choroid = rng.uniform(0.6, 0.8) * np.exp(-np.maximum(below, 0.0) / (rng.uniform(0.06, 0.10) * h))
    choroid *= 0.3 + 1.1 * texture**1.5
    weight = 1.0 / (1.0 + np.exp(-(below - 0.5) * 2.0))  # 0 in the retina, 1 in the choroid
    clean = retina + weight * (choroid + 0.04)  # + a faint floor for the sclera

    # 2. Retinal vessels in the inner retina, each casting a vertical shadow (both classes).
    for _ in range(int(rng.integers(cfg.num_vessels[0], cfg.num_vessels[1] + 1))):
        dd = grid[2] - d / 2.0
        centre_w = rng.uniform(0.1, 0.9) * w + rng.uniform(-0.6, 0.6) * dd + rng.uniform(0, 2) * np.sin(dd / 5)
        half_width = rng.uniform(0.8, 1.8)
        lateral = np.exp(-0.5 * ((grid[1][:, None] - centre_w[None, :]) / half_width) ** 2)  # [W, D]
        depth = top + rng.uniform(0.08, 0.2) * (bottom - top)  # [W, D]
        under = 1.0 / (1.0 + np.exp(-(hh - depth[None] - half_width)))  # 1 below the vessel
        vessel = np.exp(-0.5 * ((hh - depth[None]) / half_width) ** 2)
        clean = clean * (1.0 - rng.uniform(*cfg.vessel_shadow) * lateral[None] * under)
        clean = clean + 0.25 * lateral[None] * vessel  # the vessel wall itself is hyper-reflective

    # 3. Confounders: small, faint dark speckle clusters anywhere in the retina (both classes).
    for _ in range(int(rng.integers(cfg.num_confounders[0], cfg.num_confounders[1] + 1))):
        wc, dc = rng.uniform(2, w - 3), rng.uniform(0, d - 1)
        wi, di = int(round(wc)), int(round(dc))
        hc = top[wi, di] + rng.uniform(0.15, 0.8) * (bottom[wi, di] - top[wi, di])
        radii = (*rng.uniform(*cfg.confounder_radius, size=2), rng.uniform(0.5, 1.0))
        box, r = _ellipsoid(grid, (hc, wc, dc), radii)
        clean[box] *= 1.0 - rng.uniform(*cfg.confounder_darkening) / (1.0 + np.exp((r - 1.0) / 0.15))

    # 4. Cysts (positives only): soft-edged ellipsoids pulled towards the vitreous darkness.
    mask = np.zeros(shape, dtype=np.uint8)
    lesions: list[dict] = []
    if positive:
        for _ in range(int(rng.integers(cfg.num_lesions[0], cfg.num_lesions[1] + 1))):
            lesion = _place_lesion(rng, shape, top, bottom, cfg)
            box, r = _ellipsoid(grid, lesion["center"], lesion["radii"])
            alpha = rng.uniform(*cfg.lesion_darkening) / (1.0 + np.exp((r - 1.0) / 0.12))
            clean[box] = clean[box] * (1.0 - alpha) + _VITREOUS * alpha
            mask[box] |= (r <= 1.0).astype(np.uint8)
            lesions.append(lesion)

    # 5. Acquisition: unit-mean gamma speckle (slightly correlated along W), additive noise, and a
    #    per-volume gain/offset; then clip to [0, 1].
    speckle = rng.gamma(cfg.speckle_looks, 1.0 / cfg.speckle_looks, size=(h, w + 1, d))
    speckle = 0.5 * (speckle[:, 1:] + speckle[:, :-1])
    image = _DISPLAY_SCALE * clean * speckle + rng.normal(0.0, cfg.noise_std, size=shape)
    gain = 1.0 + rng.uniform(-cfg.contrast_jitter, cfg.contrast_jitter)
    offset = rng.uniform(-cfg.brightness_jitter, cfg.brightness_jitter)
    image = np.clip(gain * image + offset, 0.0, 1.0).astype(np.float32)
    return SyntheticOCTCase(image=image, mask=mask, top=top, bottom=bottom, lesions=lesions)


def generate_case(
    rng: np.random.Generator,
    positive: bool,
    shape: Sequence[int] = DEFAULT_SHAPE,
    config: SyntheticOCTConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one synthetic OCT volume and its lesion mask.

    Args:
        rng: the only source of randomness; the same generator state gives the same arrays.
        positive: add ``config.num_lesions`` dark cysts in the central B-scans (label 1) or none (label 0).
        shape: ``(H, W, D)`` = (depth rows, lateral columns, B-scans). Default ``(64, 96, 32)``.
        config: generator parameters; default :class:`SyntheticOCTConfig()`.

    Returns:
        ``(image, mask)``: ``[H, W, D]`` float32 in ``[0, 1]`` and ``[H, W, D]`` uint8 (1 in cysts).
    """
    case = simulate_case(rng, positive, shape=shape, config=config)
    return case.image, case.mask


def make_synthetic_oct_dataset(
    out_dir: str | os.PathLike,
    num_train: int = 160,
    num_val: int = 40,
    num_test: int = 60,
    positive_fraction: float = 0.5,
    seed: int = 0,
    shape: Sequence[int] = DEFAULT_SHAPE,
    overwrite: bool = False,
    progress: bool = True,
    config: SyntheticOCTConfig | None = None,
    preset: str = "default",
) -> Path:
    """Write a synthetic OCT dataset as NIfTI files plus a decathlon-style datalist.

    Layout under ``out_dir``::

        datalist.json             {"training": [{"image": "images/case_0000.nii.gz",
                                                 "label": 1, "mask": "masks/case_0000.nii.gz"}, ...],
                                   "validation": [...], "test": [...], ...}
        images/case_XXXX.nii.gz   [H, W, D] float32 in [0, 1], identity affine (1 mm voxels)
        masks/case_XXXX.nii.gz    [H, W, D] uint8 lesion mask (all zero for label 0)

    Cases are numbered consecutively over training, validation and test. Each split has exactly
    ``round(n * positive_fraction)`` positives in a random order. Every case gets its own random
    stream spawned from ``seed`` (:class:`numpy.random.SeedSequence`), so the same arguments give
    identical arrays.

    Args:
        out_dir: output folder (created if needed).
        num_train: number of training volumes. Default 160.
        num_val: number of validation volumes. Default 40.
        num_test: number of test volumes. Default 60.
        positive_fraction: fraction of label-1 volumes in each split, in ``[0, 1]``. Default 0.5.
        seed: random seed. Default 0.
        shape: ``(H, W, D)`` of every volume. Default ``(64, 96, 32)``.
        overwrite: replace an existing dataset in ``out_dir`` (its ``datalist.json`` and its
            ``case_*.nii.gz`` files); otherwise refuse when any of them exists.
        progress: show a progress bar.
        config: generator parameters; ``None``: those of ``preset``.
        preset: the :data:`PRESETS` entry the data are made with (``config`` given: the one it was derived
            from). The datalist's ``"generator"`` entry records it, the fields of ``config`` that differ from
            it (``"overrides"``) and every parameter (``"config"``). Default ``"default"``.

    Returns:
        The path of ``out_dir/datalist.json``.

    Raises:
        FileExistsError: when ``out_dir`` already holds a dataset and ``overwrite`` is ``False``.
        ValueError: for negative counts, an empty dataset, ``positive_fraction`` outside
            ``[0, 1]``, an invalid ``shape`` or an unknown ``preset``.
    """
    counts = check_counts(num_train, num_val, num_test, positive_fraction)
    shape = _check_shape(shape)
    base = asdict(preset_config(preset))
    cfg = config if config is not None else preset_config(preset)
    overrides = {key: value for key, value in asdict(cfg).items() if value != base[key]}

    def save(image: np.ndarray, mask: np.ndarray, image_path: Path, mask_path: Path) -> None:
        save_nifti(image, image_path)
        save_nifti(mask, mask_path)

    datalist_path, splits = write_labelled_cases(
        Path(out_dir), counts, positive_fraction, seed, overwrite, progress, ".nii.gz",
        lambda rng, positive: generate_case(rng, positive=positive, shape=shape, config=cfg), save, "synthetic OCT",
    )

    h, w, d = shape
    return write_datalist(
        datalist_path,
        name="synthetic_oct",
        description=(
            f"Synthetic OCT-like volumes [H, W, D] = [{h}, {w}, {d}] (depth, lateral, B-scan; slice_axis = 2), "
            f"float32 in [0, 1]. Label 1: {cfg.num_lesions[0]}-{cfg.num_lesions[1]} small dark intraretinal cysts "
            f"in the central {min(cfg.central_slices, d)} B-scans; label 0: none. Both classes contain vessel "
            f"shadows and faint dark speckle clusters. Generated by "
            f"bundle.data.synthetic_oct.make_synthetic_oct_dataset, preset {preset!r}"
            + (f" with {', '.join(sorted(overrides))} changed." if overrides else ".")
        ),
        labels=LABEL_NAMES,
        training=splits["training"],
        validation=splits["validation"],
        test=splits["test"],
        extra={
            "tensorImageSize": "3D",
            "modality": {"0": "OCT (synthetic)"},
            "slice_axis": 2,
            "generator": {"seed": int(seed), "shape": [h, w, d], "positive_fraction": float(positive_fraction),
                          "preset": preset, "overrides": overrides, "config": asdict(cfg)},
        },
        overwrite=True,
    )
