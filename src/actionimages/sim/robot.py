"""Panda kinematics and control: damped-least-squares IK on the tool centre point, joint PD targets.

A control step takes an absolute tool pose (world frame) and an openness; IK turns the pose into
joint targets, which the position actuators track over the step's physics substeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from actionimages.sim.scene import FINGER_MAX

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("finger1", "finger2")
# A comfortable posture (tool pointing down in front of the robot) that the IK's null space pulls
# towards, so that redundant solutions stay away from joint limits and do not drift between steps.
HOME_Q = np.array([0.0, -0.4447, 0.0, -2.5426, 0.0, 0.5271, 0.0])  # IK solution of the home pose

IK_POS_TOL = 2e-3  # m: residual above this (or the angle below) marks the IK as failed
IK_ROT_TOL = 0.02  # rad


@dataclass
class IKResult:
    """Joint solution (7,) and its residuals: position (m) and rotation (rad) errors."""

    q: np.ndarray
    pos_error: float
    rot_error: float
    iterations: int

    @property
    def failed(self) -> bool:
        return self.pos_error > IK_POS_TOL or self.rot_error > IK_ROT_TOL


def rotation_error(R_target: np.ndarray, R: np.ndarray) -> np.ndarray:
    """World-frame axis-angle vector (3,) that rotates ``R`` onto ``R_target``."""
    q_t, q = np.zeros(4), np.zeros(4)
    mujoco.mju_mat2Quat(q_t, R_target.reshape(-1))
    mujoco.mju_mat2Quat(q, R.reshape(-1))
    q_conj, q_err = np.zeros(4), np.zeros(4)
    mujoco.mju_negQuat(q_conj, q)
    mujoco.mju_mulQuat(q_err, q_t, q_conj)
    vel = np.zeros(3)
    mujoco.mju_quat2Vel(vel, q_err, 1.0)
    return vel


class PandaKinematics:
    """Indices into a scene model and a scratch ``MjData`` for IK that never touches the live state."""

    def __init__(self, model: mujoco.MjModel) -> None:
        self.model = model
        self.scratch = mujoco.MjData(model)
        jid = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in ARM_JOINTS]
        self.qpos_idx = np.array([model.jnt_qposadr[j] for j in jid])
        self.dof_idx = np.array([model.jnt_dofadr[j] for j in jid])
        self.lower = model.jnt_range[jid, 0].copy()
        self.upper = model.jnt_range[jid, 1].copy()
        fid = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in FINGER_JOINTS]
        self.finger_qpos_idx = np.array([model.jnt_qposadr[j] for j in fid])
        self.finger_dof_idx = np.array([model.jnt_dofadr[j] for j in fid])
        self.arm_act = np.array(
            [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, f"act{i}") for i in range(1, 8)]
        )
        self.finger_act = np.array(
            [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, f"act_finger{i}") for i in (1, 2)]
        )
        self.tcp = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "tcp")
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    # ------------------------------------------------------------------ state
    def tcp_pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """Tool centre point position (3,) and rotation (3, 3) in ``data``'s current kinematics."""
        return data.site_xpos[self.tcp].copy(), data.site_xmat[self.tcp].reshape(3, 3).copy()

    def openness(self, data: mujoco.MjData) -> float:
        """Measured gripper openness in [0, 1] (finger gap / maximum gap)."""
        return float(np.clip(data.qpos[self.finger_qpos_idx].sum() / (2 * FINGER_MAX), 0.0, 1.0))

    def arm_q(self, data: mujoco.MjData) -> np.ndarray:
        return data.qpos[self.qpos_idx].copy()

    # --------------------------------------------------------------------- IK
    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tool pose for arm joints ``q`` (7,), computed on the scratch data."""
        d = self.scratch
        d.qpos[self.qpos_idx] = q
        mujoco.mj_kinematics(self.model, d)
        return self.tcp_pose(d)

    def solve(
        self,
        pos: np.ndarray,
        R: np.ndarray,
        q_init: np.ndarray,
        max_iters: int = 60,
        damping: float = 0.02,
        null_gain: float = 0.05,
    ) -> IKResult:
        """Damped-least-squares IK for the tool pose (``pos`` (3,), ``R`` (3, 3)) from ``q_init`` (7,).

        Each iteration solves ``dq = Jᵀ(JJᵀ + λ²I)⁻¹e`` for the 6-D pose error ``e`` and adds a small
        null-space pull towards :data:`HOME_Q`; joints are clipped to their limits. Returns the best
        iterate with its residuals (the caller reports a residual above tolerance as an IK failure).
        """
        m, d = self.model, self.scratch
        q = np.clip(np.asarray(q_init, float).copy(), self.lower, self.upper)
        best = None
        eye6 = np.eye(6)
        for it in range(max_iters):
            d.qpos[self.qpos_idx] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            p, Rc = self.tcp_pose(d)
            e_pos = pos - p
            e_rot = rotation_error(R, Rc)
            pe, re = float(np.linalg.norm(e_pos)), float(np.linalg.norm(e_rot))
            if best is None or pe + 0.1 * re < best.pos_error + 0.1 * best.rot_error:
                best = IKResult(q.copy(), pe, re, it)
            if pe < IK_POS_TOL * 0.1 and re < IK_ROT_TOL * 0.1:
                break
            mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self.tcp)
            J = np.vstack([self._jacp[:, self.dof_idx], self._jacr[:, self.dof_idx]])
            err = np.concatenate([e_pos, e_rot])
            # limit the Cartesian step so that far targets are approached, not overshot
            scale = min(1.0, 0.1 / max(pe, 1e-9), 0.5 / max(re, 1e-9))
            JJt = J @ J.T + damping**2 * eye6
            dq = J.T @ np.linalg.solve(JJt, err * scale)
            J_pinv = J.T @ np.linalg.solve(JJt, eye6)
            dq += (np.eye(7) - J_pinv @ J) @ (null_gain * (HOME_Q - q))  # drift towards the home posture
            q = np.clip(q + dq, self.lower, self.upper)
        best.iterations = it + 1
        return best
