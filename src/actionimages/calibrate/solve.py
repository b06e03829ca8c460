"""Camera intrinsics from board views, and eye-to-hand extrinsics from board views plus robot poses.

**Intrinsics** (:func:`calibrate_intrinsics`): ``cv2.calibrateCamera`` on the ChArUco corners of
every view, as a pinhole camera (the project's :class:`~actionimages.codec.Camera` has no lens
distortion: distortion is fixed at zero). For information it also fits OpenCV's 5-coefficient
distortion model and records its RMS: when that is much lower, rectify the images first.

**Extrinsics** (:func:`calibrate_extrinsics`): the cameras are fixed and the board rides on the
gripper (eye-to-hand). With ``Z`` the world-to-camera transform of a camera (the unknown we want),
``G_i`` the end-effector pose (end-effector-to-world, from the robot) of view ``i`` and ``X`` the
board's fixed pose in the end-effector frame (unknown too), every view obeys
``C_i = Z · G_i · X`` where ``C_i`` is the board-to-camera transform seen by the camera.

1. ``C_i`` per view by ``cv2.solvePnP`` (IPPE, planar board) with the camera's intrinsics.
2. A closed-form start: eliminating ``X`` between views ``i`` and ``j`` gives the ``AY = YB``
   problem ``(G_j G_i⁻¹) Y = Y (C_j C_i⁻¹)`` for ``Y = Z⁻¹`` (camera-to-world); solved by Park &
   Martin's method: the rotation aligns the motions' axis-angle vectors (Kabsch over all pairs),
   the translation is linear least squares. This is what ``cv2.calibrateHandEye`` computes in
   its eye-to-hand form (``CALIB_HAND_EYE_PARK`` on inverted robot poses); it is implemented here
   because OpenCV 5's Python bindings no longer export that function.
3. ``X`` from every view (``X = G_i⁻¹ Y C_i``), averaged.
4. A joint bundle adjustment (``scipy.optimize.least_squares``, soft-L1 loss of 1 px scale) of
   every camera's ``Z`` (and, unless fixed, its ``fx, fy, cx, cy``) and the shared ``X``, over
   the reprojection error of every detected corner in every camera: the robot's metric motion
   pins focal length and distance down far better than the small board alone.

The reported reprojection error is the RMS over a camera's corners, in pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from actionimages.calibrate.board import Detection, _cv2
from actionimages.codec.camera import Camera
from actionimages.codec.poses import rotation_angle_between
from actionimages.errors import ActionImagesError

MIN_VIEWS = 4  # board views a camera needs (intrinsics need a few tilts; hand-eye ≥ 3 motions)
MIN_CORNERS = 6  # corners a view needs to count


# --------------------------------------------------------------------------- small geometry
def make_transform(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def invert(T: np.ndarray) -> np.ndarray:
    R, t = T[:3, :3], T[:3, 3]
    return make_transform(R.T, -R.T @ t)


def project_orthonormal(R: np.ndarray) -> np.ndarray:
    """The rotation nearest to ``R`` (3, 3)."""
    U, _, Vt = np.linalg.svd(R)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def mean_transform(Ts: Sequence[np.ndarray]) -> np.ndarray:
    """Chordal mean of rigid transforms (rotation: nearest rotation to the mean matrix)."""
    Ts = np.asarray(Ts)
    return make_transform(project_orthonormal(Ts[:, :3, :3].mean(0)), Ts[:, :3, 3].mean(0))


def pose_errors(estimate: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(position error in metres, rotation error in degrees) between two camera-to-world transforms."""
    dp = float(np.linalg.norm(estimate[:3, 3] - truth[:3, 3]))
    return dp, float(np.degrees(rotation_angle_between(estimate[:3, :3], truth[:3, :3])))


# --------------------------------------------------------------------------- intrinsics
@dataclass
class Intrinsics:
    """A pinhole camera's intrinsics from board views, and how well they fit."""

    K: np.ndarray
    width: int
    height: int
    reprojection_px: float
    views: int
    corners: int
    distortion: list[float] = field(default_factory=list)  # OpenCV k1 k2 p1 p2 k3, for information
    reprojection_px_distortion_model: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "K": self.K.tolist(),
            "width": self.width,
            "height": self.height,
            "reprojection_px": self.reprojection_px,
            "views": self.views,
            "corners": self.corners,
            "distortion_k1k2p1p2k3": self.distortion,
            "reprojection_px_distortion_model": self.reprojection_px_distortion_model,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Intrinsics:
        missing = [k for k in ("K", "width", "height") if k not in d]
        if missing:
            raise ActionImagesError(f"intrinsics are missing {missing}")
        K = np.asarray(d["K"], dtype=np.float64)
        Camera(K, np.eye(4), int(d["width"]), int(d["height"]))  # validates K and the size
        return cls(
            K,
            int(d["width"]),
            int(d["height"]),
            float(d.get("reprojection_px", float("nan"))),
            int(d.get("views", 0)),
            int(d.get("corners", 0)),
        )


def _usable(detections: Sequence[Detection | None], min_corners: int) -> list[int]:
    return [i for i, d in enumerate(detections) if d is not None and len(d) >= min_corners]


def calibrate_intrinsics(
    detections: Sequence[Detection | None],
    width: int,
    height: int,
    min_views: int = MIN_VIEWS,
    min_corners: int = MIN_CORNERS,
    what: str = "camera",
) -> Intrinsics:
    """Pinhole intrinsics from the board detections of one camera (``None`` = board not found)."""
    cv2 = _cv2()
    use = _usable(detections, min_corners)
    if len(use) < min_views:
        raise ActionImagesError(
            f"{what}: the board was found (with ≥ {min_corners} corners) in {len(use)} of "
            f"{len(detections)} images; intrinsics need at least {min_views} views of the board at "
            "different tilts"
        )
    obj = [detections[i].object_points.astype(np.float32).reshape(-1, 1, 3) for i in use]
    img = [detections[i].pixels.astype(np.float32).reshape(-1, 1, 2) for i in use]
    criteria = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    pinhole = cv2.CALIB_ZERO_TANGENT_DIST | cv2.CALIB_FIX_K1 | cv2.CALIB_FIX_K2 | cv2.CALIB_FIX_K3
    try:
        rms, K, _, _, _ = cv2.calibrateCamera(
            obj, img, (width, height), None, np.zeros(5), flags=pinhole, criteria=criteria
        )
        rms_d, _, dist, _, _ = cv2.calibrateCamera(obj, img, (width, height), None, None, criteria=criteria)
    except cv2.error as exc:
        raise ActionImagesError(f"{what}: OpenCV could not calibrate from these views: {exc}") from exc
    K = np.asarray(K, dtype=np.float64)
    K[0, 1] = K[1, 0] = K[2, 0] = K[2, 1] = 0.0
    return Intrinsics(
        K,
        int(width),
        int(height),
        float(rms),
        len(use),
        int(sum(len(detections[i]) for i in use)),
        [float(v) for v in np.asarray(dist).reshape(-1)[:5]],
        float(rms_d),
    )


# --------------------------------------------------------------------------- hand-eye
def board_pose(d: Detection, K: np.ndarray) -> np.ndarray | None:
    """Board-to-camera transform (4, 4) of a detection by planar PnP (IPPE, then iterative), pinhole
    ``K``; None when OpenCV finds no pose (degenerate corners)."""
    cv2 = _cv2()
    obj, img = d.object_points.astype(np.float64), d.pixels.astype(np.float64)
    for flags in (cv2.SOLVEPNP_IPPE, cv2.SOLVEPNP_ITERATIVE):
        try:
            ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, flags=flags)
        except cv2.error:
            ok = False
        if ok and tvec.reshape(3)[2] > 0:
            return make_transform(Rotation.from_rotvec(rvec.reshape(3)).as_matrix(), tvec.reshape(3))
    return None


def solve_ay_yb(A: Sequence[np.ndarray], B: Sequence[np.ndarray], what: str = "camera") -> np.ndarray:
    """Park & Martin: the ``Y`` (4, 4) with ``B_k Y ≈ Y A_k`` for motions ``A_k`` (camera frame) and
    ``B_k`` (world frame). Refuses motions that all rotate about one axis (``Y`` is then not unique)."""
    alpha = np.array([Rotation.from_matrix(a[:3, :3]).as_rotvec() for a in A])
    beta = np.array([Rotation.from_matrix(b[:3, :3]).as_rotvec() for b in B])
    M = beta.T @ alpha  # Σ β αᵀ; R = argmax tr(Rᵀ M)
    U, S, Vt = np.linalg.svd(M)
    if S[1] < 1e-3 * max(S[0], 1e-12):
        raise ActionImagesError(
            f"{what}: the robot poses rotate the board about a single axis (or not at all); "
            "vary the gripper's orientation about at least two axes"
        )
    R = U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt
    lhs = np.concatenate([b[:3, :3] - np.eye(3) for b in B])
    rhs = np.concatenate([R @ a[:3, 3] - b[:3, 3] for a, b in zip(A, B, strict=True)])
    t = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    return make_transform(R, t)


@dataclass
class CameraViews:
    """One camera's board detections, keyed by robot pose index, and its image size."""

    width: int
    height: int
    detections: dict[int, Detection | None]
    K: np.ndarray | None = None  # known intrinsics; None: estimate them from these views


@dataclass
class ExtrinsicsResult:
    """Calibrated cameras, per-camera fit, and the board's pose on the end effector."""

    cameras: dict[str, Camera]
    reprojection_px: dict[str, float]
    views_used: dict[str, int]
    board_in_ee: np.ndarray
    intrinsics_init: dict[str, Intrinsics | None]
    max_residual_px: dict[str, float]


def _residual_model(params: np.ndarray, layout: list[dict], refine_k: bool) -> np.ndarray:
    rX = Rotation.from_rotvec(params[0:3]).as_matrix()
    tX = params[3:6]
    out = []
    for lay in layout:
        o = lay["offset"]
        Rc = Rotation.from_rotvec(params[o : o + 3]).as_matrix()
        tc = params[o + 3 : o + 6]
        if refine_k:
            fx, fy, cx, cy = params[o + 6 : o + 10]
        else:
            K = lay["K"]
            fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        pe = lay["P"] @ rX.T + tX
        pb = np.einsum("nij,nj->ni", lay["GR"], pe) + lay["Gt"]
        pc = pb @ Rc.T + tc
        z = np.maximum(pc[:, 2], 1e-6)
        uv = np.stack([fx * pc[:, 0] / z + cx, fy * pc[:, 1] / z + cy], -1)
        out.append((uv - lay["uv"]).reshape(-1))
    return np.concatenate(out)


def calibrate_extrinsics(
    views: Mapping[str, CameraViews],
    ee_poses: np.ndarray,
    refine_intrinsics: bool | None = None,
    min_views: int = MIN_VIEWS,
    min_corners: int = MIN_CORNERS,
) -> ExtrinsicsResult:
    """Eye-to-hand calibration of fixed cameras from views of a board on the end effector.

    Args:
        views: per camera, its detections keyed by index into ``ee_poses`` (None: board not found)
            and its known intrinsics, if any.
        ee_poses: (N, 4, 4) end-effector-to-world transforms, one per robot pose.
        refine_intrinsics: refine ``fx, fy, cx, cy`` in the bundle adjustment; default: when some
            camera's intrinsics were not given.
    """
    ee_poses = np.asarray(ee_poses, dtype=np.float64)
    if ee_poses.ndim != 3 or ee_poses.shape[1:] != (4, 4):
        raise ActionImagesError(f"end-effector poses must be (N, 4, 4), got {ee_poses.shape}")
    if not views:
        raise ActionImagesError("no cameras to calibrate")
    if refine_intrinsics is None:
        refine_intrinsics = any(v.K is None for v in views.values())
    layout, inits, used, init_K, X_votes = [], {}, {}, {}, []
    for name, v in views.items():
        bad = [i for i in v.detections if not 0 <= i < len(ee_poses)]
        if bad:
            raise ActionImagesError(
                f"camera {name!r}: images {bad} have no robot pose ({len(ee_poses)} poses)"
            )
        idx = sorted(i for i, d in v.detections.items() if d is not None and len(d) >= min_corners)
        if len(idx) >= min_views:
            dets = [v.detections[i] for i in idx]
            if v.K is None:
                intr = calibrate_intrinsics(
                    dets, v.width, v.height, min_views, min_corners, f"camera {name!r}"
                )
                K = intr.K
            else:
                intr, K = None, np.asarray(v.K, dtype=np.float64)
            C = [board_pose(d, K) for d in dets]
            idx = [i for i, c in zip(idx, C, strict=True) if c is not None]
            C = [c for c in C if c is not None]
        if len(idx) < min_views:
            raise ActionImagesError(
                f"camera {name!r}: the board was found (with ≥ {min_corners} corners) in {len(idx)} of "
                f"{len(v.detections)} images; hand-eye calibration needs at least {min_views}"
            )
        dets = [v.detections[i] for i in idx]
        init_K[name] = intr
        G = ee_poses[idx]
        pairs = [(i, j) for i in range(len(idx)) for j in range(i + 1, len(idx))]
        A = [C[j] @ invert(C[i]) for i, j in pairs]
        B = [G[j] @ invert(G[i]) for i, j in pairs]
        Y = solve_ay_yb(A, B, f"camera {name!r}")  # camera-to-world
        inits[name] = (invert(Y), K)
        X_votes += [invert(G[k]) @ Y @ C[k] for k in range(len(idx))]
        used[name] = len(idx)
        P = np.concatenate([d.object_points for d in dets])
        owner = np.concatenate([np.full(len(d), k) for k, d in enumerate(dets)])
        layout.append(
            {
                "name": name,
                "K": K,
                "P": P,
                "uv": np.concatenate([d.pixels for d in dets]),
                "GR": G[owner, :3, :3],
                "Gt": G[owner, :3, 3],
                "counts": [len(d) for d in dets],
            }
        )
    X0 = mean_transform(X_votes)
    x0 = [Rotation.from_matrix(X0[:3, :3]).as_rotvec(), X0[:3, 3]]
    offset = 6
    for lay in layout:
        Z, K = inits[lay["name"]]
        lay["offset"] = offset
        x0 += [Rotation.from_matrix(Z[:3, :3]).as_rotvec(), Z[:3, 3]]
        if refine_intrinsics:
            x0.append(np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2]]))
        offset += 10 if refine_intrinsics else 6
    x0 = np.concatenate(x0)
    sol = least_squares(
        _residual_model, x0, args=(layout, refine_intrinsics), loss="soft_l1", f_scale=1.0, x_scale="jac"
    )
    res = _residual_model(sol.x, layout, refine_intrinsics).reshape(-1, 2)
    err = np.linalg.norm(res, axis=1)
    cameras, reproj, worst, start = {}, {}, {}, 0
    p = sol.x
    for lay in layout:
        o, n = lay["offset"], len(lay["P"])
        Z = make_transform(Rotation.from_rotvec(p[o : o + 3]).as_matrix(), p[o + 3 : o + 6])
        if refine_intrinsics:
            fx, fy, cx, cy = p[o + 6 : o + 10]
            K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        else:
            K = lay["K"]
        v = views[lay["name"]]
        cameras[lay["name"]] = Camera(K, invert(Z), v.width, v.height)
        e = err[start : start + n]
        reproj[lay["name"]] = float(np.sqrt(np.mean(e**2)))
        worst[lay["name"]] = float(e.max())
        start += n
    X = make_transform(Rotation.from_rotvec(p[0:3]).as_matrix(), p[3:6])
    return ExtrinsicsResult(cameras, reproj, used, X, init_K, worst)
