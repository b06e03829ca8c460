"""The policy server on localhost: latency per stage, the client's overhead, a load run, N robots
through the prefetching client loop at the control rate (issue 25) and a malformed-message run
(issue 14).

    .venv/bin/python benchmarks/serve.py [--checkpoint checkpoints/tiny] [--calls 20]
        [--clients 8] [--seconds 60] [--out docs/results/serve.json]

The server runs in a thread of this process (one inference at a time, as `actionimages serve`,
with an 8 MiB message limit so the oversized request is refused by size);
clients are separate threads with their own connections. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import numpy as np


def _request(seed: int, episode: str) -> dict:
    from actionimages.sim import make_env

    env = make_env("reach_target", split="test", seed=seed, image_size=64)
    obs, _ = env.reset(seed=seed)
    env.close()
    cams = {
        n: {"image": obs["images"][n], "K": c["K"], "cam_to_world": c["cam_to_world"]}
        for n, c in obs["cameras"].items()
    }
    return {
        "episode_id": episode,
        "instruction": obs["instruction"],
        "ee_pose": obs["ee_pose"],
        "cameras": cams,
    }


def _pct(xs: list[float]) -> dict:
    a = np.asarray(xs) * 1000
    return {
        "n": len(xs),
        "p50_ms": round(float(np.percentile(a, 50)), 1),
        "p99_ms": round(float(np.percentile(a, 99)), 1),
    }


def _prefetch_loop(server, clients: int, seconds: float) -> dict:
    """``clients`` robots, each calling ``act`` at the server's control rate with
    ``WebsocketPolicy(prefetch=True)``: how many steps each ran, how many it had to wait or hold
    for a plan, and how many planned poses arrived too late to run."""
    from actionimages_client import WebsocketPolicy

    dt = 1.0 / float(server.metadata["control_hz"])
    results: list[dict] = []
    errors: list[str] = []

    def robot(i: int) -> None:
        try:
            with WebsocketPolicy("127.0.0.1", server.port, timeout=600, prefetch=True, workspace=None) as cl:
                r = _request(i, f"robot{i}")
                images = {n: c["image"] for n, c in r["cameras"].items()}
                cl.reset(episode_id=f"robot{i}")
                steps, late_steps, t_end = 0, 0, time.perf_counter() + seconds
                while time.perf_counter() < t_end:
                    t0 = time.perf_counter()
                    cl.act(images, r["cameras"], r["ee_pose"], r["instruction"])
                    spent = time.perf_counter() - t0
                    steps += 1
                    late_steps += spent > dt
                    time.sleep(max(0.0, dt - spent))
                plans = int(cl.last["replan"]) if cl.last else 0
                counts = {"waits": cl.waits, "holds": cl.holds, "dropped": cl.dropped, "plans": plans}
                results.append({"steps": steps, "late": late_steps, **counts})
        except Exception as exc:  # counted, not raised: the run reports them
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=robot, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = {k: sum(r[k] for r in results) for k in ("steps", "late", "waits", "holds", "dropped", "plans")}
    return {
        "clients": clients,
        "seconds": seconds,
        "control_hz": 1 / dt,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "steps_per_client_s": round(total["steps"] / max(1, len(results)) / seconds, 2),
        "steps_over_period_fraction": round(total["late"] / max(1, total["steps"]), 3),
        **total,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default="checkpoints/tiny")
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--num-steps", type=int, default=8)
    ap.add_argument("--loop-seconds", type=float, default=20.0, help="seconds of the prefetching robot loops")
    ap.add_argument("--out")
    args = ap.parse_args()
    import torch
    from actionimages_client import ServerError, WebsocketPolicy

    from actionimages.model import load_model
    from actionimages.policy.action_images.policy import ActionImagePolicy
    from actionimages.serve import PolicyServer, parse_request

    torch.set_num_threads(1)
    model = load_model(args.checkpoint)
    req = _request(0, "bench")
    # 1. in process: the policy's own stages
    obs, *_ = parse_request(req, model.spec.num_views)
    policy = ActionImagePolicy(model, num_steps=args.num_steps)
    policy.reset(obs)
    stages: dict[str, list[float]] = {}
    inproc = []
    for _ in range(args.calls + 2):
        t0 = time.perf_counter()
        plan = policy.plan(obs)
        inproc.append(time.perf_counter() - t0)
        for k, v in plan["timing"].items():
            stages.setdefault(k, []).append(v)
    inproc = inproc[2:]  # warm-up
    server = PolicyServer(model, port=0, num_steps=args.num_steps, max_message_bytes=8 * 2**20)
    _, stop = server.run_in_thread()
    out: dict = {"checkpoint": args.checkpoint, "num_steps": args.num_steps, "threads": 1}
    out["in_process_plan"] = _pct(inproc)
    out["stages_median_ms"] = {k: round(float(np.median(v[2:])) * 1000, 1) for k, v in stages.items()}
    # 2. through the client, one at a time
    with WebsocketPolicy("127.0.0.1", server.port) as c:
        e2e, server_total = [], []
        for _ in range(args.calls + 2):
            t0 = time.perf_counter()
            rep = c.infer(req)
            e2e.append(time.perf_counter() - t0)
            server_total.append(rep["timing"]["total"])
        e2e, server_total = e2e[2:], server_total[2:]
    out["client_end_to_end"] = _pct(e2e)
    out["client_overhead_ms_median"] = round(float(np.median(np.subtract(e2e, server_total))) * 1000, 1)
    # 3. load: N clients for the given seconds
    lat: list[float] = []
    errors: list[str] = []
    stop_at = time.perf_counter() + args.seconds

    def client(i: int) -> None:
        try:
            with WebsocketPolicy("127.0.0.1", server.port, timeout=600) as cl:
                r = _request(i, f"load{i}")
                while time.perf_counter() < stop_at:
                    t0 = time.perf_counter()
                    cl.infer(r)
                    lat.append(time.perf_counter() - t0)
        except Exception as exc:  # counted, not raised: the run reports them
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    t_load = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["load"] = {
        "clients": args.clients,
        "seconds": round(time.perf_counter() - t_load, 1),
        "requests": len(lat),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        **_pct(lat),
    }
    # 4. N robots at the control rate through the prefetching (non-blocking) client loop
    out["prefetch_loop"] = _prefetch_loop(server, args.clients, args.loop_seconds)
    # 5. malformed messages, then a good one
    bad = {
        "garbage bytes": b"\x00\xc1garbage",
        "text frame": "hello",
        "unknown field": dict(req, extra=1),
        "missing calibration": dict(
            req, cameras={k: {"image": v["image"]} for k, v in req["cameras"].items()}
        ),
        "NaN pose": dict(req, ee_pose=np.full(7, np.nan)),
        "wrong image shape": dict(
            req, cameras={k: dict(v, image=v["image"][..., :2]) for k, v in req["cameras"].items()}
        ),
        "not a map": [1, 2, 3],
        "object array": None,
        "over the size limit": dict(
            req,
            cameras={
                k: dict(v, image=np.zeros((1500, 1500, 3), np.uint8)) for k, v in req["cameras"].items()
            },
        ),
    }
    from actionimages_client import packb, unpackb

    answers = {}
    with WebsocketPolicy("127.0.0.1", server.port) as c:
        for name, msg in bad.items():
            if name == "object array":
                raw = b"\x81\xa1x\x84\xab__ndarray__\xc3\xa4data\xc4\x00\xa5dtype\xa2|O\xa5shape\x91\x00"
            elif isinstance(msg, bytes | str):
                raw = msg
            else:
                raw = packb(msg)
            c._ws.send(raw)
            answers[name] = unpackb(c._ws.recv(timeout=60)).get("error", {}).get("code")
        try:
            ok = c.infer(req)["actions"].shape == (4, 7)
        except ServerError as exc:
            ok = f"failed: {exc}"
    out["malformed"] = answers
    out["serving_after_malformed"] = ok
    stop()
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
