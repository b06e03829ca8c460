"""Receding-horizon execution of action chunks: one executor for every chunked policy and the
robot-side client. It lives in the client package (``clients/python``, numpy only) so a robot
computer runs exactly the code the evaluator runs; this module re-exports it."""

from actionimages_client.chunking import ChunkExecutor, limit_step

__all__ = ["ChunkExecutor", "limit_step"]
