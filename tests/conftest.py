"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

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


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread per test process.

    The suite runs two processes (pytest -n 2) on 2 cores; more threads only spin and contend
    (measured: a VAE training step 0.6 s with one thread, 3-20 s with two under load).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
