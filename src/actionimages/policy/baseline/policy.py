"""Closed-loop policy for the baselines: predict a chunk of k poses, execute some, replan."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actionimages.codec.camera import as_camera
from actionimages.policy.base import Chunk, ChunkedPolicy
from actionimages.policy.baseline.common import chunk_to_actions, state_features
from actionimages.policy.baseline.train import load_baseline
from actionimages.policy.observation import prepare_frames, select_views


class BaselinePolicy(ChunkedPolicy):
    """Receding-horizon execution of a baseline network's action chunks.

    Args:
        net: a :class:`BCNet` or :class:`LowDimNet`.
        meta: its ``baseline.json`` (cameras, image size, horizon).
        execute: poses executed per prediction (1..horizon); default half the horizon.
        views: camera names to feed (default: the cameras it was trained on when the observation
            has them, else the observation's first ones, e.g. on the unseen-camera split).
    """

    def __init__(
        self,
        net: torch.nn.Module,
        meta: dict[str, Any],
        execute: int | None = None,
        views: list[str] | None = None,
    ) -> None:
        self.net, self.meta = net.eval(), meta
        self.horizon = int(meta["horizon"])
        super().__init__(int(execute) if execute is not None else max(1, self.horizon // 2), self.horizon)
        self.views = views
        self.size = int(meta["image_size"])
        self.last_plan: dict[str, Any] | None = None  # views and timing of the last plan

    def serving_info(self) -> dict[str, Any]:
        return {
            "kind": self.meta["kind"],
            "model_config": self.meta.get("arch", {}).get("model_config"),
            "num_views": len(self.meta["cameras"]),
            "image_size": [self.size, self.size],
        }

    def _views(self, obs: dict[str, Any]) -> list[str]:
        if self.views is None and all(c in obs["images"] for c in self.meta["cameras"]):
            return list(self.meta["cameras"])
        return select_views(obs, self.views, len(self.meta["cameras"]))

    @torch.no_grad()
    def plan(self, obs: dict[str, Any]) -> np.ndarray:
        """The predicted next ``horizon`` absolute poses (horizon, 7)."""
        t0 = time.perf_counter()
        views = self._views(obs)
        imgs, cams = [], []
        for v in views:
            img, cam = prepare_frames(
                np.asarray(obs["images"][v])[None], as_camera(obs["cameras"][v]), self.size, self.size
            )
            imgs.append(img[0])
            cams.append(cam)
        x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float()[None] / 127.5 - 1.0
        pose = np.asarray(obs["ee_pose"], dtype=np.float64)[:7]
        state = torch.from_numpy(state_features(pose[None]))
        plk = None
        if self.meta["kind"] == "lowdim":
            plk = torch.from_numpy(np.stack([c.plucker(cams[0]).transpose(2, 0, 1) for c in cams]))[None]
        out = self.net(x, state, [str(obs.get("instruction", ""))], plk)[0].numpy()
        self.last_plan = {"views": views, "timing": {"total": time.perf_counter() - t0}}
        return chunk_to_actions(pose, out)

    def plan_chunk(self, obs: dict[str, Any]) -> Chunk:
        poses = self.plan(obs)
        return Chunk(poses, np.ones(len(poses), dtype=bool))


def load_baseline_policy(run: str | Path, **options: Any) -> BaselinePolicy:
    """A :class:`BaselinePolicy` from a baseline run directory."""
    net, meta = load_baseline(run)
    return BaselinePolicy(net, meta, **options)
