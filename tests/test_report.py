"""The HTML report: built from results files and rendered by headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from actionimages.errors import ActionImagesError
from actionimages.eval.report import build_report
from actionimages.eval.runner import EpisodeResult, summarize
from actionimages.eval.video import tile_rollout_frame, write_video

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def _episode(task: str, i: int, success: bool, out: Path, video: bool) -> EpisodeResult:
    vid = None
    if video:
        frames = [
            tile_rollout_frame(
                {"front": np.full((32, 32, 3), 40 * t, np.uint8)}, {"front": np.zeros((32, 32, 3))}
            )
            for t in range(4)
        ]
        vid = str(write_video(frames, out / "videos" / f"{task}_{i:03d}.mp4", fps=4))
    traj = out / "episodes" / f"{task}_{i:03d}.npz"
    traj.parent.mkdir(parents=True, exist_ok=True)
    poses = np.linspace(0, 1, 5)[:, None] * np.ones((5, 7))
    np.savez_compressed(traj, ee_pose=poses, actions=poses[1:], success=success)
    stats = {"replans": 2, "invalid_decodes": int(not success), "latencies_s": [0.2, 0.3]}
    return EpisodeResult(task, "heldout", i, 100 + i, success, 4, 0.1, stats, vid, str(traj))


def _write_results(
    out: Path,
    kind: str,
    split: str,
    outcomes: dict[str, list[bool]],
    step=None,
    cpu_hours=None,
    label=None,
) -> None:
    eps = [
        _episode(task, i, s, out, video=i == 0) for task, succ in outcomes.items() for i, s in enumerate(succ)
    ]
    res = {
        "tasks": summarize(eps),
        "split": split,
        "policy": {"kind": kind},
        "episodes": [e.__dict__ for e in eps],
    }
    if step is not None:
        res["train_step"] = step
    if cpu_hours is not None:
        res["train_cpu_hours"] = cpu_hours
    if label is not None:
        res["label"] = label
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res))


def _make_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    _write_results(
        run / "eval" / "policy_s100", "action_images", "heldout", {"reach_target": [True, False]}, 100
    )
    _write_results(
        run / "eval" / "policy",
        "action_images",
        "heldout",
        {"reach_target": [True] * 3 + [False], "push_button": [True]},
        200,
    )
    _write_results(
        run / "eval" / "bc", "bc", "heldout", {"reach_target": [False, False, True]}, cpu_hours=0.5
    )
    _write_results(
        run / "eval" / "bc2", "bc", "heldout", {"reach_target": [True, False, True]}, cpu_hours=1.0
    )
    _write_results(run / "eval" / "policy_cams", "action_images", "heldout_cameras", {"reach_target": [True]})
    gen = {
        "modes": {"joint": {"psnr": 21.5, "ssim": 0.71, "lpips": None, "fvd": None, "position_err_m": 0.012}},
        "notes": ["lpips unavailable: weights not found"],
    }
    (run / "gen").mkdir(parents=True)
    (run / "gen" / "generation.json").write_text(json.dumps(gen))
    return run


def test_report_contents(tmp_path):
    run = _make_run(tmp_path)
    page = build_report(run)
    text = page.read_text()
    assert page == run / "report.html"
    assert 'id="success-heldout"' in text and 'id="success-heldout_cameras"' in text
    assert "75%" in text  # 3/4 on reach_target at step 200
    assert 'id="baselines-table"' in text and "<svg" in text  # two policy kinds; a training curve
    assert "unavailable" in text  # LPIPS/FVD shown as unavailable, not a number
    assert 'id="cost-curve"' in text  # success per training CPU-hour (bc at two budgets)
    assert "videos/reach_target_000.mp4" in text
    pngs = list((run / "report_assets").rglob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)


def test_report_rejects_missing_dir(tmp_path):
    with pytest.raises(ActionImagesError):
        build_report(tmp_path / "nope")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{not json")
    with pytest.raises(ActionImagesError, match="results.json"):
        build_report(tmp_path / "bad")


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (scripts/install_sysdeps.sh installs it)"
)
def test_report_renders_in_headless_chromium(tmp_path):
    run = _make_run(tmp_path)
    page = build_report(run)
    profile = tmp_path / "chromium-profile"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--dump-dom",
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    # The DOM Chromium built (not just our text) has the tables, their cells, the plot and the videos.
    assert '<table class="success" id="success-heldout"' in dom
    assert "reach_target" in dom and "push_button" in dom and "75%" in dom
    assert dom.count("<video") >= 3 and "<svg" in dom
    assert 'id="generation-table"' in dom


def test_demo_stages_resume(tmp_path, capsys):
    # Only the report stage (the others are skipped): markers make a rerun skip finished stages.
    from actionimages.cli import main

    run = _make_run(tmp_path)
    skip = ["codec", "collect", "vae", "train", "baselines", "eval", "generation"]
    assert main(["demo", "--out", str(run), "--skip", *skip]) == 0
    assert (run / "report.html").is_file() and (run / "stages" / "report.json").is_file()
    capsys.readouterr()
    assert main(["demo", "--out", str(run), "--skip", *skip]) == 0
    assert "report: done earlier, skipped" in capsys.readouterr().out
    assert main(["demo", "--out", str(run), "--skip", "nonsense"]) == 2
    assert main(["demo", "--out", str(run), "--heldout-episodes", "1"]) == 2
    assert "--heldout-episodes must be at least 2" in capsys.readouterr().err


def test_every_demo_stage_builds_commands_the_cli_accepts(tmp_path, capsys):
    """The demo's stages build typed invocations checked by the real parser when built, so a
    renamed option breaks this test (and the stage, before it runs), not a 30-minute demo."""
    import json

    from actionimages.cli import build_parser
    from actionimages.cli.demo import STAGES, Demo

    args = build_parser().parse_args(["demo", "--out", str(tmp_path / "d"), "--vae-steps", "10"])
    seen = []
    demo = Demo(args, runner=lambda inv, threads: seen.append(inv))
    (demo.marks).mkdir(parents=True)
    (demo.marks / "train.json").write_text(json.dumps({"stage": "train", "seconds": 60}))
    for stage in STAGES:
        getattr(demo, stage)()
    want = {
        "codec demo",
        "collect",
        "train-vae",
        "train",
        "baseline train",
        "eval",
        "eval-generation",
        "report",
    }
    assert want <= {inv.command for inv in seen}
    for inv in seen:  # the parsed arguments are the ones the stage meant
        assert inv.args.func is not None and str(inv).startswith("actionimages " + inv.command)
    train = next(inv for inv in seen if inv.command == "train")
    assert train.args.batch_size == 16 and train.args.data == str(tmp_path / "d" / "data" / "train")
    evals = [inv.args for inv in seen if inv.command == "eval"]
    assert {e.split for e in evals} == {"test", "heldout", "heldout_cameras"}
    assert all(e.task == ["reach_target", "push_button"] for e in evals)
    capsys.readouterr()


def test_invocations_name_what_the_cli_rejects():
    from actionimages.cli.invoke import invocation
    from actionimages.errors import ActionImagesError

    inv = invocation("eval", task=["a", "b"], checkpoint="ck", out="o", episodes=3, num_steps=None)
    assert inv.argv == (
        "eval",
        "--task",
        "a",
        "--task",
        "b",
        "--checkpoint",
        "ck",
        "--out",
        "o",
        "--episodes",
        "3",
    )
    assert inv.args.episodes == 3 and inv.args.task == ["a", "b"]
    assert invocation("train", resume=True, out="r").args.resume is True  # an optional-value flag alone
    with pytest.raises(ActionImagesError, match="has no option 'no_such_option'"):
        invocation("train", no_such_option=1)
    with pytest.raises(ActionImagesError, match="no subcommand 'baseline fly'"):
        invocation("baseline fly")
    with pytest.raises(ActionImagesError, match="rejects.*--episodes many"):
        invocation("eval", task="a", out="o", episodes="many")
    with pytest.raises(ActionImagesError, match="is a switch"):
        invocation("demo", out="o", fresh="yes")


@pytest.mark.slow
def test_a_miniature_demo_runs_every_stage_through_its_typed_invocations(tmp_path, capsys):
    """The whole demo, tiny: one task, one demonstration, two training steps, one episode per
    evaluation; every stage runs in this process and leaves what the report reads."""
    from actionimages.cli import build_parser
    from actionimages.cli.demo import STAGES, Demo
    from actionimages.cli.invoke import run_in_process

    out = tmp_path / "mini"
    args = build_parser().parse_args(
        ["demo", "--out", str(out), "--task", "reach_target", "--episodes", "2", "--heldout-episodes", "2",
         "--train-steps", "2", "--batch-size", "2", "--baseline-minutes", "0.01", "--eval-episodes", "1",
         "--generation-episodes", "2", "--num-steps", "1", "--workers", "1", "--shipped", "",
         "--skip", "codec"]
    )  # fmt: skip
    assert Demo(args, runner=run_in_process).run() == 0
    for stage in STAGES[1:]:
        assert (out / "stages" / f"{stage}.json").is_file(), stage
    results = sorted(p.parent.name for p in (out / "eval").rglob("results.json"))
    assert {"action_images_test", "bc_test", "lowdim_test", "expert_test", "action_images_heldout"} <= set(
        results
    )
    assert (out / "generation").is_dir() and (out / "report.html").stat().st_size > 1000
    assert "demo finished" in capsys.readouterr().out


def test_cost_curve_draws_one_line_per_labelled_design(tmp_path):
    """Two designs of the same policy kind, each at two budgets, labelled with ``eval --label``:
    the success-per-CPU-hour figure keeps them apart, and the tables name each budget."""
    from actionimages.eval.report import cost_figure, load_results

    run = tmp_path / "curve"
    for design, hours in (("design A", 1.0), ("design A", 2.0), ("design B", 1.5), ("design B", 3.0)):
        out = run / f"{design.replace(' ', '_')}_{hours}"
        _write_results(
            out, "action_images", "test", {"reach_target": [True, False]}, cpu_hours=hours, label=design
        )
    fig = cost_figure(load_results(run))
    lines = {c.get_label(): len(c.lines[0].get_xdata()) for c in fig.axes[0].containers}
    import matplotlib.pyplot as plt

    plt.close(fig)
    assert lines == {"design A (test)": 2, "design B (test)": 2}
    text = build_report(run).read_text()
    assert "design A @ 1.00 CPU-h" in text and "design B @ 3.00 CPU-h" in text


def test_policy_curve_script_assembles_labelled_points(tmp_path):
    """scripts/policy_curve.py: LABEL=RESULTS and LABEL@HOURS=RESULTS points become one folder with a
    report and a PNG; a point without CPU-hours is refused by name."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("policy_curve", root / "scripts" / "policy_curve.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    src = tmp_path / "evals"
    _write_results(src / "a", "bc", "test", {"reach_target": [True, False]}, cpu_hours=0.5)
    _write_results(src / "b", "bc", "test", {"reach_target": [True, True]}, cpu_hours=1.0)
    _write_results(src / "c", "action_images", "test", {"reach_target": [False, True]})
    out, png = tmp_path / "curve", tmp_path / "curve.png"
    points = [f"image BC={src / 'a' / 'results.json'}", f"image BC={src / 'b' / 'results.json'}"]
    assert (
        mod.main([*points, f"ours@1.2={src / 'c' / 'results.json'}", "--out", str(out), "--png", str(png)])
        == 0
    )
    assert png.stat().st_size > 1000
    saved = sorted(json.loads(p.read_text())["label"] for p in out.glob("*/results.json"))
    assert saved == ["image BC", "image BC", "ours"]
    assert "ours @ 1.20 CPU-h" in (out / "report.html").read_text()
    assert mod.main([f"ours={src / 'c' / 'results.json'}", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()  # nothing half-written
    for bad in (
        "no label separator",
        f"ours@soon={src / 'a' / 'results.json'}",
        f"@1={src / 'a' / 'results.json'}",
    ):
        assert mod.main([bad, "--out", str(tmp_path / "y")]) == 2  # named, not a traceback
    assert mod.main([f"ours={tmp_path / 'missing.json'}", "--out", str(tmp_path / "y")]) == 2
    assert not (tmp_path / "y").exists()


def test_run_table_lists_a_runs_evaluations_by_step(tmp_path, capsys):
    """scripts/run_table.py: one markdown row per evaluation of a run, ordered by step, with the
    samples (from the run state's global batch), CPU-hours and the failures' closest approach."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "run_table.py"
    spec = importlib.util.spec_from_file_location("run_table", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    run = tmp_path / "runs" / "x"
    (run / "state").mkdir(parents=True)
    (run / "state" / "state.json").write_text(json.dumps({"global_batch": 16}))
    for step, ok in ((3000, 7), (1500, 1)):
        task = {"successes": ok, "episodes": 20, "invalid_decodes": 5, "failures_closest_median_m": 0.056,
                "failures_final_median_m": 0.15, "latency_s": {"median": 0.3}}  # fmt: skip
        (run / f"eval-{step}").mkdir()
        res = {"tasks": {"reach_target_single": task}, "split": "test", "train_step": step,
               "train_cpu_hours": 0.5}  # fmt: skip
        (run / f"eval-{step}" / "results.json").write_text(json.dumps(res))
    assert mod.main([str(run)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[2].startswith("| 1500 | 24k | 0.50 | reach_target_single (test) | 1/20 | 56 mm | 150 mm |")
    assert lines[3].startswith("| 3000 | 48k |")
    (run / "eval-9").mkdir()
    (run / "eval-9" / "results.json").write_text("{")
    with pytest.raises(SystemExit, match="not an eval results file"):
        mod.main([str(run)])
