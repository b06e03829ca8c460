"""``actionimages ladder``: the oracle ladder (expert, codec, autoencoder, model) and perception checks.

Writes ``DIR/ladder.json`` (per rung and task: successes, episodes, Wilson 95% interval),
``DIR/perception.json`` (objects through the VAE; target following on ``reach_target``),
``DIR/perception_autoencoder.png`` and each rung's ``actionimages eval`` output under
``DIR/rungs/<rung>/``; prints markdown tables.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from actionimages.cli.policy_args import add_planning_flags, planning_options
from actionimages.cli.ranges import COUNT, NONNEGATIVE, WORKERS
from actionimages.errors import ActionImagesError


def run_ladder_cli(args: argparse.Namespace) -> int:
    from actionimages.eval.ladder import (
        autoencoder_objects,
        markdown_table,
        parse_rungs,
        perception_markdown,
        run_ladder,
        target_following,
        write_json,
    )
    from actionimages.eval.runner import check_tasks_split
    from actionimages.train.checkpoint import resolve_model_dir

    tasks = [t.strip() for arg in args.task for t in arg.split(",") if t.strip()]
    rungs = parse_rungs(args.rungs)
    check_tasks_split(tasks, args.split)
    needs_model = [r for r in rungs if r != "expert"]
    perception = args.perception_scenes > 0 or args.follow_scenes > 0
    if (needs_model or perception) and not args.checkpoint:
        what = f"rungs {needs_model}" if needs_model else "the perception checks"
        raise ActionImagesError(f"{what} need a world model: give --checkpoint DIR")
    model_dir = resolve_model_dir(args.checkpoint)[0] if args.checkpoint else None  # clear error if missing
    options = planning_options(args)
    out = Path(args.out)

    ladder = run_ladder(
        model_dir, tasks, split=args.split, episodes=args.episodes, rungs=rungs, seed=args.seed,
        workers=args.workers, out=out, options=options, image_size=args.image_size,
        max_steps=args.max_steps, videos=args.videos, threads=args.threads,
    )  # fmt: skip
    print(f"\nOracle ladder, {args.split} split, {args.episodes} episodes per task, seed {args.seed}:\n")
    print(markdown_table(ladder))
    print(f"\nwrote {out / 'ladder.json'}")
    if not perception:
        return 0

    import torch

    from actionimages.model import load_model
    from actionimages.policy.action_images.oracle import OracleActionImagePolicy
    from actionimages.policy.action_images.policy import ActionImagePolicy

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(model_dir)
    report: dict[str, Any] = {"checkpoint": str(model_dir), "options": {**options, "seed": args.seed}}
    if args.perception_scenes > 0:
        report["autoencoder_objects"] = autoencoder_objects(
            model, tasks, split=args.split, scenes=args.perception_scenes, seed=args.seed,
            image_size=args.image_size, views=args.views, png=out / "perception_autoencoder.png",
        )  # fmt: skip
    if args.follow_scenes > 0:
        # on the shrunk reach task when it is the one evaluated, else on reach_target
        follow_task = "reach_target_single" if "reach_target_single" in tasks else "reach_target"
        follow = {}
        for name, policy in (
            ("codec (expert oracle)", OracleActionImagePolicy(model, seed=args.seed, **options)),
            ("model", ActionImagePolicy(model, seed=args.seed, **options)),
        ):
            follow[name] = target_following(
                policy,
                split=args.split,
                scenes=args.follow_scenes,
                seed=args.seed,
                image_size=args.image_size,
                task=follow_task,
            )
        report["target_following"] = follow
    write_json(out / "perception.json", report)
    print("\nPerception checks:\n")
    print(perception_markdown(report))
    print(f"\nwrote {out / 'perception.json'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ladder",
        help="oracle ladder (expert, codec, autoencoder, model) and perception checks of a world model",
        description=(
            "Closed-loop success of the scripted expert, of its future drawn as action images and decoded "
            "(codec), of the same through the model's VAE (autoencoder), and of the model itself, on the "
            "same episodes; plus whether task objects survive the VAE and whether plans follow a moved "
            "target. Writes DIR/ladder.json, DIR/perception.json and a picture."
        ),
    )
    p.add_argument("--checkpoint", help="world-model checkpoint (model dir, step dir or run)")
    p.add_argument("--task", action="append", required=True, help="task name (repeat, or comma-separate)")
    p.add_argument("--split", default="test", help="sim split (default test)")
    p.add_argument("--episodes", type=COUNT, default=50, help="episodes per task and rung (default 50)")
    p.add_argument(
        "--rungs", default="expert,codec,autoencoder,model", help="comma-separated rungs (default: all four)"
    )
    p.add_argument("--seed", type=int, default=0, help="base seed: episodes and sampling noise, as in eval")
    p.add_argument("--workers", type=WORKERS, default=1, help="parallel worker processes (default 1)")
    p.add_argument(
        "--threads", type=COUNT, help="torch threads per worker (default: $OMP_NUM_THREADS or cores)"
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--perception-scenes",
        type=NONNEGATIVE,
        default=12,
        help="scenes per task for the VAE check (0: skip)",
    )
    p.add_argument(
        "--follow-scenes", type=NONNEGATIVE, default=10, help="reach_target scenes for following (0: skip)"
    )
    add_planning_flags(p)  # --execute --views --num-steps --guidance --mode --decode-tolerance
    p.add_argument("--image-size", type=COUNT, default=128, help="sim render size (default 128)")
    p.add_argument("--max-steps", type=COUNT, help="control steps per episode (default: the task's limit)")
    p.add_argument(
        "--videos", type=NONNEGATIVE, default=0, help="rollout videos per task and rung (default 0)"
    )
    p.set_defaults(func=run_ladder_cli)
