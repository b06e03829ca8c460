"""Our re-implementation of the public release's action-image decoder, kept as a baseline.

What the release does (METHOD.md §3), and therefore what this does, frame by frame:

1. per view, a soft-argmax of the red heatmap (and of the green one) over the whole image;
2. one ray from the first view through its red soft-argmax;
3. a sweep of ``num_depths`` (64) camera depths along that ray, each candidate point scored by
   the product of the heatmap values sampled (bilinearly) at its projection in every view;
4. the best depth gives the position; the same for the green point gives one direction
   ``x̂ = norm(P_norm − P_pos)``. Roll about that axis and the gripper are not recovered.

It is written here from that description (the release's code is not copied) and processes one
frame at a time, as the release's decoder does, so that its accuracy and cost can be compared
with :class:`~actionimages.codec.codec.ActionImageCodec.decode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from actionimages.codec.camera import Camera
from actionimages.errors import ActionImagesError


@dataclass
class ReferenceResult:
    """Output of :meth:`ReleaseDecoder.decode`.

    Attributes:
        positions: (T, 3) decoded ``P_pos`` in metres.
        directions: (T, 3) unit tool x axis (``P_norm − P_pos`` normalised).
        scores: (T, 2) best sweep score (product of heatmaps) for the red and green points.
    """

    positions: np.ndarray
    directions: np.ndarray
    scores: np.ndarray


class ReleaseDecoder:
    """The release's 5-DoF decoder (soft-argmax, ray from view 1, depth sweep).

    Args:
        cameras: V static :class:`Camera` sharing one image size.
        depth_range: (near, far) camera-1 depths in metres swept along the ray.
        num_depths: number of depth samples (the release uses 64-512; the brief's baseline 64).
        temperature: soft-argmax sharpness β in ``softmax(β·heatmap)``.
    """

    def __init__(
        self,
        cameras: Sequence[Camera],
        depth_range: tuple[float, float] = (0.3, 3.0),
        num_depths: int = 64,
        temperature: float = 50.0,
    ) -> None:
        if len(cameras) < 2 or not all(isinstance(c, Camera) for c in cameras):
            raise ActionImagesError("ReleaseDecoder needs at least two static Camera objects")
        if len({(c.width, c.height) for c in cameras}) != 1:
            raise ActionImagesError("all cameras must share one image size")
        near, far = float(depth_range[0]), float(depth_range[1])
        if not 0 < near < far:
            raise ActionImagesError(f"depth_range must satisfy 0 < near < far, got {depth_range}")
        self.cameras = list(cameras)
        self.width, self.height = cameras[0].width, cameras[0].height
        self.depths = torch.linspace(near, far, int(num_depths), dtype=torch.float64)
        self.temperature = float(temperature)

    def _soft_argmax(self, heat: torch.Tensor) -> torch.Tensor:
        """Heatmaps (V, H, W) -> expected pixel (V, 2) under softmax(β·heat)."""
        V, H, W = heat.shape
        prob = torch.softmax(self.temperature * heat.reshape(V, -1), -1).reshape(V, H, W)
        u = (prob.sum(1) * torch.arange(W, dtype=heat.dtype)).sum(-1)
        v = (prob.sum(2) * torch.arange(H, dtype=heat.dtype)).sum(-1)
        return torch.stack([u, v], -1)

    def _sweep(self, heat: torch.Tensor, uv0: torch.Tensor) -> tuple[np.ndarray, float]:
        """Best point on view 1's ray through ``uv0`` scored by the product of ``heat`` (V, H, W)."""
        cam0 = self.cameras[0]
        d = self.depths.numpy()
        pts = cam0.unproject(np.broadcast_to(uv0.double().numpy(), (d.size, 2)), d)  # (D, 3)
        score = torch.ones(d.size, dtype=torch.float64)
        for v, cam in enumerate(self.cameras):
            uv, depth = cam.project(pts)
            # grid_sample's align_corners=True maps -1/+1 to the first/last pixel centres.
            gx = 2 * uv[:, 0] / (self.width - 1) - 1
            gy = 2 * uv[:, 1] / (self.height - 1) - 1
            grid = torch.as_tensor(np.stack([gx, gy], -1), dtype=heat.dtype)[None, None]
            s = F.grid_sample(heat[v][None, None], grid, align_corners=True, padding_mode="zeros")
            s = s.reshape(-1).double() * torch.as_tensor(depth > 0, dtype=torch.float64)
            score = score * s
        k = int(score.argmax())
        return pts[k], float(score[k])

    def decode(self, images: np.ndarray | torch.Tensor) -> ReferenceResult:
        """Decode images (V, T, H, W, 3) in [0, 1] frame by frame."""
        x = torch.as_tensor(images)
        if (
            x.ndim != 5
            or x.shape[0] != len(self.cameras)
            or tuple(x.shape[2:]) != (self.height, self.width, 3)
        ):
            raise ActionImagesError(
                f"images must have shape (V={len(self.cameras)}, T, {self.height}, {self.width}, 3), "
                f"got {tuple(x.shape)}"
            )
        x = x.to(torch.float32)
        T = x.shape[1]
        pos = np.zeros((T, 3))
        dirs = np.zeros((T, 3))
        scores = np.zeros((T, 2))
        for t in range(T):
            pts = []
            for ch in (0, 1):  # red: position, green: tool x axis
                heat = x[:, t, :, :, ch].contiguous()
                uv = self._soft_argmax(heat)
                p, s = self._sweep(heat, uv[0])
                pts.append(p)
                scores[t, ch] = s
            pos[t] = pts[0]
            dx = pts[1] - pts[0]
            dirs[t] = dx / max(np.linalg.norm(dx), 1e-12)
        return ReferenceResult(positions=pos, directions=dirs, scores=scores)
