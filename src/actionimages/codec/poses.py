"""Pose helpers: Euler / quaternion / matrix conversions and the three semantic points.

Conventions (METHOD.md §2): actions are ``[x, y, z, rx, ry, rz, openness]`` with SciPy's
extrinsic ``"xyz"`` Euler angles in radians, or ``[x, y, z, qx, qy, qz, qw, openness]``
with a scalar-last quaternion. Rotation maths is SciPy's ``Rotation``; we only validate.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from actionimages.errors import ActionImagesError

EULER_SEQ = "xyz"
AXIS_LENGTH = 0.10
QUAT_NORM_TOL = 1e-2  # quaternions within this of unit norm are normalised, beyond it rejected


def _as_float_array(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ActionImagesError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise ActionImagesError(f"{name} contains NaN or inf (first at index {bad})")
    return arr


def normalize_quaternions(quat: np.ndarray, tol: float = QUAT_NORM_TOL) -> np.ndarray:
    """Return unit quaternions (..., 4) xyzw; raise if any norm is off 1 by more than ``tol``."""
    q = _as_float_array(quat, "quaternion")
    if q.shape[-1] != 4:
        raise ActionImagesError(f"quaternions must have last dimension 4 (xyzw), got shape {q.shape}")
    norms = np.linalg.norm(q, axis=-1)
    if np.any(norms < 1e-8):
        raise ActionImagesError("zero quaternion: cannot define a rotation")
    off = np.abs(norms - 1.0)
    if np.any(off > tol):
        worst = float(norms.reshape(-1)[np.argmax(off.reshape(-1))])
        raise ActionImagesError(
            f"non-unit quaternion (norm {worst:.4f}; tolerance ±{tol}); normalise it first"
        )
    return q / norms[..., None]


def euler_to_matrix(euler: np.ndarray) -> np.ndarray:
    """Euler angles (..., 3), extrinsic xyz radians -> rotation matrices (..., 3, 3)."""
    e = _as_float_array(euler, "euler angles")
    flat = e.reshape(-1, 3)
    return Rotation.from_euler(EULER_SEQ, flat).as_matrix().reshape(*e.shape[:-1], 3, 3)


def matrix_to_euler(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> Euler angles (..., 3), extrinsic xyz radians."""
    m = _as_float_array(matrix, "rotation matrix")
    flat = m.reshape(-1, 3, 3)
    return Rotation.from_matrix(flat).as_euler(EULER_SEQ).reshape(*m.shape[:-2], 3)


def quat_to_matrix(quat: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) xyzw -> rotation matrices (..., 3, 3)."""
    q = normalize_quaternions(quat)
    return Rotation.from_quat(q.reshape(-1, 4)).as_matrix().reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> quaternions (..., 4) xyzw with qw >= 0."""
    m = _as_float_array(matrix, "rotation matrix")
    q = Rotation.from_matrix(m.reshape(-1, 3, 3)).as_quat()
    q = np.where(q[:, 3:4] < 0, -q, q)
    return q.reshape(*m.shape[:-2], 4)


def matrix_to_rot6d(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> the continuous 6-D rotation (..., 6): the first two columns.

    Layout ``[x_axis (3), y_axis (3)]``: the tool's x and y axes in the world frame (Zhou et al.,
    "On the Continuity of Rotation Representations", CVPR 2019). Unlike Euler angles (``rx`` of a
    top-down tool jumps between -pi and pi) or a ``qw >= 0`` quaternion (which flips sign at exactly
    those 180-degree rotations, where ``qw`` = 0), it is continuous and unique, so its mean / std
    statistics mean something.
    """
    m = _as_float_array(matrix, "rotation matrix")
    if m.shape[-2:] != (3, 3):
        raise ActionImagesError(f"rotation matrices must have shape (..., 3, 3), got {m.shape}")
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def rot6d_to_matrix(rot6d: np.ndarray) -> np.ndarray:
    """6-D rotations (..., 6) ``[x_axis, y_axis]`` -> rotation matrices (..., 3, 3) by Gram–Schmidt.

    x = norm(a), y = norm(b - (b.x) x), z = x × y; so a slightly perturbed 6-D vector (float32
    storage, a network's output) still gives a proper rotation. Parallel or zero axes are refused.
    """
    r = _as_float_array(rot6d, "6-D rotation")
    if r.shape[-1] != 6:
        raise ActionImagesError(f"6-D rotations must have last dimension 6, got shape {r.shape}")
    a, b = r[..., :3], r[..., 3:]
    na = np.linalg.norm(a, axis=-1, keepdims=True)
    y = b - np.sum(b * a, axis=-1, keepdims=True) * a / np.maximum(na, 1e-12) ** 2
    ny = np.linalg.norm(y, axis=-1, keepdims=True)
    if np.any(na < 1e-6) or np.any(ny < 1e-6):
        raise ActionImagesError("degenerate 6-D rotation: an axis is zero or the two axes are parallel")
    x = a / na
    y = y / ny
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def euler_to_rot6d(euler: np.ndarray) -> np.ndarray:
    """Euler angles (..., 3), extrinsic xyz radians -> 6-D rotations (..., 6) (:func:`matrix_to_rot6d`)."""
    return matrix_to_rot6d(euler_to_matrix(euler))


def euler_to_quat(euler: np.ndarray) -> np.ndarray:
    """Euler angles (..., 3) -> quaternions (..., 4) xyzw."""
    return matrix_to_quat(euler_to_matrix(euler))


def quat_to_euler(quat: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) xyzw -> Euler angles (..., 3)."""
    return matrix_to_euler(quat_to_matrix(quat))


def to_euler_actions(actions: np.ndarray) -> np.ndarray:
    """Validate actions (..., 7) or (..., 8) and return them as (..., 7) Euler actions (float64)."""
    a = _as_float_array(actions, "actions")
    if a.ndim < 1 or a.shape[-1] not in (7, 8):
        raise ActionImagesError(
            f"actions must have last dimension 7 ([x,y,z,rx,ry,rz,open]) or 8 ([x,y,z,qx,qy,qz,qw,open]), "
            f"got shape {a.shape}"
        )
    if a.shape[-1] == 7:
        return a
    return np.concatenate([a[..., :3], quat_to_euler(a[..., 3:7]), a[..., 7:8]], axis=-1)


def actions_to_matrices(actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Actions (..., 7|8) -> (positions (..., 3), rotations (..., 3, 3), openness (...,))."""
    a = to_euler_actions(actions)
    return a[..., :3], euler_to_matrix(a[..., 3:6]), a[..., 6]


def semantic_points(actions: np.ndarray, axis_length: float = AXIS_LENGTH) -> np.ndarray:
    """The three semantic points of each action: (..., 3 points, 3 xyz).

    Order: ``P_pos = p`` (red), ``P_norm = p + L R e_x`` (green), ``P_up = p - L R e_z`` (blue).
    """
    p, R, _ = actions_to_matrices(actions)
    p_norm = p + axis_length * R[..., :, 0]
    p_up = p - axis_length * R[..., :, 2]
    return np.stack([p, p_norm, p_up], axis=-2)


def rotation_from_points(p_pos: np.ndarray, p_norm: np.ndarray, p_up: np.ndarray) -> np.ndarray:
    """Gram–Schmidt rotation (..., 3, 3) from the three semantic points (METHOD.md §3).

    x = norm(P_norm - P_pos), u = norm(P_up - P_pos), z = -norm(u - (u.x) x), y = z × x.
    """
    x = p_norm - p_pos
    x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    u = p_up - p_pos
    u = u / np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), 1e-12)
    z = u - np.sum(u * x, axis=-1, keepdims=True) * x
    z = -z / np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=-1)


def rotation_angle_between(R_a: np.ndarray, R_b: np.ndarray) -> np.ndarray:
    """Geodesic angle (radians) between rotation matrices (..., 3, 3)."""
    rel = np.swapaxes(R_a, -1, -2) @ R_b
    cos = (np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))
