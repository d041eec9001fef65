"""GET /v2.0/extensions and /v2.0/extensions/<alias>: exactly the aliases the
loaded modules declare (registry.EXTENSIONS)."""
from __future__ import annotations

from controller.api import errors, registry
from controller.api.response import Response


def handle(api, ctx, req, parts):
    if req.method != "GET" or len(parts) > 1:
        raise errors.HTTPNotFound()
    if not parts:
        return Response(200, {"extensions": [e.as_dict() for e in registry.EXTENSIONS]})
    for e in registry.EXTENSIONS:
        if e.alias == parts[0]:
            return Response(200, {"extension": e.as_dict()})
    raise errors.ExtensionNotFound(alias=parts[0])
