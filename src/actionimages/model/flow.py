"""Rectified flow on masked segment latents: batch preparation and the training loss.

x_t = (1 − σ)·x₀ + σ·ε, target v = ε − x₀ (METHOD.md §4), σ shifted by
σ' = s·σ / (1 + (s − 1)·σ). The loss counts generated latent frames only, weighted by the
fraction of valid (un-padded) video frames each one covers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from actionimages.errors import ActionImagesError
from actionimages.model.masks import ABSENT, GENERATE, GIVEN, mode_states, sample_modes
from actionimages.model.network import WorldActionModel

SIGMA_MIN_X = 0.05  # x-prediction: v = (x_t − x̂)/σ is clamped at this σ (as pixel-space DiTs do)


def shift_sigma(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """Timestep shift σ' = s·σ / (1 + (s − 1)·σ)."""
    return shift * sigma / (1 + (shift - 1) * sigma)


@dataclass
class Prepared:
    """A batch in model space (everything the loss or the sampler needs, nothing pixel-sized).

    x0: (B, C, S·f, h, w) normalised latents; camera: (B, V, f, hp, wp, P); frame_weight: (B, f)
    fraction of valid video frames per latent frame; has_actions: (B,) bool; instruction: B str;
    observation: (B, V, 3, H, W) uint8 current frames, only for configs with ``obs_patch``.
    """

    x0: torch.Tensor
    camera: torch.Tensor
    frame_weight: torch.Tensor
    has_actions: torch.Tensor
    instruction: list[str]
    observation: torch.Tensor | None = None

    def index(self, idx: Sequence[int] | slice) -> Prepared:
        ins = self.instruction[idx] if isinstance(idx, slice) else [self.instruction[i] for i in idx]
        obs = None if self.observation is None else self.observation[idx]
        return Prepared(
            self.x0[idx], self.camera[idx], self.frame_weight[idx], self.has_actions[idx], ins, obs
        )

    def to(self, device: torch.device | str) -> Prepared:
        return Prepared(
            self.x0.to(device),
            self.camera.to(device),
            self.frame_weight.to(device),
            self.has_actions.to(device),
            self.instruction,
            None if self.observation is None else self.observation.to(device),
        )

    @staticmethod
    def cat(items: Sequence[Prepared]) -> Prepared:
        has_obs = [p.observation is not None for p in items]
        if any(has_obs) and not all(has_obs):
            raise ActionImagesError("cannot concatenate prepared batches with and without observations")
        return Prepared(
            torch.cat([p.x0 for p in items]),
            torch.cat([p.camera for p in items]),
            torch.cat([p.frame_weight for p in items]),
            torch.cat([p.has_actions for p in items]),
            [s for p in items for s in p.instruction],
            torch.cat([p.observation for p in items]) if items and all(has_obs) else None,
        )

    def observation_frames(self) -> torch.Tensor | None:
        """The current frames as the model takes them: (B, V, 3, H, W) float in [-1, 1], or None."""
        return None if self.observation is None else self.observation.float() / 127.5 - 1.0


def observation_to_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """Frames in [-1, 1] (any shape) -> uint8 (cached at a quarter of float32's size)."""
    return ((rgb.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def check_batch(model: WorldActionModel, batch: Mapping[str, Any], frames: int | None = None) -> int:
    """Validate a collated training batch against the model's config; returns B."""
    cfg = model.spec
    for key in ("rgb", "action_images", "plucker", "instruction"):
        if key not in batch:
            raise ActionImagesError(f"batch is missing {key!r}")
    rgb = batch["rgb"]
    if not isinstance(rgb, torch.Tensor) or rgb.ndim != 6:
        raise ActionImagesError(
            f"batch['rgb'] must be a tensor (B, V, 3, F, H, W), got {getattr(rgb, 'shape', rgb)}"
        )
    b, v, c, f, h, w = rgb.shape
    want_f = cfg.num_frames if frames is None else frames
    if (v, c, f, h, w) != (cfg.num_views, 3, want_f, cfg.height, cfg.width):
        raise ActionImagesError(
            f"batch['rgb'] is {tuple(rgb.shape)}; config {cfg.name!r} wants "
            f"(B, {cfg.num_views}, 3, {want_f}, {cfg.height}, {cfg.width})"
        )
    if tuple(batch["action_images"].shape) != tuple(rgb.shape):
        raise ActionImagesError(
            f"batch['action_images'] {tuple(batch['action_images'].shape)} != rgb {rgb.shape}"
        )
    if tuple(batch["plucker"].shape) != (b, v, 6, f, h, w):
        raise ActionImagesError(
            f"batch['plucker'] must be {(b, v, 6, f, h, w)}, got {tuple(batch['plucker'].shape)}"
        )
    if len(batch["instruction"]) != b or isinstance(batch["instruction"], str):
        raise ActionImagesError("batch['instruction'] must be a list of B strings")
    return b


def _latent_frame_weight(frame_valid: torch.Tensor, temporal: int) -> torch.Tensor:
    """(B, F) bool -> (B, f) fraction of valid frames in each latent frame's group."""
    fv = frame_valid.float()
    groups = [fv[:, :1]] + [
        fv[:, 1 + temporal * j : 1 + temporal * (j + 1)].mean(1, keepdim=True)
        for j in range((fv.shape[1] - 1) // temporal)
    ]
    return torch.cat(groups, 1)


@torch.no_grad()
def encode_segments(model: WorldActionModel, rgb: torch.Tensor, action_images: torch.Tensor) -> torch.Tensor:
    """(B, V, 3, F, H, W) RGB and action clips -> latents (B, C, 2V·f, h, w), view-major segments."""
    b, v = rgb.shape[:2]
    clips = torch.stack([rgb, action_images], 2).flatten(0, 2)  # (B·V·2, 3, F, H, W)
    z = model.latent_space.encode(clips.to(model.device))
    z = z.unflatten(0, (b, 2 * v))  # (B, S, C, f, h, w)
    return z.permute(0, 2, 1, 3, 4, 5).flatten(2, 3)


@torch.no_grad()
def prepare_batch(model: WorldActionModel, batch: Mapping[str, Any]) -> Prepared:
    """Encode a collated training batch (ARCHITECTURE.md sample contract) into model space."""
    b = check_batch(model, batch)
    cfg = model.spec
    x0 = encode_segments(model, batch["rgb"].float(), batch["action_images"].float())
    camera = model.plucker_features(batch["plucker"].float().to(model.device))
    fv = batch.get("frame_valid")
    fv = torch.ones(b, cfg.num_frames, dtype=torch.bool) if fv is None else fv.bool()
    has = batch.get("has_actions")
    has = torch.ones(b, dtype=torch.bool) if has is None else torch.as_tensor(has).bool().reshape(b)
    obs = None
    if cfg.obs_patch:
        obs = observation_to_uint8(batch["rgb"][:, :, :, 0]).to(model.device)  # (B, V, 3, H, W)
    return Prepared(
        x0,
        camera,
        _latent_frame_weight(fv, cfg.latent.temporal).to(model.device),
        has.to(model.device),
        list(batch["instruction"]),
        obs,
    )


def sample_training_sigma(cfg, gen: torch.Generator) -> float:
    """One training σ in (0, 1): logit-normal (or uniform) then shifted."""
    if cfg.logit_normal:
        u = torch.sigmoid(torch.randn((), generator=gen))
    else:
        u = torch.rand((), generator=gen)
    return float(shift_sigma(u.clamp(1e-4, 1 - 1e-4), cfg.timestep_shift))


def training_loss(
    model: WorldActionModel,
    prep: Prepared,
    seeds: Sequence[int],
    modes: Sequence[str] | None = None,
    return_parts: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, Any]]:
    """Masked rectified-flow loss, mean over samples of each sample's mean over its generated frames.

    Every random draw of sample i (mode, text dropout, σ, noise) comes from ``seeds[i]``, so a
    sample's loss does not depend on which process or batch it lands in (data-parallel training
    then equals one process with the whole batch).
    """
    cfg = model.spec
    b = prep.x0.shape[0]
    if len(seeds) != b:
        raise ActionImagesError(f"need one seed per sample: {len(seeds)} seeds for batch {b}")
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    if modes is None:
        modes = sample_modes(cfg.mask_mix.as_dict(), prep.has_actions.cpu().tolist(), gens)
    f = cfg.latent_frames
    states = (
        torch.stack([mode_states(m, cfg.num_views, f) for m in modes]).flatten(1).to(prep.x0.device)
    )  # (B, S·f)
    drop = [bool(torch.rand((), generator=g) < cfg.text_dropout) for g in gens]
    instructions = ["" if d else s for d, s in zip(drop, prep.instruction, strict=True)]
    sigma = torch.tensor([sample_training_sigma(cfg, g) for g in gens], device=prep.x0.device)
    eps = torch.stack([torch.randn(prep.x0.shape[1:], generator=g) for g in gens]).to(prep.x0.device)

    x0 = prep.x0
    st = states[:, None, :, None, None]
    sg = sigma.view(b, 1, 1, 1, 1)
    noisy = (1 - sg) * x0 + sg * eps
    x_in = torch.where(st == GIVEN, x0, torch.where(st == GENERATE, noisy, eps))
    t_frame = torch.where(states == GIVEN, 0.0, torch.where(states == GENERATE, sigma[:, None], 1.0)) * 1000.0

    text = model.encode_text(instructions)
    out = model(x_in, t_frame, text, prep.camera, observation=prep.observation_frames())
    if cfg.prediction == "v":
        v_pred = out
    else:
        v_pred = (x_in - out) / sg.clamp(min=SIGMA_MIN_X)
    target = eps - x0
    err = (v_pred - target).pow(2).mean(dim=(1, 3, 4))  # (B, S·f)
    w = (states == GENERATE).float() * prep.frame_weight.repeat(1, cfg.num_segments)
    if cfg.action_loss_weight != 1.0:  # segments alternate [RGB, action] per view
        action = (torch.arange(cfg.num_segments, device=w.device) % 2 == 1).repeat_interleave(f)
        w = w * torch.where(action, cfg.action_loss_weight, 1.0)
    per_sample = (err * w).sum(1) / w.sum(1).clamp(min=1e-6)
    loss = per_sample.mean()
    if return_parts:
        return loss, {
            "modes": list(modes),
            "sigma": sigma,
            "per_sample": per_sample.detach(),
            "states": states,
        }
    return loss


__all__ = [
    "ABSENT",
    "GENERATE",
    "GIVEN",
    "Prepared",
    "check_batch",
    "encode_segments",
    "prepare_batch",
    "shift_sigma",
    "training_loss",
]
