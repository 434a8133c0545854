"""Real receivers for the log-stream tests: an HTTP webhook server and rsyslog, on free ports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .live_server import free_port

RSYSLOGD = shutil.which("rsyslogd") or shutil.which("rsyslogd", path="/usr/sbin:/sbin")


def wait_for(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class WebhookReceiver:
    """A real HTTP server on loopback that keeps every request; ``status`` is what it answers."""

    def __init__(self, port: int | None = None, *, status: int = 200, delay: float = 0.0) -> None:
        self.port = port or free_port()
        self.status = status
        self.delay = delay
        self.refuse: Callable[[bytes], bool] = lambda body: False  # answer 400 to these bodies
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died mid-body (kill -9): no request, no answer
                    self.close_connection = True
                    return
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = 400 if receiver.refuse(body) else receiver.status
                if 200 <= status < 300:
                    with receiver._lock:
                        receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def events(self) -> list[dict[str, Any]]:
        """Every event received, in arrival order (batches unpacked)."""
        with self._lock:
            bodies = [json.loads(b) for _, b in self.requests]
        out: list[dict[str, Any]] = []
        for body in bodies:
            out.extend(body["data"] if isinstance(body["data"], list) else [body["data"]])
        return out

    def uids(self) -> list[str]:
        return [e["uid"] for e in self.events()]


_RSYSLOG_CONF = """
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" port="{port}" ruleset="in")
template(name="fields" type="string" string="%app-name%|%msgid%|%structured-data%|%msg%\\n")
ruleset(name="in") {{
  action(type="omfile" file="{out}" template="fields" flushOnTXEnd="on")
}}
"""


_RSYSLOG_TLS = """
global(DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}" DefaultNetstreamDriverKeyFile="{key}")
"""


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl): ``(ca, cert, key)``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ext = directory / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-subj",
        "/CN=auditbird test CA",
        "-days",
        "2",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    return ca, cert, key


class Rsyslog:
    """Debian's rsyslogd, unprivileged, in the foreground, with its own configuration."""

    def __init__(
        self, directory: Path, port: int | None = None, *, tls: tuple[Path, Path, Path] | None = None
    ) -> None:
        if RSYSLOGD is None:
            pytest.fail("rsyslogd is missing: run scripts/test-deps.d/70-rsyslog.sh")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.out = self.dir / "received.log"
        self.conf = self.dir / "rsyslog.conf"
        conf = _RSYSLOG_CONF.format(work=self.dir, port=self.port, out=self.out)
        if tls is not None:
            ca, cert, key = tls
            conf = _RSYSLOG_TLS.format(ca=ca, cert=cert, key=key) + conf.replace(
                'module(load="imtcp")',
                'module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" '
                'StreamDriver.AuthMode="anon")',
            )
        self.conf.write_text(conf)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Rsyslog:
        assert RSYSLOGD is not None
        self.proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.dir / "rsyslogd.pid")],
            stdout=(self.dir / "rsyslogd.stdout").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        import socket

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"rsyslogd exited: {(self.dir / 'rsyslogd.stdout').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for(listening, 30, "rsyslogd to listen")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self.proc = None

    def messages(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        """``(app_name, msgid, structured_data, event)`` for each message rsyslog wrote."""
        if not self.out.exists():
            return []
        out = []
        for line in self.out.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            app, msgid, sd, msg = line.split("|", 3)
            if not msg.endswith("}"):
                continue  # a line rsyslog is still writing
            out.append((app, msgid, sd, json.loads(msg.lstrip("\ufeff"))))
        return out

    def uids(self) -> list[str]:
        return [m[3]["uid"] for m in self.messages()]


def first_occurrences(uids: list[str]) -> list[str]:
    """The received order with redeliveries removed (at least once: a batch may come twice)."""
    seen: set[str] = set()
    out = []
    for uid in uids:
        if uid not in seen:
            seen.add(uid)
            out.append(uid)
    return out
