"""RLBench reach_target: bring the gripper to the sphere of the named colour."""

from __future__ import annotations

import numpy as np

from actionimages.sim.tasks.base import (
    HOME_TCP,
    PARK_POS,
    TOP_DOWN,
    Task,
    TaskState,
    Waypoint,
    register_task,
    sample_apart,
    set_body_colour,
)


@register_task
class ReachTarget(Task):
    """RLBench reach_target: bring the gripper to the target sphere (two distractor spheres)."""

    name = "reach_target"
    max_steps = 40
    instructions = (
        "reach the {c} target",
        "touch the {c} ball with the gripper",
        "move the gripper to the {c} sphere",
        "go to the {c} target",
    )
    radius = 0.025
    success_dist = 0.03
    follow_body = "sphere0"

    def objects_xml(self) -> str:
        return "\n".join(
            f'<body name="sphere{i}" pos="{PARK_POS}"><geom type="sphere" size="{self.radius}" contype="0" '
            f'conaffinity="0" rgba="1 0 0 1"/></body>'
            for i in range(3)
        )

    def randomise(self, env, rng, var):
        names = var.colour_names(rng, 3)
        taken: list[np.ndarray] = []
        for i in range(3):

            def sampler(i=i):
                if i == 0:
                    xy = var.primary_xy(rng, (0.32, 0.62))
                else:
                    xy = np.array([rng.uniform(0.30, 0.65), rng.uniform(-0.30, 0.30)])
                return np.array([xy[0], xy[1], rng.uniform(0.06, 0.35)])

            p = sample_apart(rng, sampler, taken, 0.12)
            while i == 0 and np.linalg.norm(p - HOME_TCP) < 0.1:  # holding the home pose must not succeed
                p = sample_apart(rng, sampler, taken, 0.12)
            taken.append(p)
            bid = env.body_id(f"sphere{i}")
            env.model.body_pos[bid] = p
            set_body_colour(env.model, bid, var.colours[names[i]])
        instruction = rng.choice(self.instructions).format(c=names[0])
        return TaskState(instruction, colour=names[0], objects=taken, target=taken[0])

    def success(self, env):
        return bool(np.linalg.norm(env.tcp_pos() - env.task_state.target) < self.success_dist)

    def plan(self, env):
        target = env.task_state.target
        return [Waypoint(lambda e: (target.copy(), TOP_DOWN.copy()), 1.0, hold=2, tol=0.004)]
