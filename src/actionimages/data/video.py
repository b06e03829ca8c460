"""MP4 encode / random-access decode with PyAV.

Encoding defaults to H.264 (libx264) at CRF 15 in ``yuv444p``: full-resolution chroma keeps the
thin gripper and object edges that action learning needs (mean error ≈ 1 grey level on sim frames,
see docs/DATA.md), and H.264 is one of the codecs LeRobot accepts. Keyframes every ``gop`` frames
bound the cost of a random seek; no B-frames, so decode order is presentation order.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from actionimages.errors import DataError

try:
    import av
except ImportError:  # in-memory episodes need no decoder; reading or writing mp4 says what is missing
    av = None

DEFAULT_CODEC = "libx264"
DEFAULT_CRF = 15
DEFAULT_PIX_FMT = "yuv444p"
DEFAULT_GOP = 8
SEEK_GAP = 24  # decode forward instead of seeking when the next wanted frame is this close

_AV_ERRORS: tuple[type[BaseException], ...] = ((av.FFmpegError,) if av is not None else ()) + (
    OSError,
    EOFError,
    ValueError,
    IndexError,
)


def _open(path: str | Path, **kwargs: Any) -> Any:
    """``av.open``, or a DataError naming the missing package."""
    if av is None:
        raise DataError(f"{path}: reading or writing mp4 video needs PyAV (pip install av)")
    return av.open(str(path), **kwargs)


def _video_error(path: str | Path, label: str, exc: BaseException) -> DataError:
    """The :class:`DataError` for a video that PyAV / FFmpeg could not read, naming ``label`` (and the file).

    FFmpeg reports a cut-off or damaged mp4 with whatever error its parser hit first (EPERM
    "Operation not permitted", end of file, "decoder not found", an empty stream list), none of which
    names the real problem; so a readable file is reported as truncated or corrupt, with FFmpeg's
    words kept as detail. A missing or unreadable (permissions) file is reported as such.
    """
    p = Path(path)
    if not p.exists():
        return DataError(f"{label}: video file missing")
    if not os.access(p, os.R_OK):
        return DataError(f"{label}: video file not readable (permission denied)")
    strerror = getattr(exc, "strerror", None)
    if isinstance(exc, IndexError):  # ``container.streams.video[0]`` of a container without one
        detail = "no video stream"
    else:
        detail = f"FFmpeg: {strerror}" if strerror else f"{type(exc).__name__}: {exc}"
    return DataError(f"{label}: truncated or corrupt video ({p.stat().st_size} bytes; {detail})")


def _label(path: str | Path, where: str) -> str:
    return f"{where}: {path}" if where else str(path)


def fps_fraction(fps: float) -> Fraction:
    """A rational frame rate for the container (``3.75`` -> ``15/4``)."""
    return Fraction(fps).limit_denominator(1001)


def encode_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    *,
    codec: str = DEFAULT_CODEC,
    crf: int = DEFAULT_CRF,
    pix_fmt: str = DEFAULT_PIX_FMT,
    gop: int = DEFAULT_GOP,
    preset: str = "veryfast",
) -> None:
    """Encode uint8 frames (T, H, W, 3) RGB to an mp4 at ``path``.

    Not fsynced: a file that must survive a crash is written through
    :func:`actionimages.atomic.atomic_path` (as the dataset writer does), which fsyncs and commits it.

    Frame ``t`` gets presentation time ``t / fps`` exactly, which the decoder relies on.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise DataError(
            f"{path}: frames must be non-empty uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}"
        )
    T, H, W, _ = frames.shape
    if pix_fmt == "yuv420p" and (H % 2 or W % 2):
        raise DataError(f"{path}: yuv420p needs even image sizes, got {W}x{H}; use yuv444p")
    rate = fps_fraction(fps)
    with _open(path, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        opts = {"crf": str(crf), "g": str(gop), "bf": "0"}
        if codec.startswith("libx26"):
            opts.update({"preset": preset, "keyint_min": str(gop), "sc_threshold": "0"})
        stream.options = opts
        for t in range(T):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[t]), format="rgb24")
            vf.pts = t
            container.mux(stream.encode(vf))
        container.mux(stream.encode(None))


def probe_video(path: str | Path, where: str = "") -> dict[str, Any]:
    """LeRobot-style video info: ``video.height``, ``video.width``, ``video.codec``, ``video.pix_fmt``,
    ``video.fps``, ``video.frames`` (from the container header; 0 if it does not say),
    ``video.channels``, ``has_audio``. An unreadable file raises :class:`DataError` naming ``where``
    and ``path``."""
    return _probe(path, where)[0]


def _probe(path: str | Path, where: str) -> tuple[dict[str, Any], int | None]:
    """(:func:`probe_video`'s dict, the stream duration in frames or None)."""
    label = _label(path, where)
    try:
        with _open(path) as c:
            s = c.streams.video[0]
            cc = s.codec_context
            if cc is None or not cc.width or not cc.height:
                raise DataError(f"{label}: truncated or corrupt video (no decodable video stream)")
            rate = float(s.average_rate) if s.average_rate else None
            duration = None
            if s.duration is not None and rate:
                duration = int(round(float(s.duration * s.time_base) * rate))
            info = {
                "video.height": int(cc.height),
                "video.width": int(cc.width),
                "video.codec": "h264" if cc.name in ("h264", "libx264") else cc.name,
                "video.pix_fmt": str(cc.pix_fmt),
                "video.is_depth_map": False,
                "video.fps": rate,
                "video.frames": int(s.frames),
                "video.channels": 3,
                "has_audio": len(c.streams.audio) > 0,
            }
            return info, duration
    except _AV_ERRORS as exc:
        raise _video_error(path, label, exc) from exc


def decode_frames(path: str | Path, indices: Any, fps: float, *, where: str = "") -> np.ndarray:
    """Decode frames ``indices`` (N,) of an mp4 written by :func:`encode_video`: uint8 (N, H, W, 3).

    Seeks to the keyframe before each run of wanted frames and decodes forward, so a clip costs
    about ``len(clip) + gop`` decoded frames whatever its position. Duplicates and any order are
    allowed. A missing frame or a corrupt file raises :class:`DataError` naming ``where`` and ``path``.
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    label = _label(path, where)
    if idx.size == 0:
        raise DataError(f"{label}: no frame indices requested")
    if idx.min() < 0:
        raise DataError(f"{label}: negative frame index {int(idx.min())}")
    wanted = sorted(set(idx.tolist()))
    wanted_set = set(wanted)
    got: dict[int, np.ndarray] = {}
    try:
        with _open(path) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            tb = stream.time_base
            t0 = stream.start_time or 0  # other encoders may start at a non-zero pts

            def run(seek_to: int, target: int) -> int | None:
                """Seek to the keyframe at or before ``seek_to``; decode up to ``target``; last index."""
                c.seek(int(seek_to / fps / tb) + t0, stream=stream, backward=True, any_frame=False)
                last = None
                for frame in c.decode(stream):
                    if frame.pts is None:
                        raise DataError(f"{label}: frame without timestamp")
                    i = int(round(float((frame.pts - t0) * tb) * fps))
                    last = i
                    if i in wanted_set and i not in got:
                        got[i] = frame.to_ndarray(format="rgb24")
                    if i >= target:
                        break
                return last

            k = 0
            while k < len(wanted):
                # one forward decode covers a run of wanted frames with small gaps
                j = k
                while j + 1 < len(wanted) and wanted[j + 1] - wanted[j] <= SEEK_GAP:
                    j += 1
                last = run(wanted[k], wanted[j])
                if wanted[k] not in got and last is not None and last > wanted[k]:
                    run(0, wanted[j])  # the seek overshot: decode from the start
                missing = [w for w in wanted[k : j + 1] if w not in got]
                if missing:
                    raise DataError(
                        f"{label}: video has no frame {missing[0]} (truncated or shorter than expected)"
                    )
                k = j + 1
    except DataError:
        raise
    except _AV_ERRORS as exc:
        raise _video_error(path, label, exc) from exc
    return np.stack([got[i] for i in idx.tolist()])


def count_frames(path: str | Path, where: str = "") -> int:
    """Decode the whole video and count its frames (slow; for ``dataset check``)."""
    n = 0
    try:
        with _open(path) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            for _ in c.decode(stream):
                n += 1
    except _AV_ERRORS as exc:
        raise _video_error(path, _label(path, where), exc) from exc
    return n


class VideoFile:
    """Lazy frames of one mp4: ``video[indices]`` -> uint8 (N, H, W, 3), decoded on demand.

    Args:
        path: the mp4.
        num_frames: T, the logical length.
        height, width: frame size.
        fps: the rate used to turn timestamps into frame indices (the file's own rate).
        frame_map: optional (T,) physical frame index of each logical frame (e.g. a stride-4
            subsample, or the offset of an episode packed in a longer file).
        where: label used in error messages (episode and camera).
    """

    def __init__(
        self,
        path: str | Path,
        num_frames: int,
        height: int,
        width: int,
        fps: float,
        frame_map: np.ndarray | None = None,
        where: str = "",
    ) -> None:
        self.path, self.fps, self.where = Path(path), float(fps), where
        self.shape = (int(num_frames), int(height), int(width), 3)
        self.dtype = np.dtype(np.uint8)
        self.frame_map = None if frame_map is None else np.asarray(frame_map, dtype=np.int64)
        if self.frame_map is not None and len(self.frame_map) != num_frames:
            raise DataError(f"{where}: frame map has {len(self.frame_map)} entries for {num_frames} frames")

    def __len__(self) -> int:
        return self.shape[0]

    def _decode(self, idx: np.ndarray) -> np.ndarray:
        phys = idx if self.frame_map is None else self.frame_map[idx]
        if not self.path.exists():
            raise DataError(f"{self.where}: video file missing: {self.path}")
        return decode_frames(self.path, phys, self.fps, where=self.where)

    def __getitem__(self, key: Any) -> np.ndarray:
        T = self.shape[0]
        if isinstance(key, (int, np.integer)):
            k = int(key) + T if key < 0 else int(key)
            if not 0 <= k < T:
                raise IndexError(f"frame {key} out of range for {T} frames")
            return self._decode(np.array([k]))[0]
        idx = np.arange(T)[key]
        return self._decode(np.asarray(idx).reshape(-1))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self[:]
        return arr if dtype is None else arr.astype(dtype)

    def __repr__(self) -> str:
        return f"VideoFile({self.path}, shape={self.shape})"


def open_video(path: str | Path, where: str = "") -> VideoFile:
    """A :class:`VideoFile` for an existing mp4, with size, rate and length from its header."""
    if not Path(path).exists():
        raise DataError(f"{_label(path, where)}: video file missing")
    head, duration = _probe(path, where)
    n, rate = head["video.frames"], head["video.fps"]
    if n <= 0 and duration:
        n = duration
    if not rate or n <= 0:
        n = count_frames(path, where)
        rate = rate or 1.0
    return VideoFile(path, n, head["video.height"], head["video.width"], rate, where=where)
