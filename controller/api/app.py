"""Flask application factory for the Quantum v2.0 API (skeleton: the API
issue fills in the resources)."""
from __future__ import annotations

from flask import Flask, jsonify, request


def create_app(runtime) -> Flask:
    app = Flask("quantum-controller")

    @app.get("/")
    def versions():
        base = request.host_url.rstrip("/")
        return jsonify({"versions": [{"id": "v2.0", "status": "CURRENT",
                                      "links": [{"rel": "self", "href": f"{base}/v2.0/"}]}]})
    return app
