"""``actionimages plan-memory``: memory per device for training and for one replanning call."""

from __future__ import annotations

import argparse
import json

from actionimages.cli.ranges import COUNT, NONNEGATIVE, float_above


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "plan-memory",
        help="memory per device for training and for one replanning call",
        description="Estimate memory per device; parameters are counted exactly on the meta device, "
        "activations from a fitted per-token model (actionimages.model.memory).",
    )
    p.add_argument("--config", required=True, help="model config name (tiny, small, wan2.2-ti2v-5b, ...)")
    p.add_argument("--batch-size", type=COUNT, default=1, help="per device")
    p.add_argument("--frames", type=COUNT, help="video frames (1 + 4k); default the config's")
    p.add_argument("--size", type=COUNT, help="square frame size; default the config's")
    p.add_argument(
        "--lora-rank", type=NONNEGATIVE, help="LoRA rank (0: full fine-tune); default the config's"
    )
    p.add_argument("--zero", type=int, choices=(0, 2, 3), default=0, help="ZeRO/FSDP sharding stage")
    p.add_argument("--gpus", type=COUNT, default=1)
    p.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--weights-dtype", choices=("bf16", "fp16", "fp32"), default="bf16", help="frozen weights")
    p.add_argument(
        "--activations-dtype", choices=("bf16", "fp16", "fp32"), default="bf16", help="fp32 on a CPU"
    )
    p.add_argument(
        "--text-encoder-on-device", action="store_true", help="umT5 beside the DiT (no embed cache)"
    )
    p.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="whose memory: a GPU's (runtime: the CUDA context) or the host's on a CPU run (runtime: "
        "the framework and the latent cache); use --activations-dtype fp32 for a CPU",
    )
    p.add_argument(
        "--cache-samples",
        type=NONNEGATIVE,
        default=0,
        help="training clips the latent cache holds (episodes × --clips-per-episode; host memory)",
    )
    p.add_argument("--memory-gib", type=float_above(0), help="say whether training fits this much per device")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_plan_memory)


def run_plan_memory(args: argparse.Namespace) -> int:
    from actionimages.model import get_config
    from actionimages.model.memory import plan_memory

    plan = plan_memory(
        get_config(args.config),
        batch_size=args.batch_size,
        frames=args.frames,
        size=args.size,
        lora_rank=args.lora_rank,
        zero=args.zero,
        gpus=args.gpus,
        gradient_checkpointing=args.gradient_checkpointing,
        weights_dtype=args.weights_dtype,
        activations_dtype=args.activations_dtype,
        text_encoder_on_device=args.text_encoder_on_device,
        memory_gib=args.memory_gib,
        device=args.device,
        cache_samples=args.cache_samples,
    ).to_dict()
    if args.json:
        print(json.dumps(plan))
        return 0
    print(f"{plan['config']}: {plan['tokens']} tokens per sample, batch {plan['batch_size']} per device")
    for key in ("weights", "gradients", "optimizer", "activations", "text_encoder", "runtime"):
        print(f"  {key:<13} {plan[key + '_gib']:>9.2f} GiB")
    print(f"  training      {plan['train_total_gib']:>9.2f} GiB per device")
    print(f"  replanning    {plan['inference_total_gib']:>9.2f} GiB (one call, {args.weights_dtype} weights)")
    if args.device == "cuda":
        host = plan["host_runtime_gib"]
        print(f"  host          {host:>9.2f} GiB (framework and latent cache, per process)")
    if plan["fits"] is not None:
        print(f"  fits in {args.memory_gib} GiB: {'yes' if plan['fits'] else 'no'}")
    return 0
