"""Embedded RLBench-like benchmark in MuJoCo: a Franka Panda, calibrated cameras, tasks and experts.

``make_env(task, split="train", seed=0, image_size=128, cameras=None)`` builds a gymnasium env;
``scripted_expert(env).act(obs)`` gives expert actions; :data:`TASKS` and :data:`SPLITS` name what
exists. Rendering is headless (``MUJOCO_GL=egl`` unless set otherwise).

Importing this package registers every task with gymnasium as ``actionimages/<TaskName>-v0``
(``gym_id(task)``), so ``gymnasium.make("actionimages/PickUpCube-v0", image_size=64)`` and
``gymnasium.make_vec(...)`` build them too.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco

from actionimages.sim.env import (  # noqa: E402
    CONTROL_DT,
    MAX_STEP_M,
    MAX_STEP_RAD,
    SimEnv,
    gym_id,
    make_env,
    register_envs,
)
from actionimages.sim.expert import ScriptedExpert, scripted_expert  # noqa: E402
from actionimages.sim.scene import ALL_CAMERAS, DEFAULT_CAMERAS  # noqa: E402
from actionimages.sim.tasks import TASKS  # noqa: E402
from actionimages.sim.variations import SPLITS  # noqa: E402

GYM_IDS: tuple[str, ...] = tuple(register_envs())  # gymnasium ids, in the order of TASKS

__all__ = [
    "ALL_CAMERAS",
    "CONTROL_DT",
    "DEFAULT_CAMERAS",
    "GYM_IDS",
    "MAX_STEP_M",
    "MAX_STEP_RAD",
    "SPLITS",
    "TASKS",
    "ScriptedExpert",
    "SimEnv",
    "gym_id",
    "make_env",
    "register_envs",
    "scripted_expert",
]
