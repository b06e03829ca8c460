"""pick_up_cube: pick up the named cube and lift it (RLBench's pick_and_lift without the sphere)."""

from __future__ import annotations

import numpy as np

from actionimages.sim.tasks.base import Task, TaskState, register_task, set_free_pose, table_xy
from actionimages.sim.tasks.cube import CUBE_HALF, cube_xml, pick_waypoints


@register_task
class PickUpCube(Task):
    """Pick up the named cube and lift it (RLBench's pick_and_lift without the target sphere)."""

    name = "pick_up_cube"
    object_z = 0.0225  # cube centre
    max_steps = 50
    instructions = (
        "pick up the {c} cube",
        "grasp the {c} block and lift it",
        "lift the {c} cube off the table",
    )
    lift_height = 0.10

    def objects_xml(self) -> str:
        return "\n".join(cube_xml(f"cube{i}") for i in range(3))

    def randomise(self, env, rng, var):
        names = var.colour_names(rng, 3)
        taken: list[np.ndarray] = []
        for i in range(3):
            xy = table_xy(rng, var, taken, (0.35, 0.62), ((0.33, 0.65), (-0.28, 0.28)), 0.11)
            taken.append(xy)
            set_free_pose(
                env, f"cube{i}_joint", np.array([xy[0], xy[1], CUBE_HALF]), rng.uniform(-np.pi, np.pi)
            )
            env.model.geom_rgba[env.geom_id(f"cube{i}_geom")] = (*var.colours[names[i]], 1.0)
        instruction = rng.choice(self.instructions).format(c=names[0])
        return TaskState(instruction, colour=names[0], objects=taken)

    def success(self, env):
        z = env.data.xpos[env.body_id("cube0")][2]
        return bool(z - CUBE_HALF >= self.lift_height and env.grasping("cube0_geom"))

    def plan(self, env):
        return pick_waypoints("cube0", lift_to=0.20)
