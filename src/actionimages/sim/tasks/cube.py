"""Cubes that pick_up_cube and stack_blocks share: their MJCF, their pose and the expert's pick."""

from __future__ import annotations

import numpy as np

from actionimages.sim.tasks.base import PARK_POS, Waypoint, grasp_yaw, top_down

CUBE_HALF = 0.0225


def cube_xml(name: str) -> str:
    """A parked free cube: body ``name``, joint ``{name}_joint``, geom ``{name}_geom``."""
    return (
        f'<body name="{name}" pos="{PARK_POS}"><freejoint name="{name}_joint"/>'
        f'<geom name="{name}_geom" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" mass="0.08" '
        f'friction="1.5 0.05 0.001" condim="4" rgba="1 0 0 1"/></body>'
    )


def cube_pose(env, name: str) -> tuple[np.ndarray, float]:
    """Cube ``name``'s centre (3,) and yaw about z (rad)."""
    bid = env.body_id(name)
    R = env.data.xmat[bid].reshape(3, 3)
    # yaw of the face normal closest to horizontal x: good enough for a cube resting on a face
    yaw = float(np.arctan2(R[1, 0], R[0, 0]))
    return env.data.xpos[bid].copy(), yaw


def pick_waypoints(name: str, lift_to: float = 0.18) -> list[Waypoint]:
    """The expert's pick of cube ``name``: above it, down, close the gripper, lift to z = ``lift_to`` (m)."""

    def above(e):
        p, yaw = cube_pose(e, name)
        return np.array([p[0], p[1], p[2] + 0.12]), top_down(grasp_yaw(yaw))

    def at(e):
        p, yaw = cube_pose(e, name)
        return np.array([p[0], p[1], p[2] + 0.008]), top_down(grasp_yaw(yaw))

    def lifted(e):
        p, R = e.tcp_pos(), e.tcp_rot()
        return np.array([p[0], p[1], lift_to]), R

    return [
        Waypoint(above, 1.0, tol=0.01),
        Waypoint(at, 1.0, tol=0.005),
        Waypoint(lambda e: (e.tcp_pos(), e.tcp_rot()), 0.0, hold=3, tol=0.02),
        Waypoint(lifted, 0.0, tol=0.01),
    ]
