"""The web console: what the controller knows about switches, flows and
what each flow is for, for administrators, at /console (and Prometheus
metrics at /metrics).

    mount(app, runtime)     # called by controller.api.app.create_app

Pages: Nodes and switches, Flow tables per switch (live counters), a page per
network / port / router with every flow that serves it, Drift (desired vs
installed), Trace (a packet walked through the desired pipeline), Topology,
DHCP. Server-rendered Jinja templates, one stylesheet and one small script,
all served from controller/console/static: no CDN, no build step.
Access: controller/console/auth.py.
"""
from __future__ import annotations

import os

from flask import Response, redirect


def mount(app, runtime) -> None:
    from controller import metrics
    from controller.console import ops_api  # noqa: F401  (its JSON routes join bp)
    from controller.console.views import bp
    app.extensions["quantum_console_runtime"] = runtime
    if not app.secret_key:
        app.secret_key = os.urandom(32)       # signs the console's session cookie
    # Assigned, not setdefault: Flask's defaults hold these keys already.
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_NAME"] = "quantum_console"
    from controller.console.auth import SESSION_MAX
    app.permanent_session_lifetime = SESSION_MAX
    app.register_blueprint(bp, url_prefix="/console")
    # "/console" itself: before the API's catch-all route can claim it.
    app.add_url_rule("/console", "console_root", lambda: redirect("/console/"))

    registry = metrics.registry(runtime, app.extensions.get("quantum_metrics"))

    def metrics_view():
        return Response(metrics.exposition(registry), content_type=metrics.CONTENT_TYPE)

    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])
