"""The HTML report for a run directory: success tables, training curve, baselines, videos.

``build_report(run_dir)`` collects every ``results.json`` (closed-loop evaluations) and
``generation.json`` (generation metrics) under ``run_dir`` and writes ``run_dir/report.html`` with
its figures in ``run_dir/report_assets/``. Paths in the page are relative, so the folder can be moved.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import numpy as np

from actionimages.atomic import write_text_atomic
from actionimages.errors import ActionImagesError

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>actionimages report: {{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 4px 10px; text-align: center; }
th { background: #eee; }
td.ci { color: #666; font-size: 85%; }
.good { background: #e3f6e3; } .bad { background: #fbe6e6; }
.videos { display: flex; flex-wrap: wrap; gap: 1.5em; }
.clip { border: 1px solid #ddd; padding: 0.5em; }
.clip video, .clip img { display: block; max-height: 320px; }
.note { color: #666; font-size: 90%; }
code { background: #f4f4f4; padding: 1px 4px; }
</style></head><body>
<h1>Action Images: {{ title }}</h1>
<p class="note">Generated from <code>{{ run_dir }}</code>; {{ n_evals }} closed-loop evaluation(s),
{{ n_gen }} generation evaluation(s). Intervals are Wilson 95%.</p>

<h2 id="success">Closed-loop success</h2>
{% if success_tables %}
{% for split, table in success_tables.items() %}
<h3>Split: {{ split }}</h3>
<table class="success" id="success-{{ split }}" data-split="{{ split }}">
<thead><tr><th>policy</th>{% for t in table.tasks %}<th>{{ t }}</th>{% endfor %}
<th>latency / replan</th></tr></thead>
<tbody>
{% for row in table.rows %}
<tr><th>{{ row.label }}</th>
{% for cell in row.cells %}
{% if cell %}<td class="{{ cell.cls }}" title="{{ cell.successes }}/{{ cell.episodes }}">{{ cell.rate }}
<br><span class="ci">[{{ cell.lo }}, {{ cell.hi }}] n={{ cell.episodes }}</span>
{% if cell.invalid %}<br><span class="ci">invalid decodes: {{ cell.invalid }}</span>{% endif %}</td>
{% else %}<td>–</td>{% endif %}
{% endfor %}
<td>{{ row.latency }}</td></tr>
{% endfor %}
</tbody></table>
{% endfor %}
{% else %}<p>No closed-loop results found (no <code>results.json</code>).</p>{% endif %}

<h2 id="baselines">Baselines side by side</h2>
{% if baseline_table %}
<table id="baselines-table"><thead><tr><th>task / split</th>
{% for p in baseline_table.policies %}<th>{{ p }}</th>{% endfor %}</tr></thead><tbody>
{% for row in baseline_table.rows %}<tr><th>{{ row.key }}</th>
{% for v in row.cols %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}
</tbody></table>
{% else %}<p>No baseline evaluations found.</p>{% endif %}

<h2 id="training">Success against training steps</h2>
{% if curve_svg %}<div id="training-curve">{{ curve_svg }}</div>
{% else %}<p>No evaluations tagged with a training step (<code>train_step</code>) found.</p>{% endif %}

<h2 id="cost">Success per training CPU-hour</h2>
{% if cost_svg %}<div id="cost-curve">{{ cost_svg }}</div>
<p>Every policy whose evaluation records its training's CPU-hours (<code>train_cpu_hours</code>),
one panel per task, one line per policy kind and split.</p>
{% else %}<p>No evaluations tagged with training CPU-hours (<code>train_cpu_hours</code>).</p>{% endif %}

<h2 id="generation">Generation quality (held-out episodes)</h2>
{% if generation %}
<table id="generation-table"><thead><tr><th>source</th><th>mode</th>
{% for m in gen_metrics %}<th>{{ m }}</th>{% endfor %}</tr></thead><tbody>
{% for row in generation %}<tr><th>{{ row.source }}</th><td>{{ row.mode }}</td>
{% for v in row.cols %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}
</tbody></table>
{% if gen_notes %}<ul class="note">{% for n in gen_notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
{% else %}<p>No generation metrics found (no <code>generation.json</code>).</p>{% endif %}

<h2 id="videos">Rollouts</h2>
<p class="note">Each video row is one camera: observation (left) and the action images the policy
generated for the current step (right; black for policies without action images). Beside it, the
executed end-effector trajectory.</p>
{% for group in videos %}
<h3>{{ group.label }} ({{ group.split }})</h3>
<div class="videos">
{% for v in group.clips %}
<div class="clip"><b>{{ v.name }}</b> — {{ "success" if v.success else "failure" }}
<div style="display:flex;gap:0.5em">
<video controls muted loop preload="metadata" src="{{ v.video }}"></video>
{% if v.plot %}<img alt="trajectory {{ v.name }}" src="{{ v.plot }}">{% endif %}
</div></div>
{% endfor %}
</div>
{% else %}<p>No rollout videos found.</p>
{% endfor %}
</body></html>
"""


def _fmt_pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _label(res: dict[str, Any], path: Path, run_dir: Path) -> str:
    name = _series(res)
    if res.get("train_step") is not None:
        return f"{name} @ step {res['train_step']}"
    if res.get("label"):  # a labelled series: its points differ by training cost
        hours = res.get("train_cpu_hours")
        return f"{name} @ {hours:.2f} CPU-h" if hours is not None else name
    rel = path.parent.relative_to(run_dir)
    return f"{name} ({rel})" if str(rel) != "." else name


def _series(res: dict[str, Any]) -> str:
    """The evaluation's series: its ``eval --label`` (one design at several budgets) or policy kind."""
    return str(res.get("label") or res.get("policy", {}).get("kind", "?"))


def load_results(run_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every parseable closed-loop ``results.json`` under ``run_dir`` (sorted by path)."""
    found = []
    for p in sorted(run_dir.rglob("results.json")):
        try:
            res = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ActionImagesError(f"report: cannot read {p}: {exc}") from exc
        if isinstance(res, dict) and isinstance(res.get("tasks"), dict):
            found.append((p, res))
    return found


def _success_tables(evals: list[tuple[Path, dict[str, Any]]], run_dir: Path) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    for path, res in evals:
        split = str(res.get("split", "?"))
        table = tables.setdefault(split, {"tasks": [], "rows": []})
        for t in res["tasks"]:
            if t not in table["tasks"]:
                table["tasks"].append(t)
        table["rows"].append((path, res))
    out = {}
    for split, table in tables.items():
        rows = []
        for path, res in table["rows"]:
            cells = []
            for t in table["tasks"]:
                e = res["tasks"].get(t)
                if e is None:
                    cells.append(None)
                    continue
                lo, hi = e.get("ci95", [float("nan")] * 2)
                rate = e["success_rate"]
                cells.append(
                    {
                        "rate": _fmt_pct(rate),
                        "lo": _fmt_pct(lo),
                        "hi": _fmt_pct(hi),
                        "episodes": e.get("episodes", "?"),
                        "successes": e.get("successes", "?"),
                        "invalid": e.get("invalid_decodes", 0),
                        "cls": "good" if rate >= 0.5 else "bad",
                    }
                )
            lats = [e["latency_s"]["median"] for e in res["tasks"].values() if "latency_s" in e]
            latency = f"{np.median(lats):.3f} s" if lats else "–"
            rows.append({"label": _label(res, path, run_dir), "cells": cells, "latency": latency})
        out[split] = {"tasks": table["tasks"], "rows": rows}
    return out


def _baseline_table(evals: list[tuple[Path, dict[str, Any]]], run_dir: Path) -> dict[str, Any] | None:
    # Latest (highest-step or untagged) evaluation per (policy kind, split), compared per task.
    best: dict[tuple[str, str], tuple[Path, dict[str, Any]]] = {}
    for path, res in evals:
        key = (res.get("policy", {}).get("kind", "?"), str(res.get("split", "?")))
        step = res.get("train_step")
        prev = best.get(key)
        if prev is None or (step is not None and (prev[1].get("train_step") or -1) < step):
            best[key] = (path, res)
    kinds = sorted({k for k, _ in best}, key=lambda k: (k != "action_images", k))
    if len(kinds) < 2:
        return None
    rows = []
    splits = sorted({s for _, s in best})
    tasks = sorted({t for _, r in best.values() for t in r["tasks"]})
    for split in splits:
        for t in tasks:
            vals = []
            for k in kinds:
                r = best.get((k, split))
                e = r[1]["tasks"].get(t) if r else None
                if e is None:
                    vals.append("–")
                else:
                    lo, hi = e["ci95"]
                    vals.append(f"{_fmt_pct(e['success_rate'])} [{_fmt_pct(lo)}, {_fmt_pct(hi)}]")
            rows.append({"key": f"{t} / {split}", "cols": vals})
    return {"policies": kinds, "rows": rows}


def _curve_svg(evals: list[tuple[Path, dict[str, Any]]]) -> str | None:
    # The world model's learning curve (baselines carry steps too, on their own scale).
    tagged = [
        (r["train_step"], r)
        for _, r in evals
        if r.get("train_step") is not None and r.get("policy", {}).get("kind") == "action_images"
    ]
    if not tagged:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[tuple[str, str], list[tuple[int, float, float, float]]] = {}
    for step, r in tagged:
        for t, e in r["tasks"].items():
            series.setdefault((t, str(r.get("split", "?"))), []).append(
                (int(step), e["success_rate"], e["ci95"][0], e["ci95"][1])
            )
    fig, ax = plt.subplots(figsize=(7, 4))
    for (task, split), pts in sorted(series.items()):
        pts.sort()
        s = np.array(pts)
        ax.plot(s[:, 0], s[:, 1], marker="o", label=f"{task} ({split})")
        ax.fill_between(s[:, 0], s[:, 2], s[:, 3], alpha=0.15)
    ax.set_xlabel("training step")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog so it can sit inline


def _cost_svg(evals: list[tuple[Path, dict[str, Any]]]) -> str | None:
    fig = cost_figure(evals)
    if fig is None:
        return None
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]


def cost_figure(evals: list[tuple[Path, dict[str, Any]]]):  # -> matplotlib Figure | None
    """Success against training CPU-hours: one panel per task, a line per (series, split), where a
    series is the evaluation's ``eval --label`` or else its policy kind. None without CPU-hours."""
    series: dict[str, dict[tuple[str, str], list[tuple[float, float, float, float]]]] = {}
    for _, r in evals:
        hours = r.get("train_cpu_hours")
        if hours is None:
            continue
        key = (_series(r), str(r.get("split", "?")))
        for t, e in r["tasks"].items():
            series.setdefault(t, {}).setdefault(key, []).append(
                (float(hours), e["success_rate"], e["ci95"][0], e["ci95"][1])
            )
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted(series)
    # One colour and marker per (series, split) across all panels, one legend for the figure; a
    # dashed line for splits other than test, the headline.
    keys = sorted({k for per_task in series.values() for k in per_task})
    cmap = plt.get_cmap("tab10" if len(keys) <= 10 else "tab20")
    style = {k: (cmap(i % cmap.N), "osD^v<>"[i % 7]) for i, k in enumerate(keys)}
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for (name, split), pts in sorted(series[task].items()):
            s = np.array(sorted(pts))
            colour, marker = style[(name, split)]
            ax.errorbar(
                s[:, 0], s[:, 1], yerr=[s[:, 1] - s[:, 2], s[:, 3] - s[:, 1]], marker=marker, capsize=2,
                color=colour, linestyle="-" if split == "test" else "--", label=f"{name} ({split})",
            )  # fmt: skip
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("training CPU-hours")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("success rate")
    handles = {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    fig.legend(
        handles.values(), handles.keys(), loc="upper center", bbox_to_anchor=(0.5, 0.0),
        ncol=min(3, len(handles)), fontsize=7, frameon=False,
    )  # fmt: skip
    return fig


def trajectory_plot(npz_path: Path, png_path: Path) -> Path:
    """Plot an episode's executed end-effector position and gripper over time (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with np.load(npz_path) as z:
        pose, act = z["ee_pose"], z["actions"]
    fig, axes = plt.subplots(2, 1, figsize=(4, 3.6), sharex=True)
    t = np.arange(len(pose))
    for i, name in enumerate("xyz"):
        axes[0].plot(t, pose[:, i], label=f"{name} (measured)")
        if len(act):
            axes[0].plot(t[1:], act[:, i], "--", lw=0.8, color=f"C{i}", label=f"{name} (target)")
    axes[0].set_ylabel("position (m)")
    axes[0].legend(fontsize=6, ncol=2)
    axes[1].plot(t, pose[:, 6], label="measured")
    if len(act):
        axes[1].plot(t[1:], act[:, 6], "--", label="commanded")
    axes[1].set_ylabel("openness")
    axes[1].set_xlabel("control step")
    axes[1].legend(fontsize=6)
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=80)
    plt.close(fig)
    return png_path


def _fmt_metric(v: Any) -> str:
    if v is None:
        return "unavailable"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _generation_rows(run_dir: Path) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    metrics: list[str] = []
    rows, notes = [], []
    for p in sorted(run_dir.rglob("generation.json")):
        try:
            g = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ActionImagesError(f"report: cannot read {p}: {exc}") from exc
        for mode, vals in g.get("modes", {}).items():
            for m in vals:
                if m not in metrics:
                    metrics.append(m)
            rows.append({"source": str(p.parent.relative_to(run_dir)), "mode": mode, "vals": vals})
        notes.extend(f"{p.parent.relative_to(run_dir)}: {n}" for n in g.get("notes", []))
        ctl = g.get("shuffled_control")
        if ctl and ctl.get("psnr_drop_db") is not None:
            verdict = "follows the actions" if ctl.get("follows_actions") else "does NOT follow the actions"
            notes.append(
                f"{p.parent.relative_to(run_dir)}: shuffled-action control: a2v PSNR "
                f"{ctl['a2v_psnr']:.2f} dB "
                f"with the episode's own actions vs {ctl['shuffled_psnr']:.2f} dB with another episode's "
                f"(drop {ctl['psnr_drop_db']:.2f} dB): the model {verdict}"
            )
    for r in rows:
        r["cols"] = [_fmt_metric(r["vals"].get(m, "–")) for m in metrics]
    return metrics, rows, notes


def build_report(run_dir: str | Path, out: str | Path | None = None, max_videos: int = 4) -> Path:
    """Write the HTML report for ``run_dir``; returns the path of ``report.html``."""
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise ActionImagesError(f"report: {run_dir} is not a directory")
    out_path = Path(out).resolve() if out is not None else run_dir / "report.html"
    assets = out_path.parent / "report_assets"
    evals = load_results(run_dir)
    videos = []
    for path, res in evals:
        clips = []
        for ep in res.get("episodes", []):
            if not ep.get("video") or len(clips) >= max_videos:
                continue
            vid = Path(ep["video"])
            vid = vid if vid.is_absolute() else path.parent / "videos" / vid.name
            if not vid.is_file():
                vid = path.parent / "videos" / vid.name  # the run folder may have moved
            if not vid.is_file():
                continue
            plot = None
            traj = path.parent / "episodes" / (vid.stem + ".npz")
            if traj.is_file():
                rel = path.parent.relative_to(run_dir)
                png = assets / str(rel).replace("/", "__") / f"{vid.stem}.png"
                plot = trajectory_plot(traj, png)
            clips.append(
                {
                    "name": vid.stem,
                    "success": ep.get("success"),
                    "video": _rel(vid, out_path.parent),
                    "plot": _rel(plot, out_path.parent) if plot else None,
                }
            )
        if clips:
            label = _label(res, path, run_dir)
            videos.append({"label": label, "split": res.get("split", "?"), "clips": clips})
    gen_metrics, gen_rows, gen_notes = _generation_rows(run_dir)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    page = env.from_string(TEMPLATE).render(
        title=run_dir.name,
        run_dir=str(run_dir),
        n_evals=len(evals),
        n_gen=len({r["source"] for r in gen_rows}),
        success_tables=_success_tables(evals, run_dir),
        baseline_table=_baseline_table(evals, run_dir),
        curve_svg=markupsafe.Markup(s) if (s := _curve_svg(evals)) else None,
        cost_svg=markupsafe.Markup(c) if (c := _cost_svg(evals)) else None,
        generation=gen_rows,
        gen_metrics=gen_metrics,
        gen_notes=gen_notes,
        videos=videos,
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_path, page)
    return out_path


def _rel(p: Path, base: Path) -> str:
    import os

    return os.path.relpath(p, base)
