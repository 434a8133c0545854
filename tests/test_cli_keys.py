"""Keys, viewer links and the server agree on one place: the keys file beside the store."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from .live_server import EXE, serving


def run(cwd: Path, *args: str, env: dict[str, str] | None = None, code: int = 0) -> str:
    result = subprocess.run(
        [EXE, *args], cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == code, (result.stdout, result.stderr)
    return result.stdout + result.stderr


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AUDITBIRD_URL", "AUDITBIRD_KEYS")}
    return {**env, "COLUMNS": "200", **extra}


def last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


@pytest.mark.parametrize("where", ["after", "before", "env"])
def test_a_key_created_for_a_store_works_with_serve_over_that_store(tmp_path: Path, where: str) -> None:
    url = "sqlite:///audit.db"
    create = ["keys", "create", "--workspace", "acme", "--scope", "admin"]
    env = _env()
    if where == "after":
        out = run(tmp_path, *create, "--store", url)
    elif where == "before":
        out = run(tmp_path, "--store", url, *create)
    else:
        env = _env(AUDITBIRD_URL=url)
        out = run(tmp_path, *create, env=env)
    assert f"keys file: {tmp_path / 'audit.keys.db'}" in out or "keys file: audit.keys.db" in out
    assert (tmp_path / "audit.keys.db").exists() and not (tmp_path / "auditbird.keys.db").exists()
    key = last_line(out)
    with serving("--store", url, cwd=tmp_path, env=_env()) as base:
        answer = httpx.get(f"{base}/v1/events", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text


def test_keys_create_without_store_follows_the_default_store_as_serve_does(tmp_path: Path) -> None:
    key = last_line(run(tmp_path, "keys", "create", "--workspace", "acme", "--scope", "read"))
    assert (tmp_path / "auditbird.keys.db").exists()
    with serving(cwd=tmp_path, env=_env()) as base:
        answer = httpx.get(f"{base}/v1/events", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text


def test_a_key_the_server_cannot_know_is_refused_naming_the_keys_file(tmp_path: Path) -> None:
    key = last_line(run(tmp_path, "keys", "create", "--workspace", "acme", "--scope", "admin"))
    with serving("--store", "sqlite:///audit.db", cwd=tmp_path, env=_env()) as base:
        answer = httpx.get(f"{base}/v1/events", headers={"Authorization": f"Bearer {key}"})
        link = last_line(run(tmp_path, "keys", "viewer-link", "--workspace", "acme"))
        token = link.split("#", 1)[-1].split("=", 1)[-1] if "#" in link else link.rsplit("/", 1)[-1]
        refused = httpx.get(f"{base}/v1/viewer/events", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
    assert "audit.keys.db" in answer.json()["detail"]
    assert refused.status_code == 401, refused.text
    assert "audit.keys.db" in refused.json()["detail"]


def test_a_viewer_link_for_the_store_is_accepted_by_serve_over_it(tmp_path: Path) -> None:
    url = "sqlite:///data/audit.db"
    (tmp_path / "data").mkdir()
    out = run(tmp_path, "keys", "viewer-link", "--store", url, "--workspace", "acme")
    assert str(Path("data") / "audit.keys.db") in out
    link = last_line(out)
    token = link.split("#", 1)[-1].split("=", 1)[-1]
    with serving("--store", url, cwd=tmp_path, env=_env()) as base:
        answer = httpx.get(f"{base}/v1/viewer/events", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text


def test_viewer_link_refuses_a_workspace_keys_create_refuses(tmp_path: Path) -> None:
    bad = "acme corp"
    create = run(tmp_path, "keys", "create", "--workspace", bad, "--scope", "read", code=2)
    link = run(tmp_path, "keys", "viewer-link", "--workspace", bad, code=2)
    assert "may contain only" in create and "may contain only" in link


@pytest.mark.parametrize(
    "command", [["serve"], ["keys"], ["keys", "create"], ["keys", "list"], ["keys", "viewer-link"]]
)
def test_every_key_command_says_where_keys_live(tmp_path: Path, command: list[str]) -> None:
    out = " ".join(run(tmp_path, *command, "--help").split())
    assert "beside the store" in out, out
