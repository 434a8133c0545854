"""Where a stream added over the API may connect: public unicast addresses, and what the
operator lists in ``AUDITBIRD_STREAM_HOSTS``.

An admin key names a URL; without this check it could point the server at its own network
(a database on 127.0.0.1, a cloud metadata service on 169.254.169.254, a host on 10.x) and
read the answers through a replay's error. So a host is resolved and *every* address it
resolves to must be allowed; the answer is checked again at each connection (a name can
resolve elsewhere later) and the connection goes to the checked address, not to a second
look-up.

``AUDITBIRD_STREAM_HOSTS`` is a comma-separated list of
- IP addresses and networks (``127.0.0.1``, ``10.20.0.0/16``, ``fd00::/8``): allowed even
  though they are not public;
- host names (``hooks.example.com``, or ``.siem.example`` for every name under it): when any
  is listed, streams may name only those hosts (an IP literal inside a listed network too).

Streams the operator adds with the CLI are not checked: the operator already runs the host.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["EgressPolicy", "EgressRefused", "CheckedTransport", "SETTING"]

SETTING = "AUDITBIRD_STREAM_HOSTS"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Public-looking IPv6 ranges that carry an IPv4 address inside (6to4, NAT64, Teredo): the
# inner address may be a private one, so they pass only when listed.
_EMBEDDING = tuple(
    ipaddress.ip_network(n) for n in ("2002::/16", "64:ff9b::/96", "64:ff9b:1::/48", "2001::/32")
)


class EgressRefused(Exception):
    """A stream's destination is not one it may connect to; the message names the setting."""


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_public_unicast(ip: IPAddress) -> bool:
    """A global unicast address, by Python's own tables (no loopback, private, link-local,
    shared, multicast, unspecified or reserved address; an IPv4-mapped one as its IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif any(ip in n for n in _EMBEDDING):
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_unspecified or ip.is_reserved)


@dataclass(frozen=True)
class EgressPolicy:
    names: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_setting(cls, setting: str) -> EgressPolicy:
        names: list[str] = []
        networks: list[IPNetwork] = []
        for entry in (e.strip().lower().rstrip(".") for e in setting.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.append(entry)
        return cls(tuple(names), tuple(networks))

    @classmethod
    def from_env(cls) -> EgressPolicy:
        return cls.from_setting(os.environ.get(SETTING, ""))

    def describe(self) -> str:
        listed = [*self.names, *map(str, self.networks)]
        return f"{SETTING}={','.join(listed)}" if listed else f"{SETTING} is not set"

    def _refuse(self, what: str) -> EgressRefused:
        return EgressRefused(
            f"{what}; streams added over the API may connect only to public addresses and to hosts "
            f"and networks the server's operator lists in {SETTING} (now: {self.describe()}), "
            "e.g. AUDITBIRD_STREAM_HOSTS=siem.internal,10.20.0.0/16"
        )

    def address_allowed(self, ip: IPAddress) -> bool:
        return any(ip in n for n in self.networks if n.version == ip.version) or is_public_unicast(ip)

    def check_name(self, host: str) -> None:
        """Refuses a host the name list leaves out (when the operator listed names)."""
        if not self.names:
            return
        name = host.lower().rstrip(".")
        literal = _ip(name)
        if literal is not None and any(literal in n for n in self.networks if n.version == literal.version):
            return
        if not any(name == a or (a.startswith(".") and name.endswith(a)) for a in self.names):
            raise self._refuse(f"host {host!r} is not among the hosts this server lets streams deliver to")

    def resolve(self, host: str, port: int) -> list[tuple[Any, ...]]:
        """``getaddrinfo`` answers for ``host``, each checked: refuses the host if any address
        is not allowed (a name answering a public and a private address is not usable)."""
        self.check_name(host)
        try:
            infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve {host!r}: {exc.strerror}") from exc
        for info in infos:
            ip = _ip(str(info[4][0]))
            if ip is None or not self.address_allowed(ip):
                raise self._refuse(f"host {host!r} resolves to {info[4][0]}, which is not a public address")
        return infos

    def check_at_add(self, host: str, port: int) -> None:
        """The check when a stream is added: a name that does not resolve now is accepted (the
        connection is checked anyway); one that resolves to a refused address is not."""
        try:
            self.resolve(host, port)
        except EgressRefused as exc:
            raise ValueError(str(exc)) from None
        except OSError:
            pass


class CheckedTransport(httpx.HTTPTransport):
    """Connects to an address :meth:`EgressPolicy.resolve` allowed: the request goes to that IP,
    with the name kept in ``Host`` and, over TLS, in SNI and the certificate check."""

    def __init__(self, policy: EgressPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            infos = self.policy.resolve(url.host, port)
        except OSError as exc:  # as httpx's own failures to connect: retried
            raise httpx.ConnectError(str(exc), request=request) from exc
        address = str(infos[0][4][0])
        if address != url.host:
            request.url = url.copy_with(host=address)
            if url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": url.host}
        return super().handle_request(request)


def connect(policy: EgressPolicy | None, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to ``host``: to an address ``policy`` allowed, when there is one."""
    if policy is None:
        return socket.create_connection((host, port), timeout=timeout)
    info = policy.resolve(host, port)[0]
    sock = socket.socket(info[0], info[1], info[2])
    try:
        sock.settimeout(timeout)
        sock.connect(info[4])
    except BaseException:
        sock.close()
        raise
    return sock
