"""Tinybird: shipped datafiles, the client configuration, and a local compatible server."""

from .config import REGIONS, Tinybird, resolve_host

__all__ = ["Tinybird", "REGIONS", "resolve_host"]
