"""Training samples: clips of F frames × V views with action images, Plücker maps and cameras.

:class:`SampleBuilder` turns an :class:`~actionimages.data.Episode` into the sample dict of
docs/ARCHITECTURE.md. Images are centre-cropped and resized with the same geometry as
:meth:`Camera.crop_resize` (output pixel u' samples the source at u = u'/s + dx, pixel centres at
integers), with a triangle (area-like) filter when shrinking, so a 3D point projects to the same
place in the resized RGB frame and in the action image rendered with the resized camera.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from actionimages.codec.camera import Camera, center_crop_box
from actionimages.data.episode import Episode
from actionimages.errors import ActionImagesError, DataError

_MINUS_ONE = torch.tensor(-1.0)


# ----------------------------------------------------------------------------- resampling
def _axis_taps(src_len: int, dst_len: int, offset: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Sampling taps along one axis: indices (dst, K) and weights (dst, K) summing to 1.

    Output pixel j is centred on source coordinate ``j / scale + offset``; a triangle filter of
    half-width ``max(1, 1/scale)`` source pixels anti-aliases downscaling. Taps outside the image
    are dropped and the rest renormalised (edge replication would smear borders).
    """
    centre = np.arange(dst_len) / scale + offset
    half = max(1.0, 1.0 / scale)
    lo = np.floor(centre - half).astype(np.int64) + 1
    K = int(np.ceil(2 * half)) + 1
    idx = lo[:, None] + np.arange(K)[None]
    w = np.maximum(0.0, 1.0 - np.abs(idx - centre[:, None]) / half)
    w *= (idx >= 0) & (idx < src_len)
    s = w.sum(1, keepdims=True)
    # a centre beyond the border by more than `half` would have no taps: use the nearest pixel
    empty = s[:, 0] <= 0
    if np.any(empty):
        near = np.clip(np.round(centre[empty]), 0, src_len - 1).astype(np.int64)
        idx[empty] = near[:, None]
        w[empty] = 0.0
        w[empty, 0] = 1.0
        s = w.sum(1, keepdims=True)
    return np.clip(idx, 0, src_len - 1), (w / s).astype(np.float32)


@functools.lru_cache(maxsize=32)
def _resize_matrices(W: int, H: int, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense row-stochastic resampling matrices Ay (height, H) and Ax (width, W) for a crop+resize."""
    dx, dy, cw, ch = center_crop_box(W, H, width, height)
    mats = []
    for src, dst, off, scale in ((H, height, dy, height / ch), (W, width, dx, width / cw)):
        idx, w = _axis_taps(src, dst, off, scale)
        A = torch.zeros(dst, src)
        rows = torch.arange(dst)[:, None].expand(idx.shape)
        A.index_put_((rows, torch.from_numpy(idx)), torch.from_numpy(w), accumulate=True)
        mats.append(A)
    return mats[0], mats[1]


def crop_resize_frames(frames: np.ndarray, width: int, height: int) -> torch.Tensor:
    """Centre-crop and resize uint8 frames (N, H, W, 3) to float32 (N, 3, height, width) in [0, 255].

    The geometry matches :meth:`Camera.crop_resize` exactly (see module docstring). Resampling is
    two small matrix products (separable filter), which BLAS runs faster than tap-wise gathers.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ActionImagesError(f"frames must have shape (N, H, W, 3), got {frames.shape}")
    N, H, W, _ = frames.shape
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    if (W, H) == (width, height):
        return x
    Ay, Ax = _resize_matrices(W, H, int(width), int(height))
    return Ay @ (x @ Ax.T)


# ----------------------------------------------------------------------------- the builder
class SampleBuilder:
    """Build training samples (docs/ARCHITECTURE.md) from episodes.

    Args:
        num_frames: F, frames per clip. With ``vae_frames=True`` F must be ≡ 1 (mod 4) (Wan VAE).
        stride: step between clip frames, in episode frames.
        num_views: V, views per sample.
        height, width: output size H × W.
        training: random clip start and a random ordered choice of V cameras per sample; when
            False the start defaults to 0 and the views are the first V cameras (or ``views``).
        sigma_frac, axis_length: action-image rendering (``ActionImageCodec``).
        views: fixed camera names to use (overrides the random choice), length V.
        vae_frames: enforce F ≡ 1 (mod 4).
        codec_factory: ``(cameras, sigma_frac=, axis_length=) -> codec`` with ``encode``; default
            :class:`actionimages.codec.ActionImageCodec`.
        hold_final: let a clip run up to this many episode frames past the end, repeating the last
            frame as *valid* frames: a demonstration of holding still once the task is done. Sim
            episodes end on success, so without it a model never sees the arm stop at its goal.
            Only for data whose world stays put after the last frame; 0 (default) pads invalid.
    """

    def __init__(
        self,
        num_frames: int = 41,
        stride: int = 1,
        num_views: int = 2,
        height: int = 256,
        width: int = 256,
        training: bool = True,
        sigma_frac: float = 0.05,
        axis_length: float = 0.10,
        views: Sequence[str] | None = None,
        vae_frames: bool = True,
        codec_factory: Any = None,
        hold_final: int = 0,
    ) -> None:
        if int(hold_final) != hold_final or hold_final < 0:
            raise ActionImagesError(f"hold_final must be a non-negative integer, got {hold_final}")
        for name, v in (("num_frames", num_frames), ("stride", stride), ("num_views", num_views)):
            if int(v) != v or v < 1:
                raise ActionImagesError(f"{name} must be a positive integer, got {v}")
        if vae_frames and num_frames % 4 != 1:
            raise ActionImagesError(
                f"num_frames must be 1 mod 4 for the Wan VAE (e.g. 41), got {num_frames}; "
                "pass vae_frames=False to allow it"
            )
        if min(height, width) < 2:
            raise ActionImagesError(f"output size must be at least 2x2, got {width}x{height}")
        if views is not None and len(views) != num_views:
            raise ActionImagesError(f"views {list(views)} must name exactly num_views={num_views} cameras")
        if not sigma_frac > 0 or not axis_length > 0:
            raise ActionImagesError("sigma_frac and axis_length must be positive")
        self.num_frames, self.stride, self.num_views = int(num_frames), int(stride), int(num_views)
        self.height, self.width, self.training = int(height), int(width), bool(training)
        self.sigma_frac, self.axis_length = float(sigma_frac), float(axis_length)
        self.views = list(views) if views is not None else None
        self.codec_factory = codec_factory
        self.hold_final = int(hold_final)

    @property
    def span(self) -> int:
        """Episode frames covered by one clip: ``(F - 1) * stride + 1``."""
        return (self.num_frames - 1) * self.stride + 1

    def max_start(self, num_frames: int) -> int:
        """Largest training start: the clip stays inside an episode of ``num_frames`` (0 if shorter),
        or runs at most ``hold_final`` frames past its end (never starting past the last frame)."""
        return max(0, min(num_frames - 1, num_frames - self.span + self.hold_final))

    def choose_views(self, episode: Episode, rng: np.random.Generator | None) -> list[str]:
        """The V camera names for one sample (random order-aware pick when training)."""
        names = episode.camera_names
        where = episode.info.get("source", "episode")
        if self.views is not None:
            missing = [v for v in self.views if v not in names]
            if missing:
                raise DataError(f"{where}: requested views {missing} not among cameras {names}")
            return list(self.views)
        if len(names) < self.num_views:
            raise DataError(f"{where}: has {len(names)} cameras {names}, samples need {self.num_views} views")
        if self.training:
            rng = rng if rng is not None else np.random.default_rng()
            return [names[i] for i in rng.choice(len(names), self.num_views, replace=False)]
        return names[: self.num_views]

    def _codec(self, cameras: Sequence[Any]) -> Any:
        factory = self.codec_factory
        if factory is None:
            try:
                from actionimages.codec import ActionImageCodec
            except ImportError as exc:  # the codec is a separate part; say so plainly
                raise ActionImagesError("actionimages.codec.ActionImageCodec is not available") from exc
            factory = ActionImageCodec
        return factory(cameras, sigma_frac=self.sigma_frac, axis_length=self.axis_length)

    def __call__(
        self,
        episode: Episode,
        start: int | None = None,
        rng: np.random.Generator | None = None,
        episode_index: int = -1,
        views: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """One sample from ``episode`` (dict of docs/ARCHITECTURE.md, tensors without batch dim).

        Args:
            episode: the source episode (frames may be lazy; only the clip's frames are decoded).
            start: first frame; default random in ``[0, max_start]`` when training, else 0.
            rng: randomness for start and views (default: a fresh generator).
            episode_index: provenance stored under ``episode``.
            views: camera names for this call (overrides the builder's choice).
        """
        T = episode.num_frames
        F, H, W = self.num_frames, self.height, self.width
        if start is None:
            if self.training:
                rng = rng if rng is not None else np.random.default_rng()
                start = int(rng.integers(0, self.max_start(T) + 1))
            else:
                start = 0
        start = int(start)
        if not 0 <= start < T:
            raise ActionImagesError(f"clip start {start} outside episode of {T} frames")
        raw = start + self.stride * np.arange(F)
        valid = raw < T + self.hold_final  # held frames repeat the last one and count (hold_final)
        idx = np.minimum(raw, T - 1)  # pad with the last frame; invalid past the hold
        names = list(views) if views is not None else self.choose_views(episode, rng)
        if len(names) != self.num_views:
            raise ActionImagesError(f"need {self.num_views} views, got {names}")
        uniq, inverse = np.unique(idx, return_inverse=True)

        V = self.num_views
        rgb = torch.empty(V, 3, F, H, W)
        inv = torch.from_numpy(inverse)
        Ks, Ts, cams_per_view = [], [], []
        for v, name in enumerate(names):
            frames = np.asarray(episode.frames[name][uniq])
            if frames.shape[1:3] == (H, W):  # no resampling: convert uint8 straight into the output
                # one pass: uint8 -> float, [0, 255] -> [-1, 1], (F, H, W, 3) -> (3, F, H, W)
                torch.add(
                    _MINUS_ONE,
                    torch.from_numpy(frames[inverse]).permute(3, 0, 1, 2),
                    alpha=1 / 127.5,
                    out=rgb[v],
                )
            else:
                resized = crop_resize_frames(frames, W, H)[inv].permute(
                    1, 0, 2, 3
                )  # (3, F, H, W) in [0, 255]
                torch.add(_MINUS_ONE, resized, alpha=1 / 127.5, out=rgb[v])
                rgb[v].clamp_(-1.0, 1.0)  # resampling weights sum to 1 only up to float rounding
            if episode.is_static(name):
                cam = episode.cameras[name].crop_resize(W, H)
                seq = [cam] * F
                cams_per_view.append(cam)
            else:
                per_t = {int(t): episode.camera_at(name, int(t)).crop_resize(W, H) for t in uniq}
                seq = [per_t[int(t)] for t in idx]
                cams_per_view.append(seq)
            Ks.append(np.stack([c.K for c in seq]))
            Ts.append(np.stack([c.cam_to_world for c in seq]))

        reference = cams_per_view[0] if isinstance(cams_per_view[0], Camera) else cams_per_view[0][0]
        if all(isinstance(c, Camera) for c in cams_per_view):
            # static cameras: one map per view, broadcast over time without copying
            maps = torch.stack(
                [torch.from_numpy(c.plucker(reference)).permute(2, 0, 1) for c in cams_per_view]
            )
            plucker = maps[:, :, None].expand(V, 6, F, H, W)
        else:
            plucker = torch.empty(V, 6, F, H, W)
            for v, spec in enumerate(cams_per_view):
                if isinstance(spec, Camera):
                    plucker[v] = torch.from_numpy(spec.plucker(reference)).permute(2, 0, 1)[:, None]
                    continue
                done: dict[int, torch.Tensor] = {}
                for f, c in enumerate(spec):  # padded frames share a camera object
                    if id(c) not in done:
                        done[id(c)] = torch.from_numpy(c.plucker(reference)).permute(2, 0, 1)
                    plucker[v, :, f] = done[id(c)]
        actions = episode.actions[idx].astype(np.float64)
        action_images = torch.empty(V, 3, F, H, W)
        if episode.has_actions:
            imgs = self._codec(cams_per_view).encode(actions)
            imgs = torch.as_tensor(np.asarray(imgs) if not isinstance(imgs, torch.Tensor) else imgs)
            if tuple(imgs.shape) != (V, F, H, W, 3):
                raise ActionImagesError(
                    f"codec returned shape {tuple(imgs.shape)}, expected {(V, F, H, W, 3)}"
                )
            torch.add(_MINUS_ONE, imgs.permute(0, 4, 1, 2, 3).float(), alpha=2.0, out=action_images)
            act = torch.from_numpy(actions.astype(np.float32))
        else:
            action_images.fill_(-1.0)
            act = torch.zeros(F, 7)
        return {
            "rgb": rgb,
            "action_images": action_images,
            "plucker": plucker,
            "K": torch.from_numpy(np.stack(Ks).astype(np.float32)),
            "cam_to_world": torch.from_numpy(np.stack(Ts).astype(np.float32)),
            "actions": act,
            "frame_valid": torch.from_numpy(valid),
            "has_actions": torch.tensor(bool(episode.has_actions)),
            "instruction": episode.instruction,
            "episode": int(episode_index),
            "start": start,
        }
