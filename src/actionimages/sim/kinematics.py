"""Forward kinematics of any robot MJCF to one site: end-effector poses from recorded joint angles.

``actionimages dataset convert --joints-column ... --mjcf PATH --ee-site NAME`` uses it to turn a
LeRobot recording of joint positions into the end-effector poses action images are drawn from.
The joints are those on the kinematic chain from the world to the site's body, root first (for the
Panda: ``joint1`` .. ``joint7``; the fingers are not on the chain to the hand's site). Poses are in
the MJCF's world frame, which must be the robot base frame the cameras were calibrated in.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the mujoco import (as in sim.scene)

from pathlib import Path

import mujoco
import numpy as np

from actionimages.errors import ActionImagesError

BUILTIN_MJCF = {"panda": "the benchmark's Franka Panda (site 'tcp': the sim's tool centre point)"}
CHAIN_JOINT_TYPES = (
    int(mujoco.mjtJoint.mjJNT_HINGE),
    int(mujoco.mjtJoint.mjJNT_SLIDE),
)  # one qpos value each


def load_mjcf(mjcf: str | Path) -> mujoco.MjModel:
    """An MJCF file (its meshes found relative to it), or a built-in robot by name (``panda``)."""
    if str(mjcf) in BUILTIN_MJCF:
        from actionimages.sim.scene import robot_mjcf

        return mujoco.MjModel.from_xml_string(robot_mjcf())
    path = Path(mjcf)
    if not path.is_file():
        raise ActionImagesError(
            f"MJCF {path} does not exist (give a robot MJCF file, or one of {sorted(BUILTIN_MJCF)})"
        )
    try:
        return mujoco.MjModel.from_xml_path(str(path))
    except ValueError as exc:  # MuJoCo's parse and compile errors
        raise ActionImagesError(f"MJCF {path} failed to load: {exc}") from exc


class SiteKinematics:
    """Forward kinematics from the joints on the chain to ``site`` (see the module docstring).

    Args:
        mjcf: an MJCF path or a built-in name (:data:`BUILTIN_MJCF`).
        site: the end-effector site; its frame is the tool frame (codec convention: the action image's
            green blob lies along its x axis, the blue one along −z, i.e. z points out of the tool).
    """

    def __init__(self, mjcf: str | Path, site: str) -> None:
        self.model = load_mjcf(mjcf)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, site)
        if self.site < 0:
            names = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_SITE, i) for i in range(m.nsite)]
            raise ActionImagesError(f"MJCF {mjcf} has no site {site!r}; its sites: {names}")
        joints: list[int] = []
        body = int(m.site_bodyid[self.site])
        while body > 0:  # walk up to the world body, collecting each body's joints
            first, count = int(m.body_jntadr[body]), int(m.body_jntnum[body])
            joints[:0] = range(first, first + count)
            body = int(m.body_parentid[body])
        bad = [j for j in joints if int(m.jnt_type[j]) not in CHAIN_JOINT_TYPES]
        if bad:
            raise ActionImagesError(
                f"MJCF {mjcf}: the chain to site {site!r} has free or ball joints "
                f"{[mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in bad]}; only hinge and "
                "slide joints are supported"
            )
        self.joint_names = tuple(mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in joints)
        self.qpos_idx = np.array([m.jnt_qposadr[j] for j in joints], dtype=np.int64)
        self.mjcf, self.site_name = str(mjcf), site

    def poses(self, q: np.ndarray) -> np.ndarray:
        """Site poses (T, 4, 4) (site-to-world) for joint positions ``q`` (T, N), N = ``len(joint_names)``.

        Raises :class:`ActionImagesError` for another N (naming the chain's joints) or NaN/inf.
        """
        q = np.asarray(q, dtype=np.float64)
        n = len(self.joint_names)
        if q.ndim != 2 or q.shape[1] != n:
            raise ActionImagesError(
                f"{q.shape[-1] if q.ndim else 0} joint values per frame, but the chain of {self.mjcf} to "
                f"site {self.site_name!r} has {n} joints {list(self.joint_names)}"
            )
        if not np.all(np.isfinite(q)):
            t = int(np.argwhere(~np.isfinite(q))[0, 0])
            raise ActionImagesError(f"joint positions of frame {t} hold NaN or infinity")
        out = np.zeros((len(q), 4, 4))
        out[:, 3, 3] = 1.0
        d = self.data
        for t, qt in enumerate(q):
            d.qpos[self.qpos_idx] = qt
            mujoco.mj_kinematics(self.model, d)
            out[t, :3, :3] = d.site_xmat[self.site].reshape(3, 3)
            out[t, :3, 3] = d.site_xpos[self.site]
        return out
