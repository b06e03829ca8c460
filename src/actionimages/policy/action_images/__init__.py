"""Policy kind ``action_images``: a world-action model that plans by generating action images
(``policy.py``: generate, decode, execute k, replan), and the ladder's oracles that draw the
expert's future instead (``oracle.py``: ``oracle_codec``, ``oracle_autoencoder``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from actionimages.policy.base import Policy
from actionimages.policy.registry import policy_kind


def is_world_model_checkpoint(path: Path) -> bool:
    """A world-model folder (config.json), a checkpoint step (state.json + model/), or a training run
    (model/, checkpoints/ or its committed state/)."""
    path = Path(path)
    if (path / "baseline.json").is_file():
        return False
    if (path / "config.json").is_file():
        return True
    return any((path / sub).is_dir() for sub in ("model", "checkpoints", "state"))


def resolve_model(path: str) -> tuple[str, int | None]:
    """The loadable model folder behind a model folder, checkpoint step or run, and its step."""
    from actionimages.train.checkpoint import resolve_model_dir

    model_dir, step = resolve_model_dir(path)
    return str(model_dir.resolve()), step


@policy_kind(
    "action_images",
    recognises=is_world_model_checkpoint,
    resolve=resolve_model,
    plans=True,
    help="a world-action model checkpoint",
)
def build(checkpoint: str | None, options: dict[str, Any]) -> Policy:
    from actionimages.policy.action_images.policy import ActionImagePolicy

    return ActionImagePolicy.from_checkpoint(checkpoint, **options)


def _oracle(through_vae: bool) -> Callable[[str | None, dict[str, Any]], Policy]:
    def build(checkpoint: str | None, options: dict[str, Any]) -> Policy:
        from actionimages.policy.action_images.oracle import OracleActionImagePolicy

        return OracleActionImagePolicy.from_checkpoint(checkpoint, through_vae=through_vae, **options)

    return build


for _name, _vae, _help in (
    ("oracle_codec", False, "expert future drawn and decoded"),
    ("oracle_autoencoder", True, "as oracle_codec, through the VAE"),
):
    policy_kind(_name, in_cli=False, resolve=resolve_model, plans=True, help=_help)(_oracle(_vae))
