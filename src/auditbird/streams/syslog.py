"""A stream to a syslog server: RFC 5424 messages over TCP, octet-counting framing (RFC 6587),
or over TLS (RFC 5425: the same framing; ``tls=True``, the server's certificate checked
against ``ca_file`` or the system's CAs, and its name against ``host``).

Each event is one message: facility *log audit* (13), severity *informational*, APP-NAME
``auditbird``, MSGID the action, the event's identity as structured data under the SD-ID
``auditbird@32473`` (32473 is the example enterprise number of RFC 5612; pass ``sd_id`` to
use your own), and the whole event as JSON in MSG. Framing by octet count (``LEN SP MSG``)
lets a message hold any byte, newlines included.

TCP syslog has no acknowledgement: a batch counts as delivered once the kernel took every
byte. A connection the server closed is reopened and the batch sent again (transient).
"""

from __future__ import annotations

import json
import select
import socket
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime

from ..row import Row, row_to_wire
from .egress import EgressPolicy, EgressRefused, connect
from .sink import DeliveryError

__all__ = ["SyslogSink", "format_message"]

_PRI = 13 * 8 + 6  # facility 13 (log audit), severity 6 (informational)
_BOM = "\ufeff"


def _sd_value(text: str) -> str:
    # RFC 5424 6.3.3: inside PARAM-VALUE, '"', '\' and ']' are escaped with a backslash.
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _printable(text: str, limit: int) -> str:
    # Header fields are PRINTUSASCII (33-126) and bounded; anything else becomes '_'.
    cleaned = "".join(c if 33 <= ord(c) <= 126 else "_" for c in text)[:limit]
    return cleaned or "-"


def format_message(row: Row, *, hostname: str = "-", sd_id: str = "auditbird@32473") -> bytes:
    """One RFC 5424 message for ``row``, without the framing."""
    stamp = datetime.fromtimestamp(row.timestamp / 1000, tz=UTC).isoformat(timespec="milliseconds")
    try:
        actor = json.loads(row.actor) if row.actor else {}
    except ValueError:
        actor = {}
    actor = actor if isinstance(actor, dict) else {}
    params = {
        "uid": row.uid,
        "workspace": row.workspace,
        "id": row.id,
        "action": row.action,
        "actor_id": str(actor.get("id", "")),
        "actor_name": str(actor.get("name", "")),
        "timestamp": str(row.timestamp),
    }
    sd = "[" + sd_id + "".join(f' {k}="{_sd_value(v)}"' for k, v in params.items()) + "]"
    header = (
        f"<{_PRI}>1 {stamp.replace('+00:00', 'Z')} {_printable(hostname, 255)} auditbird - "
        f"{_printable(row.action, 32)} "
    )
    return (header + sd + " " + _BOM + row_to_wire(row)).encode()


def _peer_closed(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    if isinstance(sock, ssl.SSLSocket):
        # TLS records can be readable without data (a TLS 1.3 session ticket); read, never peek.
        timeout = sock.gettimeout()
        sock.setblocking(False)
        try:
            return sock.recv(1024) == b""
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except OSError:
            return True
        finally:
            sock.settimeout(timeout)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class SyslogSink:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 10.0,
        sd_id: str = "auditbird@32473",
        tls: bool = False,
        ca_file: str | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        if not host or not 0 < port < 65536:
            raise ValueError(
                f"syslog address {host}:{port}: give a host and a TCP port, e.g. tcp://siem:6514"
            )
        self.host, self.port, self.timeout, self.sd_id = host, port, timeout, sd_id
        self.hostname = socket.gethostname()
        self._sock: socket.socket | None = None
        self._tls = ssl.create_default_context(cafile=ca_file) if tls else None
        self.scheme = "tls" if tls else "tcp"
        self.egress = egress  # a stream added over the API: each connection is checked

    def deliver(self, rows: Sequence[Row]) -> None:
        frames = bytearray()
        for row in rows:
            msg = format_message(row, hostname=self.hostname, sd_id=self.sd_id)
            frames += str(len(msg)).encode() + b" " + msg
        try:
            if self._sock is not None and _peer_closed(self._sock):
                self._drop()  # a server that closed the connection would swallow this batch
            if self._sock is None:
                sock = connect(self.egress, self.host, self.port, self.timeout)
                if self._tls is not None:
                    try:
                        sock = self._tls.wrap_socket(sock, server_hostname=self.host)
                    except BaseException:
                        sock.close()
                        raise
                self._sock = sock
            self._sock.sendall(frames)
        except EgressRefused as exc:
            self._drop()
            raise DeliveryError(
                f"syslog {self.scheme}://{self.host}:{self.port}: {exc}", permanent=True
            ) from exc
        except OSError as exc:
            self._drop()
            raise DeliveryError(f"syslog {self.scheme}://{self.host}:{self.port}: {exc}") from exc

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def close(self) -> None:
        self._drop()
