"""Pose helpers: conversions agree with SciPy, semantic points, Gram-Schmidt, validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from actionimages.codec import (
    actions_to_matrices,
    euler_to_matrix,
    euler_to_quat,
    matrix_to_euler,
    matrix_to_quat,
    quat_to_euler,
    quat_to_matrix,
    rotation_angle_between,
    rotation_from_points,
    semantic_points,
    to_euler_actions,
)
from actionimages.codec.poses import normalize_quaternions
from actionimages.errors import ActionImagesError

angles = st.tuples(st.floats(-np.pi, np.pi), st.floats(-1.5, 1.5), st.floats(-np.pi, np.pi))


@settings(max_examples=40, deadline=None)
@given(e=angles)
def test_conversions_round_trip(e: tuple[float, float, float]) -> None:
    e = np.array(e)
    R = euler_to_matrix(e)
    # Extrinsic xyz: R = Rz · Ry · Rx.
    Rx, Ry, Rz = (Rotation.from_euler(ax, a).as_matrix() for ax, a in zip("xyz", e, strict=True))
    np.testing.assert_allclose(R, Rz @ Ry @ Rx, atol=1e-12)
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(R)), R, atol=1e-9)
    q = euler_to_quat(e)
    assert q[3] >= 0
    np.testing.assert_allclose(quat_to_matrix(q), R, atol=1e-9)
    np.testing.assert_allclose(matrix_to_quat(R), q, atol=1e-9)
    np.testing.assert_allclose(euler_to_matrix(quat_to_euler(q)), R, atol=1e-9)


def test_batched_shapes_and_quaternion_actions() -> None:
    rng = np.random.default_rng(0)
    e = rng.uniform(-1, 1, (4, 5, 3))
    assert euler_to_matrix(e).shape == (4, 5, 3, 3)
    assert matrix_to_quat(euler_to_matrix(e)).shape == (4, 5, 4)
    a7 = np.concatenate([rng.uniform(-1, 1, (4, 5, 3)), e, rng.random((4, 5, 1))], -1)
    a8 = np.concatenate([a7[..., :3], euler_to_quat(e), a7[..., 6:]], -1)
    np.testing.assert_allclose(to_euler_actions(a8), a7, atol=1e-9)
    p, R, o = actions_to_matrices(a8)
    assert p.shape == (4, 5, 3) and R.shape == (4, 5, 3, 3) and o.shape == (4, 5)


def test_semantic_points_and_gram_schmidt_recover_rotation() -> None:
    rng = np.random.default_rng(1)
    R = Rotation.random(50, random_state=2).as_matrix()
    p = rng.uniform(-1, 1, (50, 3))
    a = np.concatenate([p, matrix_to_euler(R), np.ones((50, 1))], -1)
    pts = semantic_points(a, axis_length=0.1)
    np.testing.assert_allclose(pts[:, 0], p)
    np.testing.assert_allclose(pts[:, 1], p + 0.1 * R[:, :, 0], atol=1e-12)  # tool x axis
    np.testing.assert_allclose(pts[:, 2], p - 0.1 * R[:, :, 2], atol=1e-12)  # minus tool z axis
    np.testing.assert_allclose(rotation_from_points(*pts.transpose(1, 0, 2)), R, atol=1e-9)
    # Perturbed points still give a proper rotation close to R.
    noisy = pts + rng.normal(0, 1e-3, pts.shape)
    Rn = rotation_from_points(*noisy.transpose(1, 0, 2))
    np.testing.assert_allclose(Rn.transpose(0, 2, 1) @ Rn, np.broadcast_to(np.eye(3), Rn.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(Rn), 1.0, atol=1e-9)
    assert np.degrees(rotation_angle_between(Rn, R)).max() < 3.0


def test_quaternion_normalisation_tolerance() -> None:
    q = np.array([0.0, 0.0, 0.0, 1.004])
    np.testing.assert_allclose(normalize_quaternions(q), [0, 0, 0, 1])
    with pytest.raises(ActionImagesError, match="non-unit"):
        normalize_quaternions(np.array([0.0, 0.0, 0.0, 1.2]))
    with pytest.raises(ActionImagesError, match="zero quaternion"):
        quat_to_matrix(np.zeros(4))
    with pytest.raises(ActionImagesError, match="last dimension 4"):
        quat_to_matrix(np.zeros(3))


def test_bad_actions_are_rejected() -> None:
    with pytest.raises(ActionImagesError, match="last dimension 7"):
        to_euler_actions(np.zeros((3, 6)))
    with pytest.raises(ActionImagesError, match="NaN or inf"):
        to_euler_actions(np.array([[0, 0, np.inf, 0, 0, 0, 1.0]]))
    with pytest.raises(ActionImagesError, match="numeric"):
        to_euler_actions(np.array([["a"] * 7]))
    with pytest.raises(ActionImagesError, match="numeric"):
        to_euler_actions(np.zeros((2, 7), dtype=complex))
