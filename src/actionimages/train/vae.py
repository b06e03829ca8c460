"""Training the small Wan VAE of option (a) on our own clips (RGB and action images alike).

Loss: L1 + MSE reconstruction (action clips weighted up where the blobs are, since the blobs
carry the action and cover a few percent of the pixels) + a small KL term. After training the
per-channel latent mean/std are measured and stored in the VAE's config (``latents_mean`` /
``latents_std``, the fields the real Wan VAE uses), so the saved folder loads like a Wan VAE.

Run layout: ``out/checkpoints/step-XXXXXXXX/{vae/, optimizer.pt, state.json, checksums.json}`` and
the final ``out/vae/``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKLWan
from tqdm.auto import tqdm

from actionimages.atomic import atomic_dir
from actionimages.data import collate
from actionimages.errors import ActionImagesError
from actionimages.model.config import ModelConfig
from actionimages.model.latents import build_wan_vae
from actionimages.train.checkpoint import CheckpointDamaged, load_newest_intact, reading, save_checkpoint
from actionimages.train.data import SampleSource, global_indices, sample_seed


@dataclass(frozen=True)
class VAETrainConfig:
    steps: int = 1500
    batch_size: int = 4  # samples per step; each gives 2V clips (RGB + action per view)
    lr: float = 1e-3
    warmup: int = 50
    # Cosine decay to lr · lr_min_frac at the last step: blob centres settle to sub-pixel only once
    # the rate drops (measured on tiny's VAE: 10, 18, 9.5 mm decoded error at steps 500/750/1000 at a
    # constant 1e-3; 2.9 mm at step 1750 after decaying from step 750).
    lr_min_frac: float = 0.1
    grad_clip: float = 1.0
    kl_weight: float = 1e-6
    # Decode the posterior mean (a deterministic autoencoder; the KL term only keeps latents tame).
    # Sampling z ~ q(z|x) with a KL weight this small left the posterior std near its initial 1 and
    # gave blurry reconstructions (measured: ~14 dB PSNR after 600 steps, vs. the mean's much better).
    sample_posterior: bool = False
    action_weight: float = 5.0  # extra weight on action-image pixels by blob intensity
    seed: int = 0
    save_every: int = 500
    keep: int = 2
    stats_samples: int = 32
    progress: bool = True
    # Random crops for speed: the VAE is convolutional and causal in time, so 1 + 4 frames and a
    # patch of the image teach it what whole clips would, at a fraction of the cost (measured ~6×
    # per step at 64², 9 -> 5 frames and 64² -> 32² crops). None keeps whole clips.
    crop_frames: int | None = 5
    crop_size: int | None = 32

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "stats_samples"):
            if getattr(self, name) < 1:  # steps 0 would write an untrained VAE as if trained
                raise ActionImagesError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ActionImagesError(f"lr must be positive, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def sample_clips(batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """A collated batch -> clips (N, 3, F, H, W) in [-1, 1] and is_action (N,) bool (N = B·2V)."""
    rgb, act = batch["rgb"].float(), batch["action_images"].float()
    clips = torch.stack([rgb, act], 2).flatten(0, 2)
    is_action = torch.tensor([False, True]).repeat(rgb.shape[0] * rgb.shape[1])
    return clips, is_action


def random_crop(
    clips: torch.Tensor, frames: int | None, size: int | None, gen: torch.Generator, temporal: int = 4
) -> torch.Tensor:
    """A random (1 + temporal·k)-frame window and square crop of clips (N, 3, F, H, W), same for all N."""
    n, c, f, h, w = clips.shape
    if frames is not None and frames < f:
        if (frames - 1) % temporal:
            raise ActionImagesError(f"crop_frames must be 1 + {temporal}k, got {frames}")
        t0 = int(torch.randint(0, f - frames + 1, (), generator=gen))
        clips = clips[:, :, t0 : t0 + frames]
    if size is not None and size < min(h, w):
        if size % 16:
            raise ActionImagesError(f"crop_size must be a multiple of 16, got {size}")
        y0 = int(torch.randint(0, h - size + 1, (), generator=gen))
        x0 = int(torch.randint(0, w - size + 1, (), generator=gen))
        clips = clips[..., y0 : y0 + size, x0 : x0 + size]
    return clips


def vae_lr(cfg: VAETrainConfig, step: int) -> float:
    """Learning rate at ``step``: linear warm-up, then cosine decay to ``lr · lr_min_frac``."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup))
    progress = min(1.0, step / max(1, cfg.steps - 1))
    decay = cfg.lr_min_frac + (1 - cfg.lr_min_frac) * 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * warm * decay


def decode_unclamped(vae: AutoencoderKLWan, z: torch.Tensor) -> torch.Tensor:
    """``vae.decode(z)`` without its final clamp to [-1, 1], for training.

    diffusers clamps decoded videos; through a clamp every pixel the decoder overshoots gets no
    gradient, and a young decoder overshoots a lot (measured: 43% of pixels of a 600-step VAE,
    stuck at ~14 dB PSNR). Same steps as ``AutoencoderKLWan._decode``: the causal decoder runs one
    latent frame at a time with its feature cache, then the 2×2 patches are unfolded.
    """
    from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

    vae.clear_cache()
    x = vae.post_quant_conv(z)
    frames = []
    for i in range(z.shape[2]):
        vae._conv_idx = [0]
        frames.append(
            vae.decoder(
                x[:, :, i : i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx, first_chunk=i == 0
            )
        )
    out = torch.cat(frames, 2)
    if vae.config.patch_size is not None:
        out = unpatchify(out, patch_size=vae.config.patch_size)
    vae.clear_cache()
    return out


def vae_loss(
    vae: AutoencoderKLWan,
    clips: torch.Tensor,
    is_action: torch.Tensor,
    cfg: VAETrainConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted L1 + MSE reconstruction + KL for clips (N, 3, F, H, W)."""
    post = vae.encode(clips).latent_dist
    z = post.mean
    if cfg.sample_posterior:
        z = z + post.std * torch.randn(post.mean.shape, generator=generator).to(post.mean)
    recon = decode_unclamped(vae, z)
    target = clips
    w = torch.ones_like(target[:, :1])
    blob = ((target + 1) / 2).amax(1, keepdim=True)  # (N, 1, F, H, W), 1 at blob peaks
    w = w + cfg.action_weight * blob * is_action.view(-1, 1, 1, 1, 1).to(w)
    err = (recon - target).abs() + (recon - target).pow(2)
    rec = (err * w).sum() / (w.sum() * target.shape[1])
    kl = post.kl().mean() / math.prod(post.mean.shape[1:])
    loss = rec + cfg.kl_weight * kl
    return loss, {"rec": float(rec.detach()), "kl": float(kl.detach())}


@torch.no_grad()
def latent_stats(vae: AutoencoderKLWan, source: SampleSource, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (C,) of the latent means over up to ``n`` samples."""
    zs = []
    for i in range(min(n, len(source))):
        clips, _ = sample_clips(collate([source[i]]))
        zs.append(vae.encode(clips).latent_dist.mode().transpose(0, 1).flatten(1))
    z = torch.cat(zs, 1)
    return z.mean(1), z.std(1)


def _read_checkpoint(ck: Path) -> tuple[AutoencoderKLWan, dict[str, Any], int]:
    """The VAE, optimizer/RNG state and step of a ``train_vae`` checkpoint; a file that cannot be
    read raises :class:`CheckpointDamaged` naming it."""
    with reading(ck, "state.json") as f:
        step = int(json.loads(f.read_text())["step"])
    with reading(ck, "optimizer.pt") as f:
        st = torch.load(f, weights_only=False)
    if not isinstance(st, dict) or not {"optimizer", "torch_rng"} <= st.keys():
        raise CheckpointDamaged(f"{ck / 'optimizer.pt'} lacks the optimizer state or the RNG state")
    with reading(ck, "vae") as f:
        vae = AutoencoderKLWan.from_pretrained(str(f))
    return vae, st, step


def train_vae(
    model_cfg: ModelConfig,
    source: SampleSource,
    out: str | Path,
    cfg: VAETrainConfig | None = None,
    resume: bool = False,
) -> Path:
    """Train the config's small Wan VAE on ``source``; returns the final VAE directory ``out/vae``.

    ``resume`` continues from the newest intact checkpoint in ``out/checkpoints``: a damaged one
    (a file missing, truncated, changed or unreadable) is skipped with a ``RuntimeWarning`` naming it
    and why; :class:`ActionImagesError` if none is intact.
    """
    cfg = cfg or VAETrainConfig()
    if model_cfg.latent.kind != "wan_vae":
        raise ActionImagesError(
            f"config {model_cfg.name!r} uses latent kind {model_cfg.latent.kind!r}: no VAE"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    vae = build_wan_vae(model_cfg.latent)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=0.0)
    step = 0
    # a damaged newest checkpoint is skipped (with a warning) for the newest intact one
    if resume and (found := load_newest_intact(out / "checkpoints", _read_checkpoint)) is not None:
        ck, (vae, st, step) = found
        opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=0.0)
        try:
            opt.load_state_dict(st["optimizer"])
        except (ValueError, KeyError) as exc:
            raise ActionImagesError(f"checkpoint {ck}: the optimizer state does not fit ({exc})") from exc
        torch.set_rng_state(st["torch_rng"])
    vae.train()

    def write(tmp: Path) -> None:
        vae.save_pretrained(str(tmp / "vae"), safe_serialization=True)
        torch.save({"optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state()}, tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, "config": cfg.to_dict()}))

    bar = tqdm(total=cfg.steps, initial=step, desc="train-vae", disable=not cfg.progress, dynamic_ncols=True)
    t0, s0 = time.perf_counter(), step
    while step < cfg.steps:
        idx = global_indices(step, cfg.batch_size, len(source), cfg.seed)
        clips, is_action = sample_clips(collate([source[i] for i in idx]))
        gen = torch.Generator().manual_seed(sample_seed(cfg.seed, step, 0))
        clips = random_crop(clips, cfg.crop_frames, cfg.crop_size, gen, model_cfg.latent.temporal)
        for g in opt.param_groups:
            g["lr"] = vae_lr(cfg, step)
        loss, parts = vae_loss(vae, clips, is_action, cfg, gen)
        if not torch.isfinite(loss):
            raise ActionImagesError(f"non-finite VAE loss at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        bar.update(1)
        rate = (step - s0) * clips.shape[0] / max(1e-9, time.perf_counter() - t0)
        bar.set_postfix(rec=f"{parts['rec']:.4f}", clips_s=f"{rate:.1f}")
        if cfg.save_every > 0 and step % cfg.save_every == 0 and step < cfg.steps:
            save_checkpoint(out / "checkpoints", step, write, keep=cfg.keep)
    bar.close()
    vae.eval()
    mean, std = latent_stats(vae, source, cfg.stats_samples)
    vae.register_to_config(latents_mean=mean.tolist(), latents_std=std.clamp(min=1e-4).tolist())
    save_checkpoint(out / "checkpoints", step, write, keep=cfg.keep)
    final = out / "vae"
    with atomic_dir(final) as tmp:
        vae.save_pretrained(str(tmp), safe_serialization=True)
    return final
