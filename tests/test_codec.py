"""ActionImageCodec: encoding semantics, round trips, robustness, validity, numpy/torch parity, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from actionimages.codec import (
    ActionImageCodec,
    Camera,
    euler_to_matrix,
    euler_to_quat,
    rotation_angle_between,
    semantic_points,
)
from actionimages.errors import ActionImagesError

CENTER = np.array([0.5, 0.0, 0.3])


def rig(size: int = 64, views: int = 2, fov: float = 55.0) -> list[Camera]:
    cams = []
    for i in range(views):
        az = np.deg2rad(-60 + 120 * i / max(views - 1, 1))
        eye = CENTER + 1.4 * np.array([0.8 * np.cos(az), 0.8 * np.sin(az), 0.6])
        cams.append(Camera.look_at(eye, CENTER, fov_y_deg=fov, width=size, height=size))
    return cams


def random_actions(n: int, seed: int, half: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    from scipy.spatial.transform import Rotation

    p = CENTER + rng.uniform(-half, half, (n, 3))
    e = Rotation.random(n, random_state=seed).as_euler("xyz")
    o = (rng.random(n) > 0.5).astype(float)
    return np.concatenate([p, e, o[:, None]], 1)


def pose_errors(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = np.linalg.norm(a[..., :3] - b[..., :3], axis=-1) * 1000
    rot = np.degrees(rotation_angle_between(euler_to_matrix(a[..., 3:6]), euler_to_matrix(b[..., 3:6])))
    return pos, rot


# ------------------------------------------------------------------ encoding semantics
def test_known_pose_blob_centres_per_channel() -> None:
    """A camera looking straight down: each channel's blob sits where the pinhole model puts it."""
    size = 101
    T = np.eye(4)
    T[:3, :3] = np.diag([1.0, -1.0, -1.0])  # z forward = world -z, looking down from 1 m
    T[:3, 3] = [0.0, 0.0, 1.0]
    K = np.array([[500.0, 0, 50], [0, 500, 50], [0, 0, 1]])
    cams = [Camera(K, T, size, size), Camera.look_at([1.0, 0, 1.0], [0, 0, 0], width=size, height=size)]
    codec = ActionImageCodec(cams)
    # Identity orientation: P_norm = p + 0.1 x̂, P_up = p - 0.1 ẑ (straight down, 0.1 m closer to the floor).
    a = np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    img = codec.encode(a)[0, 0]  # view 0, frame 0: (H, W, 3)
    # Expected pixels: camera x = world x, camera y = -world y, depth = 1 - z.
    expected = {0: (50.0, 50.0), 1: (50 + 500 * 0.1 / 1.0, 50.0), 2: (50.0, 50.0)}
    sigma = 0.05 * size
    for ch, (u, v) in expected.items():
        iy, ix = np.unravel_index(np.argmax(img[..., ch]), img.shape[:2])
        assert (ix, iy) == (round(u), round(v)), ch
        assert img[iy, ix, ch] == pytest.approx(1.0, abs=1e-6)
        # Exactly Gaussian with σ = 0.05·min(H, W): one σ away the value is e^-1/2.
        assert img[iy, ix - 5, ch] == pytest.approx(np.exp(-0.5 * (5 / sigma) ** 2), abs=1e-6)
    # P_up is 1.1 m deep: same pixel as P_pos (it lies on the optical axis) — both drawn.
    assert img[50, 50, 0] == pytest.approx(1.0) and img[50, 50, 2] == pytest.approx(1.0)
    uv, depth = codec.project_points(semantic_points(a))
    np.testing.assert_allclose(uv[0, 0], [[50, 50], [100, 50], [50, 50]], atol=1e-9)
    np.testing.assert_allclose(depth[0, 0], [1.0, 1.0, 1.1], atol=1e-12)


def test_openness_in_blue_background_and_peaks_untouched() -> None:
    codec = ActionImageCodec(rig(64))
    a = random_actions(2, 0)
    a[:, 6] = [0.9, 0.2]
    img = codec.encode(a)
    blue = img[..., 2]
    # Open: nothing below 0.25; closed: nothing in (0, 0.25].
    assert blue[:, 0].min() == pytest.approx(0.25)
    closed = blue[:, 1]
    assert not np.any((closed > 0) & (closed <= 0.25))
    assert closed.max() == pytest.approx(1.0, abs=0.05) and blue[:, 0].max() == pytest.approx(1.0, abs=0.05)
    # Red and green are untouched by the gripper.
    b = a.copy()
    b[:, 6] = 1 - (a[:, 6] > 0.5)
    np.testing.assert_array_equal(codec.encode(b)[..., :2], img[..., :2])
    assert img.dtype == np.float32 and img.min() >= 0 and img.max() <= 1


def test_point_behind_camera_draws_nothing() -> None:
    cam = Camera.look_at([0, 0, 1.0], [0, 0, 0], up=(0, 1, 0), width=48, height=48)
    codec = ActionImageCodec([cam, Camera.look_at([1.0, 0, 1], [0, 0, 0], width=48, height=48)])
    # Behind the camera, yet the bare pinhole formula (no depth check) would put all three on-image.
    a = np.array([[0.05, 0.03, 2.0, np.pi, 0.0, 0.0, 0.0]])
    pts = semantic_points(a)[0]
    pc = pts @ cam.world_to_cam[:3, :3].T + cam.world_to_cam[:3, 3]
    assert np.all(pc[:, 2] < 0)
    naive = pc[:, :2] / pc[:, 2:] * cam.K[0, 0] + cam.K[:2, 2]
    assert np.all((naive >= 0) & (naive <= 47))
    _, depth = codec.project_points(pts[None])
    assert np.all(depth[0] < 0)
    img = codec.encode(a)
    assert img[0].max() == 0.0  # closed gripper: no blob, background 0
    a[0, 6] = 1.0
    np.testing.assert_allclose(codec.encode(a)[0, ..., 2], 0.25)  # open: only the background


def test_batch_dims_quaternions_and_torch_parity() -> None:
    codec = ActionImageCodec(rig(48, 3))
    a = random_actions(10, 3).reshape(2, 5, 7)
    img = codec.encode(a)
    assert img.shape == (2, 3, 5, 48, 48, 3) and img.dtype == np.float32
    np.testing.assert_array_equal(img[1], codec.encode(a[1]))
    q = np.concatenate([a[..., :3], euler_to_quat(a[..., 3:6]), a[..., 6:]], -1)
    np.testing.assert_allclose(codec.encode(q), img, atol=1e-5)
    t = codec.encode(torch.from_numpy(a).float())
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.device.type == "cpu"
    np.testing.assert_allclose(t.numpy(), img, atol=2e-4)  # float32 actions in: tiny pose rounding
    np.testing.assert_allclose(codec.encode(torch.from_numpy(q)).numpy(), img, atol=1e-5)
    # decode: batch dims, torch input, and the same result as numpy input
    r = codec.decode(img)
    assert r.actions.shape == (2, 5, 7) and r.valid.shape == (2, 5) and r.confidence.shape == (2, 5, 3, 3)
    assert r.reprojection_error.shape == (2, 5, 3) and r.points.shape == (2, 5, 3, 3)
    rt = codec.decode(torch.from_numpy(img))
    np.testing.assert_allclose(rt.actions, r.actions, atol=1e-9)
    pos, rot = pose_errors(r.actions, a)
    assert r.valid.all() and pos.max() < 0.01 and rot.max() < 0.01
    np.testing.assert_array_equal(r.actions[..., 6], a[..., 6])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 100_000), size=st.sampled_from([64, 96, 128]), views=st.integers(2, 4))
def test_round_trip_property(seed: int, size: int, views: int) -> None:
    codec = ActionImageCodec(rig(size, views))
    a = random_actions(6, seed)
    r = codec.decode(codec.encode(a))
    pos, rot = pose_errors(r.actions, a)
    assert r.valid.all()
    assert pos.max() < 0.01, pos  # mm
    assert rot.max() < 0.01, rot  # degrees
    np.testing.assert_array_equal(r.actions[:, 6], a[:, 6])
    assert (r.confidence > 0.8).all() and np.nanmax(r.reprojection_error) < 0.01


def test_round_trip_with_partial_blobs_near_the_border() -> None:
    """A point near the edge of one view (blob cut off) still decodes exactly."""
    cams = rig(64, 2, fov=30)
    codec = ActionImageCodec(cams)
    a = random_actions(200, 11, half=0.25)
    uv, depth = codec.project_points(semantic_points(a))
    inside = ((uv >= 0) & (uv <= 63)).all(-1).all(-1).all(0) & (depth > 0).all(-1).all(0)
    near_edge = inside & ((uv < 4) | (uv > 59)).any(-1).any(-1).any(0)
    assert near_edge.sum() >= 3
    r = codec.decode(codec.encode(a[near_edge]))
    pos, rot = pose_errors(r.actions, a[near_edge])
    assert r.valid.all() and pos.max() < 0.05 and rot.max() < 0.05


def test_per_frame_cameras() -> None:
    base = rig(64, 2)
    T = 6
    moving = []
    for cam in base:
        row = []
        for t in range(T):
            c2w = cam.cam_to_world.copy()
            c2w[:3, 3] += [0.0, 0.02 * t, -0.01 * t]
            row.append(Camera(cam.K, c2w, 64, 64))
        moving.append(row)
    codec = ActionImageCodec(moving)
    a = random_actions(T, 5)
    img = codec.encode(a)
    for t in range(T):
        static = ActionImageCodec([moving[0][t], moving[1][t]])
        np.testing.assert_allclose(img[:, t : t + 1], static.encode(a[t : t + 1]), atol=1e-6)
    r = codec.decode(img)
    pos, rot = pose_errors(r.actions, a)
    assert r.valid.all() and pos.max() < 0.01 and rot.max() < 0.01
    with pytest.raises(ActionImagesError, match="per-frame"):
        codec.encode(a[:4])
    with pytest.raises(ActionImagesError, match="per-frame"):
        codec.decode(img[:, :4])


# ------------------------------------------------------------------ robustness and validity
def test_noise_and_blur_stay_accurate() -> None:
    codec = ActionImageCodec(rig(128, 2))
    a = random_actions(12, 8)
    img = codec.encode(a)
    rng = np.random.default_rng(0)
    noisy = np.clip(img + rng.normal(0, 0.05, img.shape).astype(np.float32), 0, 1)
    r = codec.decode(noisy)
    pos, rot = pose_errors(r.actions, a)
    assert r.valid.mean() >= 0.9 and np.median(pos[r.valid]) < 2.0 and np.median(rot[r.valid]) < 2.0
    np.testing.assert_array_equal(r.actions[:, 6], a[:, 6])
    # Blur by averaging with shifted copies in ±x, ±y (symmetric: centres unchanged).
    blur = (img + np.roll(img, 2, 2) + np.roll(img, -2, 2) + np.roll(img, 2, 3) + np.roll(img, -2, 3)) / 5
    r = codec.decode(blur)
    pos, rot = pose_errors(r.actions, a)
    assert r.valid.all() and np.median(pos) < 0.5 and np.median(rot) < 0.5


def test_blank_view_makes_two_view_frames_invalid_and_they_are_interpolated() -> None:
    codec = ActionImageCodec(rig(64, 2))
    t = np.linspace(0, 1, 9)
    a = np.zeros((9, 7))
    a[:, :3] = CENTER + np.stack([0.2 * t - 0.1, 0.1 * t, 0.05 * t], -1)
    a[:, 3:6] = np.stack([np.pi - 0.3 * t, 0.2 * t, 0.8 * t], -1)
    a[:, 6] = 1.0
    img = codec.encode(a)
    img[1, 3:6] = 0.0  # view 2 shows nothing in frames 3-5
    r = codec.decode(img)
    assert r.valid.tolist() == [True] * 3 + [False] * 3 + [True] * 3
    assert (r.confidence[3:6, 1] == 0).all() and np.isnan(r.reprojection_error[3:6]).all()
    assert np.isnan(r.points[3:6]).all()
    # Linear motion: interpolation from frames 2 and 6 reproduces positions; rotation near by slerp.
    pos, rot = pose_errors(r.actions, a)
    assert pos.max() < 0.01
    assert rot[3:6].max() < 3.0 and rot[r.valid].max() < 0.01
    np.testing.assert_array_equal(r.actions[:, 6], 1.0)  # openness still read from the other view
    # Everything blank: nothing valid, poses NaN, never a made-up value.
    r = codec.decode(np.zeros_like(img))
    assert not r.valid.any() and np.isnan(r.actions[:, :6]).all()
    np.testing.assert_array_equal(r.actions[:, 6], 0.0)


def test_three_views_survive_a_blank_or_shifted_view() -> None:
    codec = ActionImageCodec(rig(96, 3))
    a = random_actions(10, 21)
    img = codec.encode(a)
    blank = img.copy()
    blank[1] = 0.0
    r = codec.decode(blank)
    pos, rot = pose_errors(r.actions, a)
    assert r.valid.all() and pos.max() < 0.01 and not r.used_views[:, 1].any()
    shifted = img.copy()
    shifted[2] = np.roll(img[2], 4, axis=2)  # view 3 is off by 4 px: inconsistent, must be dropped
    r = codec.decode(shifted)
    pos, rot = pose_errors(r.actions, a)
    assert r.valid.all() and pos.max() < 0.01 and rot.max() < 0.01
    assert not r.used_views[:, 2].any() and r.used_views[:, :2].all()


def test_two_inconsistent_views_are_not_trusted() -> None:
    codec = ActionImageCodec(rig(96, 2))
    a = random_actions(10, 4)
    img = codec.encode(a)
    img[1] = np.roll(img[1], 15, axis=1)  # 15 px vertical shift: rays no longer meet
    r = codec.decode(img)
    assert r.valid.mean() < 0.5
    assert np.isnan(r.reprojection_error[~r.valid]).any(axis=-1).all()


# ------------------------------------------------------------------ bad input
def test_bad_actions() -> None:
    codec = ActionImageCodec(rig(32))
    good = random_actions(3, 0)
    with pytest.raises(ActionImagesError, match="shape"):
        codec.encode(good[:, :6])
    with pytest.raises(ActionImagesError, match="shape"):
        codec.encode(good[0])  # (7,) lacks the T axis
    with pytest.raises(ActionImagesError, match="NaN or inf"):
        codec.encode(np.where(np.arange(7) == 2, np.nan, good))
    with pytest.raises(ActionImagesError, match="NaN or inf"):
        codec.encode(torch.from_numpy(np.where(np.arange(7) == 0, np.inf, good)))
    with pytest.raises(ActionImagesError, match="dtype"):
        codec.encode(good.astype(str))
    with pytest.raises(ActionImagesError, match="dtype"):
        codec.encode(torch.ones(3, 7, dtype=torch.bool))
    q = np.concatenate([good[:, :3], euler_to_quat(good[:, 3:6]), good[:, 6:]], -1)
    with pytest.raises(ActionImagesError, match="zero quaternion"):
        codec.encode(np.where((np.arange(8) >= 3) & (np.arange(8) < 7), 0.0, q))
    big = q.copy()
    big[:, 3:7] *= 1.5
    with pytest.raises(ActionImagesError, match="non-unit quaternion"):
        codec.encode(big)
    small = q.copy()
    small[:, 3:7] *= 1.005  # within tolerance: normalised
    np.testing.assert_allclose(codec.encode(small), codec.encode(q), atol=1e-6)


def test_openness_outside_0_1_is_refused_naming_the_frame() -> None:
    """Openness is a fraction: 1.5, -0.2 or NaN is an error naming the frame, not a blob drawn anyway."""
    codec = ActionImageCodec(rig(32))
    good = random_actions(4, 0)
    for value in (1.5, -0.2):
        bad = good.copy()
        bad[2, 6] = value
        with pytest.raises(ActionImagesError, match=rf"openness .*\[0, 1\].*frame 2.*{value}"):
            codec.encode(bad)
    batch = np.stack([good, good])
    batch[1, 3, 6] = 2.0
    with pytest.raises(ActionImagesError, match=r"openness .*frame 3 of sequence \(1,\)"):
        codec.encode(torch.from_numpy(batch))
    q = np.concatenate([good[:, :3], euler_to_quat(good[:, 3:6]), good[:, 6:]], -1)
    q[0, 7] = np.nan
    with pytest.raises(ActionImagesError, match="NaN or inf.*openness.*frame 0"):
        codec.encode(q)
    edges = good.copy()
    edges[:2, 6] = [0.0, 1.0]  # the bounds themselves are fine
    codec.encode(edges)


def test_bad_images() -> None:
    codec = ActionImageCodec(rig(32, 2))
    img = codec.encode(random_actions(2, 0))
    with pytest.raises(ActionImagesError, match="shape"):
        codec.decode(img[0])
    with pytest.raises(ActionImagesError, match="shape"):
        codec.decode(img[:1])  # one view, codec has two
    with pytest.raises(ActionImagesError, match="shape"):
        codec.decode(img[..., :16, :])
    with pytest.raises(ActionImagesError, match="uint8"):
        codec.decode((img * 255).astype(np.uint8))
    with pytest.raises(ActionImagesError, match=r"\[0, 1\]"):
        codec.decode(img * 2 - 1)
    bad = img.copy()
    bad[0, 0, 3, 3, 1] = np.nan
    with pytest.raises(ActionImagesError, match="NaN or inf"):
        codec.decode(bad)
    bad[0, 0, 3, 3, 1] = np.inf
    with pytest.raises(ActionImagesError, match="NaN or inf"):
        codec.decode(torch.from_numpy(bad))


def test_bad_codec_construction() -> None:
    cams = rig(32, 2)
    with pytest.raises(ActionImagesError, match="image size"):
        ActionImageCodec([cams[0], rig(48, 2)[1]])
    with pytest.raises(ActionImagesError, match="non-empty"):
        ActionImageCodec([])
    with pytest.raises(ActionImagesError, match="non-empty"):
        ActionImageCodec(cams[0])
    with pytest.raises(ActionImagesError, match="mixture"):
        ActionImageCodec([cams[0], [cams[1]]])
    with pytest.raises(ActionImagesError, match="same number"):
        ActionImageCodec([[cams[0]] * 3, [cams[1]] * 2])
    with pytest.raises(ActionImagesError, match="sigma_frac"):
        ActionImageCodec(cams, sigma_frac=0)
    with pytest.raises(ActionImagesError, match="axis_length"):
        ActionImageCodec(cams, axis_length=-0.1)
    codec = ActionImageCodec(cams)
    assert codec.sigma == pytest.approx(1.6) and codec.num_views == 2 and "V=2" in repr(codec)


def test_triangulation_behind_a_camera_or_parallel_rays_is_invalid_not_an_error() -> None:
    """Two cameras facing each other along one axis: rays that cannot meet in front of both."""
    a = Camera.look_at([0, 0, 1.0], [0, 0, 0], up=(0, 1, 0), width=48, height=48)
    b = Camera.look_at([0, 0, -1.0], [0, 0, 0], up=(0, 1, 0), width=48, height=48)
    codec = ActionImageCodec([a, b])
    peaks = np.zeros((2, 2, 3, 2))  # (T, V, 3, 2)
    peaks[0] = 23.5  # every peak on both optical axes: parallel (collinear) rays
    peaks[1, 0] = [10.0, 23.5]  # rays whose closest approach lies behind camera a
    peaks[1, 1] = [12.0, 23.5]
    points, err, used = codec._triangulate(peaks, np.ones((2, 2, 3), bool))
    assert points.shape == (2, 3, 3) and err.shape == (2, 3) and used.shape == (2, 2, 3)
    assert not used.any() and np.isnan(points).all() and np.isnan(err).all()


@pytest.mark.parametrize("kind", ["uniform", "ones", "half", "checker", "spike"])
def test_garbage_images_decode_invalid_without_raising(kind: str) -> None:
    """Generated videos can be anything in [0, 1]: decode must flag them, never crash or guess."""
    codec = ActionImageCodec(rig(48, 2))
    shape = (2, 4, 48, 48, 3)
    if kind == "uniform":
        img = np.random.default_rng(0).random(shape).astype(np.float32)
    elif kind == "ones":
        img = np.ones(shape, np.float32)
    elif kind == "half":
        img = np.full(shape, 0.5, np.float32)
    elif kind == "checker":
        img = np.broadcast_to((np.indices((48, 48)).sum(0) % 2)[..., None], shape).astype(np.float32)
    else:
        img = np.zeros(shape, np.float32)
        img[:, :, 10, 10] = 1.0
    r = codec.decode(img)
    assert not r.valid.any() and np.isnan(r.actions[:, :6]).all()
    assert np.isin(r.actions[:, 6], [0.0, 1.0]).all()


def test_interpolation_of_invalid_frames_is_lerp_and_slerp() -> None:
    from scipy.spatial.transform import Rotation, Slerp

    from actionimages.codec.codec import _interpolate_invalid

    T = 7
    key = Rotation.from_euler("xyz", [[0.1, 0.2, 0.3], [1.0, -0.5, 2.0]])
    truth = Slerp([1, 5], key)(np.clip(np.arange(T), 1, 5))  # held constant outside [1, 5]
    pos = np.zeros((2, T, 3))
    pos[:, :, 0] = np.clip(np.arange(T), 1, 5)
    valid = np.zeros((2, T), bool)
    valid[0, [1, 5]] = True  # batch element 0: two valid frames; element 1: none
    R = np.where(valid[..., None, None], truth.as_matrix()[None], np.nan)
    p_in = np.where(valid[..., None], pos, np.nan)
    p_out, R_out = _interpolate_invalid(p_in, R, valid)
    np.testing.assert_allclose(p_out[0], pos[0], atol=1e-12)  # lerp inside, nearest outside
    np.testing.assert_allclose(R_out[0], truth.as_matrix(), atol=1e-9)  # slerp = geodesic
    assert np.isnan(p_out[1]).all() and np.isnan(R_out[1]).all()  # nothing valid: nothing made up


def test_batch_dims_with_per_frame_cameras() -> None:
    base = rig(48, 2)
    moving = []
    for c in base:
        row = []
        for t in range(3):
            c2w = c.cam_to_world.copy()
            c2w[:3, 3] += [0.03 * t, 0.0, 0.0]
            row.append(Camera(c.K, c2w, 48, 48))
        moving.append(row)
    codec = ActionImageCodec(moving)
    a = random_actions(6, 9).reshape(2, 3, 7)
    img = codec.encode(a)
    assert img.shape == (2, 2, 3, 48, 48, 3)
    r = codec.decode(img)
    pos, rot = pose_errors(r.actions, a)
    assert r.valid.all() and pos.max() < 0.01 and rot.max() < 0.01
