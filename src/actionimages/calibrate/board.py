"""ChArUco boards: the spec, the printable image and detection of the board's corners in a photo.

A board is ``cols × rows`` chessboard squares of side ``square`` metres with ArUco markers of side
``marker`` metres in the white squares (OpenCV's ``cv2.aruco.CharucoBoard``). Its frame is
OpenCV's: origin at the top-left corner of the printed image, x to the right, y down, z into the
board; the detected points are the inner chessboard corners, ``(cols − 1)·(rows − 1)`` of them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actionimages.errors import ActionImagesError

DEFAULT_DICTIONARY = "DICT_4X4_50"
# The simulated board: 6×5 squares of 5 cm (30 × 25 cm, an A3 print) with 3.75 cm markers.
DEFAULT_BOARD = f"6x5:0.05:0.0375:{DEFAULT_DICTIONARY}"


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ActionImagesError(
            "calibration needs OpenCV: pip install 'opencv-python-headless>=4.8'"
        ) from exc
    return cv2


@dataclass(frozen=True)
class BoardSpec:
    """A ChArUco board: squares across (``cols``) and down (``rows``), their side and the markers'
    side in metres, the ArUco dictionary's OpenCV name, and OpenCV's pre-4.6 layout switch."""

    cols: int
    rows: int
    square: float
    marker: float
    dictionary: str = DEFAULT_DICTIONARY
    legacy: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.cols, int) and isinstance(self.rows, int)) or min(self.cols, self.rows) < 2:
            raise ActionImagesError(f"a board needs at least 2×2 squares, got {self.cols}×{self.rows}")
        if not (0 < self.marker < self.square) or not np.isfinite(self.square):
            raise ActionImagesError(
                f"need 0 < marker < square (metres), got square={self.square}, marker={self.marker}"
            )
        cv2 = _cv2()
        if not self.dictionary.startswith("DICT_") or not hasattr(cv2.aruco, self.dictionary):
            raise ActionImagesError(
                f"unknown ArUco dictionary {self.dictionary!r}; use an OpenCV name such as DICT_4X4_50"
            )
        capacity = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary)).bytesList.shape[0]
        needed = (self.cols * self.rows) // 2
        if needed > capacity:
            raise ActionImagesError(
                f"a {self.cols}×{self.rows} board needs {needed} markers; {self.dictionary} has {capacity}"
            )

    @property
    def size_m(self) -> tuple[float, float]:
        """Printed board size (width, height) in metres."""
        return self.cols * self.square, self.rows * self.square

    @property
    def num_corners(self) -> int:
        return (self.cols - 1) * (self.rows - 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BoardSpec:
        missing = [k for k in ("cols", "rows", "square", "marker") if k not in d]
        if missing:
            raise ActionImagesError(f"board spec is missing {missing}")
        return cls(
            int(d["cols"]),
            int(d["rows"]),
            float(d["square"]),
            float(d["marker"]),
            str(d.get("dictionary", DEFAULT_DICTIONARY)),
            bool(d.get("legacy", False)),
        )

    @classmethod
    def parse(cls, text: str) -> BoardSpec:
        """``COLSxROWS:SQUARE:MARKER[:DICT]`` (metres; e.g. ``6x5:0.05:0.0375:DICT_4X4_50``) or a JSON
        file holding :meth:`to_dict`'s fields (or a calibration file with a ``board`` entry)."""
        if text.endswith(".json") or Path(text).is_file():
            try:
                d = json.loads(Path(text).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise ActionImagesError(f"cannot read the board spec {text}: {exc}") from exc
            return cls.from_dict(d.get("board", d) if isinstance(d, dict) else {})
        parts = text.split(":")
        try:
            cols, rows = (int(v) for v in parts[0].lower().split("x"))
            square, marker = float(parts[1]), float(parts[2])
        except (ValueError, IndexError) as exc:
            raise ActionImagesError(
                f"board spec {text!r} is not COLSxROWS:SQUARE:MARKER[:DICT] (e.g. {DEFAULT_BOARD}) "
                "nor a JSON file"
            ) from exc
        if len(parts) > 4:
            raise ActionImagesError(f"board spec {text!r} has too many ':' fields")
        return cls(cols, rows, square, marker, parts[3] if len(parts) == 4 else DEFAULT_DICTIONARY)

    # ------------------------------------------------------------------ OpenCV objects
    def cv_board(self):
        """The ``cv2.aruco.CharucoBoard``."""
        cv2 = _cv2()
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        board = cv2.aruco.CharucoBoard((self.cols, self.rows), self.square, self.marker, d)
        board.setLegacyPattern(self.legacy)
        return board

    def corners_3d(self) -> np.ndarray:
        """Inner chessboard corners (num_corners, 3) in the board frame (metres), indexed by corner id."""
        return np.asarray(self.cv_board().getChessboardCorners(), dtype=np.float64).reshape(-1, 3)

    def image(self, px_per_square: int = 100, margin_px: int = 0) -> np.ndarray:
        """The printable board: uint8 grey (rows·px + 2·margin, cols·px + 2·margin), white margin."""
        w = self.cols * px_per_square + 2 * margin_px
        h = self.rows * px_per_square + 2 * margin_px
        return self.cv_board().generateImage((w, h), marginSize=margin_px, borderBits=1)


@dataclass
class Detection:
    """The board corners found in one image: ids (N,), pixels (N, 2) and board-frame points (N, 3)."""

    ids: np.ndarray
    pixels: np.ndarray
    object_points: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


class BoardDetector:
    """Finds a :class:`BoardSpec`'s corners in images (sub-pixel refined by OpenCV)."""

    def __init__(self, spec: BoardSpec) -> None:
        cv2 = _cv2()
        self.spec = spec
        self._board = spec.cv_board()
        self._corners = spec.corners_3d()
        self._detector = cv2.aruco.CharucoDetector(self._board)

    def detect(self, image: np.ndarray) -> Detection | None:
        """Corners in ``image`` (uint8 grey (H, W) or RGB (H, W, 3)); None when fewer than 4 are found
        or they are collinear (no pose can come from them)."""
        cv2 = _cv2()
        img = np.asarray(image)
        if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
            raise ActionImagesError(f"images must be uint8 grey or RGB, got {img.dtype} {img.shape}")
        if img.ndim == 3:
            img = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2GRAY)
        corners, ids, _, _ = self._detector.detectBoard(img)
        if ids is None or len(ids) < 4:
            return None
        ids = ids.reshape(-1).astype(np.int64)
        if self._board.checkCharucoCornersCollinear(ids.astype(np.int32).reshape(-1, 1)):
            return None
        return Detection(ids, corners.reshape(-1, 2).astype(np.float64), self._corners[ids])


def read_image(path: str | Path) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3); a clear error when it cannot be read."""
    cv2 = _cv2()
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ActionImagesError(f"cannot read the image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
