"""Deploy and append: what ``tb deploy`` / ``tb push`` / ``tb datasource append`` call."""

from __future__ import annotations

from typing import Any

__all__ = ["deploy_routes"]


def deploy_routes(args: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    return []
