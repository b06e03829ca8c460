"""The benchmark's tasks: objects, per-episode randomisation, success tests and expert plans.

Names and success definitions follow RLBench where it has the task. Every task shares the clutter
pool (visual-only distractor objects: the train shapes and the heldout shapes) so that one compiled
model serves all splits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.spatial.transform import Rotation

from actionimages.sim.variations import (
    HELDOUT_DISTRACTORS,
    TABLE_CLUTTER_X,
    TABLE_CLUTTER_Y,
    TRAIN_DISTRACTORS,
    Variation,
)

if TYPE_CHECKING:
    from actionimages.sim.env import SimEnv

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


# --------------------------------------------------------------------------- clutter
CLUTTER_XML = {
    "box": '<geom type="box" size="0.03 0.045 0.025" pos="0 0 0.025"/>',
    "sphere": '<geom type="sphere" size="0.03" pos="0 0 0.03"/>',
    "cylinder": '<geom type="cylinder" size="0.025 0.04" pos="0 0 0.04"/>',
    "capsule": '<geom type="capsule" size="0.02 0.035" pos="0 0 0.055"/>',
    "ellipsoid": '<geom type="ellipsoid" size="0.05 0.03 0.022" pos="0 0 0.022"/>',
    "mug": '<geom type="cylinder" size="0.03 0.035" pos="0 0 0.035"/>'
    '<geom type="box" size="0.008 0.015 0.018" pos="0.035 0 0.04"/>',
}


def clutter_xml() -> str:
    """Static, visual-only distractor bodies (they never collide, so they cannot spoil an expert)."""
    out = []
    for kind in TRAIN_DISTRACTORS + HELDOUT_DISTRACTORS:
        geoms = CLUTTER_XML[kind].replace("<geom ", '<geom contype="0" conaffinity="0" rgba="0.5 0.5 0.5 1" ')
        out.append(f'<body name="clutter_{kind}" pos="{PARK_POS}">{geoms}</body>')
    return "\n".join(out)


# --------------------------------------------------------------------------- base class
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
    """Base class. Subclasses define ``objects_xml``, ``randomise``, ``success`` and ``plan``."""

    name: str = ""
    max_steps: int = 60
    instructions: tuple[str, ...] = ()
    max_clutter: int | None = None  # cap on the split's distractor count (None: the split decides)

    def objects_xml(self) -> str:
        raise NotImplementedError

    def contact_xml(self) -> str:
        """``<exclude>`` pairs for moving parts of static fixtures (none by default)."""
        return ""

    def randomise(self, env: SimEnv, rng: np.random.Generator, var: Variation) -> TaskState:
        raise NotImplementedError

    def success(self, env: SimEnv) -> bool:
        raise NotImplementedError

    def plan(self, env: SimEnv) -> list[Waypoint]:
        raise NotImplementedError

    # helpers shared by the tasks
    @staticmethod
    def place_clutter(
        env: SimEnv, rng: np.random.Generator, var: Variation, avoid: list[np.ndarray]
    ) -> list[str]:
        """Park every clutter body, then stand 0-3 of the split's kinds on free table spots, in colours
        other than the named object's (``env.task_state.colour``)."""
        m = env.model
        taken = [a[:2] for a in avoid]
        for kind in TRAIN_DISTRACTORS + HELDOUT_DISTRACTORS:
            m.body_pos[env.body_id(f"clutter_{kind}")] = PARK
        n = int(rng.integers(var.n_distractors[0], var.n_distractors[1] + 1))
        cap = env.task.max_clutter
        n = n if cap is None else min(n, cap)
        kinds = list(rng.choice(var.distractors, size=n, replace=False)) if n else []
        placed = []
        # The instruction names one object by colour: no distractor may share that colour.
        named = env.task_state.colour
        colours = [rgb for name, rgb in var.colours.items() if name != named]
        for kind in kinds:
            for _ in range(200):
                xy = np.array([rng.uniform(*TABLE_CLUTTER_X), rng.uniform(*TABLE_CLUTTER_Y)])
                if all(np.linalg.norm(xy - t) > 0.14 for t in taken):
                    break
            else:
                continue
            taken.append(xy)
            bid = env.body_id(f"clutter_{kind}")
            m.body_pos[bid] = [xy[0], xy[1], 0.0]
            m.body_quat[bid] = Rotation.from_euler("z", rng.uniform(-np.pi, np.pi)).as_quat(scalar_first=True)
            rgba = (*colours[int(rng.integers(len(colours)))], 1.0)
            for g in range(m.ngeom):
                if m.geom_bodyid[g] == bid:
                    m.geom_rgba[g] = rgba
            placed.append(str(kind))
        return placed


def _sample_apart(
    rng: np.random.Generator, sampler: Callable[[], np.ndarray], taken: list[np.ndarray], min_dist: float
) -> np.ndarray:
    for _ in range(500):
        xy = sampler()
        if all(np.linalg.norm(xy[:2] - t[:2]) >= min_dist for t in taken):
            return xy
    raise RuntimeError("could not place objects apart; the sampling region is too small")


def _set_free_pose(env: SimEnv, joint: str, pos: np.ndarray, yaw: float) -> None:
    adr = env.model.jnt_qposadr[env.joint_id(joint)]
    env.data.qpos[adr : adr + 3] = pos
    env.data.qpos[adr + 3 : adr + 7] = Rotation.from_euler("z", yaw).as_quat(scalar_first=True)
    dadr = env.model.jnt_dofadr[env.joint_id(joint)]
    env.data.qvel[dadr : dadr + 6] = 0.0


def _set_body_colour(env: SimEnv, body: str, rgb: tuple[float, float, float]) -> None:
    bid = env.body_id(body)
    for g in range(env.model.ngeom):
        if env.model.geom_bodyid[g] == bid:
            env.model.geom_rgba[g] = (*rgb, 1.0)


# =========================================================================== reach_target
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

    def objects_xml(self) -> str:
        return "\n".join(
            f'<body name="sphere{i}" pos="{PARK_POS}"><geom type="sphere" size="{self.radius}" contype="0" '
            f'conaffinity="0" rgba="1 0 0 1"/></body>'
            for i in range(3)
        )

    def randomise(self, env, rng, var):
        names = var.colour_names(rng, 3)
        taken: list[np.ndarray] = []
        positions = []
        for i in range(3):

            def sampler(i=i):
                if i == 0:
                    xy = var.primary_xy(rng, (0.32, 0.62))
                else:
                    xy = np.array([rng.uniform(0.30, 0.65), rng.uniform(-0.30, 0.30)])
                return np.array([xy[0], xy[1], rng.uniform(0.06, 0.35)])

            p = _sample_apart(rng, sampler, taken, 0.12)
            while i == 0 and np.linalg.norm(p - HOME_TCP) < 0.1:  # holding the home pose must not succeed
                p = _sample_apart(rng, sampler, taken, 0.12)
            taken.append(p)
            positions.append(p)
            env.model.body_pos[env.body_id(f"sphere{i}")] = p
            _set_body_colour(env, f"sphere{i}", var.colours[names[i]])
        instruction = rng.choice(self.instructions).format(c=names[0])
        return TaskState(instruction, colour=names[0], objects=taken, target=positions[0])

    def success(self, env):
        return bool(np.linalg.norm(env.tcp_pos() - env.task_state.target) < self.success_dist)

    def plan(self, env):
        target = env.task_state.target
        return [Waypoint(lambda e: (target.copy(), TOP_DOWN.copy()), 1.0, hold=2, tol=0.004)]


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


# =========================================================================== push_button
class PushButton(Task):
    """RLBench push_button: press the button of the named colour (a second button is a distractor)."""

    name = "push_button"
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
            if i == 0:
                xy = var.primary_xy(rng, (0.38, 0.62))
            else:
                xy = _sample_apart(
                    rng, lambda: np.array([rng.uniform(0.35, 0.65), rng.uniform(-0.28, 0.28)]), taken, 0.15
                )
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


# =========================================================================== drawers
DRAWER_NAMES = ("bottom", "middle", "top")


def _box(size: tuple[float, ...], pos: tuple[float, ...]) -> str:
    """A drawer part (box geom, 0.1 kg)."""
    sz, p = " ".join(f"{v:.4f}" for v in size), " ".join(f"{v:.4f}" for v in pos)
    return f'<geom type="box" size="{sz}" pos="{p}" class="cabinet" mass="0.1"/>'


class _DrawerTask(Task):
    """A three-drawer cabinet facing the robot; drawers slide out along the cabinet's -x."""

    depth, width, height = 0.30, 0.36, 0.36
    drawer_h = 0.105
    handle_off = 0.045  # handle bar centre in front of the drawer face
    handle_len = 0.06
    max_open = 0.22

    def contact_xml(self) -> str:
        return "\n".join(f'<exclude body1="cabinet" body2="drawer{i}"/>' for i in range(3))

    def drawer_z(self, i: int) -> float:
        return 0.02 + 0.005 + self.drawer_h / 2 + i * (self.drawer_h + 0.012)

    def objects_xml(self) -> str:
        d, w, h = self.depth / 2, self.width / 2, self.height / 2
        t = 0.01
        wall = 'rgba="0.7 0.6 0.5 1" class="cabinet"'
        parts = [
            f'<body name="cabinet" pos="{PARK_POS}">',
            f'<geom name="cab_left" type="box" size="{d} {t} {h}" pos="0 {w - t} {h}" {wall}/>',
            f'<geom name="cab_right" type="box" size="{d} {t} {h}" pos="0 {-w + t} {h}" {wall}/>',
            f'<geom name="cab_top" type="box" size="{d} {w} {t}" pos="0 0 {2 * h - t}" {wall}/>',
            f'<geom name="cab_bottom" type="box" size="{d} {w} {t}" pos="0 0 {t}" {wall}/>',
            f'<geom name="cab_back" type="box" size="{t} {w} {h}" pos="{d - t} 0 {h}" {wall}/>',
        ]
        inner_w = w - 2 * t - 0.003
        for i in range(3):
            z = self.drawer_z(i)
            hz = self.drawer_h / 2
            parts.append(
                f'<body name="drawer{i}" pos="0 0 {z}">'
                f'<joint name="slide{i}" type="slide" axis="-1 0 0" range="0 {self.max_open}" damping="3" '
                f'frictionloss="0.5"/>'
                f'<geom name="front{i}" type="box" size="0.01 {w - 0.004} {hz}" pos="{-d + 0.01} 0 0" '
                f'rgba="0.8 0.7 0.55 1" class="cabinet" mass="0.3"/>'
                + _box((d - 0.03, 0.006, hz - 0.02), (0, inner_w - 0.006, -0.01))
                + _box((d - 0.03, 0.006, hz - 0.02), (0, -inner_w + 0.006, -0.01))
                + _box((d - 0.03, inner_w, 0.004), (0, 0, -hz + 0.01))
                + _box((0.006, inner_w, hz - 0.02), (d - 0.04, 0, -0.01))
                + f'<geom name="handle{i}" type="capsule" size="0.007 {self.handle_len / 2}" '
                f'pos="{-d - self.handle_off} 0 0" rgba="0.2 0.2 0.2 1" class="cabinet" mass="0.05"/>'
                f'<geom name="handle{i}_a" type="box" size="{self.handle_off / 2} 0.005 0.005" '
                f'pos="{-d - self.handle_off / 2} 0 {self.handle_len / 2 - 0.005}" rgba="0.2 0.2 0.2 1" '
                'class="cabinet" mass="0.01"/>'
                f'<geom name="handle{i}_b" type="box" size="{self.handle_off / 2} 0.005 0.005" '
                f'pos="{-d - self.handle_off / 2} 0 {-self.handle_len / 2 + 0.005}" rgba="0.2 0.2 0.2 1" '
                'class="cabinet" mass="0.01"/>'
                "</body>"
            )
        parts.append("</body>")
        return "\n".join(parts)

    def randomise(self, env, rng, var):
        xy = var.primary_xy(rng, (0.80, 0.86), margin=0.0)
        yaw = float(rng.uniform(-0.25, 0.25))
        bid = env.body_id("cabinet")
        env.model.body_pos[bid] = [xy[0], xy[1], 0.0]
        env.model.body_quat[bid] = Rotation.from_euler("z", yaw).as_quat(scalar_first=True)
        colour = var.colour_names(rng, 1)[0]
        rgb = np.array(var.colours[colour])
        for g in range(env.model.ngeom):
            b = env.model.geom_bodyid[g]
            if b == bid:
                env.model.geom_rgba[g] = (*rgb, 1.0)
            elif env.model.body_parentid[b] == bid and not (env.geom_name(g) or "").startswith("handle"):
                env.model.geom_rgba[g] = (*(0.5 + 0.5 * rgb), 1.0)  # lighter drawer fronts and boxes
        which = int(rng.integers(3))
        return TaskState(colour=colour, objects=[xy], which=which)

    def slide(self, env, i: int) -> float:
        return float(env.data.qpos[env.model.jnt_qposadr[env.joint_id(f"slide{i}")]])

    def handle_pos(self, env, i: int) -> np.ndarray:
        return env.data.geom_xpos[env.geom_id(f"handle{i}")].copy()

    def facing(self, env) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors (3,): into the cabinet (its +x) and along its width (its +y)."""
        R = env.data.xmat[env.body_id("cabinet")].reshape(3, 3)
        return R[:, 0].copy(), R[:, 1].copy()

    # Tool pitched 75° down with the natural roll (tool y = -cabinet y, as at the top-down home pose):
    # the fingers straddle the vertical handle bar from above. Flatter approaches need joint 6 past its
    # limit (natural roll) or a forearm flip near joint 5's limit (other roll): measured IK misses.
    pitch = np.deg2rad(75.0)
    roll_sign = -1.0

    def grasp_rotation(self, env) -> np.ndarray:
        """Tool z into the cabinet pitched down by ``pitch``, fingers sliding along the cabinet's width.

        The pitch keeps the hand above low handles, and keeps the tool x axis off vertical, where
        the xyz Euler angles of the action would hit gimbal lock (a horizontal tool with horizontal
        fingers has a vertical x axis)."""
        fwd, side = self.facing(env)
        z = np.cos(self.pitch) * fwd - np.sin(self.pitch) * np.array([0.0, 0.0, 1.0])
        y = self.roll_sign * side
        x = np.cross(y, z)
        return np.stack([x, y, z], axis=1)


class OpenDrawer(_DrawerTask):
    """RLBench open_drawer: grasp the named drawer's handle and pull it open."""

    name = "open_drawer"
    max_steps = 60
    instructions = ("open the {w} drawer", "pull the {w} drawer open", "slide the {w} drawer out")
    open_thresh = 0.12

    def randomise(self, env, rng, var):
        st = super().randomise(env, rng, var)
        for i in range(3):
            env.data.qpos[env.model.jnt_qposadr[env.joint_id(f"slide{i}")]] = 0.0
        st.instruction = rng.choice(self.instructions).format(w=DRAWER_NAMES[st.which])
        return st

    def success(self, env):
        return self.slide(env, env.task_state.which) >= self.open_thresh

    def plan(self, env):
        i = env.task_state.which

        def pregrasp(e):
            fwd, _ = self.facing(e)
            return self.handle_pos(e, i) - 0.12 * fwd, self.grasp_rotation(e)

        def grasp(e):
            fwd, _ = self.facing(e)
            return self.handle_pos(e, i) - 0.012 * fwd, self.grasp_rotation(e)

        def pulled(e):
            fwd, _ = self.facing(e)
            return self.handle_pos(e, i) - 0.012 * fwd - 0.21 * fwd, self.grasp_rotation(e)

        return [
            Waypoint(pregrasp, 1.0, tol=0.01),
            Waypoint(grasp, 1.0, tol=0.005),
            Waypoint(grasp, 0.0, hold=3, tol=0.01),
            Waypoint(pulled, 0.0, hold=2, tol=0.02, speed=0.02),
        ]


class CloseDrawer(_DrawerTask):
    """RLBench close_drawer: push the named (open) drawer shut."""

    name = "close_drawer"
    max_steps = 60
    instructions = ("close the {w} drawer", "push the {w} drawer shut", "slide the {w} drawer closed")
    closed_thresh = 0.02

    def randomise(self, env, rng, var):
        st = super().randomise(env, rng, var)
        for i in range(3):
            opening = rng.uniform(0.12, 0.17) if i == st.which else 0.0
            env.data.qpos[env.model.jnt_qposadr[env.joint_id(f"slide{i}")]] = opening
        st.instruction = rng.choice(self.instructions).format(w=DRAWER_NAMES[st.which])
        return st

    def success(self, env):
        return self.slide(env, env.task_state.which) <= self.closed_thresh

    def plan(self, env):
        i = env.task_state.which

        def front(e):
            fwd, _ = self.facing(e)
            return self.handle_pos(e, i) - 0.07 * fwd, self.grasp_rotation(e)

        def touch(e):
            fwd, _ = self.facing(e)
            return self.handle_pos(e, i) - 0.045 * fwd, self.grasp_rotation(e)

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


# =========================================================================== cubes
CUBE_HALF = 0.0225


def _cube_xml(name: str) -> str:
    return (
        f'<body name="{name}" pos="{PARK_POS}"><freejoint name="{name}_joint"/>'
        f'<geom name="{name}_geom" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" mass="0.08" '
        f'friction="1.5 0.05 0.001" condim="4" rgba="1 0 0 1"/></body>'
    )


def _cube_pose(env, name: str) -> tuple[np.ndarray, float]:
    bid = env.body_id(name)
    R = env.data.xmat[bid].reshape(3, 3)
    # yaw of the face normal closest to horizontal x: good enough for a cube resting on a face
    yaw = float(np.arctan2(R[1, 0], R[0, 0]))
    return env.data.xpos[bid].copy(), yaw


def _pick_waypoints(name: str, lift_to: float = 0.18) -> list[Waypoint]:
    def above(e):
        p, yaw = _cube_pose(e, name)
        return np.array([p[0], p[1], p[2] + 0.12]), top_down(grasp_yaw(yaw))

    def at(e):
        p, yaw = _cube_pose(e, name)
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


class PickUpCube(Task):
    """Pick up the named cube and lift it (RLBench's pick_and_lift without the target sphere)."""

    name = "pick_up_cube"
    max_steps = 50
    instructions = (
        "pick up the {c} cube",
        "grasp the {c} block and lift it",
        "lift the {c} cube off the table",
    )
    lift_height = 0.10

    def objects_xml(self) -> str:
        return "\n".join(_cube_xml(f"cube{i}") for i in range(3))

    def randomise(self, env, rng, var):
        names = var.colour_names(rng, 3)
        taken: list[np.ndarray] = []
        for i in range(3):
            if i == 0:
                xy = var.primary_xy(rng, (0.35, 0.62))
            else:
                xy = _sample_apart(
                    rng, lambda: np.array([rng.uniform(0.33, 0.65), rng.uniform(-0.28, 0.28)]), taken, 0.11
                )
            taken.append(xy)
            _set_free_pose(
                env, f"cube{i}_joint", np.array([xy[0], xy[1], CUBE_HALF]), rng.uniform(-np.pi, np.pi)
            )
            env.model.geom_rgba[env.geom_id(f"cube{i}_geom")] = (*var.colours[names[i]], 1.0)
        instruction = rng.choice(self.instructions).format(c=names[0])
        return TaskState(instruction, colour=names[0], objects=taken)

    def success(self, env):
        z = env.data.xpos[env.body_id("cube0")][2]
        return bool(z - CUBE_HALF >= self.lift_height and env.grasping("cube0_geom"))

    def plan(self, env):
        return _pick_waypoints("cube0", lift_to=0.20)


class StackBlocks(Task):
    """RLBench stack_blocks (N = 2): stack the two blocks of the named colour on the grey pad."""

    name = "stack_blocks"
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
        return pad + "\n" + "\n".join(_cube_xml(f"block{i}") for i in range(4))

    def randomise(self, env, rng, var):
        names = var.colour_names(rng, 2)
        taken: list[np.ndarray] = []
        pad_xy = var.primary_xy(rng, (0.40, 0.60))
        taken.append(pad_xy)
        env.model.body_pos[env.body_id("pad")] = [pad_xy[0], pad_xy[1], 0.0]
        for i in range(4):
            xy = _sample_apart(
                rng, lambda: np.array([rng.uniform(0.33, 0.65), rng.uniform(-0.30, 0.30)]), taken, 0.10
            )
            taken.append(xy)
            _set_free_pose(
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
                *_pick_waypoints(name, lift_to=0.06 + 2 * CUBE_HALF * level + 0.08),
                Waypoint(over, 0.0, tol=0.008),
                Waypoint(down, 0.0, tol=0.004, hold=1),
                Waypoint(lambda e: (e.tcp_pos(), e.tcp_rot()), 1.0, hold=3, tol=0.02),
                Waypoint(up, 1.0, tol=0.01),
            ]

        return place(0, "block0") + place(1, "block1")


TASK_CLASSES: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (ReachTarget, PushButton, CloseDrawer, OpenDrawer, PickUpCube, StackBlocks, ReachTargetSingle)
}
TASKS: tuple[str, ...] = tuple(TASK_CLASSES)


def scene_objects_xml(task: Task) -> str:
    """The task's objects plus the shared clutter pool."""
    return task.objects_xml() + "\n" + clutter_xml()
