"""Image behaviour cloning's network: (multiview frame, pose, instruction) -> an action chunk.

:class:`BCNet` is a standard image behaviour-cloning policy: a small CNN encoder per view (shared
weights, spatial-softmax keypoints as in diffusion policy), the measured pose and a hashed
bag-of-words instruction embedding, and an MLP regressing the next k poses. Its training,
checkpoint and closed-loop execution are shared with the low-dim head (``policy/baseline``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from actionimages.errors import ActionImagesError
from actionimages.policy.baseline.common import STATE_DIM, text_bucket_ids


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
