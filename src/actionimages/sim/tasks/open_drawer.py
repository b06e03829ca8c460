"""RLBench open_drawer: grasp the named drawer's handle and pull it open."""

from __future__ import annotations

from actionimages.sim.tasks.base import Waypoint, register_task
from actionimages.sim.tasks.drawer import DrawerTask


@register_task
class OpenDrawer(DrawerTask):
    """RLBench open_drawer: grasp the named drawer's handle and pull it open."""

    name = "open_drawer"
    object_z = 0.35  # the cabinet's top panel
    max_steps = 60
    instructions = ("open the {w} drawer", "pull the {w} drawer open", "slide the {w} drawer out")
    open_thresh = 0.12

    def success(self, env):
        return self.slide(env, env.task_state.which) >= self.open_thresh

    def plan(self, env):
        i = env.task_state.which

        def pregrasp(e):
            return self.before_handle(e, i, 0.12)

        def grasp(e):
            return self.before_handle(e, i, 0.012)

        def pulled(e):
            return self.before_handle(e, i, 0.012, 0.21)

        return [
            Waypoint(pregrasp, 1.0, tol=0.01),
            Waypoint(grasp, 1.0, tol=0.005),
            Waypoint(grasp, 0.0, hold=3, tol=0.01),
            Waypoint(pulled, 0.0, hold=2, tol=0.02, speed=0.02),
        ]
