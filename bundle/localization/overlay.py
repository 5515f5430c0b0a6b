# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Pictures of the evidence: heatmap overlays on slices, montages, PNG files.

The overlay is the paper's (Li et al., MICCAI 2019, arXiv:1907.02413, appendix C, step 3)::

    H = 0.6 * R + 0.3 * P*

with ``R`` the input slice and ``P*`` the heatmap (0-255, already interpolated to the slice's size), both
on the 0-255 scale. The paper adds ``P*`` as one grey value; here ``P*`` goes through a colour map first
(:data:`DEFAULT_COLORMAP`, ``"inferno"``), so that evidence stands out from the grey anatomy: inferno is
perceptually uniform, readable in grey print and by colour-blind readers, and starts (almost) black, so
where ``P*`` is 0 the overlay stays ``0.6 * R`` as in the paper (a rainbow map such as ``"jet"`` would tint
the whole slice blue). ``colormap=None`` gives the paper's grey formula exactly.

matplotlib (for the colour maps) is imported only when a colour map is used.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from bundle.reports import atomic_path

__all__ = [
    "DEFAULT_COLORMAP",
    "IMAGE_WEIGHT",
    "HEATMAP_WEIGHT",
    "colorize",
    "overlay_heatmap",
    "montage",
    "heatmap_to_uint8",
    "save_png",
]

#: colour map of the heatmap in overlays (a matplotlib name); None would mean grey
DEFAULT_COLORMAP = "inferno"
#: weight of the input slice R in the overlay (paper: 0.6)
IMAGE_WEIGHT = 0.6
#: weight of the heatmap P* in the overlay (paper: 0.3)
HEATMAP_WEIGHT = 0.3


def _numpy(array: Any) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


def _colormap(colormap: Any) -> Any:
    import matplotlib

    if not isinstance(colormap, str):
        return colormap  # a matplotlib Colormap object
    try:
        return matplotlib.colormaps[colormap]
    except KeyError:
        raise ValueError(
            f"unknown colour map {colormap!r}: use a matplotlib colour map name such as 'inferno', 'jet' or 'gray', "
            "or None for grey"
        ) from None


def colorize(heatmap: Any, colormap: Any = DEFAULT_COLORMAP) -> np.ndarray:
    """A heatmap ``[H, W]`` in ``[0, 255]`` as RGB colours ``[H, W, 3]``, float in ``[0, 255]``.

    Args:
        heatmap: values in ``[0, 255]`` (clipped), a tensor or an array.
        colormap: a matplotlib colour map (name or object; its value at ``P*/255``), or None for grey
            (``P*`` in all three channels). Defaults to :data:`DEFAULT_COLORMAP`.
    """
    values = np.clip(_numpy(heatmap), 0.0, 255.0)
    if values.ndim != 2:
        raise ValueError(f"heatmap must be 2-D [H, W], got shape {values.shape}")
    if colormap is None:
        return np.repeat(values[..., None], 3, axis=-1)
    return np.asarray(_colormap(colormap)(values / 255.0), dtype=np.float64)[..., :3] * 255.0


def overlay_heatmap(slice_2d: Any, heatmap: Any, colormap: Any = DEFAULT_COLORMAP) -> np.ndarray:
    """The overlay ``H = 0.6 R + 0.3 P*`` of a heatmap on a slice, as an 8-bit RGB image.

    ``R = 255 * slice_2d`` (grey slices in all three channels) and ``P*`` the heatmap through
    ``colormap``; ``H`` is rounded to the nearest integer (halves to even, ``numpy.rint``). Its largest
    value is ``0.9 * 255``: the overlay is a little darker than the slice, as in the paper.

    Args:
        slice_2d: the input slice in ``[0, 1]`` (clipped): grey ``[H, W]`` or RGB ``[H, W, 3]``.
        heatmap: ``P*`` ``[H, W]`` in ``[0, 255]`` (clipped), the same size as the slice.
        colormap: see :func:`colorize`; None gives the paper's grey formula exactly.

    Returns:
        ``uint8`` ``[H, W, 3]``.

    Example::

        >>> overlay_heatmap(np.array([[1.0, 0.5]]), np.array([[0.0, 255.0]]), colormap=None)[..., 0]
        array([[153, 153]], dtype=uint8)
    """
    r = np.clip(_numpy(slice_2d), 0.0, 1.0) * 255.0
    if r.ndim == 2:
        r = np.repeat(r[..., None], 3, axis=-1)
    if r.ndim != 3 or r.shape[-1] != 3:
        raise ValueError(f"slice_2d must be grey [H, W] or RGB [H, W, 3], got shape {r.shape}")
    p = colorize(heatmap, colormap)
    if p.shape != r.shape:
        raise ValueError(f"heatmap of size {p.shape[:2]} does not match the slice of size {r.shape[:2]}")
    return np.rint(IMAGE_WEIGHT * r + HEATMAP_WEIGHT * p).astype(np.uint8)


def heatmap_to_uint8(heatmap: Any) -> np.ndarray:
    """A heatmap in ``[0, 255]`` as a grey 8-bit image (clipped and rounded)."""
    return np.rint(np.clip(_numpy(heatmap), 0.0, 255.0)).astype(np.uint8)


def _font() -> Any:
    return ImageFont.load_default()


def _as_rgb(image: Any) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"montage images must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"montage images must be [H, W] or [H, W, 3], got shape {array.shape}")
    return array


def montage(
    images: Sequence[Any],
    columns: int,
    captions: Sequence[str] | None = None,
    highlight: Sequence[bool] | None = None,
    padding: int = 2,
    background: int = 0,
    highlight_colour: Sequence[int] = (0, 255, 255),
) -> np.ndarray:
    """Images in a grid, row by row, with optional captions above them and coloured frames.

    Every cell is ``(padding + caption height + h_max + padding) x (padding + w_max + padding)`` pixels
    (``h_max``, ``w_max``: the largest image); an image sits at the cell's top left after the padding and
    the caption strip. A highlighted cell has its padding ring in ``highlight_colour``. Captions are
    white, in PIL's default font; the strip is as high as that font (no strip without captions).

    Args:
        images: ``uint8`` images, grey ``[h, w]`` or RGB ``[h, w, 3]``.
        columns: images per row (at most the number of images is used), >= 1.
        captions: one text per image, or None.
        highlight: one flag per image (True: frame the cell), or None.
        padding: pixels around every cell's content, >= 0.
        background: grey value of the background.
        highlight_colour: RGB of the frames.

    Returns:
        ``uint8`` ``[rows * cell_h, columns * cell_w, 3]``.

    Raises:
        ValueError: no images, ``columns < 1``, ``padding < 0``, or captions/highlight of another length.
    """
    if not images:
        raise ValueError("montage needs at least one image")
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns must be an integer >= 1, got {columns!r}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    for name, values in (("captions", captions), ("highlight", highlight)):
        if values is not None and len(values) != len(images):
            raise ValueError(f"{len(values)} {name} given for {len(images)} images")
    tiles = [_as_rgb(i) for i in images]
    columns = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / columns)
    h_max, w_max = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    font = _font() if captions is not None else None
    caption_h = font.getbbox("Ag")[3] + 2 if font is not None else 0
    cell_h, cell_w = 2 * padding + caption_h + h_max, 2 * padding + w_max
    canvas = np.full((rows * cell_h, columns * cell_w, 3), background, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        y, x = (i // columns) * cell_h, (i % columns) * cell_w
        if highlight is not None and highlight[i]:
            canvas[y : y + cell_h, x : x + cell_w] = np.asarray(highlight_colour, dtype=np.uint8)
            canvas[y + padding : y + cell_h - padding, x + padding : x + cell_w - padding] = background
        top = y + padding + caption_h
        canvas[top : top + tile.shape[0], x + padding : x + padding + tile.shape[1]] = tile
    if captions is None:
        return canvas
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for i, text in enumerate(captions):
        y, x = (i // columns) * cell_h, (i % columns) * cell_w
        draw.text((x + padding + 1, y + padding), str(text), fill=(255, 255, 255), font=font)
    return np.asarray(picture)


def save_png(path: str | os.PathLike, image: Any) -> Path:
    """Write a ``uint8`` grey ``[H, W]`` or RGB ``[H, W, 3]`` image as PNG (through a temporary file).

    Returns:
        the path written.
    """
    path = Path(path)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(
            f"{path}: expected a uint8 image [H, W] or [H, W, 3], got {array.dtype} of shape {array.shape}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return path
