"""Policy kind ``bc``: image behaviour cloning (a CNN per view, spatial-softmax keypoints, an
action-chunk head; ``modeling.py``). Training, checkpoints and execution: ``policy/baseline``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actionimages.policy.base import Policy
from actionimages.policy.registry import baseline_meta_kind, policy_kind


def _net(arch: dict[str, Any]) -> Any:
    from actionimages.policy.bc.modeling import BCNet

    return BCNet(**arch)


@policy_kind(
    "bc",
    baseline_net=_net,
    recognises=lambda path: baseline_meta_kind(Path(path)) == "bc",
    help="image behaviour cloning (CNN + chunk head)",
)
def build(checkpoint: str | None, options: dict[str, Any]) -> Policy:
    from actionimages.policy.baseline import load_baseline_policy

    return load_baseline_policy(checkpoint, **options)
