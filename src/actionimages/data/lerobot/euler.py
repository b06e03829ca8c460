"""Euler angles written continuously along each episode: the convention of the pose columns.

``action`` and ``observation.state`` hold ``[x, y, z, rx, ry, rz, openness]`` with SciPy's extrinsic
``xyz`` Euler angles. SciPy returns each angle in (-pi, pi], so a top-down tool's rx (near +-pi)
flips between about +pi and -pi from one frame to the next: a 2*pi jump for a rotation change of a
fraction of a degree, which ruins mean/std normalisation (LeRobot policies read ``action``). The
writer therefore stores the angles *unwrapped along each episode*: the first frame's angles as
given (SciPy's canonical ones for the sim's expert), each later frame's shifted by whole turns to
lie within pi of the previous frame's. The rotations are the same (everything that converts Euler
angles to matrices is unaffected) and the ``.rot6d`` twins are computed from the same rotations.

``meta/info.json`` records it as ``{"actionimages": {"euler_angles": "unwrapped"}}``; a dataset
written before (or by another tool) lacks the field, and ``actionimages dataset unwrap-euler``
rewrites one in place (:mod:`actionimages.data.unwrap`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from actionimages.codec.poses import euler_to_matrix, rotation_angle_between
from actionimages.data.lerobot.layout import ACTION_NAMES

INFO_KEY = "actionimages"  # our own fields in meta/info.json
EULER_FIELD = "euler_angles"  # under INFO_KEY: how the pose columns' Euler angles are written
UNWRAPPED = "unwrapped"  # ... each frame's within pi of the previous frame's, along each episode
POSE_COLUMNS = ("action", "observation.state")
EULER = slice(3, 6)  # the Euler angles within a pose row
JUMP_RAD = np.pi / 2  # a component jump above this between consecutive frames ...
TURN_RAD = np.pi / 4  # ... while the rotation itself turns by less than this is an Euler artefact
UNWRAP_COMMAND = "actionimages dataset unwrap-euler"


def unwrap_euler(euler: np.ndarray) -> np.ndarray:
    """Euler angles (T, 3) along one episode, each frame's shifted by whole turns to lie within pi of
    the previous frame's (the first frame's kept): the same rotations, no 2*pi jump. float64.

    Frames that are already within pi of their predecessor are returned bit for bit (so unwrapping
    twice changes nothing); non-finite frames are left as they are and skipped as references.
    """
    out = np.array(euler, dtype=np.float64, copy=True)
    previous: np.ndarray | None = None
    for t in range(len(out)):
        row = out[t]
        if not np.all(np.isfinite(row)):
            continue
        if previous is not None:
            turns = np.round((row - previous) / (2 * np.pi))
            if np.any(turns):
                out[t] = row - 2 * np.pi * turns
        previous = out[t]
    return out


def euler_columns(info: Mapping[str, Any]) -> list[str]:
    """The pose columns of a dataset that hold Euler angles (named ``x, y, z, rx, ry, rz, openness``)."""
    features = info.get("features") or {}
    return [
        c
        for c in POSE_COLUMNS
        if c in features and list((features[c] or {}).get("names") or []) == ACTION_NAMES
    ]


def is_unwrapped(info: Mapping[str, Any]) -> bool:
    """Whether ``info.json`` says the pose columns' Euler angles are unwrapped along each episode."""
    ours = info.get(INFO_KEY)
    return isinstance(ours, Mapping) and ours.get(EULER_FIELD) == UNWRAPPED


def mark_unwrapped(info: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``info`` that records the convention."""
    out = dict(info)
    ours = out.get(INFO_KEY)
    out[INFO_KEY] = {**(ours if isinstance(ours, Mapping) else {}), EULER_FIELD: UNWRAPPED}
    return out


@dataclass(frozen=True)
class EulerJump:
    """An Euler angle jump between frames ``frame - 1`` and ``frame`` larger than the rotation change."""

    frame: int
    component: str  # "rx", "ry" or "rz": the largest jump
    before: float
    after: float
    turn_deg: float  # the geodesic rotation change between the two frames
    wrap: bool  # a whole-turn jump that unwrapping removes (else an Euler singularity near ry = +-90 deg)


def euler_jumps(euler: np.ndarray) -> list[EulerJump]:
    """Consecutive frames of ``euler`` (T, 3) where an angle jumps by more than ``JUMP_RAD`` while the
    rotation turns by less than ``TURN_RAD``. Pairs with a non-finite frame are skipped."""
    e = np.asarray(euler, dtype=np.float64)
    if e.ndim != 2 or e.shape[1] != 3 or len(e) < 2:
        return []
    finite = np.all(np.isfinite(e), axis=1)
    pair = finite[1:] & finite[:-1]
    d = np.where(pair[:, None], np.diff(e, axis=0), 0.0)
    candidates = np.nonzero(pair & np.any(np.abs(d) > JUMP_RAD, axis=1))[0]
    if not len(candidates):
        return []
    R = euler_to_matrix(e[np.concatenate([candidates, candidates + 1])])
    turn = rotation_angle_between(R[: len(candidates)], R[len(candidates) :])
    out = []
    for k, t in enumerate(candidates):
        if turn[k] >= TURN_RAD:
            continue
        c = int(np.argmax(np.abs(d[t])))
        out.append(
            EulerJump(
                frame=int(t + 1),
                component=ACTION_NAMES[3 + c],
                before=float(e[t, c]),
                after=float(e[t + 1, c]),
                turn_deg=float(np.degrees(turn[k])),
                wrap=bool(np.any(np.abs(d[t]) > np.pi)),
            )
        )
    return out
