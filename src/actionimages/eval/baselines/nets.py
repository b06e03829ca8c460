"""The two baseline networks; both map (multiview frame, pose, instruction) -> an action chunk.

- :class:`BCNet`: a standard image behaviour-cloning policy: a small CNN encoder per view (shared
  weights, spatial-softmax keypoints as in diffusion policy), the measured pose and a hashed
  bag-of-words instruction embedding, and an MLP regressing the next k poses.
- :class:`LowDimNet`: the world model's backbone (diffusers ``WanTransformer3DModel`` with the
  same width, depth and heads as the chosen model config, the same hashed-n-gram text encoder and
  Plücker camera conditioning) reading the current multiview frame as pixel patches, with k
  learned action-query tokens decoded by a linear low-dimensional action head: the paper's
  ablation "same backbone, action head instead of action images".
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from actionimages.errors import ActionImagesError
from actionimages.eval.baselines.common import text_bucket_ids

STATE_DIM = 10  # position, 6-D rotation, openness


class SpatialSoftmax(nn.Module):
    """Expected 2-D image coordinates of each channel's softmax: (B, C, H, W) -> (B, 2C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        attn = x.flatten(2).softmax(-1).view(b, c, h, w)
        ys = torch.linspace(-1, 1, h, device=x.device)
        xs = torch.linspace(-1, 1, w, device=x.device)
        return torch.cat([(attn.sum(2) * xs).sum(-1), (attn.sum(3) * ys).sum(-1)], 1)


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.SiLU())


class BCNet(nn.Module):
    """CNN behaviour cloning with an action-chunk regression head.

    Forward: images (B, V, 3, H, W) in [-1, 1], state (B, 10), instructions list[str] -> (B, k, 7).

    ``film``: the instruction also modulates the CNN (FiLM after its second and fourth convolution,
    zero-initialised, as RT-1's FiLM-EfficientNet), so its keypoints can single out the named
    object; without it the instruction joins only after the spatial softmax.
    """

    def __init__(
        self,
        num_views: int = 2,
        horizon: int = 8,
        width: int = 64,
        keypoints: int = 32,
        buckets: int = 512,
        film: bool = False,
    ) -> None:
        super().__init__()
        self.num_views, self.horizon, self.text_buckets = num_views, horizon, buckets
        self.encoder = nn.Sequential(
            _conv(3, width, 2),
            _conv(width, width, 1),
            _conv(width, 2 * width, 2),
            _conv(2 * width, 2 * width, 1),
            nn.Conv2d(2 * width, keypoints, 1),
            SpatialSoftmax(),
        )
        self.view_embed = nn.Parameter(torch.zeros(num_views, 2 * keypoints))
        self.text = nn.EmbeddingBag(buckets, 64, mode="mean", padding_idx=0)
        self.film = None
        if film:  # encoder layer index -> (scale, shift) of its output channels
            self.film = nn.ModuleDict({"1": nn.Linear(64, 2 * width), "3": nn.Linear(64, 4 * width)})
            for lin in self.film.values():
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
        feat = num_views * 2 * keypoints + 64 + STATE_DIM
        self.head = nn.Sequential(
            nn.Linear(feat, 512), nn.SiLU(), nn.Linear(512, 512), nn.SiLU(), nn.Linear(512, horizon * 7)
        )

    def forward(
        self, images: torch.Tensor, state: torch.Tensor, instructions: list[str], plucker: Any = None
    ) -> torch.Tensor:
        b, v = images.shape[:2]
        if v != self.num_views:
            raise ActionImagesError(f"BCNet was built for {self.num_views} views, got {v}")
        ids = torch.tensor(
            [text_bucket_ids(s, self.text_buckets) for s in instructions], device=images.device
        )
        text = self.text(ids)  # (B, 64)
        x = images.flatten(0, 1)
        for i, layer in enumerate(self.encoder):
            x = layer(x)
            if self.film is not None and str(i) in self.film:
                gamma, beta = self.film[str(i)](text).repeat_interleave(v, 0)[:, :, None, None].chunk(2, 1)
                x = x * (1 + gamma) + beta
        kp = x.view(b, v, -1) + self.view_embed
        x = torch.cat([kp.flatten(1), text, state], 1)
        return self.head(x).view(b, self.horizon, 7)


class LowDimNet(nn.Module):
    """The world model's transformer backbone with a low-dimensional action-chunk head.

    Tokens: each view's current frame as 8×8 pixel patches (+ Plücker-ray embedding, view
    embedding), one frame of learned action queries (+ state embedding). Full self-attention over
    all of them, cross-attention to the instruction, as in the world model. Output: (B, k, 7).
    """

    def __init__(
        self, model_config: str = "tiny", num_views: int = 2, horizon: int = 8, patch: int = 8
    ) -> None:
        super().__init__()
        from actionimages.model.config import CONFIGS, LatentSpec
        from actionimages.model.network import build_transformer
        from actionimages.model.text import HashedTextEncoder

        if model_config not in CONFIGS:
            raise ActionImagesError(f"unknown model config {model_config!r}; choose from {list(CONFIGS)}")
        base = CONFIGS[model_config]
        cfg = base.replace(
            num_frames=1,
            num_views=num_views,
            latent=LatentSpec(kind="pixel", spatial=1, temporal=1, patch_size=None),
            transformer=dataclasses.replace(base.transformer, patch_size=(1, patch, patch)),
        )
        self.cfg, self.num_views, self.horizon, self.patch = cfg, num_views, horizon, patch
        hp, wp = cfg.height // patch, cfg.width // patch
        if hp * wp < horizon:
            raise ActionImagesError(f"{hp}×{wp} query tokens cannot hold a horizon of {horizon}")
        self.transformer = build_transformer(cfg)
        dim = cfg.transformer.dim
        t = cfg.text
        self.text_encoder = HashedTextEncoder(t.dim, t.num_buckets, t.num_layers, t.num_heads, t.max_tokens)
        self.camera = nn.Sequential(nn.Linear(6 * patch * patch, 128), nn.SiLU(), nn.Linear(128, dim))
        self.view_embed = nn.Parameter(torch.zeros(num_views + 1, dim))
        self.queries = nn.Parameter(torch.randn(hp * wp, dim) * 0.02)
        self.state = nn.Sequential(nn.Linear(STATE_DIM, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 7))

    @property
    def image_size(self) -> tuple[int, int]:
        return self.cfg.height, self.cfg.width

    def forward(
        self, images: torch.Tensor, state: torch.Tensor, instructions: list[str], plucker: torch.Tensor
    ) -> torch.Tensor:
        T = self.transformer
        b, v, _, h, w = images.shape
        if v != self.num_views or (h, w) != self.image_size:
            raise ActionImagesError(
                f"LowDimNet takes {self.num_views} views at {self.image_size}, got {v}×{(h, w)}"
            )
        p = self.patch
        hp, wp = h // p, w // p
        # Latent grid (B, 3, V+1, H, W): one "frame" per view plus a blank frame for the queries.
        x = torch.cat([images.permute(0, 2, 1, 3, 4), images.new_zeros(b, 3, 1, h, w)], 2)
        rotary = T.rope(x)
        hs = T.patch_embedding(x).flatten(2).transpose(1, 2)  # (B, (V+1)·hp·wp, D)
        per = hp * wp
        cam = F.pixel_unshuffle(plucker.flatten(0, 1), p)  # (B·V, 6p², hp, wp)
        cam = self.camera(cam.flatten(2).transpose(1, 2)).view(b, v * per, -1)
        query = self.queries[None] + self.state(state)[:, None]
        hs = hs + torch.cat([cam, query], 1) + self.view_embed.repeat_interleave(per, 0)[None]
        text = self.text_encoder(instructions)
        temb, tproj, enc, _ = T.condition_embedder(torch.zeros(b, device=hs.device), text, None)
        tproj = tproj.unflatten(1, (6, -1))
        for block in T.blocks:
            hs = block(hs, enc, tproj, rotary)
        return self.head(hs[:, v * per : v * per + self.horizon])
