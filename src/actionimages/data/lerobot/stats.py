"""Feature statistics in LeRobot's ``meta/stats.json`` layout, merged episode by episode."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def moments(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-feature stats of (N, D) values in LeRobot's stats.json layout."""
    x = np.asarray(x, dtype=np.float64)
    return {
        "min": x.min(0),
        "max": x.max(0),
        "mean": x.mean(0),
        "std": x.std(0),
        "count": np.array([len(x)]),
    }


def merge_stats(a: Mapping[str, Any] | None, b: Mapping[str, Any]) -> dict[str, Any]:
    """Combine two stats dicts (parallel-variance formula); shapes come from ``b``."""
    if not a:
        return {k: np.asarray(v, dtype=np.float64) for k, v in b.items()}
    na, nb = float(np.asarray(a["count"]).sum()), float(np.asarray(b["count"]).sum())
    ma, mb = np.asarray(a["mean"], dtype=np.float64), np.asarray(b["mean"], dtype=np.float64)
    sa, sb = np.asarray(a["std"], dtype=np.float64), np.asarray(b["std"], dtype=np.float64)
    n = na + nb
    mean = (na * ma + nb * mb) / n
    var = (na * (sa**2 + (ma - mean) ** 2) + nb * (sb**2 + (mb - mean) ** 2)) / n
    return {
        "min": np.minimum(np.asarray(a["min"]), np.asarray(b["min"])),
        "max": np.maximum(np.asarray(a["max"]), np.asarray(b["max"])),
        "mean": mean,
        "std": np.sqrt(np.maximum(var, 0.0)),
        "count": np.array([int(n)]),
    }


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Channel stats of uint8 (N, H, W, 3) in [0, 1], shaped (3, 1, 1) like LeRobot's."""
    x = frames.astype(np.float64).reshape(-1, 3) / 255.0
    st = moments(x)
    out = {k: v.reshape(3, 1, 1) for k, v in st.items() if k != "count"}
    out["count"] = np.array([len(frames)])
    return out


def jsonable(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}
