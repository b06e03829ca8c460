"""The world-action model: diffusers' ``WanTransformer3DModel`` plus camera, segment and text pieces.

The transformer runs over all segments at once (full 3D self-attention, METHOD.md §4). Around it:

- per-token timesteps (Wan 2.2 TI2V style), so given latent frames sit at t = 0 while generated
  ones are noised;
- a learned stream embedding (RGB vs action segment), zero-initialised;
- Plücker-ray camera conditioning: the rays of each view (relative to view 1's first camera) are
  sampled on a small grid inside every token, encoded by a shared MLP and added to the hidden
  states before each block through a zero-initialised linear projection per block, so a
  pretrained Wan starts out unchanged;
- the text encoder (hashed n-grams for CPU configs; frozen umT5 for the real one, kept outside the
  module's parameters so checkpoints stay transformer-sized).

Its forward reuses the transformer's own submodules (rope, patch embedding, condition embedder,
blocks, output head); only the loop over blocks is ours, to add the camera term.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from diffusers import ModelMixin, WanTransformer3DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn
from torch.utils.checkpoint import checkpoint

from actionimages.errors import ActionImagesError
from actionimages.model.config import ModelConfig
from actionimages.model.latents import LatentSpace
from actionimages.model.observation import ObservationEncoder, rays_from_camera_features
from actionimages.model.refine import OutputRefiner
from actionimages.model.text import HashedTextEncoder


def build_transformer(cfg: ModelConfig) -> WanTransformer3DModel:
    tr = cfg.transformer
    c = cfg.latent.channels
    return WanTransformer3DModel(
        patch_size=tuple(tr.patch_size),
        num_attention_heads=tr.num_attention_heads,
        attention_head_dim=tr.attention_head_dim,
        in_channels=c,
        out_channels=c,
        text_dim=tr.text_dim,
        freq_dim=tr.freq_dim,
        ffn_dim=tr.ffn_dim,
        num_layers=tr.num_layers,
        cross_attn_norm=tr.cross_attn_norm,
        qk_norm=tr.qk_norm,
        eps=1e-6,
        rope_max_seq_len=tr.rope_max_seq_len,
    )


class WorldActionModel(ModelMixin, ConfigMixin):
    """Joint multiview observation + action-image video model.

    Build with ``WorldActionModel(spec=config.to_dict())`` or :func:`from_config`; save with
    ``save_pretrained`` (``config.json`` + safetensors) and load with
    :func:`actionimages.model.load_model`.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        cfg = ModelConfig.from_dict(spec)
        self.spec = cfg
        tr = cfg.transformer
        self.transformer = build_transformer(cfg)
        self.latent_space = LatentSpace(cfg.latent)
        t = cfg.text
        self.text_encoder = (
            HashedTextEncoder(t.dim, t.num_buckets, t.num_layers, t.num_heads, t.max_tokens)
            if t.kind == "hashed"
            else None
        )
        self._external_text: list[nn.Module] = []  # umT5 lives here: not a registered submodule
        sub = cfg.plucker_subgrid
        self.camera_encoder = nn.Sequential(
            nn.Linear(6 * sub * sub, cfg.camera_dim), nn.SiLU(), nn.Linear(cfg.camera_dim, cfg.camera_dim)
        )
        self.camera_proj = nn.ModuleList(nn.Linear(cfg.camera_dim, tr.dim) for _ in range(tr.num_layers))
        for proj in self.camera_proj:  # zero-init: a pretrained backbone starts unchanged
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)
        self.stream_embed = nn.Parameter(torch.zeros(2, tr.dim))
        self.observation_encoder = (
            ObservationEncoder(cfg.obs_patch, tr.text_dim, film_dim=tr.text_dim if cfg.obs_film else 0)
            if cfg.obs_patch
            else None
        )
        self.observation_align = None
        if cfg.obs_align:  # observation grid -> token grid, into the camera features' space
            k = cfg.token_stride // cfg.obs_patch
            self.observation_align = nn.Conv2d(tr.text_dim, cfg.camera_dim, k, stride=k)
        self.output_refiner = (
            OutputRefiner(cfg.latent.channels, tr.text_dim, cfg.out_refine, cfg.num_segments)
            if cfg.out_refine
            else None
        )
        self.gradient_checkpointing = cfg.gradient_checkpointing

    # ----------------------------------------------------------------- text
    def attach_text_encoder(self, encoder: nn.Module) -> None:
        """Use an external (frozen, e.g. umT5) text encoder; it is not saved with the model."""
        self._external_text[:] = [encoder]

    def encode_text(self, instructions: list[str]) -> torch.Tensor:
        """Instructions (B strings) -> text embeddings (B, L, text_dim)."""
        if self.text_encoder is not None:
            return self.text_encoder(instructions)
        if not self._external_text:
            raise ActionImagesError(
                f"config {self.spec.name!r} needs an external text encoder (umT5); load the model with "
                "load_pretrained_wan(...) or call attach_text_encoder(UMT5TextEncoder.from_pretrained(dir))"
            )
        enc = self._external_text[0]
        out = enc(instructions)
        return out.to(device=self.device, dtype=self.transformer.dtype)

    # ---------------------------------------------------------------- camera
    def plucker_features(self, plucker: torch.Tensor) -> torch.Tensor:
        """Plücker rays (B, V, 6, F, H, W) -> per-token ray samples (B, V, f, hp, wp, 6·sub²).

        Latent frame 0 uses video frame 0; latent frame j >= 1 averages frames 4j-3 .. 4j, the
        frames the causal VAE folds into it.
        """
        cfg = self.spec
        if plucker.ndim != 6 or plucker.shape[2] != 6:
            raise ActionImagesError(f"plucker must be (B, V, 6, F, H, W), got {tuple(plucker.shape)}")
        b, v, _, f_in, h, w = plucker.shape
        t = cfg.latent.temporal
        if (f_in - 1) % t:
            raise ActionImagesError(f"plucker must have 1 + {t}k frames, got {f_in}")
        groups = [plucker[:, :, :, :1]] + [
            plucker[:, :, :, 1 + t * j : 1 + t * (j + 1)].mean(3, keepdim=True)
            for j in range((f_in - 1) // t)
        ]
        p = torch.cat(groups, 3)  # (B, V, 6, f, H, W)
        f = p.shape[3]
        hp, wp = h // cfg.token_stride, w // cfg.token_stride
        sub = cfg.plucker_subgrid
        p = p.permute(0, 1, 3, 2, 4, 5).reshape(b * v * f, 6, h, w)
        p = F.adaptive_avg_pool2d(p, (hp * sub, wp * sub))
        p = F.pixel_unshuffle(p, sub)  # (BVf, 6 sub², hp, wp)
        return p.reshape(b, v, f, 6 * sub * sub, hp, wp).permute(0, 1, 2, 4, 5, 3)

    # ----------------------------------------------------------- observation
    def encode_observation(
        self, observation: torch.Tensor | None, camera: torch.Tensor, text: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Current frames (B, V, 3, H, W) in [-1, 1] -> cross-attention tokens (B, V·n, text_dim);
        with ``obs_align``, the per-cell grid (B, V, 1, hp, wp, camera_dim) added to the camera term
        (else None); and the feature grid itself (B, V, H/p, W/p, text_dim). ``text`` (B, L, text_dim):
        the instruction embeddings, which ``obs_film`` pools to modulate the stem."""
        cfg = self.spec
        if observation is None:
            raise ActionImagesError(
                f"config {cfg.name!r} reads the current frames in pixel space (obs_patch "
                f"{cfg.obs_patch}); pass observation=(B, V, 3, H, W)"
            )
        rays = rays_from_camera_features(camera, cfg.plucker_subgrid)
        pooled = None if text is None or not cfg.obs_film else text.float().mean(1)  # (B, text_dim)
        feat = self.observation_encoder.features(
            observation.float(), rays.float(), pooled
        )  # (B, V, n_h, n_w, D)
        if self.observation_align is None:
            return feat.flatten(1, 3), None, feat
        b, v = feat.shape[:2]
        g = self.observation_align(feat.flatten(0, 1).permute(0, 3, 1, 2))  # (BV, Dc, hp, wp)
        return feat.flatten(1, 3), g.permute(0, 2, 3, 1).reshape(b, v, 1, *g.shape[2:], g.shape[1]), feat

    # --------------------------------------------------------------- forward
    def forward(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        text: torch.Tensor,
        camera: torch.Tensor,
        observation: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict velocity (or clean latents, for ``prediction="x"``) for every latent frame.

        Args:
            latents: (B, C, S·f, h, w) normalised latents, segments along latent time.
            timesteps: (B, S·f) per-latent-frame timesteps in [0, 1000] (σ·1000).
            text: (B, L, text_dim) text embeddings.
            camera: (B, V, f, hp, wp, 6·sub²) from :meth:`plucker_features`.
            observation: (B, V, 3, H, W) each view's current frame in [-1, 1]; required when the
                config has ``obs_patch`` (its tokens join the text in cross-attention).
        Returns:
            (B, C, S·f, h, w).
        """
        cfg, T = self.spec, self.transformer
        b, c, lt, h, w = latents.shape
        s, f = cfg.num_segments, camera.shape[2]
        _, ph, pw = T.config.patch_size
        if lt != s * f or h % ph or w % pw:
            raise ActionImagesError(
                f"latents {tuple(latents.shape)} do not fit {s} segments × {f} frames, patch {ph}×{pw}"
            )
        if timesteps.shape != (b, lt):
            raise ActionImagesError(f"timesteps must be (B, S·f) = {(b, lt)}, got {tuple(timesteps.shape)}")
        hp, wp = h // ph, w // pw
        per_frame = hp * wp
        dtype = T.patch_embedding.weight.dtype

        obs_grid = obs_feat = None
        if self.observation_encoder is not None:
            obs_tokens, obs_grid, obs_feat = self.encode_observation(observation, camera, text)
            text = torch.cat([text, obs_tokens.to(text.dtype)], 1)  # (B, L + V·n, text_dim)

        rotary = T.rope(latents)
        hs = T.patch_embedding(latents.to(dtype)).flatten(2).transpose(1, 2).contiguous()  # (B, L, D)
        stream = (torch.arange(s, device=hs.device) % 2).repeat_interleave(f * per_frame)
        hs = hs + self.stream_embed[stream].to(hs.dtype)

        # Timestep embeddings once per latent frame, then repeated over its tokens.
        temb, tproj, enc, _ = T.condition_embedder(
            timesteps.flatten(), text.to(dtype), None, timestep_seq_len=lt
        )
        temb = temb.repeat_interleave(per_frame, 1)  # (B, L, D)
        tproj = tproj.repeat_interleave(per_frame, 1).unflatten(2, (6, -1))  # (B, L, 6, D)

        cam = self.camera_encoder(camera.to(dtype))  # (B, V, f, hp, wp, Dc)
        if obs_grid is not None:
            cam = cam + obs_grid.to(cam.dtype)  # what each cell sees, on every frame of its view
        view_of_segment = torch.arange(s, device=cam.device) // 2
        cam = cam[:, view_of_segment].reshape(b, s * f * per_frame, -1)  # (B, L, Dc), token order

        for block, proj in zip(T.blocks, self.camera_proj, strict=True):
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hs = checkpoint(self._block, block, proj, hs, cam, enc, tproj, rotary, use_reentrant=False)
            else:
                hs = self._block(block, proj, hs, cam, enc, tproj, rotary)

        shift, scale = (T.scale_shift_table.unsqueeze(0) + temb.unsqueeze(2)).chunk(2, dim=2)
        hs = (T.norm_out(hs.float()) * (1 + scale.squeeze(2)) + shift.squeeze(2)).type_as(hs)
        hs = T.proj_out(hs)
        hs = hs.reshape(b, lt, hp, wp, 1, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        out = hs.flatten(6, 7).flatten(4, 5).flatten(2, 3).float()  # (B, C, S·f, h, w)
        if self.output_refiner is not None:
            out = self.output_refiner(out, latents, obs_feat).float()
        return out

    @staticmethod
    def _block(block, proj, hs, cam, enc, tproj, rotary):
        return block(hs + proj(cam), enc, tproj, rotary)

    # ------------------------------------------------------------- helpers
    def num_parameters_by_part(self) -> dict[str, int]:
        parts = {
            "transformer": self.transformer,
            "latent_space": self.latent_space,
            "camera": nn.ModuleList([self.camera_encoder, self.camera_proj]),
        }
        if self.observation_encoder is not None:
            parts["observation_encoder"] = nn.ModuleList(
                [
                    m
                    for m in (self.observation_encoder, self.observation_align, self.output_refiner)
                    if m is not None
                ]
            )
        if self.text_encoder is not None:
            parts["text_encoder"] = self.text_encoder
        return {k: sum(p.numel() for p in m.parameters()) for k, m in parts.items()}
