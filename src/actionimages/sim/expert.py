"""Scripted experts: privileged waypoint plans followed with bounded steps per control tick.

The expert reads the task's ground-truth state (through the env) to build its plan, then emits
absolute tool poses that move at most :data:`LIN_STEP` metres and :data:`ANG_STEP` radians per step
from the previous command, so every target lies within the env's one-step tracking range.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from scipy.spatial.transform import Rotation

from actionimages.codec.poses import matrix_to_euler
from actionimages.errors import ActionImagesError
from actionimages.sim.env import SimEnv
from actionimages.sim.robot import rotation_error

LIN_STEP = 0.025  # m per control step (< MAX_STEP_M): 0.25 m/s, episodes of 8-100 frames
ANG_STEP = 0.2  # rad per control step (< MAX_STEP_RAD)


class ScriptedExpert:
    """Follows the task's waypoint plan. ``act(obs) -> action`` (7,) ``[x, y, z, rx, ry, rz, open]``."""

    def __init__(self, env: SimEnv) -> None:
        self.env = env
        self._episode: int | None = None

    def _start(self) -> None:
        env = self.env
        self.plan = env.task.plan(env)
        self.index = 0
        self.cmd_pos, self.cmd_rot = env.tcp_pos(), env.tcp_rot()
        self.target: tuple[np.ndarray, np.ndarray] | None = None
        self.held = 0
        self.in_wp = 0
        self.openness = 1.0
        self._episode = env.episode_count

    @property
    def done(self) -> bool:
        return self.index >= len(self.plan)

    def act(self, obs: dict[str, Any] | None = None) -> np.ndarray:
        """The next action for the env's current state (``obs`` is accepted for the policy API)."""
        env = self.env
        if env.episode_seed is None:
            raise ActionImagesError("reset the env before asking the expert to act")
        if self._episode != env.episode_count:  # a new episode began
            self._start()
        while not self.done:
            wp = self.plan[self.index]
            if self.target is None:
                pos, rot = wp.pose(env)
                self.target = (np.asarray(pos, float).copy(), np.asarray(rot, float).copy())
                self.in_wp = 0
                self.held = 0
            tpos, trot = self.target
            self.openness = wp.openness
            at_cmd = (
                np.linalg.norm(tpos - self.cmd_pos) < 1e-6
                and np.linalg.norm(rotation_error(trot, self.cmd_rot)) < 1e-6
            )
            reached = at_cmd and np.linalg.norm(env.tcp_pos() - tpos) < wp.tol
            if (reached and self.held >= wp.hold) or self.in_wp >= wp.max_steps:
                self.index += 1
                self.target = None
                continue
            break
        if not self.done:
            wp = self.plan[self.index]
            tpos, trot = self.target
            self.in_wp += 1
            if (
                np.linalg.norm(tpos - self.cmd_pos) < 1e-6
                and np.linalg.norm(rotation_error(trot, self.cmd_rot)) < 1e-6
            ):
                self.held += 1
            d = tpos - self.cmd_pos
            dist = np.linalg.norm(d)
            lin = LIN_STEP if wp.speed is None else min(wp.speed, LIN_STEP)
            self.cmd_pos = tpos.copy() if dist <= lin else self.cmd_pos + d * (lin / dist)
            rv = rotation_error(trot, self.cmd_rot)
            ang = np.linalg.norm(rv)
            if ang <= ANG_STEP:
                self.cmd_rot = trot.copy()
            else:
                self.cmd_rot = Rotation.from_rotvec(rv * (ANG_STEP / ang)).as_matrix() @ self.cmd_rot
        return np.concatenate([self.cmd_pos, matrix_to_euler(self.cmd_rot), [self.openness]])


def scripted_expert(env: gym.Env) -> ScriptedExpert:
    """The scripted expert of ``env``'s task (``env`` from :func:`actionimages.sim.make_env`)."""
    base = getattr(env, "unwrapped", env)
    if not isinstance(base, SimEnv):
        raise ActionImagesError(f"scripted_expert needs an actionimages.sim env, got {type(env).__name__}")
    return ScriptedExpert(base)
