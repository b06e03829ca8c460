"""Turning a live sim observation into model inputs exactly as the data pipeline does for training.

All resizing goes through :func:`actionimages.data.sample.crop_resize_frames` and
:meth:`Camera.crop_resize`, and whole samples through :class:`actionimages.data.sample.SampleBuilder`
(on a one-frame :class:`~actionimages.data.Episode`), so a policy sees its inputs with the same
geometry, value range and camera intrinsics as the model saw in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from actionimages.codec.camera import Camera, as_camera
from actionimages.errors import ActionImagesError


def prepare_frames(frames: np.ndarray, camera: Camera, height: int, width: int) -> tuple[np.ndarray, Camera]:
    """Centre-crop + resize frames like training samples.

    Args:
        frames: uint8 (N, H0, W0, 3).
        camera: the calibration of those frames.
    Returns:
        uint8 (N, height, width, 3) and the camera with updated intrinsics.
    """
    from actionimages.data.sample import crop_resize_frames

    out = crop_resize_frames(np.asarray(frames), width, height)  # (N, 3, H, W) float in [0, 255]
    img = out.permute(0, 2, 3, 1).round().clamp(0, 255).byte().numpy()
    return img, camera.crop_resize(width, height)


def select_views(obs: dict[str, Any], views: Sequence[str] | None, num_views: int) -> list[str]:
    """The camera names a policy uses: ``views`` if given (checked), else the first ``num_views``
    in name order. By name, not by the order of the observation's map: a request from another
    language (whose maps need not keep insertion order) picks the same cameras. The models train on
    a random ordered choice of views, so any fixed choice is one they know; for the sim's cameras
    name order starts as the sim's own (front, left_shoulder)."""
    names = list(obs["images"])
    if views is not None:
        missing = [v for v in views if v not in names]
        if missing:
            raise ActionImagesError(f"policy views {missing} not in the observation's cameras {names}")
        if len(views) != num_views:
            raise ActionImagesError(f"the model takes {num_views} views, got {list(views)}")
        return list(views)
    if len(names) < num_views:
        raise ActionImagesError(f"observation has cameras {names}; the model needs {num_views} views")
    return sorted(names)[:num_views]


def observation_sample(
    obs: dict[str, Any],
    views: Sequence[str],
    num_frames: int,
    height: int,
    width: int,
    instruction: str | None = None,
    sigma_frac: float = 0.05,
    axis_length: float = 0.10,
    actions: np.ndarray | None = None,
) -> dict[str, Any]:
    """A training-format sample (docs/ARCHITECTURE.md) whose clip starts at the current observation.

    Frame 0 holds the current images and the action images of the current pose ``obs["ee_pose"]``;
    frames 1..F-1 are padding (``frame_valid`` False) for the model to generate. Tensors have no
    batch dimension; collate with :func:`batch_of_one`.

    ``actions`` (T, 7), optional: poses to draw instead, one per frame (T = ``num_frames``; row 0
    normally the current pose), for oracles that know the future; the images of every frame are
    then the current ones and all frames are valid.
    """
    from actionimages.data.episode import Episode
    from actionimages.data.sample import SampleBuilder

    pose = np.asarray(obs["ee_pose"], dtype=np.float64)[None, :7]
    if actions is not None:
        pose = np.asarray(actions, dtype=np.float64)
        if pose.shape != (num_frames, 7):
            raise ActionImagesError(f"actions must have shape ({num_frames}, 7), got {pose.shape}")
    T = pose.shape[0]
    ep = Episode(
        frames={v: np.repeat(np.asarray(obs["images"][v])[None], T, axis=0) for v in views},
        cameras={v: as_camera(obs["cameras"][v]) for v in views},
        actions=pose,
        state=pose,
        instruction=instruction if instruction is not None else str(obs.get("instruction", "")),
        info={"source": "live observation"},
    )
    builder = SampleBuilder(
        num_frames=num_frames,
        num_views=len(views),
        height=height,
        width=width,
        training=False,
        views=list(views),
        sigma_frac=sigma_frac,
        axis_length=axis_length,
        vae_frames=False,
    )
    return builder(ep, start=0)


def batch_of_one(sample: dict[str, Any]) -> dict[str, Any]:
    """A one-sample batch (B = 1): the data package's own :func:`~actionimages.data.collate`."""
    from actionimages.data import collate

    return collate([sample])
