"""``actionimages baseline train``: train a baseline (``bc`` or ``lowdim``) on a demonstration dataset."""

from __future__ import annotations

import argparse

from actionimages.cli.ranges import COUNT, NONNEGATIVE, float_above, float_at_least
from actionimages.policy.registry import baseline_kinds


def run_train(args: argparse.Namespace) -> int:
    from actionimages.policy.baseline import train_baseline

    meta = train_baseline(
        args.kind,
        args.data,
        args.out,
        minutes=args.minutes,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        horizon=args.horizon,
        cameras=args.cameras,
        image_size=args.image_size,
        model_config=args.model_config,
        film=args.film,
        seed=args.seed,
    )
    loss = f"loss {meta['final_loss']:.4f}" if "final_loss" in meta else "no new step"
    print(
        f"{args.kind}: {meta['step']} steps in {meta['train_seconds'] / 60:.1f} min "
        f"on {meta['train_frames']} frames, {loss}; checkpoint in {args.out}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("baseline", help="baseline policies (train)")
    sub = p.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    t = sub.add_parser(
        "train",
        help="train a baseline on demonstrations for a wall-time budget (resumable)",
        description="bc: CNN behaviour cloning with an action-chunk head. lowdim: the world model's "
        "transformer backbone with a low-dimensional action head instead of action images.",
    )
    t.add_argument("--kind", choices=baseline_kinds(), required=True)
    t.add_argument("--data", required=True, help="demonstration dataset (LeRobot v3)")
    t.add_argument("--out", required=True, help="run directory (resumed when it holds a checkpoint)")
    t.add_argument("--minutes", type=float_at_least(0), default=5.0, help="wall-time budget (default 5)")
    t.add_argument("--max-steps", type=COUNT, help="stop after this many steps instead of the time budget")
    t.add_argument("--batch-size", type=COUNT, default=32)
    t.add_argument("--lr", type=float_above(0), default=3e-4)
    t.add_argument("--horizon", type=COUNT, default=8, help="poses predicted per chunk (default 8)")
    t.add_argument("--cameras", nargs="+", help="camera names (default: the dataset's first two)")
    t.add_argument("--image-size", type=COUNT, default=64, help="bc input size (default 64)")
    t.add_argument("--model-config", default="tiny", help="lowdim: world-model config for the backbone")
    t.add_argument(
        "--film",
        action="store_true",
        help="bc: the instruction modulates the CNN (FiLM, early fusion) instead of joining after it",
    )
    t.add_argument("--seed", type=NONNEGATIVE, default=0)
    t.set_defaults(func=run_train)
