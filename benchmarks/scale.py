"""Real-size smoke run (issue 15): the Wan2.2-TI2V-5B world model with random weights created
directly in bf16 (never materialised in fp32), LoRA on its attention and FFN projections, one
forward and backward of the flow loss on a small latent layout, on this CPU.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/scale.py [--frames 5] [--size 64] [--lora-rank 16]
        [--out docs/results/scale.json]

It runs the model code a GPU run runs (WorldActionModel.forward with the 5B transformer, per-token
timesteps, Plücker cameras, 4096-wide text context), with random text embeddings standing in for
umT5 (the text encoder is not part of the trained model). Prints one JSON object: parameter
counts, peak resident memory, time per stage, and plan-memory's prediction beside it.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GiB (Linux)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--lora-rank", type=int, default=16)
    ap.add_argument("--out")
    args = ap.parse_args()
    from actionimages.model.config import get_config
    from actionimages.model.io import add_lora
    from actionimages.model.memory import plan_memory
    from actionimages.model.network import WorldActionModel

    cfg = get_config("wan2.2-ti2v-5b").replace(num_frames=args.frames, height=args.size, width=args.size)
    out: dict = {"config": cfg.name, "frames": args.frames, "size": args.size, "tokens": cfg.num_tokens}
    t0 = time.perf_counter()
    torch.set_default_dtype(torch.bfloat16)  # every parameter is created in bf16: 2 bytes, never 4
    try:
        model = WorldActionModel(spec=cfg.to_dict())
    finally:
        torch.set_default_dtype(torch.float32)
    out["build_s"] = round(time.perf_counter() - t0, 1)
    out["params_transformer"] = sum(p.numel() for p in model.transformer.parameters())
    out["dtype"] = str(next(model.transformer.parameters()).dtype)
    out["rss_after_build_gib"] = round(rss_gib(), 2)
    model.requires_grad_(False)
    add_lora(model, args.lora_rank)
    for m in (model.camera_encoder, model.camera_proj, model.stream_embed):
        m.requires_grad_(True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    out["params_trainable"] = sum(p.numel() for p in trainable)
    model.train()
    model.gradient_checkpointing = True

    b, c, s, f = 1, cfg.latent.channels, cfg.num_segments, cfg.latent_frames
    h, w = cfg.latent_hw
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(b, c, s * f, h, w, generator=gen, dtype=torch.bfloat16)
    target = torch.randn(latents.shape, generator=gen, dtype=torch.bfloat16)
    timesteps = torch.rand(b, s * f, generator=gen) * 1000
    text = torch.randn(b, cfg.text.max_tokens, cfg.transformer.text_dim, generator=gen, dtype=torch.bfloat16)
    plucker = torch.randn(b, cfg.num_views, 6, cfg.num_frames, cfg.height, cfg.width, generator=gen)
    camera = model.plucker_features(plucker).to(torch.bfloat16)
    t1 = time.perf_counter()
    pred = model(latents, timesteps, text, camera)
    loss = (pred.float() - target.float()).pow(2).mean()
    out["forward_s"] = round(time.perf_counter() - t1, 1)
    t2 = time.perf_counter()
    loss.backward()
    out["backward_s"] = round(time.perf_counter() - t2, 1)
    grads = [p.grad for p in trainable if p.grad is not None]
    out["loss"] = round(float(loss.detach()), 4)
    out["trainable_with_grad"] = len(grads)
    out["grad_finite"] = bool(all(torch.isfinite(g).all() for g in grads))
    out["peak_rss_gib"] = round(rss_gib(), 2)
    plan = plan_memory(
        cfg, lora_rank=args.lora_rank, gradient_checkpointing=True, weights_dtype="bf16"
    ).to_dict()
    out["plan_memory_train_total_gib"] = plan["train_total_gib"]
    out["torch"] = torch.__version__
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
