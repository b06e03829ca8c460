"""The pixel-aligned output path (``ModelConfig.out_refine``; ours, after RVT and ControlNet).

With 4×4 transformer patches each token of ``tiny`` covers 32×32 pixels and writes its whole 4×4
patch of latent pixels from one vector (``proj_out``). That is enough to follow a target (slope
0.96) but a one-sphere policy still stops ~56 mm short (docs/results/policy.md §9–11): the exact
place of a blob inside its token must be carried through the token. RVT's multi-view transformer
adds a skip at full resolution for this; Genima injects the observation ControlNet-style. Here a
few 3×3 convolutions at the latent grid take, for every segment and latent frame,

- the transformer's prediction (unpatchified),
- the noisy input latents (what is being denoised, at full latent resolution),
- the observation stem's feature grid of that segment's view (frame 0, pooled to the latent grid),
- a learned embedding of the stream (RGB or action segment),

and add a correction to the prediction. The last convolution is zero-initialised, so the path starts
as the identity and a model trained without it keeps its outputs.

Shapes: B batch, C latent channels, S segments (view-major: [view1 RGB, view1 action, ...]),
f latent frames per segment, h×w the latent grid, V views, D the observation feature width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OutputRefiner(nn.Module):
    """Prediction (B, C, S·f, h, w) + noisy input (same) + observation grid (B, V, n_h, n_w, D) ->
    refined prediction (B, C, S·f, h, w).

    Args:
        channels: latent channels C.
        obs_dim: observation feature width D.
        hidden: hidden channels of the convolutions.
        num_segments: S (2 per view).
    """

    def __init__(self, channels: int, obs_dim: int, hidden: int, num_segments: int) -> None:
        super().__init__()
        self.num_segments = num_segments
        self.obs_in = nn.Conv2d(obs_dim, hidden, 1)
        self.latent_in = nn.Conv2d(2 * channels, hidden, 3, padding=1)
        self.stream = nn.Parameter(torch.zeros(2, hidden))
        self.body = nn.Sequential(
            nn.SiLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(hidden, channels, 3, padding=1),
        )
        nn.init.zeros_(self.body[-1].weight)  # starts as the identity on the prediction
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, pred: torch.Tensor, noisy: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        b, c, lt, h, w = pred.shape
        s = self.num_segments
        f = lt // s
        dtype = self.latent_in.weight.dtype
        x = torch.cat([pred, noisy.to(pred.dtype)], 1)  # (B, 2C, S·f, h, w)
        x = x.permute(0, 2, 1, 3, 4).reshape(b * lt, 2 * c, h, w).to(dtype)
        hid = self.latent_in(x).unflatten(0, (b, s, f))  # (B, S, f, K, h, w)

        v = obs.shape[1]
        g = obs.flatten(0, 1).permute(0, 3, 1, 2).to(dtype)  # (B·V, D, n_h, n_w)
        if g.shape[-2:] != (h, w):
            g = F.adaptive_avg_pool2d(g, (h, w))
        g = self.obs_in(g).unflatten(0, (b, v))  # (B, V, K, h, w)
        view_of_segment = torch.arange(s, device=pred.device) // 2
        stream = self.stream[torch.arange(s, device=pred.device) % 2]  # (S, K)
        hid = hid + g[:, view_of_segment, None] + stream[None, :, None, :, None, None]
        delta = self.body(hid.flatten(0, 2))  # (B·S·f, C, h, w)
        delta = delta.unflatten(0, (b, lt)).permute(0, 2, 1, 3, 4)
        return pred + delta.to(pred.dtype)
