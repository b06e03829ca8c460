"""RLBench push_button: press the button of the named colour."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from actionimages.sim.tasks.base import (
    PARK_POS,
    TIP_BELOW_TCP,
    TOP_DOWN,
    Task,
    TaskState,
    Waypoint,
    register_task,
    table_xy,
)


@register_task
class PushButton(Task):
    """RLBench push_button: press the button of the named colour (a second button is a distractor)."""

    name = "push_button"
    object_z = 0.038  # button cap centre
    max_steps = 40
    instructions = ("push the {c} button", "press the {c} button", "push down the {c} button")
    base_h = 0.03
    cap_r = 0.024
    travel = 0.012
    pressed = 0.007

    def objects_xml(self) -> str:
        out = []
        for i in range(2):
            out.append(
                f'<body name="button{i}" pos="{PARK_POS}">'
                f'<geom type="box" size="0.045 0.045 {self.base_h / 2}" pos="0 0 {self.base_h / 2}" '
                'rgba="0.25 0.25 0.28 1"/>'
                f'<body name="cap{i}" pos="0 0 {self.base_h}">'
                f'<joint name="press{i}" type="slide" axis="0 0 1" range="{-self.travel} 0" stiffness="150" '
                f'springref="0" damping="3"/>'
                f'<geom name="capgeom{i}" type="cylinder" size="{self.cap_r} 0.008" pos="0 0 0.008" '
                'rgba="1 0 0 1" mass="0.02"/></body></body>'
            )
        return "\n".join(out)

    def contact_xml(self) -> str:
        return "\n".join(f'<exclude body1="button{i}" body2="cap{i}"/>' for i in range(2))

    def randomise(self, env, rng, var):
        names = var.colour_names(rng, 2)
        taken: list[np.ndarray] = []
        for i in range(2):
            xy = table_xy(rng, var, taken, (0.38, 0.62), ((0.35, 0.65), (-0.28, 0.28)), 0.15)
            taken.append(xy)
            bid = env.body_id(f"button{i}")
            env.model.body_pos[bid] = [xy[0], xy[1], 0.0]
            env.model.body_quat[bid] = Rotation.from_euler("z", rng.uniform(-0.5, 0.5)).as_quat(
                scalar_first=True
            )
            env.model.geom_rgba[env.geom_id(f"capgeom{i}")] = (*var.colours[names[i]], 1.0)
            env.data.qpos[env.model.jnt_qposadr[env.joint_id(f"press{i}")]] = 0.0
        instruction = rng.choice(self.instructions).format(c=names[0])
        return TaskState(instruction, colour=names[0], objects=taken, target=taken[0])

    def depression(self, env, i: int = 0) -> float:
        return -float(env.data.qpos[env.model.jnt_qposadr[env.joint_id(f"press{i}")]])

    def success(self, env):
        return self.depression(env, 0) >= self.pressed

    def plan(self, env):
        xy = env.task_state.target
        top = self.base_h + 0.016  # cap top at rest
        above = np.array([xy[0], xy[1], top + TIP_BELOW_TCP + 0.06])
        press = np.array([xy[0], xy[1], top + TIP_BELOW_TCP - self.travel + 0.001])
        return [
            Waypoint(lambda e: (above, TOP_DOWN), 0.0, tol=0.01),
            Waypoint(lambda e: (press, TOP_DOWN), 0.0, hold=2, tol=0.004),
            Waypoint(lambda e: (above, TOP_DOWN), 0.0),
        ]
