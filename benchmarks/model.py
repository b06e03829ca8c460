"""Benchmarks of the world-action model on this machine (results go to docs/results/model.md).

    python benchmarks/model.py speed      [--config tiny] [--batch-size 16] [--steps 20] [--threads N]
    python benchmarks/model.py speed      --config tiny --model.transformer.patch_size 1 2 2  # a variant
    python benchmarks/model.py speed      --config tiny --mixed-precision bf16|no  # autocast or fp32
    python benchmarks/model.py sample     [--model DIR | --config tiny] [--num-steps 8] [--guidance 1]
    python benchmarks/model.py autoencoder --config tiny [--vae VAE_DIR] --data DATA [--clips 32]
    python benchmarks/model.py actions    --model DIR --data DATA [--clips 32] [--num-steps 8]

Each prints one JSON line. ``speed`` and ``sample`` use synthetic batches (timing does not depend
on content); ``autoencoder`` and ``actions`` use a dataset directory (or ``synthetic:N``).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from actionimages.cli.config_args import add_override_flags, apply_overrides, overrides_from_flags
from actionimages.codec.poses import euler_to_matrix, rotation_angle_between
from actionimages.data import collate
from actionimages.errors import ActionImagesError
from actionimages.model import ModelConfig, build_model, generate, get_config, load_model, set_vae
from actionimages.model.sampling import decode_actions
from actionimages.model.synthetic import synthetic_batch
from actionimages.train import SyntheticSource, TrainConfig, Trainer, open_training_source


def model_config(a: argparse.Namespace):
    """``--config`` with the ``--model.KEY V`` overrides given (the same flags as ``train``)."""
    return apply_overrides(get_config(a.config), overrides_from_flags(a, "model"))


def peak_rss_mb() -> float:
    from actionimages.model.memory import peak_rss_bytes

    return peak_rss_bytes() / 2**20


def bench_speed(a: argparse.Namespace) -> dict:
    """Training samples/s of the world model (latents cached, as the trainer does)."""
    import tempfile

    torch.manual_seed(0)
    model = build_model(model_config(a))
    src = SyntheticSource(model.spec, max(a.batch_size, 16))
    with tempfile.TemporaryDirectory() as out:
        tr = Trainer(
            model,
            src,
            out,
            TrainConfig(
                steps=a.steps + 3,
                batch_size=a.batch_size,
                progress=False,
                save_every=0,
                mixed_precision=a.mixed_precision,
            ),
        )
        tr.fit(3)  # warm-up; also fills the latent cache
        t0 = time.perf_counter()
        tr.fit(a.steps + 3)
        dt = time.perf_counter() - t0
    params = model.num_parameters_by_part()
    return {
        "bench": "train_speed",
        "config": a.config,
        "overrides": overrides_from_flags(a, "model"),
        "tokens": model.spec.num_tokens,
        "batch_size": a.batch_size,
        "steps": a.steps,
        "mixed_precision": tr.precision,
        "samples_per_s": round(a.steps * a.batch_size / dt, 2),
        "s_per_step": round(dt / a.steps, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "threads": torch.get_num_threads(),
        "params": params,
    }


def bench_sample(a: argparse.Namespace) -> dict:
    """Seconds per joint-mode generate call from first frames (what a policy replanning call costs)."""
    model = load_model(a.model) if a.model else build_model(model_config(a))
    model.eval()
    cfg = model.spec
    full = synthetic_batch(cfg, 1, seed=0)
    batch = {**full, **{k: full[k][:, :, :, :1] for k in ("rgb", "action_images", "plucker")}}
    times = {"generate": [], "generate+codec": []}
    for i in range(a.repeats + 1):
        t0 = time.perf_counter()
        g = generate(
            model,
            batch,
            "joint",
            num_steps=a.num_steps,
            guidance=a.guidance,
            seed=i,
            decode_rgb=False,
            decode_action_poses=False,
        )
        t1 = time.perf_counter()
        decode_actions(full, g.action_images, model.spec.action_sigma_frac)
        t2 = time.perf_counter()
        if i:  # the first call pays one-off costs
            times["generate"].append(t1 - t0)
            times["generate+codec"].append(t2 - t0)
    return {
        "bench": "sample",
        "config": cfg.name,
        "overrides": overrides_from_flags(a, "model"),
        "tokens": cfg.num_tokens,
        "views": cfg.num_views,
        "frames": cfg.num_frames,
        "size": cfg.height,
        "num_steps": a.num_steps,
        "guidance": a.guidance,
        **{f"{k}_s_median": round(float(np.median(v)), 3) for k, v in times.items()},
        "threads": torch.get_num_threads(),
    }


def action_errors(pred: torch.Tensor, valid: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> dict:
    """Errors of decoded actions (N, F, 7) against ground truth on frames where ``mask`` & ``valid``."""
    m = (mask & valid).numpy()
    p, g = pred.double().numpy(), gt.double().numpy()
    pos = np.linalg.norm(p[..., :3] - g[..., :3], axis=-1)
    ok = m & np.isfinite(pos)
    rot = np.degrees(
        rotation_angle_between(euler_to_matrix(np.nan_to_num(p[..., 3:6])), euler_to_matrix(g[..., 3:6]))
    )
    grip = (p[..., 6] > 0.5) == (g[..., 6] > 0.5)
    return {
        "pos_err_mm_mean": round(float(pos[ok].mean() * 1000), 2) if ok.any() else None,
        "pos_err_mm_median": round(float(np.median(pos[ok]) * 1000), 2) if ok.any() else None,
        "rot_err_deg_mean": round(float(rot[ok].mean()), 2) if ok.any() else None,
        "gripper_acc": round(float(grip[ok].mean()), 3) if ok.any() else None,
        "valid_rate": round(float((valid.numpy() & mask.numpy()).sum() / max(1, mask.numpy().sum())), 3),
    }


def _clips(a: argparse.Namespace, cfg) -> dict:
    src = open_training_source(a.data, cfg, a.stride, 4, seed=12345)
    idx = list(range(min(a.clips, len(src))))
    return collate([src[i] for i in idx])


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(10 * torch.log10(4.0 / ((x - y) ** 2).mean()))  # [-1, 1] range: peak-to-peak 2


@torch.no_grad()
def bench_autoencoder(a: argparse.Namespace) -> dict:
    """Reconstruction PSNR of RGB and action clips, and the action error after encode/decode."""
    model = build_model(a.config)
    if a.vae:
        set_vae(model, a.vae)
    batch = _clips(a, model.spec)
    space = model.latent_space
    b, v = batch["rgb"].shape[:2]
    rec = {}
    t0 = time.perf_counter()
    for key in ("rgb", "action_images"):
        x = batch[key].flatten(0, 1)
        rec[key] = torch.cat([space.decode(space.encode(c)) for c in x.split(8)]).unflatten(0, (b, v))
    dt = time.perf_counter() - t0
    mask = batch["frame_valid"] & batch["has_actions"][:, None]
    acts_gt, valid_gt = decode_actions(batch, batch["action_images"], model.spec.action_sigma_frac)
    acts_rec, valid_rec = decode_actions(batch, rec["action_images"], model.spec.action_sigma_frac)
    return {
        "bench": "autoencoder",
        "config": a.config,
        "vae": a.vae,
        "clips": b,
        "psnr_rgb": round(psnr(rec["rgb"], batch["rgb"]), 2),
        "psnr_action": round(psnr(rec["action_images"], batch["action_images"]), 2),
        "codec_on_gt_images": action_errors(acts_gt, valid_gt, batch["actions"], mask),
        "codec_after_autoencoder": action_errors(acts_rec, valid_rec, batch["actions"], mask),
        "encode_decode_s_per_clip": round(dt / (2 * b * v), 4),
    }


@torch.no_grad()
def bench_actions(a: argparse.Namespace) -> dict:
    """Joint-mode generation from first frames on held-out clips: decoded action error vs ground truth."""
    model = load_model(a.model).eval()
    batch = _clips(a, model.spec)
    b = batch["rgb"].shape[0]
    preds, valids = [], []
    t0 = time.perf_counter()
    for i in range(b):
        one = {k: (v[i : i + 1] if isinstance(v, torch.Tensor) else v[i : i + 1]) for k, v in batch.items()}
        g = generate(
            model, one, "joint", num_steps=a.num_steps, guidance=a.guidance, seed=i, decode_rgb=False
        )
        preds.append(g.actions)
        valids.append(g.valid)
    dt = time.perf_counter() - t0
    pred, valid = torch.cat(preds), torch.cat(valids)
    mask = batch["frame_valid"] & batch["has_actions"][:, None]
    mask[:, 0] = False  # frame 0 is given (the current pose)
    # "stay still" reference: predict the current pose for every future frame
    still = batch["actions"][:, :1].expand_as(batch["actions"])
    return {
        "bench": "actions",
        "model": a.model,
        "clips": b,
        "num_steps": a.num_steps,
        "guidance": a.guidance,
        "generated": action_errors(pred, valid, batch["actions"], mask),
        "hold_current_pose_reference": action_errors(still, torch.ones_like(valid), batch["actions"], mask),
        "s_per_clip": round(dt / b, 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bench", choices=["speed", "sample", "autoencoder", "actions"])
    p.add_argument("--config", default="tiny")
    p.add_argument("--model")
    p.add_argument("--vae")
    p.add_argument("--data", default="synthetic:16")
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--mixed-precision", default="auto", choices=["auto", "no", "bf16"])
    p.add_argument("--num-steps", type=int, default=8)
    p.add_argument("--guidance", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    # speed and sample measure a variant of --config with train's flags: --model.transformer.patch_size 1 2 2
    add_override_flags(p, ModelConfig, "model", skip=("name", "pretrained", "lora_rank"))
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    fn = {
        "speed": bench_speed,
        "sample": bench_sample,
        "autoencoder": bench_autoencoder,
        "actions": bench_actions,
    }
    try:
        print(json.dumps(fn[a.bench](a)))
    except ActionImagesError as exc:  # a bad config value: the message, not a traceback
        raise SystemExit(f"{p.prog}: error: {exc}") from exc


if __name__ == "__main__":
    main()
