"""Assemble a success-per-CPU-hour curve from finished evaluations into one folder, report and figure.

    python scripts/policy_curve.py --out docs/results/policy_curve --png docs/img/policy_curve.png \\
        "image BC=runs/eval/bc_10min_test/results.json" \\
        "image BC=runs/eval/bc50_test/results.json" \\
        "action images, obs_align=runs/eval_align_9500/results.json" ...

Each ``LABEL=RESULTS_JSON`` is one point: an ``actionimages eval`` result that records its training
CPU-hours (``train_cpu_hours``; pass ``LABEL@HOURS=...`` where it does not). Points sharing a label
are one design at several budgets and draw one line. The folder gets each result as
``NN_<label>/results.json`` (episode outcomes kept, videos and trajectories dropped) and
``report.html`` (``actionimages report``); ``--png`` also writes the figure on its own.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from actionimages.atomic import atomic_dir, write_json_atomic
from actionimages.errors import ActionImagesError
from actionimages.eval.report import build_report, cost_figure, load_results

EPISODE_KEYS = ("task", "split", "index", "seed", "success", "steps")


def parse_point(spec: str) -> tuple[str, float | None, Path]:
    """``LABEL[@HOURS]=PATH`` -> (label, hours or None, path)."""
    if "=" not in spec:
        raise ActionImagesError(f"{spec!r}: expected LABEL=RESULTS_JSON or LABEL@HOURS=RESULTS_JSON")
    head, path = spec.rsplit("=", 1)
    hours = None
    if "@" in head:
        head, h = head.rsplit("@", 1)
        try:
            hours = float(h)
        except ValueError as exc:
            raise ActionImagesError(f"{spec!r}: {h!r} is not a number of CPU-hours") from exc
    if not head.strip():
        raise ActionImagesError(f"{spec!r}: empty label")
    return head.strip(), hours, Path(path)


def assemble(points: list[str], out: Path) -> Path:
    """Write the curve folder ``out`` (replaced atomically) and its report; returns report.html."""
    with atomic_dir(out) as tmp:
        for i, spec in enumerate(points):
            label, hours, path = parse_point(spec)
            if not path.is_file():
                raise ActionImagesError(f"{path} does not exist")
            res = json.loads(path.read_text())
            if hours is not None:
                res["train_cpu_hours"] = hours
            if res.get("train_cpu_hours") is None:
                raise ActionImagesError(f"{path} records no training CPU-hours: pass {label}@HOURS={path}")
            res["label"] = label
            res["source"] = str(path)
            res["episodes"] = [{k: e[k] for k in EPISODE_KEYS if k in e} for e in res.get("episodes", [])]
            slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
            write_json_atomic(tmp / f"{i:02d}_{slug}" / "results.json", res, indent=1)
    return build_report(out, max_videos=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("points", nargs="+", help="LABEL=RESULTS_JSON or LABEL@HOURS=RESULTS_JSON")
    ap.add_argument("--out", type=Path, required=True, help="curve folder to write (replaced)")
    ap.add_argument("--png", type=Path, help="also write the success-per-CPU-hour figure here")
    args = ap.parse_args(argv)
    try:
        page = assemble(args.points, args.out)
        if args.png is not None:
            fig = cost_figure(load_results(args.out))
            if fig is None:
                raise ActionImagesError("no point records training CPU-hours")
            args.png.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(args.png, dpi=110, bbox_inches="tight")
    except ActionImagesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {page}" + (f" and {args.png}" if args.png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
