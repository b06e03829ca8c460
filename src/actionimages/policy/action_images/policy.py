"""The closed-loop action-image policy (METHOD.md §5): generate, decode, execute k, replan.

At each replanning call the current multiview observation becomes a one-frame sample built by the
data pipeline's :class:`~actionimages.data.sample.SampleBuilder` (same crop, resize, intrinsics,
Plücker rays and current-pose action images as in training). The world model generates the action
video in ``joint`` mode; the codec decodes it to a 7-DoF trajectory whose frame 0 is the current
pose; frames ``1..k`` are executed as absolute targets, one per control step, then it replans.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actionimages.errors import ActionImagesError
from actionimages.policy.action_images.configuration import PlanningConfig
from actionimages.policy.base import Chunk, ChunkedPolicy
from actionimages.policy.observation import batch_of_one, observation_sample, select_views


class ActionImagePolicy(ChunkedPolicy):
    """Receding-horizon policy over a :class:`~actionimages.model.WorldActionModel`.

    Args:
        model: the world-action model (eval mode is set here).
        execute: k, generated frames executed per plan (1..F-1; default half the horizon).
        num_steps: sampling (Euler) steps per plan.
        guidance: classifier-free guidance scale (1 = off).
        views: camera names fed to the model (default: the observation's first V cameras).
        mode: generation mode, ``joint`` (observation + action video) or ``i2a`` (action video only).
        seed: base noise seed; each plan's seed derives from it, the episode seed and the plan index.
        repeat: control steps per generated frame (default: the model's ``frame_stride``, the clip
            stride it was trained at; 1 for the sim's data at stride 1).
        decode_tolerance_px: how far (pixels) a generated blob may sit from the point the other
            views triangulate before its frame is invalid (default: the codec's, max(1, 0.08σ)).
            Generated blobs are less exact than drawn ones; with two views nothing can be dropped.
    """

    def __init__(
        self,
        model: Any,
        execute: int | None = None,
        num_steps: int = 8,
        guidance: float = 1.0,
        views: Sequence[str] | None = None,
        mode: str = "joint",
        seed: int = 0,
        repeat: int | None = None,
        decode_tolerance_px: float | None = None,
    ) -> None:
        self.model = model.eval()
        cfg = model.spec
        self.cfg = cfg
        self.horizon = cfg.num_frames - 1
        if self.horizon < 1:
            raise ActionImagesError(
                f"the model generates {cfg.num_frames} frame(s); a policy needs at least 2"
            )
        repeat = int(repeat) if repeat is not None else int(getattr(cfg, "frame_stride", 1))
        super().__init__(
            int(execute) if execute is not None else max(1, self.horizon // 2), self.horizon, repeat
        )
        self.planning = PlanningConfig(num_steps, guidance, mode, decode_tolerance_px)  # validates
        self.views = list(views) if views is not None else None
        self.base_seed = int(seed)
        self._episode_seed = 0
        self._images: dict[str, np.ndarray] | None = None  # view -> (F, H, W, 3) in [0, 1]
        self.last_plan: dict[str, Any] | None = None
        self._timings: dict[str, float] = {}  # seconds per stage of the last plan

    def serving_info(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "kind": "action_images",
            "model_config": cfg.name,
            "num_views": cfg.num_views,
            "image_size": [cfg.height, cfg.width],
        }

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, text_cache: str | None = None, **options: Any
    ) -> ActionImagePolicy:
        """Load a world-model checkpoint directory (``config.json`` + safetensors) as a policy;
        ``text_cache``: ``embed-text``'s cache, so a umT5 config need not load umT5."""
        from actionimages.model import load_model

        return cls(load_model(path, text_cache=text_cache), **options)

    # ---------------------------------------------------------------- episode
    def set_seed(self, seed: int) -> None:
        """Tie the sampling noise to the episode (so results do not depend on worker scheduling)."""
        self._episode_seed = int(seed)

    def reset(self, obs: dict[str, Any]) -> None:
        super().reset(obs)
        self._images, self.last_plan = None, None

    # ------------------------------------------------------------------ plan
    @torch.no_grad()
    def plan(self, obs: dict[str, Any]) -> dict[str, Any]:
        """Generate and decode one action clip from ``obs``.

        Returns ``{"actions": (F, 7), "valid": (F,) bool, "action_images": {view: (F, H, W, 3)}
        in [0, 1], "views": [...], "seed": int, "timing": {stage: seconds}}``; frame 0 is the
        current pose; stages: preprocess, encode, text, denoise, decode (autoencoder), codec, total.
        """
        from actionimages.model import decode_actions

        t0 = time.perf_counter()
        cfg = self.cfg
        views = select_views(obs, self.views, cfg.num_views)
        sample = observation_sample(  # frame 0 only; the rest is generated
            obs, views, 1, cfg.height, cfg.width, sigma_frac=cfg.action_sigma_frac
        )
        batch = batch_of_one(sample)
        seed = zlib.crc32(f"{self.base_seed}/{self._episode_seed}/{self._stats.replans}".encode())
        self._timings = {"preprocess": time.perf_counter() - t0}
        video = self.action_video(obs, batch, seed)
        t1 = time.perf_counter()
        imgs = ((video[0].float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 4, 1).cpu().numpy()
        F = cfg.num_frames
        try:
            tolerance = self.planning.decode_tolerance_px
            actions, valid = decode_actions(batch, video, cfg.action_sigma_frac, tolerance)
            actions, valid = actions[0].double().cpu().numpy(), valid[0].cpu().numpy().astype(bool)
        except (RuntimeError, ActionImagesError) as exc:
            # A generated action video the codec cannot decode at all (decode_actions raises) is a
            # decode error, and a plan with no valid frame: act() holds the pose and counts it invalid.
            self._stats.decode_errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            actions, valid = np.full((F, 7), np.nan), np.zeros(F, dtype=bool)
        self._timings["codec"] = time.perf_counter() - t1
        self._timings["total"] = time.perf_counter() - t0
        return {
            "actions": actions,
            "valid": valid,
            "action_images": {v: imgs[i] for i, v in enumerate(views)},
            "views": views,
            "seed": seed,
            "timing": dict(self._timings),
        }

    def action_video(self, obs: dict[str, Any], batch: dict[str, Any], seed: int) -> torch.Tensor:
        """The plan's action video (1, V, 3, F, H, W) in [-1, 1]: where plans come from.

        Here the world model generates it from the one-frame ``batch`` (:func:`batch_of_one` of
        :func:`observation_sample`) with noise ``seed``; oracles (``action_images/oracle.py``)
        override this and keep the decoding and receding-horizon execution of :meth:`plan` / :meth:`act`.
        """
        from actionimages.model import generate

        p = self.planning
        gen = generate(
            self.model, batch, mode=p.mode, num_steps=p.num_steps, guidance=p.guidance, seed=seed,
            decode_rgb=False, decode_action_poses=False, timings=self._timings,
        )  # fmt: skip
        return gen.action_images

    def plan_chunk(self, obs: dict[str, Any]) -> Chunk:
        """Frames 1..F-1 of a new :meth:`plan` as a chunk, tagged with their generated frame."""
        plan = self.plan(obs)
        self.last_plan, self._images = plan, plan["action_images"]
        return Chunk(plan["actions"][1:], plan["valid"][1:], list(range(1, len(plan["actions"]))))

    # ----------------------------------------------------------- reporting
    def preview(self) -> dict[str, np.ndarray] | None:
        """Action images (per view, (H, W, 3) in [0, 1]) of the generated frame being executed."""
        if self._images is None:
            return None
        frame = self._tag or 0  # frame 0 (the current pose) while holding
        return {v: im[frame] for v, im in self._images.items()}
