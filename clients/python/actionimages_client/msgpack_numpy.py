"""The wire format: msgpack with numpy arrays, in openpi's convention (``openpi_client.msgpack_numpy``).

An array travels as the map ``{b"__ndarray__": True, b"data": <raw bytes>, b"dtype": <numpy dtype
str, e.g. "<f4">, b"shape": [..]}``; a numpy scalar as ``{b"__npgeneric__": True, b"data": <value>,
b"dtype": ..}``. The keys are msgpack *bytes*, as openpi writes and reads them, so openpi's own
client and server read our arrays and we read theirs; maps with the same keys as strings (protocol
1, and clients in languages without a bytes type) are read too. Only bool, integer and float dtypes
are accepted (never object, void or complex), and nothing is ever unpickled: a message is data.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

PROTOCOL_VERSION = 2  # 2: openpi's bytes keys for arrays (1: the same maps with string keys)
READABLE_VERSIONS = (1, 2)
_KINDS = "biuf"  # bool, signed, unsigned, float
_MARKERS = {b"__ndarray__", b"__npgeneric__", "__ndarray__", "__npgeneric__"}


class WireError(ValueError):
    """A message that is not valid on the wire (bad msgpack, unsupported dtype, inconsistent array)."""


def _pack(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | np.generic) and obj.dtype.kind not in _KINDS:
        raise WireError(f"unsupported dtype {obj.dtype} on the wire (bool, int, uint, float only)")
    if isinstance(obj, np.ndarray):
        return {
            b"__ndarray__": True,
            b"data": np.ascontiguousarray(obj).tobytes(),
            b"dtype": obj.dtype.str,
            b"shape": list(obj.shape),
        }
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def _unpack(obj: dict) -> Any:
    if not _MARKERS.intersection(obj):
        return obj
    obj = {k.decode("ascii", "replace") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    if obj.get("__ndarray__") is True:
        try:
            dtype = np.dtype(obj["dtype"])
            shape = tuple(int(s) for s in obj["shape"])
            data = obj["data"]
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError(f"malformed array: {exc}") from exc
        if dtype.kind not in _KINDS:
            raise WireError(f"unsupported dtype {dtype} on the wire")
        if not isinstance(data, bytes) or any(s < 0 for s in shape):
            raise WireError("malformed array: data must be bytes and the shape non-negative")
        if len(data) != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
            raise WireError(f"array data has {len(data)} bytes; shape {shape} of {dtype} needs more or fewer")
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    if obj.get("__npgeneric__") is True:
        try:
            dtype = np.dtype(obj["dtype"])
        except (KeyError, TypeError) as exc:
            raise WireError(f"malformed numpy scalar: {exc}") from exc
        if dtype.kind not in _KINDS:
            raise WireError(f"unsupported dtype {dtype} on the wire")
        return dtype.type(obj["data"])
    return obj


def packb(obj: Any) -> bytes:
    """Serialise a message (dicts, lists, str, numbers, numpy arrays) to bytes."""
    return msgpack.packb(obj, default=_pack, use_bin_type=True)


def unpackb(data: bytes) -> Any:
    """Deserialise bytes from the wire; raises :class:`WireError` on anything malformed."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError(f"expected a binary frame, got {type(data).__name__}")
    try:
        return msgpack.unpackb(data, object_hook=_unpack, raw=False, strict_map_key=True)
    except WireError:
        raise
    except Exception as exc:  # msgpack raises several types on garbage
        raise WireError(f"not a msgpack message: {type(exc).__name__}: {exc}") from exc
