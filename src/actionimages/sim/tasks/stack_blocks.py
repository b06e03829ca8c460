"""RLBench stack_blocks (N = 2): stack the two blocks of the named colour on the grey pad."""

from __future__ import annotations

import numpy as np

from actionimages.sim.tasks.base import (
    PARK_POS,
    Task,
    TaskState,
    Waypoint,
    register_task,
    set_free_pose,
    table_xy,
)
from actionimages.sim.tasks.cube import CUBE_HALF, cube_xml, pick_waypoints


@register_task
class StackBlocks(Task):
    """RLBench stack_blocks (N = 2): stack the two blocks of the named colour on the grey pad."""

    name = "stack_blocks"
    object_z = 0.0225  # cube centres (the pad, first, is 2 cm lower)
    max_steps = 130
    instructions = (
        "stack the two {c} blocks on the pad",
        "put one {c} block on top of the other on the grey square",
        "build a tower of the {c} blocks on the pad",
    )
    pad_half = 0.05

    def objects_xml(self) -> str:
        pad = (
            f'<body name="pad" pos="{PARK_POS}"><geom name="pad_geom" type="box" '
            f'size="{self.pad_half} {self.pad_half} 0.002" pos="0 0 0.002" rgba="0.55 0.55 0.58 1" '
            f'contype="0" conaffinity="0"/></body>'
        )
        return pad + "\n" + "\n".join(cube_xml(f"block{i}") for i in range(4))

    def randomise(self, env, rng, var):
        names = var.colour_names(rng, 2)
        taken: list[np.ndarray] = []
        pad_x, others = (0.40, 0.60), ((0.33, 0.65), (-0.30, 0.30))
        pad_xy = table_xy(rng, var, taken, pad_x, others, 0.10)  # taken is empty: the pad is instructed
        taken.append(pad_xy)
        env.model.body_pos[env.body_id("pad")] = [pad_xy[0], pad_xy[1], 0.0]
        for i in range(4):
            xy = table_xy(rng, var, taken, pad_x, others, 0.10)
            taken.append(xy)
            set_free_pose(
                env, f"block{i}_joint", np.array([xy[0], xy[1], CUBE_HALF]), rng.uniform(-np.pi, np.pi)
            )
            colour = names[0] if i < 2 else names[1]
            env.model.geom_rgba[env.geom_id(f"block{i}_geom")] = (*var.colours[colour], 1.0)
        instruction = rng.choice(self.instructions).format(c=names[0])
        return TaskState(instruction, colour=names[0], objects=taken, target=pad_xy)

    def success(self, env):
        pad = env.task_state.target
        zs = []
        for i in range(2):
            p = env.data.xpos[env.body_id(f"block{i}")]
            if np.abs(p[:2] - pad).max() > self.pad_half + 0.01:
                return False
            zs.append(p[2])
        lo, hi = sorted(zs)
        stacked = abs(lo - CUBE_HALF) < 0.01 and abs(hi - 3 * CUBE_HALF) < 0.01
        released = not env.grasping("block0_geom") and not env.grasping("block1_geom")
        return bool(stacked and released and env.openness() > 0.5)

    def plan(self, env):
        pad = env.task_state.target

        def place(level: int, name: str) -> list[Waypoint]:
            def base_xy(e):
                # the first block goes on the pad, the second on the first block where it actually is
                return pad if level == 0 else e.data.xpos[e.body_id("block0")][:2].copy()

            def over(e):
                xy = base_xy(e)
                return np.array([xy[0], xy[1], 2 * CUBE_HALF * (level + 1) + 0.07]), e.tcp_rot()

            def down(e):
                xy = base_xy(e)
                # TCP sits 8 mm above the held block's centre; release 4 mm above its resting height
                return np.array([xy[0], xy[1], CUBE_HALF * (2 * level + 1) + 0.012]), e.tcp_rot()

            def up(e):
                p = e.tcp_pos()
                return np.array([p[0], p[1], p[2] + 0.08]), e.tcp_rot()

            return [
                *pick_waypoints(name, lift_to=0.06 + 2 * CUBE_HALF * level + 0.08),
                Waypoint(over, 0.0, tol=0.008),
                Waypoint(down, 0.0, tol=0.004, hold=1),
                Waypoint(lambda e: (e.tcp_pos(), e.tcp_rot()), 1.0, hold=3, tol=0.02),
                Waypoint(up, 1.0, tol=0.01),
            ]

        return place(0, "block0") + place(1, "block1")
