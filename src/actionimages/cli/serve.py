"""``actionimages serve``: a policy (a world-action model, or any registered kind with a checkpoint,
e.g. image BC) as a websocket policy server (docs/DEPLOY.md)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from actionimages.cli.policy_args import add_planning_flags, chunk_options, planning_options


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve a policy checkpoint to robot clients over a websocket (msgpack + numpy)",
        description="Serve a checkpoint to clients (clients/python: actionimages_client.WebsocketPolicy). "
        "Binds 127.0.0.1 by default; any other --host needs --token (or ACTIONIMAGES_TOKEN).",
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="world-model checkpoint (model dir, step dir or run) or a baseline run (bc, lowdim); its "
        "kind is detected",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token", default=os.environ.get("ACTIONIMAGES_TOKEN"), help="clients must send it")
    p.add_argument("--seed", type=int, default=0, help="base noise seed (as eval's --seed)")
    add_planning_flags(p)  # --execute (the k announced to clients) --views --num-steps --guidance ...
    p.add_argument("--max-message-mb", type=float, default=64.0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument(
        "--calibration",
        help="calibration file (actionimages calibrate): cameras named in it may omit K and cam_to_world",
    )
    p.add_argument("--text-cache", help="embed-text's cache, so umT5 is not loaded (umT5 configs)")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import torch

    from actionimages.calibrate.files import load_calibration
    from actionimages.model import load_model
    from actionimages.serve import PolicyServer
    from actionimages.train.checkpoint import resolve_model_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    calibration = load_calibration(args.calibration) if args.calibration else None  # before the model loads
    from actionimages.policy.registry import build_policy, detect_kind

    kind = detect_kind(args.checkpoint)
    if kind == "action_images":
        model_dir, _ = resolve_model_dir(args.checkpoint)
        served, options = (
            load_model(model_dir, text_cache=args.text_cache),
            {**planning_options(args), "seed": args.seed},
        )
    else:  # planning flags of the world model do not apply; --execute and --views do
        model_dir, options = args.checkpoint, {}
        served = build_policy(kind, str(model_dir), **chunk_options(args))
    server = PolicyServer(
        served,
        host=args.host,
        port=args.port,
        token=args.token,
        max_message_bytes=int(args.max_message_mb * 2**20),
        checkpoint=str(model_dir),
        calibration=calibration,
        **options,
    )

    def ready(port: int) -> None:
        auth = " (token required)" if args.token else ""
        calib = f", cameras {sorted(calibration)} calibrated by {args.calibration}" if calibration else ""
        print(
            f"serving {model_dir} ({kind}) on ws://{args.host}:{port}{auth}{calib}; Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )

    try:
        asyncio.run(server.serve(ready=ready))
    except KeyboardInterrupt:
        pass
    return 0
