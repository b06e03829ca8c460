"""Synthetic training batches in the ``SampleBuilder`` contract (ARCHITECTURE.md), for tests and benchmarks.

The scene is the data package's ball-on-a-floor rendering: RGB shows the end-effector as a ball,
the action images are the codec's, so video and actions agree exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from actionimages.codec import ActionImageCodec, Camera
from actionimages.data import collate
from actionimages.data.synthetic import default_cameras, render_ball, synthetic_actions
from actionimages.errors import ActionImagesError
from actionimages.model.config import ModelConfig

CAMERA_NAMES = ("front", "side", "top", "back")


def synthetic_sample(
    cfg: ModelConfig, seed: int, instruction: str = "move the ball to the target"
) -> dict[str, Any]:
    """One training sample (V, 3, F, H, W tensors etc.) of a random smooth trajectory."""
    if cfg.num_views > len(CAMERA_NAMES):
        raise ActionImagesError(f"synthetic samples have at most {len(CAMERA_NAMES)} views")
    cams: list[Camera] = list(default_cameras(cfg.width, cfg.height, CAMERA_NAMES[: cfg.num_views]).values())
    actions = synthetic_actions(cfg.num_frames, seed=seed)
    rgb = np.stack([np.stack([render_ball(c, a[:3]) for a in actions]) for c in cams])  # (V, F, H, W, 3)
    codec = ActionImageCodec(cams, sigma_frac=cfg.action_sigma_frac)
    act_img = codec.encode(actions)  # (V, F, H, W, 3) in [0, 1]
    plucker = np.stack([c.plucker(cams[0]) for c in cams])  # (V, H, W, 6)
    f = cfg.num_frames

    def to_video(x: np.ndarray) -> torch.Tensor:  # (V, F, H, W, 3) in [0, 1] -> (V, 3, F, H, W) in [-1, 1]
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3))).float() * 2 - 1

    return {
        "rgb": to_video(rgb.astype(np.float32) / 255.0),
        "action_images": to_video(act_img),
        "plucker": torch.from_numpy(plucker)
        .permute(0, 3, 1, 2)[:, :, None]
        .expand(-1, -1, f, -1, -1)
        .contiguous(),
        "K": torch.from_numpy(np.stack([c.K for c in cams]))
        .float()[:, None]
        .expand(-1, f, -1, -1)
        .contiguous(),
        "cam_to_world": torch.from_numpy(np.stack([c.cam_to_world for c in cams]))
        .float()[:, None]
        .expand(-1, f, -1, -1)
        .contiguous(),
        "actions": torch.from_numpy(actions).float(),
        "frame_valid": torch.ones(f, dtype=torch.bool),
        "has_actions": torch.tensor(True),
        "instruction": instruction,
        "episode": int(seed),
        "start": 0,
    }


def synthetic_batch(
    cfg: ModelConfig, batch_size: int, seed: int = 0, instruction: str = "move the ball to the target"
):
    """A collated batch of ``batch_size`` synthetic samples (seeds ``seed .. seed + B - 1``)."""
    return collate([synthetic_sample(cfg, seed + i, instruction) for i in range(batch_size)])


def tiny_wan_folder(root: Path) -> Path:
    """A tiny random checkpoint in the diffusers Wan 2.2 folder layout (transformer, vae, umT5, tokenizer),
    for tests: transformer dim 32 (2 heads × 16), 2 layers, FFN 64, text_dim 24, freq_dim 16; VAE z_dim 16."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import T5Tokenizer, UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=16,
        out_channels=16,
        text_dim=24,
        freq_dim=16,
        ffn_dim=64,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
    ).save_pretrained(str(root / "transformer"))
    AutoencoderKLWan(
        base_dim=8,
        z_dim=16,
        is_residual=True,
        patch_size=2,
        in_channels=12,
        out_channels=12,
        scale_factor_spatial=16,
        latents_mean=[0.1] * 16,
        latents_std=[2.0] * 16,
    ).save_pretrained(str(root / "vae"))
    UMT5EncoderModel(
        UMT5Config(vocab_size=128, d_model=24, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    ).save_pretrained(str(root / "text_encoder"))
    # A small Unigram vocabulary in T5's layout (<pad>=0, </s>=1, <unk>=2), built offline.
    words = ["close", "the", "drawer", "reach", "red", "target", "open"]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(f"\u2581{w}", -3.0) for w in words] + [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz"]
    T5Tokenizer(vocab=vocab, extra_ids=0).save_pretrained(str(root / "tokenizer"))

    return root
