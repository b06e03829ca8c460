"""``actionimages eval``: closed-loop success of a policy in the embedded sim, with Wilson intervals.

``actionimages eval-generation``: generation quality (PSNR, SSIM, LPIPS, FVD, 3D action errors) on
held-out episodes, with the shuffled-action control.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from actionimages.cli.policy_args import add_planning_flags, chunk_options, planning_options
from actionimages.cli.ranges import COUNT, NONNEGATIVE, WORKERS, float_at_least
from actionimages.errors import ActionImagesError
from actionimages.policy.registry import cli_kinds


def _policy_spec(args: argparse.Namespace, checkpoint: str | None) -> tuple[Any, dict[str, Any]]:
    """The :class:`PolicySpec` of one ``--checkpoint`` (or ``--server``, or a kind that needs none),
    from the registry alone: the kind (``--policy`` or detected), what it loads, and its options."""
    from actionimages.eval.runner import PolicySpec
    from actionimages.policy.registry import detect_kind, get_policy_kind

    extra: dict[str, Any] = {}
    if getattr(args, "server", None):
        if checkpoint or args.policy:
            raise ActionImagesError("--server takes no --checkpoint or --policy: the server holds the model")
        options: dict[str, Any] = {"url": args.server, "token": args.token, "seed": args.seed}
        if args.execute is not None:
            options["execute"] = args.execute
        return PolicySpec("server", None, options), extra
    if args.policy is not None and not get_policy_kind(args.policy).needs_checkpoint:
        if checkpoint:
            raise ActionImagesError(f"--policy {args.policy} takes no --checkpoint")
        return PolicySpec(args.policy), extra
    if not checkpoint:
        raise ActionImagesError("give --checkpoint CKPT (or --policy expert)")
    detected = detect_kind(checkpoint)
    if args.policy not in (None, detected):
        raise ActionImagesError(f"--policy {args.policy} but {checkpoint} holds a {detected!r} checkpoint")
    kind = get_policy_kind(detected)
    path, step = kind.resolve(checkpoint) if kind.resolve else (str(Path(checkpoint).resolve()), None)
    if step is not None:
        extra["train_step"] = step
    options = {**planning_options(args), "seed": args.seed} if kind.plans else chunk_options(args)
    return PolicySpec(kind.name, path, options), extra


def _out_dirs(out: str, checkpoints: list[str | None]) -> list[Path]:
    """One output directory per policy: OUT itself for one, OUT/<checkpoint folder name> for several."""
    if len(checkpoints) == 1:
        return [Path(out)]
    names = [Path(c).resolve().name if c else "expert" for c in checkpoints]
    if len(set(names)) != len(names):
        raise ActionImagesError(f"compared checkpoints need distinct folder names, got {names}")
    return [Path(out) / n for n in names]


def run_eval(args: argparse.Namespace) -> int:
    from actionimages.eval.runner import evaluate

    checkpoints = args.checkpoint or [None]
    if len(checkpoints) > 1 and args.policy:
        raise ActionImagesError(
            "with several --checkpoint the policy kind of each is detected; drop --policy"
        )
    planning_options(args)  # bad values fail before anything runs
    table: list[tuple[str, dict[str, Any]]] = []
    for checkpoint, out in zip(checkpoints, _out_dirs(args.out, checkpoints), strict=True):
        spec, extra = _policy_spec(args, checkpoint)
        if args.train_step is not None:
            extra["train_step"] = args.train_step
        hours = args.train_cpu_hours
        if hours is None and checkpoint:
            from actionimages.train.checkpoint import training_cpu_hours

            hours = training_cpu_hours(checkpoint)
        if hours is not None:
            extra["train_cpu_hours"] = round(float(hours), 4)
        if args.label and len(checkpoints) == 1:
            extra["label"] = args.label
        extra["args"] = {k: v for k, v in vars(args).items() if k != "func"}
        res = evaluate(
            spec,
            tasks=args.task,
            split=args.split,
            episodes=args.episodes,
            seed=args.seed,
            out=out,
            workers=args.workers,
            videos_per_task=args.videos,
            max_steps=args.max_steps,
            image_size=args.image_size,
            extra=extra,
            threads=args.threads,
        )
        name = out.name if len(checkpoints) > 1 else spec.kind
        for task, e in res["tasks"].items():
            lo, hi = e["ci95"]
            lat = f", latency median {e['latency_s']['median']:.3f} s" if "latency_s" in e else ""
            inv = f", invalid decodes {e['invalid_decodes']}" if e.get("invalid_decodes") else ""
            near = e.get("failures_closest_median_m")
            near = "" if near is None else f", failures came within {1000 * near:.0f} mm (median)"
            print(
                f"{name:>12s} {task:>16s} [{args.split}]: {100 * e['success_rate']:5.1f}% "
                f"({e['successes']}/{e['episodes']}, 95% CI {100 * lo:.1f}-{100 * hi:.1f}%){lat}{inv}{near}"
            )
        print(f"wrote {out / 'results.json'}")
        table.append((name, res["tasks"]))
    if len(table) > 1:  # the side-by-side comparison, as markdown
        print(f"\n| {args.split} | " + " | ".join(args.task) + " |")
        print("|---|" + "---|" * len(args.task))
        for name, tasks in table:
            cells = [f"{100 * tasks[t]['success_rate']:.0f}%" for t in args.task]
            print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


def run_eval_generation(args: argparse.Namespace) -> int:
    from actionimages.eval.generation import evaluate_generation

    res = evaluate_generation(
        args.checkpoint,
        args.data,
        args.out,
        episodes=args.episodes,
        num_steps=args.num_steps,
        guidance=args.guidance,
        seed=args.seed,
        views=args.views,
        weights=args.weights,
        stride=args.stride,
    )
    print(json.dumps(res["modes"], indent=1))
    for n in res.get("notes", []):
        print("note:", n)
    print(f"wrote {Path(args.out) / 'generation.json'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="closed-loop success in the embedded sim (Wilson 95%% intervals, videos, results.json)",
        description="Roll a policy out closed-loop; write DIR/results.json, rollout videos and trajectories.",
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        help="world-model checkpoint (model dir, step dir or run) or baseline run; repeat to compare "
        "several on the same episodes (results in OUT/<folder name>/, a table at the end)",
    )
    p.add_argument(
        "--policy",
        choices=cli_kinds(),
        help="policy kind (default: detected from the checkpoint; 'expert' = the scripted expert)",
    )
    p.add_argument("--task", action="append", required=True, help="task name (repeat for several)")
    p.add_argument(
        "--split",
        default="test",
        help="test | heldout | heldout_cameras | train (default test, the headline split)",
    )
    p.add_argument("--episodes", type=COUNT, default=10, help="episodes per task (default 10)")
    p.add_argument(
        "--seed", type=int, default=0, help="base seed: fixes every episode and the sampling noise"
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--workers", type=WORKERS, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--threads", type=COUNT, help="torch threads per worker (default: cores / workers)")
    add_planning_flags(p)  # --execute --views --num-steps --guidance --mode --decode-tolerance
    p.add_argument(
        "--server",
        help="evaluate a running `actionimages serve` (ws://HOST:PORT) through the thin client",
    )
    p.add_argument("--token", help="the server's token (with --server)")
    p.add_argument("--max-steps", type=COUNT, help="control steps per episode (default: the task's limit)")
    p.add_argument("--videos", type=NONNEGATIVE, default=2, help="rollout videos per task (default 2)")
    p.add_argument("--image-size", type=COUNT, default=128, help="sim render size (default 128)")
    p.add_argument(
        "--train-step", type=NONNEGATIVE, help="tag results with this training step (for the report)"
    )
    p.add_argument(
        "--label",
        help="name shown in the report; evaluations of one design at several training budgets "
        "share a label and draw one line in its success-per-CPU-hour figure",
    )
    p.add_argument(
        "--train-cpu-hours",
        type=float_at_least(0),
        help="tag results with the training's CPU-hours (default: read from the checkpoint where recorded)",
    )
    p.set_defaults(func=run_eval)

    g = subparsers.add_parser(
        "eval-generation",
        help="generation quality on held-out episodes (PSNR/SSIM/LPIPS/FVD, action errors, controls)",
        description="Joint, a2v and v2a generation on held-out episodes; writes DIR/generation.json.",
    )
    g.add_argument("--checkpoint", required=True, help="world-model checkpoint")
    g.add_argument("--data", required=True, help="held-out dataset (LeRobot v3, as written by collect)")
    g.add_argument("--out", required=True, help="output directory")
    g.add_argument("--episodes", type=COUNT, default=8, help="episodes to evaluate (default 8)")
    g.add_argument("--num-steps", type=COUNT, default=8, help="sampling steps (default 8)")
    g.add_argument(
        "--guidance", type=float_at_least(0), default=1.0, help="classifier-free guidance (default 1)"
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--views", nargs="+", help="camera names (default: the dataset's first V)")
    g.add_argument("--stride", type=COUNT, default=1, help="frame stride of the clips (default 1)")
    g.add_argument("--weights", help="directory with LPIPS/FVD weights (default $ACTIONIMAGES_WEIGHTS)")
    g.set_defaults(func=run_eval_generation)
