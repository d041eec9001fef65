"""`python -m controller.proxy`: the metadata proxy as a process of its own,
with quantum-controller's configuration (options and --config-file), e.g. on a
host of the management network while the controller runs elsewhere. It only
reads the database (the port behind each source address).

    python -m controller.proxy --config-file /etc/quantum/quantum.conf \\
        --metadata-listen-host 192.0.2.10 --proxy-port 9697

Installed as `quantum-metadata-proxy` (unit: quantum-metadata-proxy.service).
SIGHUP re-reads the configuration files for the log level.
"""
from __future__ import annotations

import logging
import signal
import sys

from controller import config, service
from controller.db.session import Database
from controller.proxy.metadata import MetadataProxy


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = config.load(argv)
    except config.ConfigError as e:
        print(f"metadata proxy: {e}", file=sys.stderr)
        return 2
    service.setup_logging(cfg)
    host = cfg.get("metadata.listen_host") or cfg.get("metadata.proxy_address") or "0.0.0.0"
    try:
        proxy = MetadataProxy(cfg, Database(cfg.database_url), host, cfg.get("metadata.proxy_port"))
    except OSError as e:
        logging.error("metadata proxy: cannot listen on %s:%s: %s", host,
                      cfg.get("metadata.proxy_port"), e)
        return 1
    argv = sys.argv[1:] if argv is None else list(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Re-read in the handler: it only sets a level (no lock the serving thread holds).
    signal.signal(signal.SIGHUP, lambda *_: service.reload(argv, cfg))
    service.notify("READY=1")
    try:
        proxy.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
