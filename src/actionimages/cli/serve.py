"""``actionimages serve``: a policy (a world-action model, or any registered kind with a checkpoint,
e.g. image BC) as a websocket policy server (docs/DEPLOY.md)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from actionimages_client.chunking import DEFAULT_CONTROL_HZ, DEFAULT_WORKSPACE

from actionimages.cli.policy_args import add_planning_flags, chunk_options, planning_options
from actionimages.cli.ranges import float_above, int_at_least, int_range
from actionimages.errors import ActionImagesError


def workspace_box(text: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``--workspace``: six numbers ``x0,y0,z0,x1,y1,z1`` (metres, robot base frame) or ``none``."""
    if text.strip().lower() == "none":
        return None
    try:
        v = [float(x) for x in text.replace(" ", "").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected x0,y0,z0,x1,y1,z1 in metres or none, got {text!r}"
        ) from None
    if len(v) != 6 or not all(a < b for a, b in zip(v[:3], v[3:], strict=True)):
        raise argparse.ArgumentTypeError(f"expected x0,y0,z0,x1,y1,z1 with each low < high, got {text!r}")
    return tuple(v[:3]), tuple(v[3:])


def check_port_free(host: str, port: int) -> None:
    """Bind ``host:port`` for a moment, before minutes go into loading a model: a port in use or
    an address this machine does not have is one clear line, not a traceback after the load."""
    import socket

    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ActionImagesError(f"--host {host!r} does not resolve: {exc.strerror}") from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            sock.bind(address)
        except OSError as exc:
            raise ActionImagesError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def ws_url(host: str, port: int) -> str:
    """``ws://HOST:PORT``, an IPv6 address in brackets (``ws://[::1]:8000``)."""
    return f"ws://[{host}]:{port}" if ":" in host else f"ws://{host}:{port}"


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
    p.add_argument("--port", type=int_range(0, 65535), default=8000, help="0: any free port")
    p.add_argument("--token", default=os.environ.get("ACTIONIMAGES_TOKEN"), help="clients must send it")
    p.add_argument("--seed", type=int, default=0, help="base noise seed (as eval's --seed)")
    add_planning_flags(p)  # --execute (the k announced to clients) --views --num-steps --guidance ...
    p.add_argument("--max-message-mb", type=float_above(0), default=64.0, help="largest request (default 64)")
    p.add_argument("--threads", type=int_at_least(1), default=None, help="torch threads (default: all)")
    p.add_argument(
        "--workspace",
        type=workspace_box,
        default=DEFAULT_WORKSPACE,
        help="x0,y0,z0,x1,y1,z1: requests whose ee_pose lies outside get an error frame (metres, robot "
        "base frame; default: the benchmark's box widened by 0.25 m; 'none' turns the check off)",
    )
    p.add_argument(
        "--control-hz",
        type=float_above(0),
        default=DEFAULT_CONTROL_HZ,
        help="control rate the plans assume, one pose per step (announced in the metadata; default 10, "
        "the demonstrations' rate)",
    )
    p.add_argument(
        "--calibration",
        help="calibration file (actionimages calibrate): cameras named in it may omit K and cam_to_world",
    )
    p.add_argument("--text-cache", help="embed-text's cache, so umT5 is not loaded (umT5 configs)")
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import torch

    from actionimages.calibrate.files import load_calibration
    from actionimages.serve import PolicyServer

    check_port_free(args.host, args.port)  # before the model: a busy port is not worth a load
    if args.threads:
        torch.set_num_threads(args.threads)
    calibration = load_calibration(args.calibration) if args.calibration else None  # before the model loads
    from actionimages.policy.registry import build_policy, detect_kind, get_policy_kind

    kind = get_policy_kind(detect_kind(args.checkpoint))  # any registered kind, from the registry alone
    model_dir = kind.resolve(args.checkpoint)[0] if kind.resolve else str(args.checkpoint)
    if kind.plans:  # a world model: sampling options, the noise seed, the text cache
        options = {**planning_options(args), "seed": args.seed, "text_cache": args.text_cache}
    else:  # planning flags of the world model do not apply; --execute and --views do
        options = chunk_options(args)
    served = build_policy(kind.name, str(model_dir), **options)
    server = PolicyServer(
        served,
        host=args.host,
        port=args.port,
        token=args.token,
        max_message_bytes=int(args.max_message_mb * 2**20),
        checkpoint=str(model_dir),
        calibration=calibration,
        workspace=args.workspace,
        control_hz=args.control_hz,
    )

    def ready(port: int) -> None:
        auth = " (token required)" if args.token else ""
        calib = f", cameras {sorted(calibration)} calibrated by {args.calibration}" if calibration else ""
        print(
            f"serving {model_dir} ({kind.name}) on {ws_url(args.host, port)}{auth}{calib}; Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )

    try:
        asyncio.run(server.serve(ready=ready))
    except KeyboardInterrupt:
        pass
    return 0
