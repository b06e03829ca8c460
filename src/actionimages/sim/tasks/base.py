"""What every task shares: the :class:`Task` base class, the per-episode :class:`TaskState`, the
expert's :class:`Waypoint`, the task registry (:func:`register_task`, :data:`TASK_CLASSES`) and the
helpers and constants the task modules use (positions in metres, world = robot base frame).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from scipy.spatial.transform import Rotation

from actionimages.errors import ActionImagesError

if TYPE_CHECKING:
    import mujoco

    from actionimages.sim.env import SimEnv
    from actionimages.sim.variations import Variation

TOP_DOWN = np.diag([1.0, -1.0, -1.0])  # tool z down, tool x forward: the home orientation
TIP_BELOW_TCP = 0.028  # fingertip surface below the tool centre point (m)
PARK = np.array([0.0, -3.0, -0.7])  # where unused objects wait, out of every camera's view (m)
PARK_POS = " ".join(f"{v:g}" for v in PARK)  # PARK as an MJCF ``pos`` attribute value
HOME_TCP = np.array([0.40, 0.0, 0.30])  # the tool centre point's home position (m)

Pose = tuple[np.ndarray, np.ndarray]  # (position (3,), rotation (3, 3))


@dataclass
class Waypoint:
    """One expert target: ``pose(env)`` is evaluated when the waypoint becomes active (so it can read
    live object state); the expert moves there, holds ``hold`` extra steps, then moves on."""

    pose: Callable[[SimEnv], Pose]
    openness: float
    hold: int = 0
    tol: float = 0.006
    max_steps: int = 30
    speed: float | None = None  # metres per step (None: the expert's default)


def yaw_rotation(yaw: float) -> np.ndarray:
    return Rotation.from_euler("z", yaw).as_matrix()


def top_down(yaw: float = 0.0) -> np.ndarray:
    """Tool pointing down, rotated by ``yaw`` about the world z axis."""
    return yaw_rotation(yaw) @ TOP_DOWN


def grasp_yaw(object_yaw: float) -> float:
    """The top-down tool yaw in [-45°, 45°] that lines the fingers up with a box of ``object_yaw``."""
    return float((object_yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)


# --------------------------------------------------------------------------- state and base class
@dataclass
class TaskState:
    """Per-episode facts a task draws at reset, read by its success test and its expert, by the env
    (``reset``'s info, the clutter) and by the evaluation (object positions, reach targets).

    Arrays are shared, not copied: ``target`` is ``objects[0]``, so moving it in place (as the
    evaluation's plan-following check does) moves the object the expert and the success test see.
    """

    instruction: str = ""
    colour: str | None = None  # colour name of the instructed object (no distractor shares it)
    # the instructed object first, then the others: world (3,) or table (x, y) (2,) positions (m)
    objects: list[np.ndarray] = field(default_factory=list)
    # the instructed object's position (m): reach_target's sphere centre (3,), push_button's button and
    # stack_blocks' pad on the table (x, y) (2,); None for tasks without one (the drawers use ``which``)
    target: np.ndarray | None = None
    which: int | None = None  # drawer tasks: the instructed drawer, 0 bottom .. 2 top
    distractors: list[str] = field(default_factory=list)  # clutter kinds standing on the table

    def info(self) -> dict[str, Any]:
        """What ``reset`` reports of the episode: ``which`` (drawer tasks), ``colour``, ``distractors``."""
        facts = (("which", self.which), ("colour", self.colour), ("distractors", self.distractors))
        return {k: v for k, v in facts if v is not None}


class Task:
    """Base class of the tasks. A subclass sets ``name`` (its registry key), ``max_steps`` and
    ``instructions``, defines ``objects_xml``, ``randomise``, ``success`` and ``plan``, and is added
    to :data:`TASK_CLASSES` by :func:`register_task`."""

    name: str = ""
    max_steps: int = 60
    instructions: tuple[str, ...] = ()
    max_clutter: int | None = None  # cap on the split's distractor count (None: the split decides)
    # What the evaluation needs to know of the task's objects:
    # the height (m) of objects ``TaskState.objects`` lists by table position (x, y) only
    object_z: float = 0.0
    # the body of the instructed object when moving it alone is a fair test of following (the
    # ladder's target-following check moves it); None: the task has no such object
    follow_body: str | None = None

    def world_point(self, position: Any) -> np.ndarray:
        """An object position of ``TaskState.objects`` as a world point (3,): (x, y) entries are
        lifted to :attr:`object_z`."""
        p = np.asarray(position, dtype=np.float64).reshape(-1)
        return p[:3].copy() if p.shape[0] >= 3 else np.array([p[0], p[1], self.object_z])

    def objects_xml(self) -> str:
        """MJCF ``<body>`` elements of the task's objects, standing at :data:`PARK_POS` until placed."""
        raise NotImplementedError

    def contact_xml(self) -> str:
        """``<exclude>`` pairs for moving parts of static fixtures (none by default)."""
        return ""

    def randomise(self, env: SimEnv, rng: np.random.Generator, var: Variation) -> TaskState:
        """Place and colour the objects for a new episode of split ``var``; the episode's facts."""
        raise NotImplementedError

    def success(self, env: SimEnv) -> bool:
        """Whether the env's current state solves the task."""
        raise NotImplementedError

    def plan(self, env: SimEnv) -> list[Waypoint]:
        """The scripted expert's waypoints for the episode just reset."""
        raise NotImplementedError


# --------------------------------------------------------------------------- registry
TASK_CLASSES: dict[str, type[Task]] = {}  # name -> class, in registration (import) order
T = TypeVar("T", bound=type[Task])


def register_task(cls: T) -> T:
    """Class decorator: add a :class:`Task` subclass to :data:`TASK_CLASSES` under its ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ActionImagesError(f"register_task takes a Task subclass, got {cls!r}")
    if not cls.name:
        raise ActionImagesError(f"task class {cls.__qualname__} has no name")
    known = TASK_CLASSES.get(cls.name)
    where = (cls.__module__, cls.__qualname__)
    if known is not None and (known.__module__, known.__qualname__) != where:  # a reload may re-register
        raise ActionImagesError(
            f"task name {cls.name!r} of {cls.__module__}.{cls.__qualname__} is taken by "
            f"{known.__module__}.{known.__qualname__}"
        )
    TASK_CLASSES[cls.name] = cls
    return cls


def make_task(name: str) -> Task:
    """A new instance of the task registered as ``name``."""
    cls = TASK_CLASSES.get(name)
    if cls is None:
        raise ActionImagesError(f"unknown task {name!r}; valid tasks: {list(TASK_CLASSES)}")
    return cls()


# --------------------------------------------------------------------------- helpers for randomise
def sample_apart(
    rng: np.random.Generator, sampler: Callable[[], np.ndarray], taken: list[np.ndarray], min_dist: float
) -> np.ndarray:
    """A ``sampler()`` draw whose (x, y) is at least ``min_dist`` from every position in ``taken``."""
    for _ in range(500):
        xy = sampler()
        if all(np.linalg.norm(xy[:2] - t[:2]) >= min_dist for t in taken):
            return xy
    raise RuntimeError("could not place objects apart; the sampling region is too small")


def table_xy(
    rng: np.random.Generator,
    var: Variation,
    taken: list[np.ndarray],
    primary_x: tuple[float, float],
    others: tuple[tuple[float, float], tuple[float, float]],
    min_dist: float,
) -> np.ndarray:
    """A table position (x, y) (2,): the instructed object's while ``taken`` is empty (the split's
    region, x in ``primary_x``), else one uniform in ``others`` ((x lo, x hi), (y lo, y hi)) at least
    ``min_dist`` from every position in ``taken``."""
    if not taken:
        return var.primary_xy(rng, primary_x)
    (x0, x1), (y0, y1) = others
    return sample_apart(rng, lambda: np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)]), taken, min_dist)


def set_free_pose(env: SimEnv, joint: str, pos: np.ndarray, yaw: float) -> None:
    """Put a free-jointed body at ``pos`` (3,) with ``yaw`` about z, at rest."""
    adr = env.model.jnt_qposadr[env.joint_id(joint)]
    env.data.qpos[adr : adr + 3] = pos
    env.data.qpos[adr + 3 : adr + 7] = Rotation.from_euler("z", yaw).as_quat(scalar_first=True)
    dadr = env.model.jnt_dofadr[env.joint_id(joint)]
    env.data.qvel[dadr : dadr + 6] = 0.0


def set_body_colour(model: mujoco.MjModel, body_id: int, rgb: tuple[float, float, float]) -> None:
    """Colour every geom of body ``body_id`` ``rgb`` (0..1, opaque)."""
    for g in range(model.ngeom):
        if model.geom_bodyid[g] == body_id:
            model.geom_rgba[g] = (*rgb, 1.0)
