"""Generation quality on held-out episodes (``actionimages eval-generation``).

For each held-out episode a clip is built exactly as for training (``SampleBuilder``, evaluation
mode) and the model generates it in three modes:

- ``joint``: first frame of every segment given -> observation and action videos. Scored with
  PSNR / SSIM / LPIPS / FVD on the generated RGB frames and 3D position / rotation error of the
  decoded actions.
- ``a2v``: action videos given -> observation video (image metrics).
- ``v2a``: observation videos given -> action video (action errors).
- ``a2v_shuffled`` (control): a2v given *another* episode's actions drawn with this episode's
  cameras. If the model follows the actions, these frames match the ground truth clearly worse.

Only generated frames (1..F-1) are scored. LPIPS and FVD are "unavailable" without local weights.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from actionimages.atomic import write_json_atomic
from actionimages.errors import ActionImagesError, DataError
from actionimages.eval.metrics import load_fvd, load_lpips, pose_errors, psnr, ssim

IMAGE_MODES = ("joint", "a2v", "a2v_shuffled")
ACTION_MODES = ("joint", "v2a")
FOLLOW_MARGIN_DB = 0.5  # a2v must beat the shuffled control by this much PSNR to count as following


def _frames01(x: torch.Tensor) -> torch.Tensor:
    """(V, 3, F, H, W) in [-1, 1] -> (V·(F-1), 3, H, W) in [0, 1], generated frames only."""
    x = x[:, :, 1:].permute(0, 2, 1, 3, 4).flatten(0, 1)
    return ((x.float().clamp(-1, 1) + 1) / 2).cpu()


def evaluate_generation(
    checkpoint: str | Path,
    data: str | Path,
    out: str | Path,
    episodes: int = 8,
    num_steps: int = 8,
    guidance: float = 1.0,
    seed: int = 0,
    views: list[str] | None = None,
    weights: str | Path | None = None,
    stride: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Score joint / a2v / v2a generation and the shuffled-action control; write ``out/generation.json``.

    Returns ``{"modes": {mode: {metric: value or None}}, "notes": [...], "episodes": n, ...}``;
    None marks a metric that is unavailable (with the reason in ``notes``).
    """
    from actionimages.codec import ActionImageCodec
    from actionimages.data import DatasetReader
    from actionimages.model import decode_actions, generate, load_model
    from actionimages.model.sampling import batch_cameras
    from actionimages.policy.observation import batch_of_one
    from actionimages.train.checkpoint import resolve_model_dir

    model_dir, step = resolve_model_dir(checkpoint)
    model = load_model(model_dir).eval()
    cfg = model.spec
    reader = DatasetReader(data)
    usable = [i for i in range(len(reader)) if reader.meta(i).get("length", 1) > 0]
    if len(usable) < 2:
        raise DataError(
            f"{data}: need at least 2 episodes for the shuffled-action control, got {len(usable)}"
        )
    chosen = usable[:episodes] if episodes < len(usable) else usable
    if len(chosen) < 2:
        raise ActionImagesError("episodes must be >= 2 (the shuffled control pairs episodes)")
    names = list(views) if views else list(reader.cameras)[: cfg.num_views]
    builder = cfg.sample_builder(stride=stride, training=False, views=names)
    lpips, lp_av = load_lpips(weights)
    fvd, fvd_av = load_fvd(weights)
    notes = []
    if lpips is None:
        notes.append(f"LPIPS unavailable: {lp_av.reason}")
    if fvd is None:
        notes.append(f"FVD unavailable: {fvd_av.reason}")

    samples = [builder(reader.episode(i), start=0, episode_index=i) for i in chosen]
    per: dict[str, dict[str, list[float]]] = {m: {} for m in ("joint", "a2v", "v2a", "a2v_shuffled")}
    videos: dict[str, list[torch.Tensor]] = {"real": [], "joint": [], "a2v": [], "a2v_shuffled": []}
    latencies = []

    def add(mode: str, key: str, values: Any) -> None:
        per[mode].setdefault(key, []).extend(np.asarray(values, dtype=np.float64).ravel().tolist())

    for n, sample in enumerate(tqdm(samples, desc="eval-generation", unit="ep", disable=not progress)):
        batch = batch_of_one(sample)
        gt_rgb = _frames01(sample["rgb"])
        gt_act = sample["actions"].double().numpy()
        valid = sample["frame_valid"].numpy()
        videos["real"].append(sample["rgb"])
        # Shuffled control: the next episode's actions, drawn with this episode's cameras.
        other = samples[(n + 1) % len(samples)]
        cams = batch_cameras(batch, 0)
        codec = ActionImageCodec(cams, sigma_frac=builder.sigma_frac, axis_length=builder.axis_length)
        imgs = torch.as_tensor(
            np.asarray(codec.encode(other["actions"].double().numpy())), dtype=torch.float32
        )
        shuffled = dict(batch)
        shuffled["action_images"] = (imgs.permute(0, 4, 1, 2, 3) * 2 - 1)[None]
        runs = {"joint": batch, "a2v": batch, "v2a": batch, "a2v_shuffled": shuffled}
        for mode, b in runs.items():
            gen_mode = "a2v" if mode == "a2v_shuffled" else mode
            t0 = time.perf_counter()
            g = generate(
                model, b, mode=gen_mode, num_steps=num_steps, guidance=guidance, seed=seed + n,
                decode_rgb=mode != "v2a", decode_action_poses=False,
            )  # fmt: skip
            latencies.append(time.perf_counter() - t0)
            if mode in IMAGE_MODES:
                pred = _frames01(g.rgb[0])
                add(mode, "psnr", psnr(pred, gt_rgb).clamp(max=100).numpy())
                add(mode, "ssim", ssim(pred, gt_rgb).numpy())
                if lpips is not None:
                    add(mode, "lpips", lpips(pred * 2 - 1, gt_rgb * 2 - 1).numpy())
                videos[mode].append(g.rgb[0])
            if mode in ACTION_MODES:
                try:
                    acts, ok = decode_actions(b, g.action_images, cfg.action_sigma_frac)
                    acts, ok = acts[0].double().numpy(), ok[0].numpy().astype(bool)
                except (RuntimeError, ActionImagesError):
                    acts, ok = np.full_like(gt_act, np.nan), np.zeros(len(gt_act), dtype=bool)
                sel = valid.copy()
                sel[0] = False  # frame 0 is given (the current pose), not generated
                add(mode, "decode_valid_frac", ok[sel])
                good = sel & ok & np.all(np.isfinite(acts), axis=1)
                if good.any():
                    err = pose_errors(acts[good], gt_act[good])
                    add(mode, "position_err_m", err["position_m"])
                    add(mode, "rotation_err_deg", err["rotation_deg"])
                    add(mode, "gripper_acc", err["gripper_correct"])

    modes: dict[str, dict[str, Any]] = {}
    for mode, metrics in per.items():
        entry: dict[str, Any] = {k: float(np.mean(v)) if v else None for k, v in metrics.items()}
        if mode in IMAGE_MODES:
            entry.setdefault("lpips", None)
            entry["fvd"] = None
            if fvd is not None and len(videos[mode]) >= 2:
                fake = torch.cat([v.float() for v in videos[mode]])  # (N·V, 3, F, H, W)
                real = torch.cat([v.float() for v in videos["real"]])
                entry["fvd"] = fvd(fake, real)
        if mode in ACTION_MODES:
            for k in ("position_err_m", "rotation_err_deg", "gripper_acc"):
                entry.setdefault(k, None)
        modes[mode] = entry
    j, s = modes["a2v"].get("psnr"), modes["a2v_shuffled"].get("psnr")
    control = {
        "a2v_psnr": j,
        "shuffled_psnr": s,
        "psnr_drop_db": (j - s) if j is not None and s is not None else None,
        "follows_actions": bool(j is not None and s is not None and j - s > FOLLOW_MARGIN_DB),
    }
    result = {
        "checkpoint": str(model_dir),
        "train_step": step,
        "data": str(Path(data).resolve()),
        "episodes": len(samples),
        "episode_indices": chosen,
        "views": names,
        "num_steps": num_steps,
        "guidance": guidance,
        "seed": seed,
        "frames_scored": "generated frames 1..F-1 of every view",
        "modes": modes,
        "shuffled_control": control,
        "latency_s_median": float(np.median(latencies)),
        "notes": notes,
    }
    write_json_atomic(Path(out) / "generation.json", result, indent=2)
    return result
