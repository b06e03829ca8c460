"""The one table of dataset layouts: which reader opens a directory, and how a layout is detected.

A new source is one reader module (``len``, ``episode(i) -> Episode``, ``cameras``) decorated
with :func:`register_source` and imported in :func:`_load_readers`. A reader declares ``kind``
and either ``root_markers`` (paths under the dataset root only its layout has, e.g. LeRobot's
``meta/info.json``) or ``detection_markers()`` (file or directory names that mark one episode
anywhere in the tree), or ``detected = False`` when its layout is another's and it is opened only by
name (``robot``: a LeRobot dataset read with poses and cameras from outside it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from actionimages.errors import ActionImagesError, DataError

SOURCES: dict[str, type] = {}  # dataset kind -> reader class


def register_source(cls: type) -> type:
    """Class decorator: register a reader under its ``kind``."""
    kind = getattr(cls, "kind", "")
    if not kind:
        raise TypeError(f"{cls.__name__} declares no dataset kind")
    if kind in SOURCES and SOURCES[kind] is not cls:
        raise TypeError(f"dataset kind {kind!r} is already registered ({SOURCES[kind].__name__})")
    SOURCES[kind] = cls
    return cls


def _load_readers() -> dict[str, type]:
    """Import every reader module (registration happens on import); returns the table."""
    import actionimages.data.lerobot  # noqa: F401
    import actionimages.data.sources  # noqa: F401

    return SOURCES


def source_kinds() -> tuple[str, ...]:
    return tuple(_load_readers())


def detect_kind(path: str | Path) -> str:
    """Which registered layout ``path`` holds (``lerobot``, ``rlbench``, ``droid``, ``bridge``, ...)."""
    readers = _load_readers()
    root = Path(path)
    if not root.is_dir():
        what = "is a file, not a dataset directory" if root.exists() else "dataset directory does not exist"
        raise DataError(f"{root}: {what}")
    for kind, cls in readers.items():
        if any((root / m).exists() for m in getattr(cls, "root_markers", ())):
            return kind
    by_marker = {
        m: kind
        for kind, cls in readers.items()
        if hasattr(cls, "detection_markers")
        for m in cls.detection_markers()
    }
    for _dirpath, dirnames, filenames in os.walk(root):
        for name in (*filenames, *dirnames):
            if name in by_marker:
                return by_marker[name]
    kinds = [k for k, cls in readers.items() if getattr(cls, "detected", True)]
    raise DataError(f"{root}: not a {', '.join(kinds)} layout (see docs/DATA.md)")


def open_source(path: str | Path, kind: str | None = None, **kwargs: Any) -> Any:
    """Open a dataset directory as an episode source: the reader for its layout (detected unless
    ``kind`` is given). The trainer's sample sources come from
    :func:`actionimages.train.data.open_training_source`."""
    readers = _load_readers()
    kind = kind or detect_kind(path)
    if kind not in readers:
        raise ActionImagesError(f"unknown dataset kind {kind!r}; expected one of {tuple(readers)}")
    return readers[kind](path, **kwargs)
