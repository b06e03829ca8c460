"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from actionimages.cli import main


@pytest.fixture
def expert_demos() -> Callable[..., Path]:
    """Write scripted-expert demonstrations through the real ``actionimages collect`` command.

    Returns ``make(root, task="reach_target", episodes=3, size=64) -> root``.
    """

    def make(root: Path, task: str = "reach_target", episodes: int = 3, size: int = 64) -> Path:
        argv = ["collect", "--task", task, "--episodes", str(episodes), "--split", "train"]
        argv += ["--out", str(root), "--image-size", str(size), "--cameras", "front,overhead"]
        argv += ["--workers", "1", "--seed", "100", "--quiet"]
        assert main(argv) == 0
        return Path(root)

    return make
