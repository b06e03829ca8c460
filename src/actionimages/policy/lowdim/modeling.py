"""The low-dim head's network: the world model's backbone with a low-dimensional action head.

:class:`LowDimNet` is the world model's backbone (diffusers ``WanTransformer3DModel`` with the same
width, depth and heads as the chosen model config, the same hashed-n-gram text encoder and Plücker
camera conditioning) reading the current multiview frame as pixel patches, with k learned
action-query tokens decoded by a linear low-dimensional action head: the paper's ablation "same
backbone, action head instead of action images". Its training, checkpoint and closed-loop
execution are shared with image BC (``policy/baseline``).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from actionimages.errors import ActionImagesError
from actionimages.policy.baseline.common import STATE_DIM


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
