"""Observation tokens: the current frames in pixel space, as cross-attention context (ours).

A small autoencoder trained from scratch keeps what dominates its reconstruction loss (table,
robot, action blobs) and drops objects a few pixels wide: measured on the first ``tiny`` VAE, the
reach_target sphere's colour error through it was 232 of 765 and plans ignored where the sphere
was (docs/results/model.md). This path gives the transformer the current frame of every view
without that bottleneck: a small convolutional stem, trained end to end by the flow loss, turns
each view's frame 0 into a grid of tokens; each token also gets the Plücker ray through its centre
(so the tokens say where in the world they look, for fixed and moved cameras alike). The tokens
join the text tokens in every block's cross-attention, as Wan's image-to-video models add image
tokens there. The latent RGB segments stay as they are, so every mask mode still works.

With ``obs_align`` the same grid is also pooled to the transformer's token grid and added, per
view and spatial cell, to every token of that view (both segments, every frame) through the
camera path's zero-initialised per-block projections. An action image is drawn where the gripper
will be in that very view, so the cell that must hold the next blob is the cell that sees the
object: this gives each token what lies under it, where cross-attention must first learn to look
it up (measured: cross-attention alone left the plans' direction slope at 0.00–0.04 after 550k
training samples; docs/results/policy.md).

With ``obs_film`` the instruction also modulates the stem (FiLM after its strided convolution, as
RT-1's FiLM-EfficientNet does; zero-initialised, so a trained stem starts unchanged): with
distractors on the table the stem can then bring out the named object before any attention, where
otherwise every sphere reaches the transformer alike and only cross-attention can pick one.

Shapes: B batch, V views, H×W pixels, p patch, n = (H/p)·(W/p) tokens per view, D the text width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from actionimages.errors import ActionImagesError


class ObservationEncoder(nn.Module):
    """Frames (B, V, 3, H, W) in [-1, 1] + rays (B, V, 6, H, W) -> tokens (B, V·n, D).

    Args:
        patch: pixels per token side (even, >= 2).
        dim: token width (the text encoder's output width, so both share the text projection).
        width: channels of the stem's hidden layers.
    """

    def __init__(self, patch: int, dim: int, width: int = 64, film_dim: int = 0) -> None:
        super().__init__()
        if patch < 2 or patch % 2:
            raise ActionImagesError(f"observation patch must be even and >= 2, got {patch}")
        self.patch = patch
        self.stem = nn.Sequential(
            nn.Conv2d(3, width // 2, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width // 2, width, 3, stride=2, padding=1),  # (H/2, W/2)
            nn.SiLU(),
            nn.Conv2d(width, dim, patch // 2, stride=patch // 2),  # (H/p, W/p)
        )
        self.ray = nn.Sequential(nn.Linear(6, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.norm = nn.LayerNorm(dim)
        self.film = None
        if film_dim:  # instruction (film_dim) -> per-channel scale and shift of the stem's middle layer
            self.film = nn.Linear(film_dim, 2 * width)
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(
        self, frames: torch.Tensor, rays: torch.Tensor, text: torch.Tensor | None = None
    ) -> torch.Tensor:
        b, v = frames.shape[:2]
        return self.features(frames, rays, text).flatten(2, 3).reshape(b, -1, self.norm.normalized_shape[0])

    def features(
        self, frames: torch.Tensor, rays: torch.Tensor, text: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The token grid before flattening: (B, V, H/p, W/p, D). ``text``: (B, film_dim) pooled
        instruction embedding, required with FiLM."""
        if frames.ndim != 5 or frames.shape[2] != 3:
            raise ActionImagesError(f"observation frames must be (B, V, 3, H, W), got {tuple(frames.shape)}")
        b, v, _, h, w = frames.shape
        p = self.patch
        if h % p or w % p:
            raise ActionImagesError(f"observation frames {h}×{w} are not multiples of the patch {p}")
        if rays.shape[:3] != (b, v, 6):
            raise ActionImagesError(
                f"rays must be (B, V, 6, h, w) = ({b}, {v}, 6, ...), got {tuple(rays.shape)}"
            )
        x = frames.flatten(0, 1).to(self.stem[0].weight.dtype)
        x = self.stem[2](self.stem[1](self.stem[0](x)))  # (BV, width, H/2, W/2)
        if self.film is not None:
            if text is None or text.shape[0] != b:
                raise ActionImagesError(f"the FiLM stem needs a (B={b}, D) instruction embedding")
            gamma, beta = self.film(text.to(x.dtype)).repeat_interleave(v, 0)[:, :, None, None].chunk(2, 1)
            x = x * (1 + gamma) + beta
        x = self.stem[4](self.stem[3](x))  # (BV, D, H/p, W/p)
        r = F.adaptive_avg_pool2d(rays.flatten(0, 1).to(x.dtype), (h // p, w // p))  # (BV, 6, H/p, W/p)
        x = x.flatten(2).transpose(1, 2) + self.ray(r.flatten(2).transpose(1, 2))  # (BV, n, D)
        return self.norm(x).reshape(b, v, h // p, w // p, -1)


def rays_from_camera_features(camera: torch.Tensor, subgrid: int) -> torch.Tensor:
    """Per-token Plücker samples (B, V, f, hp, wp, 6·sub²) -> frame-0 ray grid (B, V, 6, hp·sub, wp·sub).

    Undoes :meth:`WorldActionModel.plucker_features`' ``pixel_unshuffle`` for latent frame 0 (which is
    video frame 0), so observation tokens need no second copy of the rays.
    """
    b, v, _, hp, wp, c = camera.shape
    if c != 6 * subgrid * subgrid:
        raise ActionImagesError(
            f"camera features have {c} channels; expected 6·{subgrid}² = {6 * subgrid**2}"
        )
    x = camera[:, :, 0].permute(0, 1, 4, 2, 3).reshape(b * v, c, hp, wp)
    return F.pixel_shuffle(x, subgrid).reshape(b, v, 6, hp * subgrid, wp * subgrid)
