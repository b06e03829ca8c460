"""Shared machinery of the paper-layout readers: one directory per episode, read lazily."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from actionimages.data.episode import Episode
from actionimages.errors import DataError


class EpisodeDirReader:
    """Base of the RLBench / DROID / Bridge readers: episodes are directories holding ``marker``.

    Subclasses implement :meth:`load` (one directory -> :class:`Episode`). Episodes are found once,
    sorted by path, so indices are stable for a given tree. ``markers`` (default: ``marker``) are
    the names that identify the layout for :func:`~actionimages.data.detect_kind`.
    """

    marker = ""
    kind = ""
    root_markers: tuple[str, ...] = ()

    @classmethod
    def detection_markers(cls) -> tuple[str, ...]:
        return getattr(cls, "markers", None) or (cls.marker,)

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: {self.kind} dataset directory does not exist")
        self.episode_dirs = sorted({p.parent for p in self.root.rglob(self.marker)})
        if not self.episode_dirs:
            raise DataError(f"{self.root}: no {self.kind} episodes (no {self.marker} found)")

    def __len__(self) -> int:
        return len(self.episode_dirs)

    def _dir(self, i: int) -> Path:
        if not isinstance(i, int) or not 0 <= i < len(self):
            raise IndexError(f"{self.root}: episode {i} out of range for {len(self)} episodes")
        return self.episode_dirs[i]

    def episode(self, i: int) -> Episode:
        """Episode ``i`` (frames decoded lazily)."""
        d = self._dir(i)
        ep = self.load(d, f"{self.kind} episode {i} ({d})")
        ep.info.setdefault("episode_dir", str(d))
        ep.info["episode_index"] = i
        return ep

    def episode_id(self, i: int) -> str:
        """A name of episode ``i`` that stays the same as the tree grows: its directory below the root."""
        return self._dir(i).relative_to(self.root).as_posix()

    def num_frames(self, i: int) -> int:
        """Length of episode ``i`` (subclasses may avoid building the episode)."""
        return self.episode(i).num_frames

    def __iter__(self) -> Iterator[Episode]:
        for i in range(len(self)):
            yield self.episode(i)

    def load(self, d: Path, where: str) -> Episode:  # pragma: no cover - abstract
        raise NotImplementedError


def read_json(path: Path, where: str) -> Any:
    """Parse ``path``; a missing or malformed file raises :class:`DataError` naming it."""
    if not path.exists():
        raise DataError(f"{where}: missing {path.name} ({path})")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{where}: unreadable {path}: {exc}") from exc


def refuse_booleans(value: Any, field: str, where: str) -> None:
    """Raise :class:`DataError` naming ``field`` if ``value`` (a JSON number or nested list of them)
    holds a boolean: ``true`` would otherwise become 1.0 (``bool`` is an ``int``) and pass as a number."""
    if isinstance(value, bool):
        raise DataError(f"{where}: {field} must be numbers, got the boolean {json.dumps(value)}")
    if isinstance(value, list | tuple):
        for v in value:
            refuse_booleans(v, field, where)


def read_instruction(d: Path, fallback: str) -> str:
    """First non-empty line of ``instruction.txt`` / ``lang.txt`` in ``d``, else ``fallback``."""
    for name in ("instruction.txt", "lang.txt"):
        p = d / name
        if p.exists():
            for line in p.read_text().splitlines():
                if line.strip() and not line.startswith("confidence"):
                    return line.strip()
    return fallback
