"""Shared pieces of the baselines: demonstration loading, action-chunk targets, pose parametrisation.

Both baselines predict the next ``k`` absolute end-effector poses from the current multiview
observation, the measured pose and the instruction. They parametrise a chunk relative to the
current pose (position offsets in metres, rotation offsets as axis-angle in the world frame,
gripper as a logit) and convert back to absolute ``[x, y, z, rx, ry, rz, openness]`` targets.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import nn
from tqdm import tqdm

from actionimages.atomic import write_json_atomic
from actionimages.codec.poses import EULER_SEQ
from actionimages.errors import ActionImagesError, DataError

POS_SCALE = 0.05  # metres per unit of network output: keeps targets O(1)
ROT_SCALE = 0.2  # radians per unit

STATE_DIM = 10  # the pose features the baselines read: position, 6-D rotation, openness


def rot6d(euler: np.ndarray) -> np.ndarray:
    """Euler (..., 3) -> continuous 6-D rotation features (first two matrix columns) (..., 6)."""
    R = Rotation.from_euler(EULER_SEQ, euler.reshape(-1, 3)).as_matrix()
    return R[:, :, :2].transpose(0, 2, 1).reshape(*euler.shape[:-1], 6)


def state_features(pose: np.ndarray) -> np.ndarray:
    """Measured pose (..., 7) -> network state features (..., 10): position, 6-D rotation, openness."""
    pose = np.asarray(pose, dtype=np.float64)
    return np.concatenate([pose[..., :3], rot6d(pose[..., 3:6]), pose[..., 6:7]], -1).astype(np.float32)


def chunk_targets(current: np.ndarray, future: np.ndarray) -> np.ndarray:
    """Absolute future poses (k, 7) relative to ``current`` (7,) -> training targets (k, 7).

    Columns: position offset / POS_SCALE (3), world-frame rotation offset (axis-angle) / ROT_SCALE
    (3), openness (1, in [0, 1]).
    """
    R0 = Rotation.from_euler(EULER_SEQ, current[3:6])
    Rk = Rotation.from_euler(EULER_SEQ, future[:, 3:6])
    rel = (Rk * R0.inv()).as_rotvec()
    return np.concatenate(
        [(future[:, :3] - current[:3]) / POS_SCALE, rel / ROT_SCALE, future[:, 6:7]], -1
    ).astype(np.float32)


def chunk_to_actions(current: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Inverse of :func:`chunk_targets`: network output (k, 7) (openness as a logit) -> poses (k, 7)."""
    out = np.asarray(out, dtype=np.float64)
    R0 = Rotation.from_euler(EULER_SEQ, current[3:6])
    Rk = Rotation.from_rotvec(out[:, 3:6] * ROT_SCALE) * R0
    opened = (1.0 / (1.0 + np.exp(-out[:, 6])) > 0.5).astype(np.float64)
    return np.concatenate([current[:3] + out[:, :3] * POS_SCALE, Rk.as_euler(EULER_SEQ), opened[:, None]], -1)


def chunk_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 on pose offsets + BCE on the gripper; pred/target (B, k, 7)."""
    pose = (pred[..., :6] - target[..., :6]).abs().mean()
    grip = nn.functional.binary_cross_entropy_with_logits(pred[..., 6], target[..., 6])
    return pose + 0.1 * grip


def text_bucket_ids(instruction: str, buckets: int, max_words: int = 16) -> list[int]:
    """Stable hashed word and bigram ids (1..buckets-1; 0 pads) of an instruction."""
    words = instruction.lower().replace(",", " ").replace(".", " ").split()
    grams = words + [f"{a}_{b}" for a, b in zip(words, words[1:], strict=False)]
    ids = [1 + zlib.crc32(g.encode()) % (buckets - 1) for g in grams][: 2 * max_words]
    return ids + [0] * (2 * max_words - len(ids))


@dataclass
class Demonstrations:
    """All frames of a dataset in memory, for baseline training.

    ``images`` uint8 (N, V, H, W, 3) (already cropped/resized like the world model's samples),
    ``state`` (N, 7) measured poses, ``targets`` (N, k, 7) chunk targets, ``text`` (N,) index into
    ``instructions``, ``episode`` (N,) dataset episode index, ``slot`` (N,) row of ``plucker`` for the frame;
    ``plucker`` float32 (E, V, 6, H, W) per loaded episode (static cameras; relative to view 1),
    or None.
    """

    images: np.ndarray
    state: np.ndarray
    targets: np.ndarray
    text: np.ndarray
    episode: np.ndarray
    cameras: list[str]
    instructions: list[str]
    slot: np.ndarray
    plucker: np.ndarray | None = None


def load_demonstrations(
    root: str | Path | Any,
    cameras: list[str] | None,
    height: int,
    width: int,
    horizon: int,
    with_plucker: bool = False,
    max_episodes: int | None = None,
) -> Demonstrations:
    """Read every successful demonstration of a dataset into memory (frames resized to H×W).

    ``root`` is a dataset directory or an episode source (``len``, ``episode(i)``, ``cameras``).
    ``cameras`` None: the first two of the dataset's cameras (the world model's default).
    """
    from actionimages.data import DatasetReader
    from actionimages.policy.observation import prepare_frames

    reader = root if hasattr(root, "episode") else DatasetReader(root)
    if len(reader) == 0:
        raise DataError(f"{root}: dataset has no episodes")
    names = list(cameras) if cameras else list(reader.cameras)[:2]
    missing = [c for c in names if c not in reader.cameras]
    if missing:
        raise DataError(f"{root}: cameras {missing} not in the dataset (it has {reader.cameras})")
    imgs, plk, state, targ, text, epi, slot = [], [], [], [], [], [], []
    instructions: list[str] = []
    n = len(reader) if max_episodes is None else min(len(reader), max_episodes)
    for i in tqdm(range(n), desc="loading demonstrations", unit="ep"):
        ep = reader.episode(i)
        if not ep.has_actions or ep.info.get("success") is False:
            continue
        T = len(ep.actions)
        st = np.asarray(ep.state if ep.state is not None else ep.actions, dtype=np.float64)[:, :7]
        views, first_cams = [], []
        for c in names:
            cam = ep.cameras[c]
            cam0 = cam[0] if isinstance(cam, list | tuple) else cam
            rgb, new_cam = prepare_frames(np.asarray(ep.frames[c][:T]), cam0, height, width)
            views.append(rgb)
            first_cams.append(new_cam)
        imgs.append(np.stack(views, 1))
        if with_plucker:  # rays of each view's first camera, relative to view 1 (as the world model)
            plk.append(np.stack([c.plucker(first_cams[0]).transpose(2, 0, 1) for c in first_cams]))
        slot.append(np.full(T, len(imgs) - 1))
        acts = np.asarray(ep.actions, dtype=np.float64)
        for t in range(T):
            idx = np.minimum(np.arange(t + 1, t + 1 + horizon), T - 1)
            targ.append(chunk_targets(st[t], acts[idx]))
        state.append(st)
        if ep.instruction not in instructions:
            instructions.append(ep.instruction)
        text.append(np.full(T, instructions.index(ep.instruction)))
        epi.append(np.full(T, i))
    if not imgs:
        raise DataError(f"{root}: no successful demonstrations with actions")
    return Demonstrations(
        images=np.concatenate(imgs),
        state=np.concatenate(state),
        targets=np.stack(targ),
        text=np.concatenate(text),
        episode=np.concatenate(epi),
        cameras=names,
        instructions=instructions,
        slot=np.concatenate(slot),
        plucker=np.stack(plk).astype(np.float32) if with_plucker else None,
    )


def write_meta(run: Path, meta: dict[str, Any]) -> None:
    write_json_atomic(run / "baseline.json", meta, indent=2)


def read_meta(run: Path) -> dict[str, Any]:
    p = Path(run) / "baseline.json"
    if not p.is_file():
        raise ActionImagesError(f"{run} is not a baseline run (no baseline.json)")
    return json.loads(p.read_text())
