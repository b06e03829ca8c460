"""Real-size runs of the Wan2.2-TI2V-5B world model (issue 15) with random weights created directly
in bf16 (never materialised in fp32), LoRA on its attention and FFN projections.

CPU smoke run (what docs/results/scale.json holds): one forward and backward of the flow loss on a
small latent layout:

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/scale.py [--frames 5] [--size 64] [--lora-rank 16]
        [--out docs/results/scale.json]

GPU check (``scripts/gpu_check.sh``): timed training steps (forward, backward, AdamW) at the
config's layout with and without gradient checkpointing, and the replanning latency:

    python benchmarks/scale.py --device cuda --frames 41 --size 512 --lora-rank 64 \
        --checkpointing on,off --steps 3 --fallback-frames 21,9 --replan-steps 50,8 --out gpu.json

Each training measurement reports tokens/s, peak memory (CUDA: ``max_memory_allocated``; CPU: peak
resident set), model FLOPs utilisation and plan-memory's prediction beside it. Model FLOPs: the
forward counted by ``torch.utils.flop_counter`` at that shape (attention included), times 2 under
LoRA (the backward needs input gradients only: the frozen weights get none) or 3 for a full
fine-tune; recomputation under checkpointing is not counted (MFU, not hardware utilisation).
``--dry-run`` runs every stage on a tiny config on the CPU in seconds, to prove the script works.

It runs the model code a real run runs (WorldActionModel.forward, per-token timesteps, Plücker
cameras, 4096-wide text context; ``generate`` in joint mode as the policy calls it), with random
text embeddings standing in for umT5 (the text encoder is not part of the trained model).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

# Dense bf16 tensor-core peak (TFLOP/s, no sparsity) by device name; --peak-tflops overrides.
PEAK_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "A6000": 154.8}


def rss_gib() -> float:
    from actionimages.model.memory import peak_rss_bytes

    return peak_rss_bytes() / 2**30


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return rss_gib()  # the process's peak so far: only meaningful for the first measurement


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


class RandomText(nn.Module):
    """Stands in for umT5: fixed random embeddings (B, L, text_dim), whatever the instruction."""

    def __init__(self, tokens: int, dim: int, device: torch.device) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.embedding = torch.randn(1, tokens, dim, generator=gen).to(device, torch.bfloat16)

    def forward(self, instructions: list[str]) -> torch.Tensor:
        return self.embedding.expand(len(instructions), -1, -1)


def build(cfg, device: torch.device, lora_rank: int) -> nn.Module:
    """The world model with every weight created in bf16 on ``device``; LoRA (fp32) when rank > 0."""
    from actionimages.model.io import add_lora
    from actionimages.model.network import WorldActionModel

    torch.set_default_dtype(torch.bfloat16)  # every parameter is created in bf16: 2 bytes, never 4
    try:
        with device:  # created where it runs: a 5B model is never staged in host memory on a GPU run
            model = WorldActionModel(spec=cfg.to_dict())
    finally:
        torch.set_default_dtype(torch.float32)
    if model.text_encoder is None:
        model.attach_text_encoder(RandomText(cfg.text.max_tokens, cfg.transformer.text_dim, device))
    if lora_rank > 0:
        model.requires_grad_(False)
        add_lora(model, lora_rank)
        model.to(device)  # the adapters were created on the CPU
        for m in (model.camera_encoder, model.camera_proj, model.stream_embed):
            m.requires_grad_(True)
    else:
        model.latent_space.requires_grad_(False)
    return model


def training_inputs(model, frames: int, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Random model-space inputs of ``frames`` video frames at the model's views and size."""
    cfg = model.spec.replace(num_frames=frames)
    b, c, s, f = batch_size, cfg.latent.channels, cfg.num_segments, cfg.latent_frames
    h, w = cfg.latent_hw
    gen = torch.Generator().manual_seed(0)
    plucker = torch.randn(b, cfg.num_views, 6, frames, cfg.height, cfg.width, generator=gen)
    inputs = {
        "latents": torch.randn(b, c, s * f, h, w, generator=gen, dtype=torch.bfloat16),
        "target": torch.randn(b, c, s * f, h, w, generator=gen, dtype=torch.bfloat16),
        "timesteps": torch.rand(b, s * f, generator=gen) * 1000,
        "text": torch.randn(b, cfg.text.max_tokens, cfg.transformer.text_dim, generator=gen).bfloat16(),
        "camera": model.plucker_features(plucker).to(torch.bfloat16),
    }
    if cfg.obs_patch:
        obs = torch.rand(b, cfg.num_views, 3, cfg.height, cfg.width, generator=gen) * 2 - 1
        inputs["observation"] = obs
    return {k: v.to(device) for k, v in inputs.items()} | {"tokens": b * cfg.num_tokens}


def _loss(model, x: dict[str, Any], device: torch.device) -> torch.Tensor:
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        pred = model(x["latents"], x["timesteps"], x["text"], x["camera"], x.get("observation"))
    return (pred.float() - x["target"].float()).pow(2).mean()


def forward_flops(model, x: dict[str, Any], device: torch.device) -> int:
    """FLOPs of one forward at these inputs, as torch's flop counter sees them (matmuls, attention)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        _loss(model, x, device)
    return int(counter.get_total_flops())


def train_steps(
    model, frames: int, batch_size: int, checkpointing: bool, steps: int, device: torch.device, peak_tflops
) -> dict[str, Any]:
    """``steps`` timed training steps (after one untimed warm-up on CUDA) at ``frames`` frames."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-6)
    model.train()
    model.gradient_checkpointing = checkpointing
    x = training_inputs(model, frames, batch_size, device)
    _reset_peak(device)
    times, loss = [], torch.zeros(())
    for i in range(steps + (device.type == "cuda")):
        _sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)  # here, not after the step: the last step's grads are checked
        loss = _loss(model, x, device)
        loss.backward()
        opt.step()
        _sync(device)
        if device.type != "cuda" or i > 0:  # the first CUDA step pays for kernel selection
            times.append(time.perf_counter() - t0)
    grads = [p.grad for p in trainable if p.grad is not None]
    out = {
        "frames": frames,
        "tokens_per_step": x["tokens"],
        "gradient_checkpointing": checkpointing,
        "steps_timed": len(times),
        "step_s": round(statistics.median(times), 3),
        "tokens_per_s": round(x["tokens"] / statistics.median(times), 1),
        "peak_memory_gib": round(_peak_gib(device), 2),
        "loss": round(float(loss.detach()), 4),
        "trainable_with_grad": len(grads),
        "grad_finite": bool(all(torch.isfinite(g).all() for g in grads)),
    }
    del opt, grads
    model.zero_grad(set_to_none=True)
    fwd = forward_flops(model, x, device)
    lora = any("lora_" in n for n, _ in model.named_parameters())
    out["model_flops_per_step"] = fwd * (2 if lora else 3)
    achieved = out["model_flops_per_step"] / statistics.median(times)
    out["achieved_tflops"] = round(achieved / 1e12, 2)
    out["mfu"] = round(achieved / (peak_tflops * 1e12), 4) if peak_tflops else None
    return out


def train_largest(model, frames_list: list[int], batch_size, checkpointing, steps, device, peak_tflops):
    """The first of ``frames_list`` (largest first) whose training step fits in device memory."""
    tried = []
    for frames in frames_list:
        try:
            res = train_steps(model, frames, batch_size, checkpointing, steps, device, peak_tflops)
            return res | {"out_of_memory_at_frames": tried}
        except torch.OutOfMemoryError:
            tried.append(frames)
            model.zero_grad(set_to_none=True)
            _reset_peak(device)
    return {"gradient_checkpointing": checkpointing, "out_of_memory_at_frames": tried}


def replan_latency(model, num_steps: int, device: torch.device) -> dict[str, Any]:
    """One replanning call as the policy makes it: joint mode, no RGB decode, seconds per stage."""
    from actionimages.model import generate
    from actionimages.model.synthetic import synthetic_batch

    batch = synthetic_batch(model.spec, 1)
    for key in ("rgb", "action_images", "plucker"):  # the policy gives the current frame only
        batch[key] = batch[key][:, :, :, :1]
    model.eval()
    kw = {"mode": "joint", "guidance": 1.0, "decode_rgb": False, "decode_action_poses": False}
    generate(model, batch, num_steps=1, **kw)  # warm-up: kernels, allocator
    _reset_peak(device)
    timings: dict[str, float] = {}
    _sync(device)
    t0 = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        generate(model, batch, num_steps=num_steps, timings=timings, **kw)
    _sync(device)
    return {
        "num_steps": num_steps,
        "latency_s": round(time.perf_counter() - t0, 3),
        "stages_s": {k: round(v, 3) for k, v in timings.items()},
        "peak_memory_gib": round(_peak_gib(device), 2),
    }


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise SystemExit(f"expected comma-separated integers, got {text!r}") from exc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="wan2.2-ti2v-5b")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--views", type=int, help="default: the config's")
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--lora-rank", type=int, default=16, help="0: full fine-tune")
    ap.add_argument("--checkpointing", default="on", help="on, off or on,off")
    ap.add_argument("--steps", type=int, default=1, help="timed training steps per setting")
    ap.add_argument("--fallback-frames", default="", help="fewer frames to try on running out of memory")
    ap.add_argument("--replan-steps", default="", help="sampling steps of replanning calls, e.g. 50,8")
    ap.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak (default: by its name)")
    ap.add_argument("--dry-run", action="store_true", help="every stage on the micro config, CPU, seconds")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.dry_run:
        args.config, args.device, args.frames, args.size, args.steps = "micro", "cpu", 5, 32, 1
        args.replan_steps = args.replan_steps or "2"
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here (use --dry-run on a CPU)")
    settings = {"on": [True], "off": [False], "on,off": [True, False], "off,on": [False, True]}
    if args.checkpointing not in settings:
        raise SystemExit(f"--checkpointing must be on, off or on,off; got {args.checkpointing!r}")
    from actionimages.model.config import get_config
    from actionimages.model.memory import plan_memory

    changes = {"num_frames": args.frames, "height": args.size, "width": args.size}
    cfg = get_config(args.config).replace(**changes, **({"num_views": args.views} if args.views else {}))
    peak = args.peak_tflops
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = peak or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    else:
        name = "cpu"
    out: dict[str, Any] = {"config": cfg.name, "device": name, "views": cfg.num_views, "frames": args.frames}
    out |= {"size": args.size, "tokens": cfg.num_tokens, "batch_size": args.batch_size}
    t0 = time.perf_counter()
    model = build(cfg, device, args.lora_rank)
    out["build_s"] = round(time.perf_counter() - t0, 1)
    named = model.transformer.named_parameters()
    out["params_transformer"] = sum(p.numel() for n, p in named if "lora_" not in n)  # the base model
    out["dtype"] = str(next(model.transformer.parameters()).dtype)
    out["rss_after_build_gib"] = round(rss_gib(), 2)
    out["params_trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    out["lora_rank"] = args.lora_rank
    out["peak_bf16_tflops"] = peak

    frames_list = [args.frames] + _ints(args.fallback_frames)
    out["train"] = []
    for ckpt in settings[args.checkpointing]:
        res = train_largest(model, frames_list, args.batch_size, ckpt, args.steps, device, peak)
        if "frames" in res:
            plan = plan_memory(
                cfg, batch_size=args.batch_size, frames=res["frames"], lora_rank=args.lora_rank,
                gradient_checkpointing=ckpt, weights_dtype="bf16",
            ).to_dict()  # fmt: skip
            res["plan_memory_train_total_gib"] = plan["train_total_gib"]
        out["train"].append(res)
        print(json.dumps(res), flush=True)
    out["replan"] = []
    for n in _ints(args.replan_steps):
        res = replan_latency(model, n, device)
        plan = plan_memory(cfg, lora_rank=args.lora_rank, guidance=False).to_dict()  # guidance 1, as timed
        res["plan_memory_inference_total_gib"] = plan["inference_total_gib"]
        out["replan"].append(res)
        print(json.dumps(res), flush=True)
    out["torch"] = torch.__version__
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
