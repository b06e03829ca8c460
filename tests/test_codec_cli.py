"""`actionimages codec demo`: writes a figure and errors.json with a near-exact round trip."""

from __future__ import annotations

import json
from pathlib import Path

from actionimages.cli import main
from actionimages.cli.codec import demo_trajectory


def test_codec_demo_writes_figure_and_errors(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["codec", "demo", "--out", str(out), "--size", "64", "--frames", "9", "--views", "3"]) == 0
    errors = json.loads((out / "errors.json").read_text())
    assert errors["frames"] == 9 and errors["views"] == 3 and errors["valid_fraction"] == 1.0
    assert errors["position_mm"]["max"] < 0.01 and errors["rotation_deg"]["max"] < 0.01
    assert errors["openness_accuracy"] == 1.0
    png = (out / "codec_demo.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert "position error median" in capsys.readouterr().out


def test_codec_demo_rejects_bad_arguments(tmp_path: Path, capsys) -> None:
    assert main(["codec", "demo", "--out", str(tmp_path), "--views", "1"]) == 2
    assert "--views must be at least 2" in capsys.readouterr().err


def test_demo_trajectory_rolls_and_closes() -> None:
    a = demo_trajectory(41)
    assert a.shape == (41, 7)
    assert a[0, 6] == 1.0 and a[-1, 6] == 0.0
    assert 0.1 < abs(a[-1, 2] - a[0, 2]) < 0.3  # descends
