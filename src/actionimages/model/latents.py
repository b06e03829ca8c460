"""Latent spaces: a (small or pretrained) Wan VAE, or pixels folded in time.

Both map a video ``(N, 3, F, H, W)`` in [-1, 1] with F = 1 + 4k to latents
``(N, C, 1 + k, H / s, W / s)`` and back; latent frame 0 depends on video frame 0 only (the
Wan VAE is causal), which is what lets a policy give just the current frame.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan
from torch import nn

from actionimages.errors import ActionImagesError
from actionimages.model.config import LatentSpec


def build_wan_vae(spec: LatentSpec) -> AutoencoderKLWan:
    """A randomly initialised ``AutoencoderKLWan`` of this spec (3 RGB channels in and out)."""
    patch = spec.patch_size or 1
    return AutoencoderKLWan(
        base_dim=spec.base_dim,
        decoder_base_dim=spec.decoder_base_dim,
        z_dim=spec.z_dim,
        dim_mult=list(spec.dim_mult),
        num_res_blocks=spec.num_res_blocks,
        temperal_downsample=list(spec.temporal_downsample),
        is_residual=spec.is_residual,
        in_channels=3 * patch * patch,
        out_channels=3 * patch * patch,
        patch_size=spec.patch_size,
        scale_factor_spatial=spec.spatial,
        scale_factor_temporal=spec.temporal,
        latents_mean=[0.0] * spec.z_dim,
        latents_std=[1.0] * spec.z_dim,
    )


class LatentSpace(nn.Module):
    """Encoder/decoder between videos and the transformer's latents, with per-channel normalisation.

    ``mean``/``std`` (C,) are buffers saved with the model: latents are ``(z - mean) / std``.
    """

    def __init__(self, spec: LatentSpec, vae: AutoencoderKLWan | None = None) -> None:
        super().__init__()
        self.spec = spec
        if spec.kind == "wan_vae":
            self.vae = vae if vae is not None else build_wan_vae(spec)
            self.vae.requires_grad_(False)
        elif vae is not None:
            raise ActionImagesError("a pixel latent space takes no VAE")
        else:
            self.vae = None
        c = spec.channels
        self.register_buffer("mean", torch.zeros(c))
        self.register_buffer("std", torch.ones(c))

    @property
    def channels(self) -> int:
        return self.spec.channels

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Set the latent normalisation (C,) each."""
        self.mean.copy_(mean.reshape(-1))
        self.std.copy_(std.reshape(-1).clamp(min=1e-4))

    def _check(self, video: torch.Tensor) -> None:
        if video.ndim != 5 or video.shape[1] != 3:
            raise ActionImagesError(f"video must be (N, 3, F, H, W), got {tuple(video.shape)}")
        f, h, w = video.shape[2:]
        t, s = self.spec.temporal, self.spec.spatial
        if (f - 1) % t:
            raise ActionImagesError(f"video must have 1 + {t}k frames, got {f}")
        if h % s or w % s:
            raise ActionImagesError(f"video size {h}×{w} is not a multiple of {s}")

    def raw_encode(self, video: torch.Tensor) -> torch.Tensor:
        """Un-normalised latents (N, C, f, h, w); differentiable for the pixel space."""
        self._check(video)
        if self.vae is not None:
            dtype = next(self.vae.parameters()).dtype
            return self.vae.encode(video.to(dtype)).latent_dist.mode().float()
        # Pixel space: frame 0 repeated `t` times, then consecutive groups of t frames, into channels.
        t = self.spec.temporal
        first = video[:, :, :1].expand(-1, -1, t, -1, -1)
        v = torch.cat([first, video[:, :, 1:]], 2)  # (N, 3, t * f, H, W)
        n, c, tf, h, w = v.shape
        return v.reshape(n, c, tf // t, t, h, w).permute(0, 3, 1, 2, 4, 5).reshape(n, c * t, tf // t, h, w)

    def raw_decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Video (N, 3, F, H, W) in [-1, 1] from un-normalised latents (N, C, f, h, w)."""
        if latents.ndim != 5 or latents.shape[1] != self.channels:
            raise ActionImagesError(
                f"latents must be (N, {self.channels}, f, h, w), got {tuple(latents.shape)}"
            )
        if self.vae is not None:
            dtype = next(self.vae.parameters()).dtype
            return self.vae.decode(latents.to(dtype)).sample.float().clamp(-1, 1)
        t = self.spec.temporal
        n, ct, f, h, w = latents.shape
        v = latents.reshape(n, t, ct // t, f, h, w).permute(0, 2, 3, 1, 4, 5).reshape(n, ct // t, f * t, h, w)
        # Frame 0 was repeated t times; average the copies (exact for a clean sample).
        first = v[:, :, :t].mean(2, keepdim=True)
        return torch.cat([first, v[:, :, t:]], 2).clamp(-1, 1)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Normalised latents (N, C, f, h, w) of a video (N, 3, F, H, W) in [-1, 1]."""
        z = self.raw_encode(video)
        return (z - self.mean.view(1, -1, 1, 1, 1)) / self.std.view(1, -1, 1, 1, 1)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Video (N, 3, F, H, W) in [-1, 1] from normalised latents (N, C, f, h, w)."""
        z = latents * self.std.view(1, -1, 1, 1, 1) + self.mean.view(1, -1, 1, 1, 1)
        return self.raw_decode(z)
