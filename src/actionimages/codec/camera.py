"""Calibrated pinhole cameras (OpenCV convention: x right, y down, z forward).

A :class:`Camera` holds intrinsics ``K`` (3×3), **camera-to-world** extrinsics (4×4) and the
image size. Pixel centres sit at integer coordinates: ``u = fx·x/z + cx``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from actionimages.errors import ActionImagesError

RIGID_TOL = 1e-4


def _finite_matrix(x: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x)
    if not np.issubdtype(arr.dtype, np.number):
        raise ActionImagesError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.shape != shape:
        raise ActionImagesError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ActionImagesError(f"{name} contains NaN or inf")
    return arr


@dataclass(frozen=True, eq=False)
class Camera:
    """A calibrated pinhole camera.

    Args:
        K: intrinsics (3, 3) with positive focal lengths.
        cam_to_world: rigid transform (4, 4) from camera to world coordinates.
        width, height: image size in pixels.
    """

    K: np.ndarray
    cam_to_world: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        K = _finite_matrix(self.K, (3, 3), "K")
        T = _finite_matrix(self.cam_to_world, (4, 4), "cam_to_world")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ActionImagesError(f"focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
        if abs(K[0, 1]) > 1e-9 or np.abs(K[2] - [0, 0, 1]).max() > 1e-9 or abs(K[1, 0]) > 1e-9:
            raise ActionImagesError(f"K must be [[fx,0,cx],[0,fy,cy],[0,0,1]], got {K.tolist()}")
        R = T[:3, :3]
        if (
            np.abs(T[3] - [0, 0, 0, 1]).max() > RIGID_TOL
            or np.abs(R.T @ R - np.eye(3)).max() > RIGID_TOL
            or abs(np.linalg.det(R) - 1.0) > RIGID_TOL
        ):
            raise ActionImagesError(
                "cam_to_world is not rigid: its rotation must be orthonormal with det +1 "
                "and its last row [0, 0, 0, 1]"
            )
        w, h = int(self.width), int(self.height)
        if w <= 0 or h <= 0 or w != self.width or h != self.height:
            raise ActionImagesError(f"image size must be positive integers, got {self.width}×{self.height}")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "cam_to_world", T)
        object.__setattr__(self, "width", w)
        object.__setattr__(self, "height", h)

    # ------------------------------------------------------------------ basics
    @property
    def world_to_cam(self) -> np.ndarray:
        """World-to-camera transform (4, 4)."""
        R, t = self.cam_to_world[:3, :3], self.cam_to_world[:3, 3]
        out = np.eye(4)
        out[:3, :3] = R.T
        out[:3, 3] = -R.T @ t
        return out

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates (3,)."""
        return self.cam_to_world[:3, 3].copy()

    @classmethod
    def look_at(
        cls,
        eye: np.ndarray,
        target: np.ndarray,
        up: np.ndarray = (0.0, 0.0, 1.0),
        fov_y_deg: float = 60.0,
        width: int = 128,
        height: int = 128,
    ) -> Camera:
        """A camera at ``eye`` looking at ``target`` with vertical field of view ``fov_y_deg``."""
        eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
        z = target - eye
        if np.linalg.norm(z) < 1e-9:
            raise ActionImagesError("look_at: eye and target coincide")
        z /= np.linalg.norm(z)
        x = np.cross(z, up)
        if np.linalg.norm(x) < 1e-6:  # looking along `up`: pick any perpendicular
            x = np.cross(z, [0.0, 1.0, 0.0] if abs(z[1]) < 0.9 else [1.0, 0.0, 0.0])
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        T = np.eye(4)
        T[:3, :3] = np.stack([x, y, z], axis=1)
        T[:3, 3] = eye
        f = 0.5 * height / np.tan(np.deg2rad(fov_y_deg) / 2)
        K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])
        return cls(K, T, width, height)

    # ------------------------------------------------------------ projection
    def project(self, points: np.ndarray | torch.Tensor) -> tuple[Any, Any]:
        """Project world points (..., 3) to pixels.

        Returns ``(uv, depth)``: ``uv`` (..., 2) pixel coordinates and ``depth`` (...,) the
        z-coordinate in the camera frame; ``depth <= 0`` means the point is behind the camera
        (its ``uv`` is then meaningless). Works on numpy arrays and torch tensors alike.
        """
        if points.shape[-1] != 3:
            raise ActionImagesError(f"points must have last dimension 3, got shape {tuple(points.shape)}")
        W2C, K = self.world_to_cam, self.K
        if isinstance(points, torch.Tensor):
            W2C = torch.as_tensor(W2C, dtype=points.dtype, device=points.device)
            K = torch.as_tensor(K, dtype=points.dtype, device=points.device)
        pc = points @ W2C[:3, :3].T + W2C[:3, 3]
        depth = pc[..., 2]
        safe = depth.clip(min=1e-9) if isinstance(depth, torch.Tensor) else np.maximum(depth, 1e-9)
        u = K[0, 0] * pc[..., 0] / safe + K[0, 2]
        v = K[1, 1] * pc[..., 1] / safe + K[1, 2]
        stack = torch.stack if isinstance(points, torch.Tensor) else np.stack
        return stack([u, v], -1), depth

    def pixel_rays(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World rays through pixels ``uv`` (..., 2): ``(origins (..., 3), unit directions (..., 3))``."""
        uv = np.asarray(uv, dtype=np.float64)
        if uv.shape[-1] != 2:
            raise ActionImagesError(f"pixels must have last dimension 2, got shape {uv.shape}")
        K = self.K
        d_cam = np.stack(
            [(uv[..., 0] - K[0, 2]) / K[0, 0], (uv[..., 1] - K[1, 2]) / K[1, 1], np.ones(uv.shape[:-1])], -1
        )
        d = d_cam @ self.cam_to_world[:3, :3].T
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        return np.broadcast_to(self.center, d.shape).copy(), d

    def unproject(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`project`: pixels (..., 2) at camera depths (...,) -> world points (..., 3)."""
        uv = np.asarray(uv, dtype=np.float64)
        depth = np.asarray(depth, dtype=np.float64)
        K = self.K
        pc = np.stack(
            [(uv[..., 0] - K[0, 2]) / K[0, 0] * depth, (uv[..., 1] - K[1, 2]) / K[1, 1] * depth, depth], -1
        )
        return pc @ self.cam_to_world[:3, :3].T + self.cam_to_world[:3, 3]

    # ------------------------------------------------------- crop and resize
    def crop_resize(self, width: int, height: int) -> Camera:
        """The camera after a centre crop to ``width/height``'s aspect ratio and a resize to it.

        With crop offsets (dx, dy) and scales (sx, sy): fx' = fx·sx, fy' = fy·sy,
        cx' = (cx − dx)·sx, cy' = (cy − dy)·sy (METHOD.md §2).

        Pixel convention: this maps continuous image coordinates by ``u' = (u − dx)·sx``, which
        is exact when pixel ``i`` covers ``[i, i + 1)`` (the "corner" convention that area and
        ``align_corners=False`` resizers use). Read with pixel *centres* at integers, the exact
        map would be ``u' = (u + 0.5 − dx)·sx − 0.5``: the formula here is off by
        ``0.5·(sx − 1)`` px (e.g. −0.375 px for a 4× downscale), far below a blob's σ. We keep
        METHOD.md's formula so that intrinsics agree with the release's data.
        """
        dx, dy, cw, ch = center_crop_box(self.width, self.height, width, height)
        sx, sy = width / cw, height / ch
        K = self.K.copy()
        K[0, 0] *= sx
        K[1, 1] *= sy
        K[0, 2] = (K[0, 2] - dx) * sx
        K[1, 2] = (K[1, 2] - dy) * sy
        return Camera(K, self.cam_to_world, width, height)

    # ---------------------------------------------------------- Plücker map
    def plucker(self, reference: Camera | None = None) -> np.ndarray:
        """Per-pixel Plücker rays (H, W, 6) float32: unit direction d and moment o × d.

        Both are expressed in ``reference``'s camera frame (default: this camera), so a
        multiview clip is conditioned relative to its first view (METHOD.md §4).
        """
        ref = self if reference is None else reference
        u, v = np.meshgrid(np.arange(self.width, dtype=np.float64), np.arange(self.height, dtype=np.float64))
        origins, dirs = self.pixel_rays(np.stack([u, v], -1))
        W2R = ref.world_to_cam
        d = dirs @ W2R[:3, :3].T
        o = origins @ W2R[:3, :3].T + W2R[:3, 3]
        return np.concatenate([d, np.cross(o, d)], -1).astype(np.float32)

    # ------------------------------------------------------------ serialise
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with ``K``, ``cam_to_world``, ``width``, ``height``."""
        return {
            "K": self.K.tolist(),
            "cam_to_world": self.cam_to_world.tolist(),
            "width": self.width,
            "height": self.height,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Camera:
        """Inverse of :meth:`to_dict`; a missing key is named in the error."""
        missing = [k for k in ("K", "cam_to_world", "width", "height") if k not in d]
        if missing:
            raise ActionImagesError(f"camera calibration is missing {missing}")
        return cls(np.asarray(d["K"]), np.asarray(d["cam_to_world"]), int(d["width"]), int(d["height"]))

    def __repr__(self) -> str:
        fx, fy, cx, cy = self.K[0, 0], self.K[1, 1], self.K[0, 2], self.K[1, 2]
        c = self.center
        return (
            f"Camera({self.width}x{self.height}, f=({fx:.1f},{fy:.1f}), c=({cx:.1f},{cy:.1f}), "
            f"centre=({c[0]:.3f},{c[1]:.3f},{c[2]:.3f}))"
        )


def center_crop_box(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[float, float, float, float]:
    """Centre crop of a ``src_w×src_h`` image to ``dst_w/dst_h``'s aspect: ``(dx, dy, crop_w, crop_h)``."""
    if min(src_w, src_h, dst_w, dst_h) <= 0:
        raise ActionImagesError(f"sizes must be positive: source {src_w}×{src_h}, target {dst_w}×{dst_h}")
    target = dst_w / dst_h
    if src_w / src_h > target:
        ch = float(src_h)
        cw = src_h * target
    else:
        cw = float(src_w)
        ch = src_w / target
    return (src_w - cw) / 2.0, (src_h - ch) / 2.0, cw, ch


def camera_ring(
    centre: np.ndarray,
    look_at: np.ndarray,
    views: int,
    radius: float,
    azimuth_span_deg: float,
    elevation_deg: float,
    elevation_step_deg: float,
    fov_y_deg: float,
    size: int,
) -> list[Camera]:
    """``views`` square cameras ``radius`` from ``centre``, spread evenly over ``azimuth_span_deg``
    around the x axis, at ``elevation_deg`` (odd views ``elevation_step_deg`` higher), all looking at
    ``look_at``. A calibrated rig for demos and benchmarks."""
    centre, look_at = np.asarray(centre, dtype=np.float64), np.asarray(look_at, dtype=np.float64)
    cams = []
    for i in range(views):
        frac = i / (views - 1) - 0.5 if views > 1 else 0.0
        az = np.deg2rad(azimuth_span_deg * frac)
        el = np.deg2rad(elevation_deg + elevation_step_deg * (i % 2))
        eye = centre + radius * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        cams.append(Camera.look_at(eye, look_at, fov_y_deg=fov_y_deg, width=size, height=size))
    return cams


def as_camera(value: Camera | Mapping[str, Any]) -> Camera:
    """``value`` itself if it is a :class:`Camera`, else the camera of a calibration mapping with
    :meth:`Camera.to_dict`'s keys (lists or arrays), such as the sim's ``obs["cameras"][name]``."""
    if isinstance(value, Camera):
        return value
    if isinstance(value, Mapping):
        return Camera.from_dict(value)
    raise ActionImagesError(
        "expected a Camera or a calibration mapping (K, cam_to_world, width, height), "
        f"got {type(value).__name__}"
    )
