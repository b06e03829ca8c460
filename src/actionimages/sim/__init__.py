"""Embedded RLBench-like benchmark in MuJoCo: a Franka Panda, calibrated cameras, tasks and experts.

``make_env(task, split="train", seed=0, image_size=128, cameras=None)`` builds a gymnasium env;
``scripted_expert(env).act(obs)`` gives expert actions; :data:`TASKS` and :data:`SPLITS` name what
exists. Rendering is headless (``MUJOCO_GL=egl`` unless set otherwise).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco

from actionimages.sim.env import CONTROL_DT, MAX_STEP_M, MAX_STEP_RAD, SimEnv, make_env  # noqa: E402
from actionimages.sim.expert import ScriptedExpert, scripted_expert  # noqa: E402
from actionimages.sim.scene import ALL_CAMERAS, DEFAULT_CAMERAS  # noqa: E402
from actionimages.sim.tasks import TASKS  # noqa: E402
from actionimages.sim.variations import SPLITS  # noqa: E402

__all__ = [
    "ALL_CAMERAS",
    "CONTROL_DT",
    "DEFAULT_CAMERAS",
    "MAX_STEP_M",
    "MAX_STEP_RAD",
    "SPLITS",
    "TASKS",
    "ScriptedExpert",
    "SimEnv",
    "make_env",
    "scripted_expert",
]
