"""Receding-horizon execution of action chunks (numpy only, so a robot-side client can use it).

A plan gives N future absolute poses (N, 7) ``[x, y, z, rx, ry, rz, openness]`` with validity
(N,). The executor runs the first ``execute`` of them, each for ``repeat`` control steps, then
asks for a new plan. An invalid or non-finite pose ends the executed prefix (the poses after it
were planned from a state the robot will not reach); a plan whose first pose is unusable holds
the current pose for one step, so the next step replans from a fresh observation.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from actionimages.errors import ActionImagesError


class ChunkExecutor:
    """The queue of targets between replanning calls.

    Args:
        execute: k, poses executed per plan (1..horizon).
        horizon: poses per plan.
        repeat: control steps per pose (the data's frame stride; 1 for the sim's data).
    """

    def __init__(self, execute: int, horizon: int, repeat: int = 1) -> None:
        if horizon < 1:
            raise ActionImagesError(f"a chunk needs at least 1 pose, got horizon {horizon}")
        if not 1 <= int(execute) <= horizon:
            raise ActionImagesError(f"execute (k) must be in 1..{horizon}, got {execute}")
        if repeat < 1:
            raise ActionImagesError(f"repeat must be >= 1, got {repeat}")
        self.execute, self.horizon, self.repeat = int(execute), int(horizon), int(repeat)
        self._queue: deque[tuple[np.ndarray, Any]] = deque()

    def reset(self) -> None:
        self._queue.clear()

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
            raise ActionImagesError(
                f"a chunk is poses (N, 7) with valid (N,), got {poses.shape} and {valid.shape}"
            )
        self._queue.clear()
        for j in range(min(self.execute, len(poses))):
            if not valid[j] or not np.all(np.isfinite(poses[j])):
                break
            tag = tags[j] if tags is not None else j
            self._queue.extend([(poses[j].copy(), tag)] * self.repeat)
        if self._queue:
            return True
        hold = np.asarray(current_pose, dtype=np.float64)[:7].copy()
        self._queue.append((hold, None))
        return False

    def pop(self) -> tuple[np.ndarray, Any]:
        """The next target (7,) and its tag (None while holding)."""
        if not self._queue:
            raise ActionImagesError("the chunk executor is empty: load a plan first")
        return self._queue.popleft()
