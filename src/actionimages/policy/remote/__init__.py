"""Policy kind ``server``: plans from ``actionimages serve`` through the thin client (``eval
--server``); ``policy.py``."""

from __future__ import annotations

from typing import Any

from actionimages.errors import ActionImagesError
from actionimages.policy.base import Policy
from actionimages.policy.registry import policy_kind


@policy_kind("server", needs_checkpoint=False, in_cli=False, help="plans from actionimages serve (--server)")
def build(checkpoint: str | None, options: dict[str, Any]) -> Policy:
    from actionimages.policy.remote.policy import RemotePolicy

    if "url" not in options:
        raise ActionImagesError("the server policy needs url=ws://HOST:PORT (eval --server)")
    return RemotePolicy(**options)
