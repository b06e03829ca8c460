"""Recording expert demonstrations (data-format free: ``actionimages.data`` sits below ``sim``).

:func:`record_expert_episode` runs the scripted expert for one seed and returns an
:class:`EpisodeRecord` with the convention of docs/ARCHITECTURE.md: ``actions[t]`` is the tool pose
*at frame t* (measured) with the gripper command in force at frame t, and ``state[t]`` is the
measured pose with the measured openness. :func:`record_many` fans seeds out over processes.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actionimages.codec.camera import Camera, as_camera
from actionimages.sim.env import CONTROL_DT, make_env
from actionimages.sim.expert import scripted_expert
from actionimages.sim.scene import WRIST_CAMERA


@dataclass
class EpisodeRecord:
    """One recorded episode of T frames (T - 1 control steps).

    Attributes:
        frames: {camera: uint8 (T, H, W, 3)}.
        cameras: {camera: Camera} for fixed cameras, {camera: [T Camera]} for the wrist camera.
        actions: float64 (T, 7) measured pose at frame t + gripper command in force at frame t.
        state: float64 (T, 7) measured pose + measured openness.
        instruction, task: strings; fps: frames per second (10).
        info: JSON-ready metadata (seed, split, success, steps, colour, distractors, ...).
        joints: float64 (T, 9) measured joint positions per frame: the 7 arm joints (rad) and the
            two finger slides (m, 0..0.04 each), what a real robot's LeRobot recording holds.
    """

    frames: dict[str, np.ndarray]
    cameras: dict[str, Camera | list[Camera]]
    actions: np.ndarray
    state: np.ndarray
    instruction: str
    task: str
    fps: float
    info: dict[str, Any] = field(default_factory=dict)
    joints: np.ndarray | None = None

    @property
    def success(self) -> bool:
        return bool(self.info.get("success", False))


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def record_expert_episode(
    task: str,
    seed: int,
    split: str = "train",
    image_size: int = 128,
    cameras: tuple[str, ...] | list[str] | None = None,
    render: bool = True,
) -> EpisodeRecord:
    """Run the scripted expert on ``(task, split, seed)`` and record every frame.

    With ``render=False`` the frames are empty (0, 0, 0, 3)-shaped placeholders, for success checks.
    """
    env = make_env(task, split=split, seed=seed, image_size=image_size, cameras=cameras, render=render)
    try:
        expert = scripted_expert(env)
        obs, info = env.reset(seed=seed)
        frames = {c: [img] for c, img in obs.get("images", {}).items()}  # no images with render=False
        cams: dict[str, list[Camera]] = {c: [as_camera(cam)] for c, cam in obs["cameras"].items()}
        poses = [obs["ee_pose"]]
        kin = env.unwrapped.kin
        joint_idx = np.concatenate([kin.qpos_idx, kin.finger_qpos_idx])
        joints = [env.unwrapped.data.qpos[joint_idx].copy()]
        gripper_cmd = [1.0]  # the reset command: open
        step_info: dict[str, Any] = {"success": False}
        ik_failures, clipped = 0, 0
        terminated = truncated = False
        while not (terminated or truncated):
            action = expert.act(obs)
            obs, _, terminated, truncated, step_info = env.step(action)
            for c, img in obs.get("images", {}).items():
                frames[c].append(img)
            for c, cam in obs["cameras"].items():
                cams[c].append(as_camera(cam))
            poses.append(obs["ee_pose"])
            joints.append(env.unwrapped.data.qpos[joint_idx].copy())
            gripper_cmd.append(float(action[6]))
            ik_failures += int(step_info["ik_failed"])
            clipped += int(step_info["clipped"])
        state = np.stack(poses)
        actions = state.copy()
        actions[:, 6] = gripper_cmd
        out_frames = (
            {c: np.stack(v) for c, v in frames.items()}
            if render
            else {c: np.zeros((len(poses), 0, 0, 3), np.uint8) for c in cams}
        )
        out_cams: dict[str, Camera | list[Camera]] = {
            c: (v if c == WRIST_CAMERA else v[0]) for c, v in cams.items()
        }
        meta = {
            "seed": int(seed),
            "split": split,
            "task": task,
            "success": bool(step_info["success"]),
            "steps": int(len(poses) - 1),
            "ik_failures": ik_failures,
            "clipped_actions": clipped,
            "source": f"actionimages.sim {task}/{split}/seed{seed}",
        }
        meta.update({k: _jsonable(v) for k, v in info.items() if k in ("colour", "which", "distractors")})
        return EpisodeRecord(
            out_frames,
            out_cams,
            actions,
            state,
            obs["instruction"],
            task,
            1.0 / CONTROL_DT,
            meta,
            np.stack(joints),
        )
    finally:
        env.close()


def _worker(job: tuple[str, int, str, int, tuple[str, ...] | None, bool]) -> EpisodeRecord:
    task, seed, split, size, cameras, render = job
    return record_expert_episode(task, seed, split=split, image_size=size, cameras=cameras, render=render)


def record_many(
    jobs: Iterable[tuple[str, int]],
    split: str = "train",
    image_size: int = 128,
    cameras: tuple[str, ...] | None = None,
    workers: int = 1,
    render: bool = True,
) -> Iterator[EpisodeRecord]:
    """Record ``(task, seed)`` jobs, in order, with ``workers`` processes (spawned: each its own GL)."""
    args = [(t, int(s), split, int(image_size), cameras, render) for t, s in jobs]
    if workers <= 1 or len(args) <= 1:
        for a in args:
            yield _worker(a)
        return
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes=min(workers, len(args))) as pool:
        yield from pool.imap(_worker, args, chunksize=1)
