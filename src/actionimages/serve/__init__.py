"""``actionimages serve``: a world-action model as a websocket policy server (docs/DEPLOY.md)."""

from actionimages.serve.server import PolicyServer, RequestError, parse_request

__all__ = ["PolicyServer", "RequestError", "parse_request"]
