"""The one-shot commands containers run: migrations before the gateway, and the health checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer


def run_module(module: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BELLE_")} | env
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=60,
                          env=environment)


def test_migrate_check_wait_and_upgrade(tmp_path):
    database = {"BELLE_DATABASE_URL": f"sqlite:///{tmp_path / 'belle.db'}"}
    check = run_module("belle_shared.db.migrate", "--check", **database)
    assert check.returncode == 1 and "is not at revision" in check.stdout
    waited = run_module("belle_shared.db.migrate", "--wait", "1", **database)
    assert waited.returncode == 1
    upgrade = run_module("belle_shared.db.migrate", **database)
    assert upgrade.returncode == 0, upgrade.stderr
    assert run_module("belle_shared.db.migrate", "--check", **database).returncode == 0
    assert run_module("belle_shared.db.migrate", "--wait", "5", **database).returncode == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthcheck_http_broker_and_database(tmp_path):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200 if self.path == "/healthz" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        assert run_module("belle_shared.healthcheck", "--http", f"{url}/healthz").returncode == 0
        unhealthy = run_module("belle_shared.healthcheck", "--http", f"{url}/readyz")
        assert unhealthy.returncode == 1 and "503" in unhealthy.stderr
    finally:
        server.shutdown()
    down = {"BELLE_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0",
            "BELLE_DATABASE_URL": f"sqlite:///{tmp_path / 'absent' / 'x.db'}"}
    result = run_module("belle_shared.healthcheck", "--broker", "--timeout", "1", **down)
    assert result.returncode == 1 and result.stderr.startswith("broker:")
    assert run_module("belle_shared.healthcheck", "--database", **down).returncode == 0  # SQLite: created on use
