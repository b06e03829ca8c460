"""Policy kind ``expert``: the sim's scripted expert (privileged state; should score ~100%)."""

from __future__ import annotations

from typing import Any

from actionimages.errors import ActionImagesError
from actionimages.policy.base import Policy
from actionimages.policy.expert.policy import ExpertPolicy
from actionimages.policy.registry import policy_kind


@policy_kind("expert", needs_checkpoint=False, help="the sim's scripted expert")
def build(checkpoint: str | None, options: dict[str, Any]) -> Policy:
    if checkpoint is not None:
        raise ActionImagesError("the expert policy takes no checkpoint")
    return ExpertPolicy()


__all__ = ["ExpertPolicy"]
