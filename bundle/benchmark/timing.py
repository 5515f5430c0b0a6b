# Copyright (c) 2026 MIMS-CNN bundle contributors
# Licensed under the Apache License, Version 2.0 (see LICENSE at the repository root).
"""Timing and logging helpers of the benchmark: rates, ratios, timed rounds with warm-up."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["log", "rate", "ratio", "seconds", "timed_loop"]


def log(message: str) -> None:
    """Print ``[benchmark HH:MM:SS] message`` at once."""
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {message}", flush=True)


def rate(times: Sequence[float], units: float = 1.0) -> float:
    """``units`` per timed item, per second, over the timed items (NaN when no time was spent)."""
    total = sum(times)
    return units * len(times) / total if total > 0 else float("nan")


def ratio(a: float, b: float) -> float:
    """``a / b``; NaN when ``b`` is not positive."""
    return a / b if b > 0 else float("nan")


def seconds(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Wall-clock seconds of one call ``fn(*args, **kwargs)``."""
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def timed_loop(n: int, warmup: int, body: Callable[[int], dict[str, float]], what: str) -> list[dict[str, float]]:
    """Run ``body(i)`` for ``warmup + n`` rounds; keep the timings of the last ``n``; log each round."""
    kept = []
    for i in range(warmup + n):
        times = body(i)
        tag = " (warm-up, not counted)" if i < warmup else ""
        log(f"{what} {i + 1}/{warmup + n}{tag}: " + ", ".join(f"{k} {v:.3f} s" for k, v in times.items()))
        if i >= warmup:
            kept.append(times)
    return kept
