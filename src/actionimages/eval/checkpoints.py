"""Finding the model behind a ``--checkpoint`` argument (a model dir, a trainer step dir or a run)."""

from __future__ import annotations

import json
from pathlib import Path

from actionimages.errors import ActionImagesError


def resolve_model_dir(checkpoint: str | Path) -> tuple[Path, int | None]:
    """The loadable model directory (``config.json`` + safetensors) and its training step if known.

    Accepts a model directory itself, a trainer checkpoint ``step-XXXXXXXX`` (its ``model/``), or a
    training run directory (its exported ``model/`` if present, else the latest checkpoint).
    """
    p = Path(checkpoint)
    if not p.exists():
        raise ActionImagesError(f"checkpoint {p} does not exist")
    if (p / "config.json").is_file():
        step = _step_of(p.parent) if p.name == "model" else None
        return p, step
    if (p / "model" / "config.json").is_file():
        return p / "model", _step_of(p) if (p / "state.json").is_file() else _latest_step(p)
    from actionimages.train.checkpoint import latest_checkpoint

    ck = latest_checkpoint(p / "checkpoints")
    if ck is not None and (ck / "model" / "config.json").is_file():
        return ck / "model", _step_of(ck)
    raise ActionImagesError(
        f"{p} is not a model: expected config.json + *.safetensors, a trainer checkpoint with model/, "
        "or a run directory with model/ or checkpoints/"
    )


def _step_of(step_dir: Path) -> int | None:
    state = step_dir / "state.json"
    if state.is_file():
        try:
            return int(json.loads(state.read_text())["step"])
        except (ValueError, KeyError, json.JSONDecodeError):
            return None
    return None


def _latest_step(run: Path) -> int | None:
    from actionimages.train.checkpoint import latest_checkpoint

    ck = latest_checkpoint(run / "checkpoints")
    return _step_of(ck) if ck is not None else None


def training_cpu_hours(checkpoint: str | Path) -> float | None:
    """CPU-hours the checkpoint's training took, where recorded: an exported model's or baseline's
    ``provenance.json`` (``cpu_hours``), a baseline run's ``baseline.json`` (``cpu_seconds``) or a
    trainer step's ``state.json`` (``cpu_hours``). None when nothing records it."""
    p = Path(checkpoint)
    candidates = [p / "provenance.json", p / "baseline.json", p / "state.json", p.parent / "state.json"]
    if (p / "checkpoints").is_dir():
        from actionimages.train.checkpoint import latest_checkpoint

        ck = latest_checkpoint(p / "checkpoints")
        if ck is not None:
            candidates.append(ck / "state.json")
    for c in candidates:
        if not c.is_file():
            continue
        try:
            rec = json.loads(c.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if rec.get("cpu_hours") is not None:
            return float(rec["cpu_hours"])
        if rec.get("cpu_seconds") is not None:
            return float(rec["cpu_seconds"]) / 3600.0
    return None
