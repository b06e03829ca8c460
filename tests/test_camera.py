"""Camera: projection, rays, crop/resize intrinsics, Plücker maps, validation, serialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from actionimages.codec import Camera, center_crop_box
from actionimages.errors import ActionImagesError

FAST = settings(max_examples=30, deadline=None)


def random_camera(seed: int, width: int = 160, height: int = 120) -> Camera:
    rng = np.random.default_rng(seed)
    eye = rng.uniform(-2, 2, 3) + np.array([0, 0, 2.5])
    target = rng.uniform(-0.3, 0.3, 3)
    cam = Camera.look_at(eye, target, fov_y_deg=float(rng.uniform(30, 80)), width=width, height=height)
    K = cam.K.copy()
    K[0, 0] *= rng.uniform(0.8, 1.2)  # non-square pixels and an off-centre principal point
    K[:2, 2] += rng.uniform(-10, 10, 2)
    return Camera(K, cam.cam_to_world, width, height)


@FAST
@given(seed=st.integers(0, 10_000), u=st.floats(-50, 210), v=st.floats(-50, 170), depth=st.floats(0.05, 20))
def test_unproject_then_project_is_identity(seed: int, u: float, v: float, depth: float) -> None:
    cam = random_camera(seed)
    X = cam.unproject(np.array([u, v]), np.array(depth))
    uv, d = cam.project(X)
    np.testing.assert_allclose(uv, [u, v], atol=1e-7)
    np.testing.assert_allclose(d, depth, rtol=1e-10)


@FAST
@given(seed=st.integers(0, 10_000), xyz=st.tuples(*[st.floats(-1, 1)] * 3))
def test_project_then_ray_passes_through_point(seed: int, xyz: tuple[float, float, float]) -> None:
    cam = random_camera(seed)
    X = np.array(xyz)
    uv, depth = cam.project(X)
    # A point on the camera plane projects to ~1e11 px; float64 cannot carry it back to 1e-9 m.
    assume(abs(float(depth)) > 0.05)
    o, d = cam.pixel_rays(uv)
    np.testing.assert_allclose(np.linalg.norm(d), 1.0, atol=1e-12)
    # The point lies on the ray: its offset from the origin is parallel to d.
    np.testing.assert_allclose(np.cross(X - o, d), 0.0, atol=1e-9)
    assert np.sign(np.dot(X - o, d)) == np.sign(depth)
    np.testing.assert_allclose(cam.unproject(uv, depth), X, atol=1e-9)


def test_project_torch_matches_numpy_and_flags_points_behind() -> None:
    cam = random_camera(3)
    pts = np.random.default_rng(0).uniform(-1, 1, (5, 7, 3))
    uv, d = cam.project(pts)
    uv_t, d_t = cam.project(torch.from_numpy(pts))
    assert isinstance(uv_t, torch.Tensor) and uv_t.shape == (5, 7, 2) and d_t.shape == (5, 7)
    np.testing.assert_allclose(uv_t.numpy(), uv, atol=1e-9)
    behind = cam.center - 0.5 * cam.cam_to_world[:3, 2]  # half a metre behind the camera
    assert cam.project(behind)[1] < 0
    assert cam.project(cam.center + cam.cam_to_world[:3, 2])[1] == pytest.approx(1.0)


def test_look_at_puts_target_on_the_principal_point() -> None:
    cam = Camera.look_at([1.0, 2.0, 3.0], [0.1, -0.2, 0.3], fov_y_deg=60, width=64, height=48)
    uv, d = cam.project(np.array([0.1, -0.2, 0.3]))
    np.testing.assert_allclose(uv, [31.5, 23.5], atol=1e-9)
    assert d > 0
    # Vertical field of view: a point at the top edge ray is 30° off axis.
    np.testing.assert_allclose(cam.K[1, 1], 24 / np.tan(np.deg2rad(30)))


# ------------------------------------------------------------------ crop / resize
def _area_matrix(dst_n: int, src_n: int, offset: float, scale: float) -> np.ndarray:
    """Exact box-filter resampling: row j averages the source over [offset + j/s, offset + (j+1)/s)."""
    lo = offset + np.arange(dst_n) / scale
    hi = lo + 1 / scale
    i = np.arange(src_n)
    overlap = np.clip(np.minimum(hi[:, None], i[None, :] + 1) - np.maximum(lo[:, None], i[None, :]), 0, None)
    return overlap * scale


@pytest.mark.parametrize(
    ("src", "dst"), [((300, 200), (40, 40)), ((200, 300), (48, 36)), ((321, 180), (64, 36))]
)
def test_crop_resize_matches_brute_force_area_resampling(src: tuple[int, int], dst: tuple[int, int]) -> None:
    """The crop+resize camera agrees exactly with a real crop+area-resize pipeline (corner convention)."""
    (sw, sh), (dw, dh) = src, dst
    K = np.array([[250.0, 0, 0.47 * sw], [0, 260.0, 0.53 * sh], [0, 0, 1]])
    cam = Camera(K, np.eye(4), sw, sh)
    new = cam.crop_resize(dw, dh)
    dx, dy, cw, ch = center_crop_box(sw, sh, dw, dh)
    sx, sy = dw / cw, dh / ch
    assert new.width == dw and new.height == dh
    np.testing.assert_allclose([sx, sy], [dw / cw] * 2, rtol=1e-12)  # aspect kept: one scale

    # A smooth random image, zero near the cropped-away borders so no mass is lost.
    rng = np.random.default_rng(sw)
    img = np.zeros((sh, sw))
    cxs, cys = rng.uniform(dx + 0.4 * cw, dx + 0.6 * cw, 3), rng.uniform(dy + 0.4 * ch, dy + 0.6 * ch, 3)
    yy, xx = np.mgrid[0:sh, 0:sw]
    for cx, cy in zip(cxs, cys, strict=True):
        img += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (0.04 * min(cw, ch)) ** 2))
    out = _area_matrix(dh, sh, dy, sy) @ img @ _area_matrix(dw, sw, dx, sx).T
    np.testing.assert_allclose(out.sum() / (sx * sy), img.sum(), rtol=1e-6)

    # Centroids in the corner convention (pixel i covers [i, i+1), centre i + 0.5).
    def centroid(a: np.ndarray) -> np.ndarray:
        y, x = np.mgrid[0 : a.shape[0], 0 : a.shape[1]]
        return np.array([(a * (x + 0.5)).sum(), (a * (y + 0.5)).sum()]) / a.sum()

    c_src, c_dst = centroid(img), centroid(out)
    # The cameras' own mapping of continuous coordinates: project through both cameras.
    rays = cam.unproject(np.array([c_src, [3.0, 7.0], [sw - 2.0, sh - 5.0]]), np.ones(3))
    uv_src, _ = cam.project(rays)
    uv_dst, _ = new.project(rays)
    np.testing.assert_allclose(uv_dst, (uv_src - [dx, dy]) * [sx, sy], atol=1e-9)
    # ... and the real pipeline moves content exactly so, in the corner convention:
    np.testing.assert_allclose(c_dst, uv_dst[0], atol=5e-3)  # sampling error only
    # Read with integer pixel centres instead, the same formula is off by 0.5·(s − 1) px (documented).
    np.testing.assert_allclose(
        (c_dst - 0.5) - ((c_src - 0.5) - [dx, dy]) * [sx, sy], 0.5 * (np.array([sx, sy]) - 1), atol=5e-3
    )


def test_crop_resize_identity_and_pure_scale() -> None:
    cam = random_camera(1, 160, 120)
    same = cam.crop_resize(160, 120)
    np.testing.assert_allclose(same.K, cam.K)
    half = cam.crop_resize(80, 60)
    np.testing.assert_allclose(half.K[:2, :2], cam.K[:2, :2] / 2)
    np.testing.assert_allclose(half.K[:2, 2], cam.K[:2, 2] / 2)
    assert center_crop_box(160, 120, 80, 60) == (0.0, 0.0, 160.0, 120.0)
    assert center_crop_box(160, 120, 100, 100) == (20.0, 0.0, 120.0, 120.0)
    with pytest.raises(ActionImagesError, match="positive"):
        center_crop_box(160, 0, 10, 10)


# ------------------------------------------------------------------ Plücker
def test_plucker_directions_and_moments() -> None:
    ref = random_camera(5, 40, 30)
    other = random_camera(6, 40, 30)
    own = ref.plucker()
    assert own.shape == (30, 40, 6) and own.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(own[..., :3], axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(own[..., 3:], 0.0, atol=1e-6)  # rays through the reference's own origin
    np.testing.assert_allclose(
        own[15, 20, :3] / own[15, 20, 2],
        [(20 - ref.K[0, 2]) / ref.K[0, 0], (15 - ref.K[1, 2]) / ref.K[1, 1], 1],
        atol=1e-5,
    )

    rel = other.plucker(reference=ref)
    d, m = rel[..., :3].astype(np.float64), rel[..., 3:].astype(np.float64)
    np.testing.assert_allclose(np.sum(d * m, -1), 0.0, atol=1e-5)  # moment ⟂ direction
    # A world point on pixel (u, v)'s ray, expressed in ref's frame, satisfies p × d = m.
    X = other.unproject(np.array([7.0, 11.0]), np.array(2.3))
    W2R = ref.world_to_cam
    p = W2R[:3, :3] @ X + W2R[:3, 3]
    np.testing.assert_allclose(np.cross(p, d[11, 7]), m[11, 7], atol=1e-5)


# ------------------------------------------------------------------ validation and serialisation
def test_bad_cameras_are_rejected() -> None:
    K = np.array([[100.0, 0, 32], [0, 100, 24], [0, 0, 1]])
    T = np.eye(4)
    with pytest.raises(ActionImagesError, match="focal"):
        Camera(np.diag([0.0, 100, 1]), T, 64, 48)
    with pytest.raises(ActionImagesError, match="focal"):
        Camera(np.array([[100.0, 0, 32], [0, -5, 24], [0, 0, 1]]), T, 64, 48)
    with pytest.raises(ActionImagesError, match="rigid"):
        Camera(K, np.diag([2.0, 1, 1, 1]), 64, 48)
    reflect = np.diag([1.0, 1, -1, 1])
    with pytest.raises(ActionImagesError, match="rigid"):
        Camera(K, reflect, 64, 48)
    bad_row = np.eye(4)
    bad_row[3, 0] = 0.5
    with pytest.raises(ActionImagesError, match="rigid"):
        Camera(K, bad_row, 64, 48)
    with pytest.raises(ActionImagesError, match="shape"):
        Camera(K[:2], T, 64, 48)
    with pytest.raises(ActionImagesError, match="NaN"):
        Camera(np.where(np.eye(3) > 0, np.nan, K), T, 64, 48)
    with pytest.raises(ActionImagesError, match="numeric"):
        Camera(np.array([["a"] * 3] * 3), T, 64, 48)
    with pytest.raises(ActionImagesError, match="size"):
        Camera(K, T, 0, 48)
    with pytest.raises(ActionImagesError, match="size"):
        Camera(K, T, 64.5, 48)
    with pytest.raises(ActionImagesError, match="missing"):
        Camera.from_dict({"K": K.tolist()})
    with pytest.raises(ActionImagesError, match="last dimension"):
        Camera(K, T, 64, 48).project(np.zeros((4, 2)))


def test_to_dict_round_trip() -> None:
    cam = random_camera(9)
    back = Camera.from_dict(cam.to_dict())
    np.testing.assert_array_equal(back.K, cam.K)
    np.testing.assert_array_equal(back.cam_to_world, cam.cam_to_world)
    assert (back.width, back.height) == (cam.width, cam.height)
    assert "160x120" in repr(cam)
