"""Rollout videos: tiling observation and action-image views, and writing MP4 with PyAV."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import av
import numpy as np

from actionimages.atomic import atomic_path
from actionimages.errors import ActionImagesError


def _as_uint8_image(img: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ActionImagesError(f"{name} must be an (H, W, 3) image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        raise ActionImagesError(f"{name} must be uint8 or float in [0, 1], got dtype {arr.dtype}")
    return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def tile_rollout_frame(
    observations: Mapping[str, np.ndarray],
    action_images: Mapping[str, np.ndarray] | None = None,
    gap: int = 2,
) -> np.ndarray:
    """One video frame: each view's observation with its action image beside it.

    Args:
        observations: {view: uint8 (H, W, 3)} camera images (all the same size).
        action_images: {view: (H, W, 3)} uint8 or float [0, 1] action images for the same views,
            or None (then each action slot is black, e.g. for the scripted expert).
        gap: white separator in pixels.
    Returns:
        uint8 (V*H + (V-1)*gap, 2*W + gap, 3): one row per view, ``[observation | action image]``.
    """
    if not observations:
        raise ActionImagesError("tile_rollout_frame: no observation views")
    rows = []
    shape = None
    for name, img in observations.items():
        obs = _as_uint8_image(img, f"observation '{name}'")
        if shape is None:
            shape = obs.shape
        elif obs.shape != shape:
            raise ActionImagesError(f"observation '{name}' has shape {obs.shape}, others {shape}")
        if action_images is not None and name in action_images:
            act = _as_uint8_image(action_images[name], f"action image '{name}'")
            if act.shape != obs.shape:
                # Generated images may be smaller than the raw camera image: nearest upsample.
                ys = np.linspace(0, act.shape[0] - 1, obs.shape[0]).round().astype(int)
                xs = np.linspace(0, act.shape[1] - 1, obs.shape[1]).round().astype(int)
                act = act[ys][:, xs]
        else:
            act = np.zeros_like(obs)
        sep = np.full((obs.shape[0], gap, 3), 255, np.uint8)
        rows.append(np.concatenate([obs, sep, act], axis=1))
    out = []
    for i, row in enumerate(rows):
        if i:
            out.append(np.full((gap, row.shape[1], 3), 255, np.uint8))
        out.append(row)
    return np.concatenate(out, axis=0)


def write_video(frames: Sequence[np.ndarray] | np.ndarray, path: str | Path, fps: float = 10.0) -> Path:
    """Write uint8 frames (T, H, W, 3) as an H.264 MP4 (yuv420p, playable in browsers).

    Odd sizes are padded by one black pixel, since yuv420p needs even dimensions.
    Returns the path written.
    """
    if len(frames) == 0:
        raise ActionImagesError(f"write_video: no frames for {path}")
    if not fps > 0:
        raise ActionImagesError(f"write_video: fps must be positive, got {fps}")
    first = _as_uint8_image(frames[0], "frame 0")
    h, w = first.shape[:2]
    H, W = h + h % 2, w + w % 2
    path = Path(path)
    # atomic: a half-written video never has the final name
    with atomic_path(path, suffix=".mp4") as tmp, av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for i, frame in enumerate(frames):
            img = _as_uint8_image(frame, f"frame {i}")
            if img.shape[:2] != (h, w):
                raise ActionImagesError(f"write_video: frame {i} is {img.shape[:2]}, frame 0 is {(h, w)}")
            if (H, W) != (h, w):
                img = np.pad(img, ((0, H - h), (0, W - w), (0, 0)))
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_video(path: str | Path) -> np.ndarray:
    """Decode a video file to uint8 (T, H, W, 3)."""
    path = Path(path)
    if not path.is_file():
        raise ActionImagesError(f"read_video: no such file {path}")
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if not frames:
        raise ActionImagesError(f"read_video: {path} holds no frames")
    return np.stack(frames)
