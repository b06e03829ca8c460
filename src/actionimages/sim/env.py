"""The gymnasium environment: absolute end-effector pose control of a Panda at 10 Hz, calibrated cameras.

``step(action)`` takes ``[x, y, z, rx, ry, rz, openness]`` (SciPy extrinsic xyz Euler, radians) or
``[x, y, z, qx, qy, qz, qw, openness]``: the tool-centre-point pose to reach by the end of the step.
The pose is clipped to the workspace (with a warning and ``info["clipped"]``), turned into joint
targets by damped-least-squares IK (residual reported in ``info["ik_error"]`` / ``info["ik_failed"]``),
and tracked by stiff joint PD control over 50 physics substeps of 2 ms.

The env conforms to gymnasium (``gymnasium.utils.env_checker.check_env`` passes): every
observation lies in ``observation_space``, the calibration included (plain arrays; ``as_camera``
makes a :class:`Camera` of them); ``render_mode="rgb_array"`` is accepted; each task is registered
as ``actionimages/<TaskName>-v0`` (:func:`register_envs`, run on import of ``actionimages.sim``),
so ``gymnasium.make`` and ``gymnasium.make_vec`` build it.
"""

from __future__ import annotations

import os
import string

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering; must precede the mujoco import

import warnings
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from actionimages.codec.camera import Camera
from actionimages.codec.poses import euler_to_matrix, matrix_to_euler, to_euler_actions
from actionimages.errors import ActionImagesError
from actionimages.sim.render import OffscreenRenderer
from actionimages.sim.robot import HOME_Q, PandaKinematics, rotation_error
from actionimages.sim.scene import (
    ALL_CAMERAS,
    DEFAULT_CAMERAS,
    FINGER_MAX,
    FIXED_CAMERAS,
    load_model,
    look_at_rotation,
    mujoco_camera,
    opencv_to_mujoco_quat,
)
from actionimages.sim.tasks import (
    HOME_TCP,
    TOP_DOWN,
    Task,
    TaskState,
    make_task,
    place_clutter,
    scene_objects_xml,
)
from actionimages.sim.variations import novel_camera_specs, scene_stream, variation_for

CONTROL_DT = 0.1  # s per control step (10 Hz)
PHYSICS_DT = 0.002
RAMP_FRACTION = 0.35  # joint targets move linearly over this part of the step, then hold
MAX_STEP_M = 0.05  # a target within this distance (and MAX_STEP_RAD) is reached within one step
MAX_STEP_RAD = 0.35
WORKSPACE_LOW = np.array([0.15, -0.50, 0.03])  # tool-centre-point box (m), world = robot base frame
WORKSPACE_HIGH = np.array([0.85, 0.50, 0.70])
MIN_IMAGE, MAX_IMAGE = 64, 512
# The instruction's Text space: printable ASCII and the space (no tab or newline), up to 200 characters.
INSTRUCTION_CHARSET = "".join(c for c in string.printable if c == " " or not c.isspace())
MAX_INSTRUCTION = 200
GYM_NAMESPACE = "actionimages"
# Bounds of the observation's boxes: finite, and wide enough for any state the robot can reach.
EE_POSE_LOW = np.array([-2.0, -2.0, -2.0, -np.pi, -np.pi, -np.pi, 0.0])
EE_POSE_HIGH = np.array([2.0, 2.0, 2.0, np.pi, np.pi, np.pi, 1.0])
MAX_FOCAL_PX = 100.0 * MAX_IMAGE  # a 0.6° field of view at the largest image
MAX_CAMERA_DISTANCE = 10.0  # m from the robot base


class SimEnv(gym.Env):
    """One task of the benchmark. Build it with :func:`make_env`.

    Observation dict (always within ``observation_space``):

    - ``images`` {camera: uint8 (H, W, 3)}; absent (from the space too) when ``render=False``;
    - ``cameras`` {camera: {``K`` float (3, 3), ``cam_to_world`` float (4, 4), ``width``, ``height``
      int ()}}: the calibration as plain arrays (``as_camera(obs["cameras"][name])`` or
      :meth:`cameras` give :class:`Camera` objects);
    - ``ee_pose`` float (7,): measured tool pose (xyz + Euler xyz) and measured openness;
    - ``instruction`` str (printable ASCII, at most :data:`MAX_INSTRUCTION` characters).

    ``reset(seed=s)`` starts the episode of seed ``s``; ``reset()`` without a seed continues with the
    next seed (the last one + 1; make_env's ``seed`` for the first episode). ``render()`` returns the
    first camera's RGB frame (``render_mode`` may be None or ``"rgb_array"``).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(round(1 / CONTROL_DT))}

    def __init__(
        self,
        task: str,
        split: str = "train",
        seed: int = 0,
        image_size: int = 128,
        cameras: list[str] | tuple[str, ...] | str | None = None,
        render: bool = True,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ActionImagesError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.task: Task = make_task(task)  # an unknown name is refused with the valid ones
        self.variation = variation_for(split)
        if isinstance(image_size, bool) or not isinstance(image_size, int | np.integer):
            raise ActionImagesError(
                f"image_size must be an int in [{MIN_IMAGE}, {MAX_IMAGE}], got {image_size!r}"
            )
        if not MIN_IMAGE <= int(image_size) <= MAX_IMAGE:
            raise ActionImagesError(f"image_size must be in [{MIN_IMAGE}, {MAX_IMAGE}], got {image_size}")
        if cameras is None:
            cameras = DEFAULT_CAMERAS
        elif isinstance(cameras, str):
            cameras = [c.strip() for c in cameras.split(",") if c.strip()]
        cameras = tuple(cameras)
        unknown = [c for c in cameras if c not in ALL_CAMERAS]
        if unknown or not cameras:
            raise ActionImagesError(
                f"unknown cameras {unknown or cameras}; valid cameras: {list(ALL_CAMERAS)}"
            )
        self.task_name, self.split, self.base_seed = task, split, int(seed)
        self.image_size, self.camera_names, self.render_images_enabled = (
            int(image_size),
            cameras,
            bool(render),
        )
        self.model = load_model(scene_objects_xml(self.task), self.task.contact_xml())
        self.model.opt.timestep = PHYSICS_DT
        self.data = mujoco.MjData(self.model)
        self.kin = PandaKinematics(self.model)
        self.max_steps = self.task.max_steps
        self.n_substeps = int(round(CONTROL_DT / PHYSICS_DT))
        self._renderer: OffscreenRenderer | None = None
        self._camera_defaults = (
            self.model.cam_pos.copy(),
            self.model.cam_quat.copy(),
            self.model.cam_fovy.copy(),
        )
        self._body_defaults = (
            self.model.body_pos.copy(),
            self.model.body_quat.copy(),
            self.model.geom_rgba.copy(),
        )
        self._finger_geoms = self._robot_finger_geoms()
        self._resets = 0
        self.task_state = TaskState()
        self.episode_seed: int | None = None
        self.steps = 0
        self._q_cmd = HOME_Q.copy()
        s = self.image_size
        obs_spaces = {
            "cameras": spaces.Dict({c: _calibration_space() for c in cameras}),
            "ee_pose": spaces.Box(EE_POSE_LOW, EE_POSE_HIGH, dtype=np.float64),
            "instruction": spaces.Text(MAX_INSTRUCTION, min_length=1, charset=INSTRUCTION_CHARSET),
        }
        if render:  # gymnasium allows no empty Dict space: without images there is no "images" key
            obs_spaces["images"] = spaces.Dict({c: spaces.Box(0, 255, (s, s, 3), np.uint8) for c in cameras})
        self.observation_space = spaces.Dict(obs_spaces)
        low = np.concatenate([WORKSPACE_LOW, [-np.pi] * 3, [0.0]])
        high = np.concatenate([WORKSPACE_HIGH, [np.pi] * 3, [1.0]])
        self.action_space = spaces.Box(low, high, dtype=np.float64)

    # ------------------------------------------------------------------ lookups
    def body_id(self, name: str) -> int:
        return self._id(mujoco.mjtObj.mjOBJ_BODY, name)

    def joint_id(self, name: str) -> int:
        return self._id(mujoco.mjtObj.mjOBJ_JOINT, name)

    def geom_id(self, name: str) -> int:
        return self._id(mujoco.mjtObj.mjOBJ_GEOM, name)

    def geom_name(self, gid: int) -> str | None:
        return mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_GEOM, gid)

    def _id(self, kind: mujoco.mjtObj, name: str) -> int:
        i = mujoco.mj_name2id(self.model, kind, name)
        if i < 0:
            raise ActionImagesError(f"scene has no {kind.name[6:].lower()} named {name!r}")
        return i

    def _robot_finger_geoms(self) -> tuple[set[int], set[int]]:
        left, right = self.body_id("leftfinger"), self.body_id("rightfinger")
        g = np.arange(self.model.ngeom)
        return set(g[self.model.geom_bodyid == left].tolist()), set(
            g[self.model.geom_bodyid == right].tolist()
        )

    # ------------------------------------------------------------------ robot state
    def tcp_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.kin.tcp].copy()

    def tcp_rot(self) -> np.ndarray:
        return self.data.site_xmat[self.kin.tcp].reshape(3, 3).copy()

    def openness(self) -> float:
        return self.kin.openness(self.data)

    def ee_pose(self) -> np.ndarray:
        """Measured ``[x, y, z, rx, ry, rz, openness]`` (7,)."""
        return np.concatenate([self.tcp_pos(), matrix_to_euler(self.tcp_rot()), [self.openness()]])

    def grasping(self, geom: str) -> bool:
        """Whether both fingers touch ``geom``."""
        gid = self.geom_id(geom)
        left, right = self._finger_geoms
        touch_l = touch_r = False
        for c in self.data.contact[: self.data.ncon]:
            pair = {int(c.geom1), int(c.geom2)}
            if gid in pair:
                other = (pair - {gid}).pop() if len(pair) > 1 else gid
                touch_l |= other in left
                touch_r |= other in right
        return touch_l and touch_r

    # ------------------------------------------------------------------ cameras and images
    def cameras(self) -> dict[str, Camera]:
        """Calibrated cameras {name: Camera} for the current state (the wrist camera moves)."""
        s = self.image_size
        return {c: mujoco_camera(self.model, self.data, c, s, s) for c in self.camera_names}

    def render_images(self, cameras: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """RGB images {name: uint8 (H, W, 3)} of the current state; the renderer is created lazily."""
        out = {}
        for c in cameras or self.camera_names:
            out[c] = self.renderer.render(self.data, c)
        return out

    @property
    def renderer(self) -> OffscreenRenderer:
        """The env's offscreen renderer, created on first use."""
        if self._renderer is None:
            self._renderer = OffscreenRenderer(self.model, self.image_size, self.image_size)
        return self._renderer

    def render(self) -> np.ndarray:
        """gymnasium's ``rgb_array``: the first camera's image (rendered even when ``render=False``)."""
        return self.render_images(self.camera_names[:1])[self.camera_names[0]]

    def observation(self, images: bool | None = None) -> dict[str, Any]:
        """The observation of the current state (what ``reset`` and ``step`` return): fresh arrays.

        ``images`` overrides the env's ``render`` setting (True adds them anyway; the result then lies
        outside ``observation_space`` when the env was built with ``render=False``).
        """
        obs: dict[str, Any] = {}
        if self.render_images_enabled if images is None else images:
            obs["images"] = self.render_images()
        obs["cameras"] = {name: camera_observation(cam) for name, cam in self.cameras().items()}
        obs["ee_pose"] = self.ee_pose()
        obs["instruction"] = self.task_state.instruction
        return obs

    # ------------------------------------------------------------------ reset / step
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        """Start an episode. ``seed`` picks the episode's variation; without it the episode of the
        next seed (the last episode's + 1; ``make_env``'s seed for the first episode), so that
        ``reset(seed=s); reset()`` always gives the same two episodes (gymnasium's contract)."""
        if seed is None:
            seed = self.base_seed if self.episode_seed is None else self.episode_seed + 1
        super().reset(seed=int(seed))
        self._resets += 1
        self.episode_seed = int(seed)
        # heldout_cameras seed s shows test seed s's scene; train never shows a test scene
        rng = scene_stream(self.task_name, self.split, int(seed), "objects")
        cam_rng = scene_stream(self.task_name, self.split, int(seed), "cameras")
        m, d = self.model, self.data
        m.body_pos[:], m.body_quat[:], m.geom_rgba[:] = (a.copy() for a in self._body_defaults)
        m.cam_pos[:], m.cam_quat[:], m.cam_fovy[:] = (a.copy() for a in self._camera_defaults)
        mujoco.mj_resetData(m, d)
        d.qpos[self.kin.qpos_idx] = HOME_Q
        d.qpos[self.kin.finger_qpos_idx] = FINGER_MAX
        self.task_state = TaskState()
        state = self.task.randomise(self, rng, self.variation)
        self.task_state = state
        if state.instruction not in self.observation_space["instruction"]:
            raise ActionImagesError(
                f"task {self.task_name!r} drew the instruction {state.instruction!r}, outside the "
                f"observation space (printable ASCII, 1..{MAX_INSTRUCTION} characters)"
            )
        objects = [np.asarray(o, float) for o in state.objects]
        state.distractors = place_clutter(
            m, rng, self.variation, objects, named_colour=state.colour, cap=self.task.max_clutter
        )
        if self.variation.novel_cameras:
            for spec in novel_camera_specs(cam_rng):
                cid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, spec.name)
                m.cam_pos[cid] = spec.eye
                m.cam_quat[cid] = opencv_to_mujoco_quat(
                    look_at_rotation(np.array(spec.eye), np.array(spec.target))
                )
                m.cam_fovy[cid] = spec.fovy
        d.ctrl[self.kin.arm_act] = HOME_Q
        d.ctrl[self.kin.finger_act] = FINGER_MAX
        self._q_cmd = HOME_Q.copy()
        mujoco.mj_forward(m, d)
        # let objects settle on the table before the first frame
        for _ in range(10):
            mujoco.mj_step(m, d)
        mujoco.mj_forward(m, d)
        self.steps = 0
        info = {"seed": self.episode_seed, "split": self.split, "task": self.task_name, "success": False}
        info.update(state.info())
        return self.observation(), info

    def _parse_action(self, action: Any) -> tuple[np.ndarray, np.ndarray, float, bool]:
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ActionImagesError(f"action must be a numeric array of 7 or 8 values: {exc}") from exc
        if a.ndim != 1:
            raise ActionImagesError(f"action must be one pose (7,) or (8,), got shape {a.shape}")
        a = to_euler_actions(a)  # validates shape, NaN/inf and quaternion norm
        pos, clipped = a[:3], False
        cpos = np.clip(pos, WORKSPACE_LOW, WORKSPACE_HIGH)
        openness = float(np.clip(a[6], 0.0, 1.0))
        if np.any(cpos != pos) or openness != a[6]:
            clipped = True
            warnings.warn(
                f"action {np.round(a, 3).tolist()} outside the workspace {WORKSPACE_LOW.tolist()}..."
                f"{WORKSPACE_HIGH.tolist()} (openness 0..1); clipped",
                RuntimeWarning,
                stacklevel=3,
            )
        return cpos, euler_to_matrix(a[3:6]), openness, clipped

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        """Reach the absolute tool pose ``action`` (7,) or (8,) by the end of this 0.1 s step."""
        if self.episode_seed is None:
            raise ActionImagesError("call reset() before step()")
        pos, R, openness, clipped = self._parse_action(action)
        ik = self.kin.solve(pos, R, self._q_cmd)
        m, d = self.model, self.data
        q0 = self._q_cmd
        ramp = max(1, int(RAMP_FRACTION * self.n_substeps))
        d.ctrl[self.kin.finger_act] = openness * FINGER_MAX
        for i in range(self.n_substeps):
            d.ctrl[self.kin.arm_act] = q0 + min(1.0, (i + 1) / ramp) * (ik.q - q0)
            mujoco.mj_step(m, d)
        mujoco.mj_forward(m, d)  # kinematics of the final state, for cameras and the measured pose
        self._q_cmd = ik.q.copy()  # next IK starts from the last solution: continuity
        self.steps += 1
        success = bool(self.task.success(self))
        truncated = self.steps >= self.max_steps and not success
        info = {
            "success": success,
            "clipped": clipped,
            "ik_error": ik.pos_error,
            "ik_rot_error": ik.rot_error,
            "ik_failed": ik.failed,
            "tracking_error": float(np.linalg.norm(self.tcp_pos() - pos)),
            "tracking_rot_error": float(np.linalg.norm(rotation_error(R, self.tcp_rot()))),
            "step": self.steps,
            "seed": self.episode_seed,
        }
        if ik.failed:
            warnings.warn(
                f"IK did not reach the target (residual {ik.pos_error * 1000:.1f} mm, "
                f"{np.rad2deg(ik.rot_error):.1f}°): see info['ik_failed']",
                RuntimeWarning,
                stacklevel=2,
            )
        return self.observation(), float(success), success, truncated, info

    @property
    def episode_count(self) -> int:
        """How many episodes this env has started (experts use it to notice a reset)."""
        return self._resets

    def close(self) -> None:
        """Free the renderer (its GL context)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def home_action(self) -> np.ndarray:
        """The home pose as an action (7,): what a do-nothing policy sends."""
        return np.concatenate([HOME_TCP, matrix_to_euler(TOP_DOWN), [1.0]])


def make_env(
    task: str,
    split: str = "train",
    seed: int = 0,
    image_size: int = 128,
    cameras: list[str] | tuple[str, ...] | str | None = None,
    render: bool = True,
    render_mode: str | None = None,
) -> SimEnv:
    """Build the benchmark environment for ``task`` (one of :data:`TASKS`) on ``split`` (one of
    :data:`SPLITS`). ``cameras`` defaults to the four fixed cameras; add ``"wrist"`` for the wrist view.
    ``render=False`` skips the images (the observation has no ``images``; cameras are still
    returned), for fast expert runs. ``gymnasium.make(gym_id(task), **same_options)`` builds the same
    env behind gymnasium's wrappers."""
    return SimEnv(task, split, seed, image_size, cameras, render, render_mode)  # SimEnv's order


# ----------------------------------------------------------------------------- gymnasium glue


def _calibration_space() -> spaces.Dict:
    return spaces.Dict(
        {
            "K": spaces.Box(0.0, MAX_FOCAL_PX, (3, 3), np.float64),
            "cam_to_world": spaces.Box(-MAX_CAMERA_DISTANCE, MAX_CAMERA_DISTANCE, (4, 4), np.float64),
            "width": spaces.Box(MIN_IMAGE, MAX_IMAGE, (), np.int64),
            "height": spaces.Box(MIN_IMAGE, MAX_IMAGE, (), np.int64),
        }
    )


def camera_observation(camera: Camera) -> dict[str, np.ndarray]:
    """A :class:`Camera` as the observation holds it: ``K``, ``cam_to_world``, ``width``, ``height``
    as new arrays (``Camera.from_dict`` / ``as_camera`` invert it)."""
    return {
        k: np.array(v, dtype=np.int64 if k in ("width", "height") else np.float64)
        for k, v in camera.to_dict().items()
    }


def gym_id(task: str) -> str:
    """The gymnasium id of a task: ``"pick_up_cube"`` -> ``"actionimages/PickUpCube-v0"``."""
    return f"{GYM_NAMESPACE}/" + "".join(w.capitalize() for w in task.split("_")) + "-v0"


def register_envs() -> list[str]:
    """Register every task of the registry (``TASK_CLASSES``) with gymnasium; returns the ids.

    ``gymnasium.make(id, split=..., seed=..., image_size=..., cameras=..., render=...,
    render_mode=...)`` then builds it. Registering again is a no-op.
    """
    from actionimages.sim.tasks import TASK_CLASSES

    ids = []
    for task in TASK_CLASSES:
        env_id = gym_id(task)
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=f"{__name__}:SimEnv", kwargs={"task": task})
        ids.append(env_id)
    return ids


__all__ = [
    "CONTROL_DT",
    "FIXED_CAMERAS",
    "MAX_STEP_M",
    "MAX_STEP_RAD",
    "SimEnv",
    "camera_observation",
    "gym_id",
    "make_env",
    "register_envs",
]
