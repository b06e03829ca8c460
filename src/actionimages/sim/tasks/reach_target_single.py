"""reach_target_single (ours, for diagnosis): reach_target with one sphere and no clutter."""

from __future__ import annotations

from actionimages.sim.tasks.base import PARK, register_task
from actionimages.sim.tasks.reach_target import ReachTarget


@register_task
class ReachTargetSingle(ReachTarget):
    """reach_target shrunk to its core (ours, for diagnosis): one sphere, no distractor spheres, no
    clutter. A policy that cannot reach here cannot see or follow the target at all."""

    name = "reach_target_single"
    max_clutter = 0

    def randomise(self, env, rng, var):
        st = super().randomise(env, rng, var)
        for i in (1, 2):  # park the distractor spheres out of every view
            env.model.body_pos[env.body_id(f"sphere{i}")] = PARK
        st.objects = st.objects[:1]
        return st
