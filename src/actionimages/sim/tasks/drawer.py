"""The three-drawer cabinet that open_drawer and close_drawer share: its MJCF, placement and grasp pose."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from actionimages.sim.tasks.base import PARK_POS, Pose, Task, TaskState

DRAWER_NAMES = ("bottom", "middle", "top")


def _box(size: tuple[float, ...], pos: tuple[float, ...]) -> str:
    """A drawer part (box geom, 0.1 kg)."""
    sz, p = " ".join(f"{v:.4f}" for v in size), " ".join(f"{v:.4f}" for v in pos)
    return f'<geom type="box" size="{sz}" pos="{p}" class="cabinet" mass="0.1"/>'


class DrawerTask(Task):
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
        for i in range(3):
            env.data.qpos[self._slide_adr(env, i)] = self.opening(rng, i, which)
        instruction = rng.choice(self.instructions).format(w=DRAWER_NAMES[which])
        return TaskState(instruction, colour=colour, objects=[xy], which=which)

    def opening(self, rng: np.random.Generator, i: int, which: int) -> float:
        """Drawer ``i``'s opening (m) at reset, ``which`` being the instructed drawer: shut by default."""
        return 0.0

    @staticmethod
    def _slide_adr(env, i: int) -> int:
        return env.model.jnt_qposadr[env.joint_id(f"slide{i}")]

    def slide(self, env, i: int) -> float:
        """How far drawer ``i`` is pulled out (m)."""
        return float(env.data.qpos[self._slide_adr(env, i)])

    def handle_pos(self, env, i: int) -> np.ndarray:
        return env.data.geom_xpos[env.geom_id(f"handle{i}")].copy()

    def before_handle(self, env, i: int, *back: float) -> Pose:
        """The grasp pose at drawer ``i``'s handle, moved out of the cabinet by each ``back`` (m) in turn."""
        fwd, _ = self.facing(env)
        p = self.handle_pos(env, i)
        for b in back:
            p = p - b * fwd
        return p, self.grasp_rotation(env)

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
