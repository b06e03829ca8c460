"""Camera calibration in the simulator: ``calibrate sim-check`` over seeds, image sizes and K options.

Each run calibrates the benchmark's four fixed cameras from renders (free-board intrinsics, then
eye-to-hand with the board in the hand) and compares them with the sim's true cameras; the tables
give the worst camera of each run.

    .venv/bin/python benchmarks/calibration.py --out docs/results/calibration   # writes .json and .md
    .venv/bin/python benchmarks/calibration.py --seeds 3 --sizes 512            # a quicker run
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

from actionimages.atomic import write_json_atomic, write_text_atomic
from actionimages.calibrate.sim import TARGETS, sim_check

VARIANTS = {
    "default": {},
    "refine K in the bundle adjustment": {"refine_intrinsics": True},
    "the sim's K (no step 1)": {"known_intrinsics": True},
}


def run(seeds: int, sizes: list[int], poses: int) -> list[dict]:
    rows = []
    for size in sizes:
        for variant, kw in VARIANTS.items():
            if variant != "default" and size != 512:
                continue
            for seed in range(seeds):
                r = sim_check(seed=seed, poses=poses, image_size=size, **kw)
                rows.append(
                    {
                        "image_size": size,
                        "variant": variant,
                        "seed": seed,
                        "poses": poses,
                        **{k: r[k] for k in TARGETS},
                        "focal_error_pct": max(c["focal_error_pct"] for c in r["cameras"].values()),
                        "min_views": min(c["views"] for c in r["cameras"].values()),
                        "passed": r["passed"],
                        "seconds": r["seconds"]["total"],
                    }
                )
                print(rows[-1], file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict], command: str) -> str:
    out = [
        "| image | variant | seed | reprojection px | position mm | rotation ° | focal error % | "
        "held-board views (min camera) | passed | s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['image_size']}² | {r['variant']} | {r['seed']} | {r['reprojection_px']:.3f} | "
            f"{r['position_error_mm']:.2f} | {r['rotation_error_deg']:.3f} | {r['focal_error_pct']:.3f} | "
            f"{r['min_views']} | {'yes' if r['passed'] else 'no'} | {r['seconds']:.1f} |"
        )
    out += ["", "Summary (worst over seeds):", ""]
    out += [
        "| image | variant | runs passed | reprojection px | position mm | rotation ° |",
        "|---|---|---|---|---|---|",
    ]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["image_size"], r["variant"]), []).append(r)
    for (size, variant), g in groups.items():
        out.append(
            f"| {size}² | {variant} | {sum(r['passed'] for r in g)}/{len(g)} | "
            f"{max(r['reprojection_px'] for r in g):.3f} | {max(r['position_error_mm'] for r in g):.2f} | "
            f"{max(r['rotation_error_deg'] for r in g):.3f} |"
        )
    out += ["", f"Targets: {TARGETS}. Worst camera of four per run.", "", f"Command: `{command}`", ""]
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 384, 1024])
    p.add_argument("--poses", type=int, default=16)
    p.add_argument("--out", help="write OUT.json and OUT.md")
    args = p.parse_args()
    t0 = time.perf_counter()
    rows = run(args.seeds, args.sizes, args.poses)
    command = "python benchmarks/calibration.py " + " ".join(sys.argv[1:])
    md = markdown(rows, command)
    print(md)
    if args.out:
        meta = {"machine": platform.platform(), "python": platform.python_version(), "command": command}
        meta["seconds"] = round(time.perf_counter() - t0, 1)
        write_json_atomic(f"{args.out}.json", {"meta": meta, "rows": rows}, indent=1)
        write_text_atomic(f"{args.out}.md", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
