"""RLBench close_drawer: push the named (open) drawer shut."""

from __future__ import annotations

from actionimages.sim.tasks.base import Waypoint, register_task
from actionimages.sim.tasks.drawer import DrawerTask


@register_task
class CloseDrawer(DrawerTask):
    """RLBench close_drawer: push the named (open) drawer shut."""

    name = "close_drawer"
    object_z = 0.35  # the cabinet's top panel
    max_steps = 60
    instructions = ("close the {w} drawer", "push the {w} drawer shut", "slide the {w} drawer closed")
    closed_thresh = 0.02

    def opening(self, rng, i: int, which: int) -> float:
        return rng.uniform(0.12, 0.17) if i == which else 0.0

    def success(self, env):
        return self.slide(env, env.task_state.which) <= self.closed_thresh

    def plan(self, env):
        i = env.task_state.which

        def front(e):
            return self.before_handle(e, i, 0.07)

        def touch(e):
            return self.before_handle(e, i, 0.045)

        def pushed(e):
            fwd, _ = self.facing(e)
            # where the handle sits when the drawer is shut, plus a little more
            shut = self.handle_pos(e, i) + (self.slide(e, i) + 0.015) * fwd
            return shut - 0.045 * fwd, self.grasp_rotation(e)

        return [
            Waypoint(front, 0.0, tol=0.01),
            Waypoint(touch, 0.0, tol=0.008),
            Waypoint(pushed, 0.0, hold=2, tol=0.03),
        ]
