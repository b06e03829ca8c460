"""The benchmark's tasks: objects, per-episode randomisation, success tests and expert plans.

Names and success definitions follow RLBench where it has the task. One module per task, each class
added to :data:`TASK_CLASSES` by :func:`register_task` when its module is imported (below);
``base`` holds what the tasks share, ``clutter`` the distractor pool every task's scene carries
(so that one compiled model serves all splits).
"""

from actionimages.sim.tasks.base import (
    HOME_TCP,
    PARK,
    PARK_POS,
    TASK_CLASSES,
    TIP_BELOW_TCP,
    TOP_DOWN,
    Pose,
    Task,
    TaskState,
    Waypoint,
    grasp_yaw,
    make_task,
    register_task,
    top_down,
    yaw_rotation,
)
from actionimages.sim.tasks.clutter import place_clutter, scene_objects_xml

# Importing a task module registers its task; this order is the order of TASKS.
# isort: off
from actionimages.sim.tasks import reach_target, push_button, close_drawer, open_drawer  # noqa: E402, F401
from actionimages.sim.tasks import pick_up_cube, stack_blocks, reach_target_single  # noqa: E402, F401

# isort: on

TASKS: tuple[str, ...] = tuple(TASK_CLASSES)  # the task names, in registration order

__all__ = [
    "HOME_TCP",
    "PARK",
    "PARK_POS",
    "TASKS",
    "TASK_CLASSES",
    "TIP_BELOW_TCP",
    "TOP_DOWN",
    "Pose",
    "Task",
    "TaskState",
    "Waypoint",
    "grasp_yaw",
    "make_task",
    "place_clutter",
    "register_task",
    "scene_objects_xml",
    "top_down",
    "yaw_rotation",
]
