"""Bad input at the command line gives one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from actionimages.cli import main


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"actionimages {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _collect(out: Path, *extra: str) -> list[str]:
    return ["collect", "--task", "reach_target", "--episodes", "1", "--out", str(out), "--quiet", *extra]


# ---------------------------------------------------------------- files that cannot be written


def test_an_output_path_that_is_a_file_is_one_line_naming_it(tmp_path, capsys):
    file = tmp_path / "dataset"
    file.write_text("not a directory")
    assert main(_collect(file)) == 2
    line = _one_error_line(capsys, "collect")
    assert str(file) in line and "File exists" in line
    assert file.read_text() == "not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions (the next test simulates them)")
def test_a_read_only_folder_is_one_line_naming_the_path(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        assert main(_collect(ro / "dataset")) == 2
    finally:
        os.chmod(ro, 0o700)
    line = _one_error_line(capsys, "collect")
    assert str(ro / "dataset") in line and "Permission denied" in line


def test_a_permission_error_is_one_line_naming_the_path(tmp_path, capsys, monkeypatch):
    """As root, where a read-only folder is writable: the error a non-root user gets, raised by mkdir."""
    ro = tmp_path / "ro"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if Path(self).is_relative_to(ro):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert main(_collect(ro / "dataset")) == 2
    line = _one_error_line(capsys, "collect")
    assert line == f"actionimages collect: error: {ro / 'dataset'}: Permission denied"


@pytest.mark.parametrize(
    "exc, expected",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/x.parquet"), "/data/x.parquet: No space"),
        (OSError(errno.ENOSPC, "No space left on device"), "[Errno 28] No space left on device"),
        (OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b"), "/a -> /b: Invalid cross"),
        (
            RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"),
            "could not write: disk full or unwritable (PytorchStreamWriter failed",
        ),
    ],
)
def test_write_failures_are_one_line(exc, expected, tmp_path, capsys, monkeypatch):
    import actionimages.cli.collect as collect

    def run(args):
        raise exc

    monkeypatch.setattr(collect, "run", run)
    assert main(_collect(tmp_path / "d")) == 2
    assert expected in _one_error_line(capsys, "collect")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a disk that is always full)")
def test_torch_save_on_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    import torch

    import actionimages.cli.collect as collect

    monkeypatch.setattr(collect, "run", lambda args: torch.save({"x": torch.zeros(1000)}, "/dev/full"))
    assert main(_collect(tmp_path / "d")) == 2
    assert "could not write: disk full or unwritable" in _one_error_line(capsys, "collect")


def test_other_runtime_errors_keep_their_traceback(tmp_path, monkeypatch):
    import actionimages.cli.collect as collect

    def run(args):
        raise RuntimeError("a bug, not bad input")

    monkeypatch.setattr(collect, "run", run)
    with pytest.raises(RuntimeError, match="a bug"):
        main(_collect(tmp_path / "d"))


# ---------------------------------------------------------------- numbers out of range

_EVAL = ["eval", "--task", "reach_target", "--policy", "expert", "--out", "{out}"]
_TRAIN = ["train", "--config", "micro", "--data", "synthetic:2", "--out", "{out}"]
_VAE = ["train-vae", "--data", "synthetic:2", "--out", "{out}"]


@pytest.mark.parametrize(
    "argv, flag",
    [
        (_EVAL + ["--max-steps", "0"], "--max-steps"),
        (_EVAL + ["--workers", "0"], "--workers"),
        (_EVAL + ["--workers", "257"], "--workers"),
        (_EVAL + ["--videos", "-1"], "--videos"),
        (_EVAL + ["--episodes", "0"], "--episodes"),
        (_EVAL + ["--threads", "0"], "--threads"),
        (_EVAL + ["--execute", "0"], "--execute"),
        (_EVAL + ["--train-cpu-hours", "nan"], "--train-cpu-hours"),
        (
            ["ladder", "--task", "reach_target", "--rungs", "expert", "--out", "{out}", "--workers", "0"],
            "--workers",
        ),
        (["collect", "--task", "reach_target", "--out", "{out}", "--episodes", "0"], "--episodes"),
        (
            ["collect", "--task", "reach_target", "--episodes", "1", "--out", "{out}", "--workers", "0"],
            "--workers",
        ),
        (
            ["collect", "--task", "reach_target", "--episodes", "1", "--out", "{out}", "--seed", "-5"],
            "--seed",
        ),
        (_TRAIN + ["--warmup", "-1"], "--warmup"),
        (_TRAIN + ["--steps", "0"], "--steps"),
        (_TRAIN + ["--batch-size", "0"], "--batch-size"),
        (_TRAIN + ["--lr", "0"], "--lr"),
        (_TRAIN + ["--log-every", "0"], "--log-every"),
        (_TRAIN + ["--stride", "0"], "--stride"),
        (_TRAIN + ["--model.transformer.num_layers", "0"], "--model.transformer.num_layers"),
        (_VAE + ["--steps", "0"], "--steps"),
        (_VAE + ["--warmup", "-2"], "--warmup"),
        (["baseline", "train", "--kind", "bc", "--data", "d", "--out", "{out}", "--lr", "-1"], "--lr"),
        (["plan-memory", "--config", "tiny", "--gpus", "0"], "--gpus"),
        (["report", "{out}", "--max-videos", "-1"], "--max-videos"),
    ],
)
def test_nonsense_numbers_are_refused_naming_the_flag(argv, flag, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [a.replace("{out}", str(out)) for a in argv]
    assert main(argv) == 2
    line = _one_error_line(capsys, " ".join(argv[:2]) if argv[0] == "baseline" else argv[0])
    assert flag in line
    assert not out.exists()  # refused before anything is written (collect's meta/info.json, a lock)


def test_ranges_parse_bounds_and_optional_values():
    import argparse

    from actionimages.cli.ranges import float_above, float_range, int_range

    assert int_range(1, 3)("3") == 3 and float_above(0)("1e-3") == 1e-3 and float_range(0, 1)("1") == 1.0
    for parse, text, message in (
        (int_range(1, 3), "4", "must be in [1, 3], got 4"),
        (int_range(0), "-1", "must be >= 0, got -1"),
        (int_range(0), "1.5", "expected an integer"),
        (float_above(0), "0", "must be > 0, got 0"),
        (float_above(0), "inf", "must be > 0, got inf"),
        (float_range(0, 1), "nan", "must be in [0, 1], got nan"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parse(text)
    from actionimages.cli import build_parser

    vae = build_parser()._subparsers._group_actions[0].choices["train-vae"]
    args = vae.parse_args(["--data", "d", "--out", "o", "--crop-frames", "none", "--crop-size", "0"])
    assert args.crop_frames is None and args.crop_size == 0  # an optional field still takes none


def test_the_model_config_refuses_zero_layers():
    import dataclasses

    from actionimages.errors import ActionImagesError
    from actionimages.model.config import get_config

    cfg = get_config("micro")
    with pytest.raises(ActionImagesError, match="transformer.num_layers must be >= 1, got 0"):
        dataclasses.replace(cfg, transformer=dataclasses.replace(cfg.transformer, num_layers=0))


# ---------------------------------------------------------------- found by scripts/bad_inputs.py (issue 26)


def _rlbench_with_text_intrinsics(tmp: Path) -> None:
    import json

    from actionimages.data.fixtures import write_rlbench_episode

    write_rlbench_episode(tmp / "src" / "episode0", steps=8, size=32)
    params = tmp / "src" / "episode0" / "view0" / "camera_params.json"
    bad = json.loads(params.read_text())
    bad["intrinsics"] = [[["fx", 0, 0], [0, "fy", 0], [0, 0, 1]]] * len(bad["intrinsics"])
    params.write_text(json.dumps(bad))


@pytest.mark.parametrize(
    "argv, setup, expected",
    [
        # a traceback before: numpy's default_rng refuses negative seeds; torch's AdamW NaN betas
        (["codec", "demo", "--out", "{out}", "--seed", "-1"], None, "argument --seed: must be >= 0"),
        (
            ["baseline", "train", "--kind", "bc", "--data", "d", "--out", "{out}", "--seed", "-1"],
            None,
            "argument --seed: must be >= 0",
        ),
        (["calibrate", "sim-check", "--seed", "-1"], None, "argument --seed: must be >= 0"),
        (_TRAIN + ["--betas", "nan", "0.99"], None, "argument --betas: must be in [0, 1), got nan"),
        (_TRAIN + ["--betas", "0.9"], None, "argument --betas: expected 2 arguments"),
        (
            ["baseline", "train", "--kind", "lowdim", "--data", "d", "--out", "{out}", "--model-config", "x"],
            None,
            "unknown model config 'x'",
        ),
        # silently wrong before: NaN accepted (and a demo stage 20 minutes in would have met it)
        (
            ["eval-generation", "--checkpoint", "c", "--data", "d", "--out", "{out}", "--guidance", "nan"],
            None,
            "argument --guidance: must be >= 0, got nan",
        ),
        (["demo", "--out", "{out}", "--baseline-minutes", "nan"], None, "--baseline-minutes must be >= 0"),
        (["demo", "--out", "{out}", "--seed", "-3"], None, "--seed must be at least 0, got -3"),
        # something written before the refusal: a dataset's meta/info.json, clip_config.json, an empty OUT
        (_collect(Path("{out}")) + ["--image-size", "32"], None, "--image-size must be in [64, 512], got 32"),
        (["train", "--config", "tiny", "--data", "{tmp}/none", "--out", "{out}"], None, "no such dataset"),
        (["train", "--config", "tiny", "--data", "synthetic:0", "--out", "{out}"], None, "needs n >= 1"),
        (["baseline", "train", "--kind", "bc", "--data", "{tmp}/none", "--out", "{out}"], None, "not exist"),
        # a silent fresh run before
        (_VAE + ["--resume"], "out/", "--resume: no checkpoint in"),
        # a second line before: a progress bar, a note, a stage's own error, a hub error
        (["dataset", "convert", "{tmp}/src", "{out}", "--kind", "rlbench"], "rlbench", "bad calibration"),
        (["dataset", "convert", "{tmp}/src", "{out}"], "out", "a file, where the output dataset"),
        (["demo", "--out", "{out}"], "out", "a file, where the demo's output directory is needed"),
        (
            ["train", "--config", "tiny", "--data", "synthetic:2", "--out", "{out}", "--steps", "1"],
            "out",
            "File exists (a file, where a directory is needed)",  # after the shipped VAE's note before
        ),
        (
            ["eval", "--task", "reach_target", "--checkpoint", "checkpoints/tiny", "--out", "{out}"]
            + ["--views", "front", "ceiling"],
            None,
            "policy views ['ceiling'] not in",
        ),  # fmt: skip
        (["embed-text", "--pretrained", "{tmp}/none", "--text", "hi"], None, "no such folder"),
        (["dataset", "check", "{out}"], "out", "is a file, not a dataset directory"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(argv, setup, expected, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    if setup == "out":  # a file where a folder is expected
        out.write_text("not a directory")
    elif setup == "out/":
        out.mkdir()
    elif setup == "rlbench":
        _rlbench_with_text_intrinsics(tmp_path)
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # checkpoints/tiny
    before = sorted(tmp_path.rglob("*"))
    argv = [a.replace("{out}", str(out)).replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [s for s in (line.split("\r")[-1].strip() for line in err.split("\n")) if s]
    assert len(lines) == 1 and lines[0].startswith("actionimages ") and ": error: " in lines[0], err
    assert expected in lines[0] and "Traceback" not in err
    assert sorted(tmp_path.rglob("*")) == before  # nothing written
