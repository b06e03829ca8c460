"""The evaluations of a run as the markdown table its README keeps (issue 22's measures).

    python scripts/run_table.py runs/single_refine [--glob 'eval-*']

Reads every ``RUN/eval-*/results.json`` (``actionimages eval --out RUN/eval-STEP``) and prints one
row per evaluation and task, ordered by training step: samples, cumulative CPU-hours, success,
the failures' median closest approach and final distance, invalid plans, replanning latency.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def rows(run: Path, pattern: str = "eval-*") -> list[str]:
    """Markdown rows, one per (evaluation, task); an unreadable results file is an error naming it."""
    state = run / "state" / "state.json"
    batch = json.loads(state.read_text())["global_batch"] if state.is_file() else None
    out = []
    found = sorted(run.glob(f"{pattern}/results.json"), key=lambda p: _step(p) or 0)
    for path in found:
        try:
            res = json.loads(path.read_text())
            tasks = res["tasks"]
        except (OSError, ValueError, KeyError) as exc:
            raise SystemExit(f"{path}: not an eval results file ({exc})") from exc
        step = res.get("train_step")
        samples = "–" if step is None or batch is None else f"{step * batch // 1000}k"
        hours = res.get("train_cpu_hours")
        for task, t in tasks.items():
            near, final = t.get("failures_closest_median_m"), t.get("failures_final_median_m")
            lat = t.get("latency_s", {}).get("median")
            cells = [
                str(step),
                samples,
                _fmt(hours, "{:.2f}"),
                f"{task} ({res['split']})",
                f"{t['successes']}/{t['episodes']}",
                _fmt(near, "{:.0f} mm", 1000),
                _fmt(final, "{:.0f} mm", 1000),
                str(t["invalid_decodes"]),
                _fmt(lat, "{:.2f} s"),
            ]
            out.append("| " + " | ".join(cells) + " |")
    return out


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "–" if value is None else spec.format(scale * value)


def _step(path: Path) -> int | None:
    try:
        return json.loads(path.read_text()).get("train_step")
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--glob", default="eval-*", help="evaluation folders under RUN (default eval-*)")
    a = ap.parse_args(argv)
    if not a.run.is_dir():
        raise SystemExit(f"{a.run}: no such run folder")
    print("| step | samples | CPU-hours | task (split) | success | failures: closest, median "
          "| failures: final, median | invalid plans | replanning |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows(a.run, a.glob)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
