"""Receding-horizon execution of action chunks, shared by the in-process policies and the client.

A plan gives N future absolute poses (N, 7) ``[x, y, z, rx, ry, rz, openness]`` (Euler angles
extrinsic xyz, radians) with validity (N,). Targets come out *unwrapped*: each Euler angle within
π of the previous target's (the first plan's: of the current pose), so a controller that
interpolates Euler angles never spins the wrist a full turn where an angle crosses ±π (at the
top-down pose rx does, within one plan). The executor runs the first ``execute`` of them, each
for ``repeat`` control steps, then asks for a new plan. An invalid or non-finite pose ends the
executed prefix (the poses after it were planned from a state the robot will not reach); a plan
whose first pose is unusable holds the current pose for one step, so the next step replans.

Options for a real robot (all off by default, so in-process evaluation is unchanged):

- ``max_step_m`` / ``max_step_rad``: each target moves at most this far (translation) and turns
  at most this much (rotation angle) from the previous target;
- ``workspace``: ``(low xyz, high xyz)``: every target's position is clipped into this box;
- ``gripper``: ``(low, high)``: every target's openness is clipped into this range;
- ``ensemble``: temporal ensembling of overlapping chunks (as in ACT): the target for a step is the
  weighted mean of every stored plan's pose for that step, weight ``exp(-ensemble · age)`` with
  age 0 for the oldest plan (positions and openness averaged, rotations averaged and projected back
  to a rotation).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

# The embedded benchmark's tool box (sim/env.py WORKSPACE_LOW/HIGH) widened by 0.25 m: an arm's reach
# in its base frame. A pose outside it is a unit or frame mistake (mm for m, camera for base).
DEFAULT_WORKSPACE = ((-0.10, -0.75, -0.22), (1.10, 0.75, 0.95))
DEFAULT_CONTROL_HZ = 10.0  # the rate the demonstrations were recorded at (sim/env.py CONTROL_DT)


# ------------------------------------------------------------------ rotations (numpy only)
def euler_to_matrix(e: np.ndarray) -> np.ndarray:
    """Extrinsic xyz Euler angles (3,) -> rotation matrix (3, 3): R = Rz · Ry · Rx."""
    a, b, c = (float(v) for v in e)
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rz @ ry @ rx


def matrix_to_euler(r: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) -> extrinsic xyz Euler angles (3,)."""
    b = -np.arcsin(np.clip(r[2, 0], -1.0, 1.0))
    if abs(r[2, 0]) < 1 - 1e-9:
        a, c = np.arctan2(r[2, 1], r[2, 2]), np.arctan2(r[1, 0], r[0, 0])
    else:  # gimbal lock: put the whole yaw into c
        a, c = 0.0, np.arctan2(-r[0, 1], r[1, 1])
    return np.array([a, b, c])


def nearest_angles(euler: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euler angles (..., 3) shifted by whole turns to lie within π of ``reference`` (3,): the
    same rotation, written continuously with ``reference``."""
    euler, reference = np.asarray(euler, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    turns = np.round((reference - euler) / (2 * np.pi))  # whole turns only: 0 leaves a value bit-exact
    return euler + turns * (2 * np.pi)


def unwrap_plan(poses: np.ndarray, reference_pose: np.ndarray) -> np.ndarray:
    """Poses (N, 7) with each pose's Euler angles within π of the previous pose's, the first's
    within π of ``reference_pose`` (7,) (the current pose): the same rotations, never a 2π jump.
    Non-finite poses are left as they are (and skipped as references)."""
    out = np.array(poses, dtype=np.float64, copy=True)
    previous = np.asarray(reference_pose, dtype=np.float64)[3:6]
    for j in range(len(out)):
        if np.all(np.isfinite(out[j, 3:6])) and np.all(np.isfinite(previous)):
            out[j, 3:6] = nearest_angles(out[j, 3:6], previous)
            previous = out[j, 3:6]
    return out


def _rotvec(r: np.ndarray) -> np.ndarray:
    """Rotation matrix -> axis · angle (log map)."""
    angle = np.arccos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0))
    if angle < 1e-9:
        return np.zeros(3)
    if np.pi - angle < 1e-6:  # 180°: axis from the symmetric part
        axis = np.sqrt(np.clip((np.diag(r) + 1) / 2, 0, None))
        k = int(np.argmax(axis))
        axis[np.arange(3) != k] *= np.sign(r[k, np.arange(3) != k] + r[np.arange(3) != k, k])
        return axis / np.linalg.norm(axis) * angle
    w = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    return w / (2 * np.sin(angle)) * angle


def _exp(v: np.ndarray) -> np.ndarray:
    """Axis · angle -> rotation matrix (Rodrigues)."""
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    k = v / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def _project_rotation(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    if np.linalg.det(r) < 0:
        u[:, -1] *= -1
        r = u @ vt
    return r


def limit_step(previous: np.ndarray, target: np.ndarray, max_m: float | None, max_rad: float | None):
    """``target`` (7,) moved back toward ``previous`` (7,) so that it translates at most ``max_m``
    and rotates at most ``max_rad``; openness is kept."""
    out = np.asarray(target, dtype=np.float64).copy()
    prev = np.asarray(previous, dtype=np.float64)[:7]
    if max_m is not None:
        d = out[:3] - prev[:3]
        n = float(np.linalg.norm(d))
        if n > max_m:
            out[:3] = prev[:3] + d * (max_m / n)
    if max_rad is not None:
        r0 = euler_to_matrix(prev[3:6])
        rel = _rotvec(euler_to_matrix(out[3:6]) @ r0.T)
        angle = float(np.linalg.norm(rel))
        if angle > max_rad:
            out[3:6] = matrix_to_euler(_exp(rel * (max_rad / angle)) @ r0)
    return out


def _box(box: Any, dims: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        low, high = (np.asarray(b, dtype=np.float64).reshape(dims) for b in box)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (low, high) with {dims} value(s) each, got {box!r}") from None
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low <= high)):
        raise ValueError(f"{name} needs finite low <= high, got {box!r}")
    return low, high


# ------------------------------------------------------------------ the executor
class ChunkExecutor:
    """The queue of targets between replanning calls.

    Args:
        execute: k, poses executed per plan (1..horizon).
        horizon: poses per plan.
        repeat: control steps per pose (the data's frame stride; 1 for the sim's data).
        max_step_m, max_step_rad: per-step limits (None: off).
        ensemble: temporal-ensembling rate (None: off; 0: plain mean of overlapping plans).
        workspace: ``(low (3,), high (3,))`` box for the targets' positions (None: off).
        gripper: ``(low, high)`` range for the targets' openness (None: off).
    """

    def __init__(
        self,
        execute: int,
        horizon: int,
        repeat: int = 1,
        max_step_m: float | None = None,
        max_step_rad: float | None = None,
        ensemble: float | None = None,
        workspace: tuple[Any, Any] | None = None,
        gripper: tuple[float, float] | None = None,
    ) -> None:
        if horizon < 1:
            raise ValueError(f"a chunk needs at least 1 pose, got horizon {horizon}")
        if not 1 <= int(execute) <= horizon:
            raise ValueError(f"execute (k) must be in 1..{horizon}, got {execute}")
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        for name, v in (("max_step_m", max_step_m), ("max_step_rad", max_step_rad), ("ensemble", ensemble)):
            if v is not None and not (np.isfinite(v) and v >= 0 and (v > 0 or name == "ensemble")):
                raise ValueError(f"{name} must be a positive number (ensemble: >= 0) or None, got {v}")
        self.execute, self.horizon, self.repeat = int(execute), int(horizon), int(repeat)
        self.max_step_m, self.max_step_rad, self.ensemble = max_step_m, max_step_rad, ensemble
        self.workspace = None if workspace is None else _box(workspace, 3, "workspace")
        self.gripper = None if gripper is None else _box(gripper, 1, "gripper")
        self._queue: deque[tuple[np.ndarray, Any]] = deque()
        self._last: np.ndarray | None = None  # the previous target (for the step limits)
        self._step = 0  # control steps executed (for ensembling)
        self._plans: list[tuple[int, np.ndarray]] = []  # (first step, valid poses (n, 7)) for ensembling

    def reset(self) -> None:
        self._queue.clear()
        self._last, self._step, self._plans = None, 0, []

    @property
    def steps(self) -> int:
        """Control steps executed since :meth:`reset` (the clock a late plan is aligned to)."""
        return self._step

    @property
    def remaining(self) -> int:
        """Targets left in the queue before a new plan is needed."""
        return len(self._queue)

    @property
    def last_target(self) -> np.ndarray | None:
        """The previous target (7,), or None before the first."""
        return None if self._last is None else self._last.copy()

    @property
    def empty(self) -> bool:
        """True when the next step needs a new plan."""
        return not self._queue

    def load(
        self,
        poses: np.ndarray,
        valid: np.ndarray,
        current_pose: np.ndarray,
        tags: list[Any] | None = None,
    ) -> bool:
        """Queue the valid prefix of a plan's first ``execute`` poses; returns False when none was
        usable (the current pose is then held for one step)."""
        poses = np.asarray(poses, dtype=np.float64)
        valid = np.asarray(valid, dtype=bool)
        if poses.ndim != 2 or poses.shape[1] != 7 or valid.shape != poses.shape[:1]:
            raise ValueError(f"a chunk is poses (N, 7) with valid (N,), got {poses.shape} and {valid.shape}")
        self._queue.clear()
        poses = unwrap_plan(poses, self._last if self._last is not None else current_pose)
        n = 0
        for j in range(min(self.execute, len(poses))):
            if not valid[j] or not np.all(np.isfinite(poses[j])):
                break
            tag = tags[j] if tags is not None else j
            self._queue.extend([(poses[j].copy(), tag)] * self.repeat)
            n += 1
        if self.ensemble is not None:
            usable = 0
            while usable < len(poses) and valid[usable] and np.all(np.isfinite(poses[usable])):
                usable += 1
            if usable:
                self._plans.append((self._step, np.repeat(poses[:usable], self.repeat, axis=0)))
        if self._last is None:
            self._last = np.asarray(current_pose, dtype=np.float64)[:7].copy()
        if n:
            return True
        self._queue.append((np.asarray(current_pose, dtype=np.float64)[:7].copy(), None))
        return False

    def _ensembled(self, own: np.ndarray) -> np.ndarray:
        t = self._step
        self._plans = [(s, p) for s, p in self._plans if t - s < len(p)]  # drop plans that ended
        if not self._plans:
            return own
        w = np.exp(-self.ensemble * np.arange(len(self._plans)))  # oldest first, as in ACT
        poses = np.stack([p[t - s] for s, p in self._plans])
        w = w / w.sum()
        out = own.copy()
        out[:3] = w @ poses[:, :3]
        out[6] = float(w @ poses[:, 6])
        rot = sum(wi * euler_to_matrix(p[3:6]) for wi, p in zip(w, poses, strict=True))
        out[3:6] = matrix_to_euler(_project_rotation(rot))
        return out

    def pop(self) -> tuple[np.ndarray, Any]:
        """The next target (7,) and its tag (None while holding)."""
        if not self._queue:
            raise ValueError("the chunk executor is empty: load a plan first")
        target, tag = self._queue.popleft()
        if self.ensemble is not None and tag is not None:
            target = self._ensembled(target)
        if (self.max_step_m is not None or self.max_step_rad is not None) and self._last is not None:
            target = limit_step(self._last, target, self.max_step_m, self.max_step_rad)
        if self._last is not None:  # ensembling and limits return angles in (-π, π]: keep continuity
            target = target.copy()
            target[3:6] = nearest_angles(target[3:6], self._last[3:6])
        if self.workspace is not None:
            target = target.copy()
            target[:3] = np.clip(target[:3], *self.workspace)
        if self.gripper is not None:
            target = target.copy()
            target[6] = float(np.clip(target[6], self.gripper[0][0], self.gripper[1][0]))
        self._last = target[:7].copy()
        self._step += 1
        return target, tag
