"""Policy kind ``lowdim``: the world model's transformer backbone with a low-dimensional action
head (the paper's ablation; ``modeling.py``). Training, checkpoints and execution: ``policy/baseline``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actionimages.policy.base import Policy
from actionimages.policy.registry import baseline_meta_kind, policy_kind


def _net(arch: dict[str, Any]) -> Any:
    from actionimages.policy.lowdim.modeling import LowDimNet

    return LowDimNet(**arch)


@policy_kind(
    "lowdim",
    baseline_net=_net,
    recognises=lambda path: baseline_meta_kind(Path(path)) == "lowdim",
    help="low-dim head on the Wan backbone",
)
def build(checkpoint: str | None, options: dict[str, Any]) -> Policy:
    from actionimages.policy.baseline import load_baseline_policy

    return load_baseline_policy(checkpoint, **options)
