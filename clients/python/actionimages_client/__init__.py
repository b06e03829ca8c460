"""Robot-side client of ``actionimages serve``: the wire format, a websocket policy and the chunk
executor (shared with the in-process policies). Depends on numpy, msgpack and websockets only."""

from actionimages_client.chunking import ChunkExecutor
from actionimages_client.msgpack_numpy import PROTOCOL_VERSION, WireError, packb, unpackb
from actionimages_client.websocket_policy import ConnectionLost, ServerError, WebsocketPolicy

__all__ = [
    "PROTOCOL_VERSION",
    "ChunkExecutor",
    "ConnectionLost",
    "ServerError",
    "WebsocketPolicy",
    "WireError",
    "packb",
    "unpackb",
]
