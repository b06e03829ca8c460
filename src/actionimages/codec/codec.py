"""The action-image codec: 7-DoF actions <-> multiview Gaussian-heatmap images (METHOD.md §2-3).

Encoding draws, for every view and frame, the three semantic points of the end-effector pose
(``P_pos`` red, ``P_norm`` green, ``P_up`` blue) as isotropic Gaussian blobs of standard
deviation ``σ = sigma_frac · min(H, W)`` pixels and peak 1, and writes the gripper openness into
the blue background (``B ≤ 0.25`` becomes 0.25 when open, 0 when closed).

Decoding recovers the full 7-DoF action:

1. per view, frame and channel: a robust background level (median of a block-averaged copy), a
   coarse peak (argmax of that copy), then a weighted least-squares Gaussian fit on the log
   intensities in a window around the peak (re-centred once), giving a sub-pixel centre, width,
   amplitude and a confidence;
2. per point: least-squares triangulation of the rays of all confident views, weighted so the
   cost approximates the reprojection error in pixels; the worst view is dropped while it is
   inconsistent (reprojection error over a threshold) and more than two views remain;
3. orientation by Gram-Schmidt from the three points, openness from the blue background;
4. frames with fewer than two good views for any point are flagged invalid and their pose is
   interpolated (position linearly, rotation by slerp) from valid neighbours in time.

Everything is vectorised over leading batch dimensions, views, frames and channels: the image
work runs in torch on the input's device, the small geometric part in numpy float64.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from actionimages.codec.camera import Camera
from actionimages.codec.poses import (
    QUAT_NORM_TOL,
    matrix_to_euler,
    matrix_to_quat,
    quat_to_matrix,
    rotation_from_points,
)
from actionimages.errors import ActionImagesError

OPEN_LEVEL = 0.25  # blue background when the gripper is open (METHOD.md §2)
ACTION_FIELDS = {
    7: ("x", "y", "z", "rx", "ry", "rz", "openness"),
    8: ("x", "y", "z", "qx", "qy", "qz", "qw", "openness"),
}
OPEN_THRESHOLD = 0.5  # openness above this is drawn as "open"
RANGE_TOL = 1e-4  # image values may leave [0, 1] by float rounding only
MIN_DEPTH = 1e-6  # a point at or behind this camera depth draws no blob


# --------------------------------------------------------------------------- results
@dataclass
class DecodeResult:
    """What :meth:`ActionImageCodec.decode` recovers (numpy arrays; ``...`` = input batch dims).

    Attributes:
        actions: (..., T, 7) float64 ``[x, y, z, rx, ry, rz, openness]``; openness is 0 or 1.
            Poses of invalid frames are interpolated from valid neighbours (NaN if no frame of
            the clip is valid); openness is measured in every frame.
        valid: (..., T) bool, True where all three points were triangulated from ≥ 2 good views.
        confidence: (..., T, V, 3) float in [0, 1] per view and channel (R, G, B point).
        reprojection_error: (..., T, 3) RMS pixel error of each triangulated point over the
            views used (NaN where a point could not be triangulated).
        points: (..., T, 3, 3) triangulated ``P_pos, P_norm, P_up`` (NaN where not triangulated).
        peaks: (..., T, V, 3, 2) sub-pixel blob centres (u, v) per view and channel.
        used_views: (..., T, V, 3) bool, the views each point's triangulation kept.
        openness_level: (..., T, V) blue background level per view (≈ 0.25 open, ≈ 0 closed).
    """

    actions: np.ndarray
    valid: np.ndarray
    confidence: np.ndarray
    reprojection_error: np.ndarray
    points: np.ndarray
    peaks: np.ndarray
    used_views: np.ndarray
    openness_level: np.ndarray


# -------------------------------------------------------------- torch pose helpers
def _euler_to_matrix_t(e: torch.Tensor) -> torch.Tensor:
    """SciPy extrinsic "xyz" Euler (..., 3) -> (..., 3, 3): R = Rz(c) Ry(b) Rx(a)."""
    ca, cb, cc = torch.cos(e).unbind(-1)
    sa, sb, sc = torch.sin(e).unbind(-1)
    rows = [
        [cc * cb, cc * sb * sa - sc * ca, cc * sb * ca + sc * sa],
        [sc * cb, sc * sb * sa + cc * ca, sc * sb * ca - cc * sa],
        [-sb, cb * sa, cb * ca],
    ]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def _quat_to_matrix_t(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (..., 4) xyzw -> (..., 3, 3)."""
    x, y, z, w = q.unbind(-1)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def _action_field(index: list[int], width: int) -> str:
    """``[b, t, k]`` of an action array -> ``"openness of frame 3 of sequence (1,)"``."""
    names = ACTION_FIELDS[width]
    *lead, t, k = index
    where = f"{names[k]} of frame {t}"
    return f"{where} of sequence {tuple(lead)}" if lead else where


def _validate_actions(actions: Any) -> torch.Tensor:
    """Actions (..., T, 7|8), numpy or torch -> float64 torch tensor on the input's device."""
    if isinstance(actions, torch.Tensor):
        a = actions
        if a.dtype == torch.bool or a.is_complex():
            raise ActionImagesError(f"actions must be a real numeric array, got dtype {a.dtype}")
    else:
        arr = np.asarray(actions)
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
            raise ActionImagesError(f"actions must be a real numeric array, got dtype {arr.dtype}")
        a = torch.from_numpy(np.ascontiguousarray(arr))
    if a.ndim < 2 or a.shape[-1] not in (7, 8) or a.shape[-2] < 1:
        raise ActionImagesError(
            "actions must have shape (..., T, 7) [x,y,z,rx,ry,rz,open] or (..., T, 8) "
            f"[x,y,z,qx,qy,qz,qw,open] with T >= 1, got {tuple(a.shape)}"
        )
    a = a.to(torch.float64)
    if not bool(torch.isfinite(a).all()):
        bad = torch.nonzero(~torch.isfinite(a))[0].tolist()
        raise ActionImagesError(
            f"actions contain NaN or inf: {_action_field(bad, a.shape[-1])} is {a[tuple(bad)].item()}"
        )
    open_ = a[..., -1]
    outside = (open_ < 0) | (open_ > 1)
    if bool(outside.any()):
        bad = torch.nonzero(outside)[0].tolist() + [a.shape[-1] - 1]
        raise ActionImagesError(
            f"actions: openness must be in [0, 1] (0 closed, 1 open), but {_action_field(bad, a.shape[-1])} "
            f"is {a[tuple(bad)].item()} ({int(outside.sum())} frame(s) outside)"
        )
    if a.shape[-1] == 8:
        norms = torch.linalg.vector_norm(a[..., 3:7], dim=-1)
        if bool((norms < 1e-8).any()):
            raise ActionImagesError("actions contain a zero quaternion: cannot define a rotation")
        off = (norms - 1.0).abs()
        if bool((off > QUAT_NORM_TOL).any()):
            worst = float(norms.reshape(-1)[off.reshape(-1).argmax()])
            raise ActionImagesError(
                f"actions contain a non-unit quaternion (norm {worst:.4f}; tolerance ±{QUAT_NORM_TOL})"
            )
    return a


def _semantic_points_t(a: torch.Tensor, axis_length: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated actions (..., 7|8) -> (points (..., 3, 3) = P_pos, P_norm, P_up; openness (...,))."""
    if a.shape[-1] == 7:
        R, open_ = _euler_to_matrix_t(a[..., 3:6]), a[..., 6]
    else:
        q = a[..., 3:7]
        R, open_ = _quat_to_matrix_t(q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)), a[..., 7]
    p = a[..., :3]
    pts = torch.stack([p, p + axis_length * R[..., :, 0], p - axis_length * R[..., :, 2]], -2)
    return pts, open_


# ------------------------------------------------------------------ the codec
class ActionImageCodec:
    """Encode 7-DoF actions as multiview action images and decode them back.

    Args:
        cameras: V :class:`Camera` (static), or V sequences of T :class:`Camera` (one per frame).
            All cameras must share one image size H×W.
        sigma_frac: blob standard deviation as a fraction of ``min(H, W)`` (METHOD.md: 0.05).
        axis_length: distance L in metres of ``P_norm`` and ``P_up`` from ``P_pos`` (0.10).
        reproj_threshold_px: a view whose reprojection error exceeds this is inconsistent;
            default ``max(1.0, 0.08·σ)``.
        min_confidence: per-view, per-channel confidence below which a peak is not used.
    """

    def __init__(
        self,
        cameras: Sequence[Camera] | Sequence[Sequence[Camera]],
        sigma_frac: float = 0.05,
        axis_length: float = 0.10,
        reproj_threshold_px: float | None = None,
        min_confidence: float = 0.3,
    ) -> None:
        if isinstance(cameras, Camera) or not isinstance(cameras, Sequence) or len(cameras) == 0:
            raise ActionImagesError("cameras must be a non-empty sequence of Camera (or of per-frame lists)")
        if all(isinstance(c, Camera) for c in cameras):
            grid = [[c] for c in cameras]
            self.per_frame = False
        elif all(isinstance(c, Sequence) and not isinstance(c, Camera | str) for c in cameras):
            grid = [list(c) for c in cameras]
            lengths = {len(c) for c in grid}
            if len(lengths) != 1 or 0 in lengths:
                raise ActionImagesError(
                    "per-frame cameras must give every view the same number (≥1) of frames, "
                    f"got {sorted(lengths)}"
                )
            bad = [type(x).__name__ for c in grid for x in c if not isinstance(x, Camera)]
            if bad:
                raise ActionImagesError(f"per-frame cameras must all be Camera, got {bad[0]}")
            self.per_frame = True
        else:
            raise ActionImagesError(
                "cameras must be V Camera objects or V lists of per-frame Camera objects, not a mixture"
            )
        sizes = {(c.width, c.height) for row in grid for c in row}
        if len(sizes) != 1:
            raise ActionImagesError(f"all cameras must share one image size, got W×H {sorted(sizes)}")
        if not (isinstance(sigma_frac, numbers.Real) and 0 < sigma_frac < 0.5):
            raise ActionImagesError(f"sigma_frac must be in (0, 0.5), got {sigma_frac}")
        if not (isinstance(axis_length, numbers.Real) and axis_length > 0 and math.isfinite(axis_length)):
            raise ActionImagesError(f"axis_length must be a positive number, got {axis_length}")
        self.cameras = grid if self.per_frame else [row[0] for row in grid]
        self.num_views = len(grid)
        self.num_frames = len(grid[0]) if self.per_frame else None
        (self.width, self.height) = sizes.pop()
        self.sigma_frac = float(sigma_frac)
        self.axis_length = float(axis_length)
        self.sigma = self.sigma_frac * min(self.width, self.height)
        self.reproj_threshold_px = (
            max(1.0, 0.08 * self.sigma) if reproj_threshold_px is None else float(reproj_threshold_px)
        )
        self.min_confidence = float(min_confidence)
        # Stacked calibration (V, Tc, ...), Tc = 1 for static cameras: one batched projection.
        self._K = np.stack([[c.K for c in row] for row in grid])
        self._c2w = np.stack([[c.cam_to_world for c in row] for row in grid])
        self._w2c = np.stack([[c.world_to_cam for c in row] for row in grid])

    def __repr__(self) -> str:
        kind = f"per-frame T={self.num_frames}" if self.per_frame else "static"
        return (
            f"ActionImageCodec(V={self.num_views} {kind}, {self.width}x{self.height}, "
            f"sigma={self.sigma:.2f}px, L={self.axis_length})"
        )

    # ------------------------------------------------------------- geometry
    def _check_frames(self, T: int, what: str) -> None:
        if self.per_frame and T != self.num_frames:
            raise ActionImagesError(
                f"{what} has T={T} frames but the per-frame cameras have {self.num_frames}"
            )

    def project_points(self, points: Any) -> tuple[Any, Any]:
        """Project world points (..., T, P, 3) into every view.

        Returns ``(uv (..., V, T, P, 2), depth (..., V, T, P))`` (numpy or torch like the input);
        ``depth <= 0`` means behind the camera.
        """
        is_t = isinstance(points, torch.Tensor)
        pts = points if is_t else torch.from_numpy(np.asarray(points, dtype=np.float64))
        if pts.ndim < 3 or pts.shape[-1] != 3:
            raise ActionImagesError(f"points must have shape (..., T, P, 3), got {tuple(pts.shape)}")
        self._check_frames(pts.shape[-3], "points")
        uv, depth = self._project_t(pts.to(torch.float64))
        if is_t:
            return uv, depth
        return uv.numpy(), depth.numpy()

    def _project_t(self, pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """float64 points (..., T, P, 3) -> uv (..., V, T, P, 2), depth (..., V, T, P)."""
        W2C = torch.as_tensor(self._w2c, dtype=torch.float64, device=pts.device)  # (V, Tc, 4, 4)
        K = torch.as_tensor(self._K, dtype=torch.float64, device=pts.device)
        p = pts.unsqueeze(-4)  # (..., 1, T, P, 3)
        pc = torch.einsum("vtij,...vtpj->...vtpi", W2C[..., :3, :3], p) + W2C[:, :, None, :3, 3]
        depth = pc[..., 2]
        z = depth.clamp(min=MIN_DEPTH)
        fx, fy = K[:, :, None, 0, 0], K[:, :, None, 1, 1]
        cx, cy = K[:, :, None, 0, 2], K[:, :, None, 1, 2]
        uv = torch.stack([fx * pc[..., 0] / z + cx, fy * pc[..., 1] / z + cy], -1)
        return uv, depth

    # --------------------------------------------------------------- encode
    def encode(self, actions: Any) -> Any:
        """Draw actions as action images.

        Args:
            actions: (..., T, 7) Euler or (..., T, 8) quaternion actions, numpy or torch; finite,
                openness (the last value) in [0, 1], quaternions of unit norm.
        Returns:
            float32 images (..., V, T, H, W, 3) in [0, 1]; numpy for numpy input, torch on the
            input's device for torch input.
        """
        is_t = isinstance(actions, torch.Tensor)
        a = _validate_actions(actions)
        self._check_frames(a.shape[-2], "actions")
        pts, open_ = _semantic_points_t(a, self.axis_length)  # (..., T, 3, 3), (..., T)
        uv, depth = self._project_t(pts)  # (..., V, T, 3, 2), (..., V, T, 3)
        img = self._render(uv, depth, open_)
        return img if is_t else img.numpy()

    def _render(self, uv: torch.Tensor, depth: torch.Tensor, open_: torch.Tensor) -> torch.Tensor:
        dev, H, W = uv.device, self.height, self.width
        # Separable Gaussians: G(u, v) = gx(u) gy(v); channel last so the product lands in layout.
        inv = 1.0 / (2.0 * self.sigma**2)
        u = uv[..., 0].to(torch.float32).unsqueeze(-2)  # (..., V, T, 1, 3)
        v = uv[..., 1].to(torch.float32).unsqueeze(-2)
        gx = torch.exp(-((torch.arange(W, device=dev, dtype=torch.float32)[:, None] - u) ** 2) * inv)
        gy = torch.exp(-((torch.arange(H, device=dev, dtype=torch.float32)[:, None] - v) ** 2) * inv)
        gx = gx * (depth > MIN_DEPTH).to(torch.float32).unsqueeze(-2)  # behind the camera: no blob
        img = gy.unsqueeze(-2) * gx.unsqueeze(-3)  # (..., V, T, H, W, 3)
        level = torch.where(open_ > OPEN_THRESHOLD, OPEN_LEVEL, 0.0).to(torch.float32)
        level = level.unsqueeze(-2).expand(uv.shape[:-2])[..., None, None]  # (..., V, T, 1, 1)
        # In place on the strided blue view (no second 258 MB pass at 512²): values ≤ 0.25 -> 0,
        # then raise them to the frame's level; blob values > 0.25 exceed either level and stay.
        blue = img[..., 2]
        F.threshold(blue, OPEN_LEVEL, 0.0, inplace=True)
        blue.clamp_(min=level)
        return img

    # --------------------------------------------------------------- decode
    def _validate_images(self, images: Any) -> torch.Tensor:
        if isinstance(images, torch.Tensor):
            x = images
            if not x.is_floating_point():
                raise ActionImagesError(
                    f"images must be floating point in [0, 1], got dtype {x.dtype} (divide uint8 by 255)"
                )
        else:
            arr = np.asarray(images)
            if not np.issubdtype(arr.dtype, np.floating):
                raise ActionImagesError(
                    f"images must be floating point in [0, 1], got dtype {arr.dtype} (divide uint8 by 255)"
                )
            x = torch.from_numpy(np.ascontiguousarray(arr))
        V, H, W = self.num_views, self.height, self.width
        if x.ndim < 5 or tuple(x.shape[-5:]) != (V, x.shape[-4], H, W, 3) or x.shape[-4] < 1:
            raise ActionImagesError(
                f"images must have shape (..., V={V}, T, H={H}, W={W}, 3), got {tuple(x.shape)}"
            )
        self._check_frames(x.shape[-4], "images")
        if x.dtype != torch.float32:
            x = x.to(torch.float32)
        lo, hi = torch.aminmax(x)  # NaN propagates into both, so one pass checks finiteness too
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ActionImagesError("images contain NaN or inf")
        if lo < -RANGE_TOL or hi > 1 + RANGE_TOL:
            raise ActionImagesError(f"image values must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}]")
        return x

    def decode(self, images: Any) -> DecodeResult:
        """Recover actions from action images.

        Args:
            images: float (..., V, T, H, W, 3) in [0, 1], numpy or torch (any device).
        Returns:
            :class:`DecodeResult` of numpy arrays.
        """
        x = self._validate_images(images)
        batch = tuple(x.shape[:-5])
        V, T, H, W = x.shape[-5], x.shape[-4], self.height, self.width
        x = x.reshape(-1, H, W, 3)  # M = prod(batch)·V·T maps, channel last
        peaks, conf, level = _find_peaks(x, self.sigma)
        # (M, 3, 2), (M, 3), (M,) -> (..., V, T, ...) -> (..., T, V, ...)
        peaks = peaks.cpu().numpy().reshape(*batch, V, T, 3, 2).swapaxes(-4, -3)
        conf = conf.cpu().numpy().reshape(*batch, V, T, 3).swapaxes(-3, -2)
        level = level.cpu().numpy().reshape(*batch, V, T).swapaxes(-2, -1)

        good = conf >= self.min_confidence
        # Peaks beyond the image border are extrapolations: dropped (METHOD.md §3).
        inside = (
            (peaks[..., 0] >= -0.5)
            & (peaks[..., 0] <= W - 0.5)
            & (peaks[..., 1] >= -0.5)
            & (peaks[..., 1] <= H - 0.5)
        )
        good &= inside & np.isfinite(peaks).all(-1)
        peaks = np.where(np.isfinite(peaks), peaks, 0.0)
        points, err, used = self._triangulate(peaks, good)  # (..., T, 3, 3), (..., T, 3), (..., T, V, 3)
        valid = np.all(used.sum(-2) >= 2, axis=-1)

        R = rotation_from_points(points[..., 0, :], points[..., 1, :], points[..., 2, :])
        # Openness from the views that see the action at all; all views if none does.
        seen = good.any(-1)
        w = np.where(seen.any(-1, keepdims=True), seen, True).astype(np.float64)
        mean_level = (level * w).sum(-1) / w.sum(-1)
        openness = (mean_level > OPEN_LEVEL / 2).astype(np.float64)

        pos, R = _interpolate_invalid(points[..., 0, :], R, valid)
        euler = np.full(pos.shape, np.nan)
        ok = np.isfinite(R).all(axis=(-1, -2))
        if ok.any():
            euler[ok] = matrix_to_euler(R[ok])
        actions = np.concatenate([pos, euler, openness[..., None]], -1)
        return DecodeResult(
            actions=actions,
            valid=valid,
            confidence=conf,
            reprojection_error=err,
            points=points,
            peaks=peaks,
            used_views=used,
            openness_level=level,
        )

    def _triangulate(self, peaks: np.ndarray, good: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Peaks (..., T, V, 3, 2) + good (..., T, V, 3) -> points, RMS reprojection error, used views.

        Returns points (..., T, 3, 3) (NaN where fewer than two consistent views), RMS pixel
        reprojection error (..., T, 3) and the views used (..., T, V, 3).
        """
        V, thr = self.num_views, self.reproj_threshold_px
        K = np.swapaxes(self._K, 0, 1)[:, :, None]  # (Tc, V, 1, 3, 3)
        c2w = np.swapaxes(self._c2w, 0, 1)[:, :, None]
        w2c = np.swapaxes(self._w2c, 0, 1)[:, :, None]
        # World ray per peak: origin = camera centre, direction through the pixel.
        dc = np.stack(
            [
                (peaks[..., 0] - K[..., 0, 2]) / K[..., 0, 0],
                (peaks[..., 1] - K[..., 1, 2]) / K[..., 1, 1],
                np.ones(peaks.shape[:-1]),
            ],
            -1,
        )
        d = np.einsum("...ij,...j->...i", c2w[..., :3, :3], dc)
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        o = np.broadcast_to(c2w[..., :3, 3], d.shape)
        P = np.eye(3) - d[..., :, None] * d[..., None, :]  # projector orthogonal to each ray
        Po = np.einsum("...ij,...j->...i", P, o)
        fmean = 0.5 * (K[..., 0, 0] + K[..., 1, 1])

        def solve(used: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """LS point from the used rays, reweighted so ray distance ≈ reprojection error in px."""
            wv = used.astype(np.float64)
            ok = used.sum(-2) >= 2
            # Rays (nearly) parallel leave depth unobservable: smallest eigenvalue of Σ(I − ddᵀ)
            # over its trace is ≈ θ²/8 for two rays θ apart; below 1e-4 (θ < ~1.6°) is refused.
            A0 = np.einsum("...vp,...vpij->...pij", wv, P)
            lam = np.linalg.eigvalsh(A0)
            ok &= lam[..., 0] > 1e-4 * np.maximum(lam.sum(-1), 1e-12)
            for _ in range(2):
                ok &= (wv > 0).sum(-2) >= 2  # a view the point falls behind gets weight 0
                A = np.einsum("...vp,...vpij->...pij", wv, P)
                b = np.einsum("...vp,...vpi->...pi", wv, Po)
                # Near-parallel rays make A ill-conditioned: a tiny ridge keeps solve defined.
                A = A + 1e-12 * np.trace(A, axis1=-2, axis2=-1)[..., None, None] * np.eye(3)
                A = np.where(ok[..., None, None], A, np.eye(3))
                X = np.linalg.solve(A, b[..., None])[..., 0]
                pc = (w2c[..., :3, :3] @ X[..., None, :, :, None])[..., 0] + w2c[..., :3, 3]
                front = pc[..., 2] > 1e-9
                z = np.where(front, pc[..., 2], 1.0)
                wv = used * np.where(front, (fmean / z) ** 2, 0.0)
            uv = np.stack(
                [K[..., 0, 0] * pc[..., 0] / z + K[..., 0, 2], K[..., 1, 1] * pc[..., 1] / z + K[..., 1, 2]],
                -1,
            )
            err = np.where(front, np.linalg.norm(uv - peaks, axis=-1), np.inf)
            X[~ok] = np.nan
            err = np.where(ok[..., None, :], err, np.inf)  # not triangulated: no view is consistent
            return X, err

        def worst(err: np.ndarray, used: np.ndarray) -> np.ndarray:
            return np.where(used, err, -np.inf).max(-2)

        used = good.copy()
        X, err = solve(used)
        # While a point has an inconsistent view and > 2 views: drop the view whose removal leaves
        # the most consistent set (leave-one-out; a bad ray also pulls the good views' residuals).
        for _ in range(max(V - 2, 0)):
            n = used.sum(-2)
            bad = (worst(err, used) > thr) & (n > 2)
            if not bad.any():
                break
            best_score = np.full(bad.shape, np.inf)
            best_used = used.copy()
            for j in range(V):
                cand = used.copy()
                cand[..., j, :] = False
                _, e = solve(cand)
                score = np.where(cand.sum(-2) >= 2, worst(e, cand), np.inf)
                take = bad & used[..., j, :] & (score < best_score)
                best_score = np.where(take, score, best_score)
                best_used = np.where(take[..., None, :], cand, best_used)
            used = np.where(bad[..., None, :], best_used, used)
            X, err = solve(used)
        # Still inconsistent (e.g. two views that disagree): the point is not triangulated.
        n = used.sum(-2)
        fail = (n < 2) | (worst(err, used) > thr)
        used &= ~fail[..., None, :]
        X[fail] = np.nan
        n = used.sum(-2)
        sq = np.where(used, np.where(np.isfinite(err), err, 0.0) ** 2, 0.0).sum(-2)
        rms = np.where(n >= 2, np.sqrt(sq / np.maximum(n, 1)), np.nan)
        return X, rms, used


# ------------------------------------------------------------------ peak finding
def _find_peaks(x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sub-pixel blob centres of each channel of M maps.

    Args:
        x: float32 (M, H, W, 3) in [0, 1].
        sigma: expected blob standard deviation in pixels.
    Returns:
        peaks (M, 3, 2) (u, v) pixels, confidence (M, 3) in [0, 1], blue background level (M,).
    """
    M, H, W, _ = x.shape
    dev = x.device
    # 1. Coarse stage on a strided sample (σ ≈ 2.5 samples): reads a small part of the image.
    p = max(1, min(int(sigma // 2.5), H // 4, W // 4))
    sub = x[:, p // 2 :: p, p // 2 :: p, :].permute(0, 3, 1, 2).contiguous()  # (M, 3, h, w)
    h, w = sub.shape[-2:]
    # Background level and noise from a sparser sample: medians are the costly part here.
    q = 2 if h * w >= 1024 else 1
    few = sub[..., ::q, ::q].reshape(M, 3, -1)
    bg = few.median(-1).values  # (M, 3): the blobs cover a few percent of the image
    noise = 1.4826 * (few - bg[..., None]).abs().median(-1).values  # robust pixel-noise level
    level = bg[:, 2].clone()
    open_ = level > OPEN_LEVEL / 2
    nominal = torch.stack([torch.zeros_like(level), torch.zeros_like(level), open_ * OPEN_LEVEL], -1)
    offset = bg - nominal  # a global shift of the image (noise, generator bias), not the blob
    # A 3×3 box filter on the sample before the argmax keeps single noisy pixels from winning.
    pad = F.pad(sub, (1, 1, 1, 1), mode="replicate")
    rows = pad[..., :, :-2] + pad[..., :, 1:-1] + pad[..., :, 2:]
    smooth = ((rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]) / 9).reshape(M, 3, h * w)
    peak, idx = smooth.max(-1)
    cy = ((idx // w) * p + p // 2).to(torch.float32)
    cx = ((idx % w) * p + p // 2).to(torch.float32)
    amp0 = peak - offset  # coarse blob height above the background
    # Fit only where the blob is clearly above its floor (blue ≤ 0.25 was overwritten) and the noise.
    margin = torch.maximum(torch.tensor(0.08, device=dev), 3 * noise)
    floor = torch.stack([margin[:, 0] + 0.07, margin[:, 1] + 0.07, OPEN_LEVEL + margin[:, 2]], -1)  # (M, 3)
    # 2. Gaussian fit in a window of radius ≈ 2.2σ, sampled with stride ≈ σ/6, re-centred once.
    r = max(3, int(math.ceil(2.2 * sigma)))
    stride = max(1, int(round(sigma / 6)))
    offs = torch.arange(-r, r + 1, stride, device=dev, dtype=torch.float32)
    offs = offs - offs.mean()
    fit = None
    for _ in range(2):
        fit = _fit_window(x, cx, cy, offs, offset, floor, noise, sigma)
        ok = fit["ok"]
        cx = torch.where(ok, fit["u"].clamp(-r, W - 1 + r), cx)
        cy = torch.where(ok, fit["v"].clamp(-r, H - 1 + r), cy)
    assert fit is not None
    peaks = torch.stack([fit["u"], fit["v"]], -1)
    # 3. Confidence: blob height, width close to the drawn σ, enough pixels, a sane fit.
    s_ratio = torch.sqrt(fit["sx"] * fit["sy"]) / sigma
    width_term = torch.exp(-(torch.log(s_ratio.clamp(min=1e-6)) ** 2) / (2 * 0.4**2))
    amp = torch.minimum(fit["amp"], amp0.clamp(min=0)).clamp(0, 1)
    conf = torch.where(fit["ok"], amp * width_term * fit["fit_quality"], torch.zeros_like(amp))
    conf = torch.nan_to_num(conf, nan=0.0).clamp(0, 1)
    return peaks, conf, level


def _fit_window(
    x: torch.Tensor,
    cx: torch.Tensor,
    cy: torch.Tensor,
    offs: torch.Tensor,
    offset: torch.Tensor,
    floor: torch.Tensor,
    noise: torch.Tensor,
    sigma: float,
) -> dict[str, torch.Tensor]:
    """Weighted LS fit of log I = a·du + b·dv + c·du² + e·dv² + g around (cx, cy) for each (M, 3).

    The window is a k×k grid ``(cy + offs) × (cx + offs)``; its coordinates are separable, so the
    5×5 normal equations come from row/column power moments (two small matmuls), not a k²×5 basis.
    """
    M, H, W, _ = x.shape
    dev = x.device
    x0, y0 = torch.round(cx), torch.round(cy)
    ix = x0[..., None] + offs  # (M, 3, k)
    iy = y0[..., None] + offs
    inb = ((ix >= 0) & (ix <= W - 1))[..., None, :] & ((iy >= 0) & (iy <= H - 1))[..., :, None]  # (M,3,k,k)
    ixl = ix.clamp(0, W - 1).long()
    iyl = iy.clamp(0, H - 1).long()
    m = torch.arange(M, device=dev)[:, None, None, None]
    c = torch.arange(3, device=dev)[None, :, None, None]
    flat_idx = ((m * H + iyl[..., :, None]) * W + ixl[..., None, :]) * 3 + c
    vals = x.reshape(-1)[flat_idx] - offset[..., None, None]  # (M, 3, k, k)
    use = inb & (vals > floor[..., None, None])
    s = vals.clamp(min=1e-6)
    wgt = torch.where(use, s * s, torch.zeros_like(s))  # w = I² turns the log fit into ≈ plain LS on I
    logs = torch.log(s)
    # Coordinates in σ units (conditioning) relative to the window centre; powers 0..4.
    t = offs / sigma
    pw = torch.stack([torch.ones_like(t), t, t * t, t**3, t**4], -1)  # (k, 5)
    mom = pw.T @ wgt @ pw  # (M, 3, 5, 5): mom[a, b] = Σ w dv^a du^b
    lmom = pw.T @ (wgt * logs) @ pw
    # Basis (dv power, du power): du, dv, du², dv², 1.
    ea = [0, 1, 0, 2, 0]
    eb = [1, 0, 2, 0, 0]
    ia = torch.tensor([[i + j for j in ea] for i in ea], device=dev)
    ib = torch.tensor([[i + j for j in eb] for i in eb], device=dev)
    A = mom[..., ia, ib]  # (M, 3, 5, 5)
    rhs = lmom[..., torch.tensor(ea, device=dev), torch.tensor(eb, device=dev)][..., None]
    npix = use.sum((-1, -2))
    A = A.double()
    ridge = 1e-9 * A.diagonal(dim1=-2, dim2=-1).sum(-1) + 1e-12
    A = A + ridge[..., None, None] * torch.eye(5, device=dev, dtype=torch.float64)
    sol, info = torch.linalg.solve_ex(A, rhs.double())  # never raises: a failed solve is just not ok
    theta = torch.nan_to_num(sol[..., 0].float(), nan=0.0, posinf=0.0, neginf=0.0)
    a, b, qa, qb, g = theta.unbind(-1)
    ok = (npix >= 8) & (info == 0) & (qa < -1e-3) & (qb < -1e-3)
    qa_s = torch.where(ok, qa, -torch.ones_like(qa))
    qb_s = torch.where(ok, qb, -torch.ones_like(qb))
    du0, dv0 = -a / (2 * qa_s), -b / (2 * qb_s)
    amp = torch.exp((g - a * a / (4 * qa_s) - b * b / (4 * qb_s)).clamp(max=5.0))
    # Fit quality: weighted RMS misfit of the (separable) model in intensity.
    gu = torch.exp(a[..., None] * t + qa_s[..., None] * t * t)  # (M, 3, k) along u
    gv = torch.exp(b[..., None] * t + qb_s[..., None] * t * t + g[..., None])  # along v
    model = gv[..., :, None] * gu[..., None, :]
    resid = torch.sqrt((wgt * (vals - model) ** 2).sum((-1, -2)) / wgt.sum((-1, -2)).clamp(min=1e-12))
    quality = torch.exp(-((resid / (0.08 + 2 * noise)) ** 2))  # misfit beyond what the noise explains
    return {
        "u": x0 + du0 * sigma,
        "v": y0 + dv0 * sigma,
        "sx": sigma * torch.sqrt(-1 / (2 * qa_s)),
        "sy": sigma * torch.sqrt(-1 / (2 * qb_s)),
        "amp": amp,
        "ok": ok,
        "fit_quality": quality,
    }


# ------------------------------------------------------------ interpolation
def _interpolate_invalid(pos: np.ndarray, R: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill invalid frames (..., T) from the nearest valid ones: lerp positions, slerp rotations."""
    T = valid.shape[-1]
    t = np.arange(T)
    prev = np.maximum.accumulate(np.where(valid, t, -1), axis=-1)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(valid, t, T), -1), axis=-1), -1)
    has_p, has_n = prev >= 0, nxt < T
    prev_i = np.where(has_p, prev, np.where(has_n, nxt, 0))
    next_i = np.where(has_n, nxt, prev_i)
    span = np.maximum(next_i - prev_i, 1)
    alpha = np.where(next_i > prev_i, (t - prev_i) / span, 0.0)
    anyv = (has_p | has_n)[..., None]
    p0 = np.take_along_axis(pos, prev_i[..., None], -2)
    p1 = np.take_along_axis(pos, next_i[..., None], -2)
    pos_out = np.where(valid[..., None], pos, np.where(anyv, p0 + alpha[..., None] * (p1 - p0), np.nan))
    if valid.all():
        return pos_out, R
    q = np.zeros((*valid.shape, 4))
    q[..., 3] = 1.0
    q[valid] = matrix_to_quat(R[valid]) if valid.any() else q[valid]
    q0 = np.take_along_axis(q, prev_i[..., None], -2)
    q1 = np.take_along_axis(q, next_i[..., None], -2)
    dot = np.sum(q0 * q1, -1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot).clip(max=1.0)
    theta = np.arccos(dot)
    sin = np.sin(theta)
    a = alpha[..., None]
    small = sin < 1e-6
    w0 = np.where(small, 1 - a, np.sin((1 - a) * theta) / np.where(small, 1, sin))
    w1 = np.where(small, a, np.sin(a * theta) / np.where(small, 1, sin))
    qi = w0 * q0 + w1 * q1
    qi /= np.linalg.norm(qi, axis=-1, keepdims=True)
    Ri = quat_to_matrix(qi)
    R_out = np.where(valid[..., None, None], R, np.where(anyv[..., None], Ri, np.nan))
    return pos_out, R_out
