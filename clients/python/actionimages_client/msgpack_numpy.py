"""The wire format: msgpack with numpy arrays, in the convention openpi's client uses.

An array travels as the map ``{"__ndarray__": True, "data": <raw bytes>, "dtype": <numpy dtype
str, e.g. "<f4">, "shape": [..]}``; a numpy scalar as ``{"__npgeneric__": True, "data": <value>,
"dtype": ..}``. Only bool, integer and float dtypes are accepted (never object, void or complex),
and nothing is ever unpickled: a message is data, not code.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

PROTOCOL_VERSION = 1
_KINDS = "biuf"  # bool, signed, unsigned, float


class WireError(ValueError):
    """A message that is not valid on the wire (bad msgpack, unsupported dtype, inconsistent array)."""


def _pack(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | np.generic) and obj.dtype.kind not in _KINDS:
        raise WireError(f"unsupported dtype {obj.dtype} on the wire (bool, int, uint, float only)")
    if isinstance(obj, np.ndarray):
        return {
            "__ndarray__": True,
            "data": np.ascontiguousarray(obj).tobytes(),
            "dtype": obj.dtype.str,
            "shape": list(obj.shape),
        }
    if isinstance(obj, np.generic):
        return {"__npgeneric__": True, "data": obj.item(), "dtype": obj.dtype.str}
    return obj


def _unpack(obj: dict) -> Any:
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
