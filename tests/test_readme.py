"""README.md runs as written, in order, in an empty directory.

Every fenced ``sh`` and ``python`` block is executed, top to bottom, as a newcomer would:
shell blocks with ``bash`` (one session: what a block exports, the next one sees), Python blocks
in this interpreter (one namespace per section, the shell's environment, the same directory).
An HTML comment right before a block changes how it runs:

- ``<!-- readme-test: skip (REASON) -->``: not run here (an account, a download); the reason is
  required and the skipped blocks are counted against :data:`EXPECTED_SKIPS`, so none is
  skipped silently.
- ``<!-- readme-test: background (REASON) -->``: endless (``auditbird serve``); started in the
  background, waited for on its port, stopped after the last block.

Port 8000 in the README becomes a free port. The Tinybird section runs against
``auditbird tinybird local`` on a free port, with ``TINYBIRD_TOKEN``/``TINYBIRD_HOST`` set in the
environment the README's blocks read.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .live_server import EXE, free_port, stop, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# Blocks the README marks `readme-test: skip`, by section. A new skip must be added here, visibly.
EXPECTED_SKIPS = {"Install": 1, "Two commands": 1, "Tinybird": 2, "PostgreSQL": 1}

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!--\s*readme-test:\s*(skip|background)\s*(?:\((.+)\))?\s*-->\s*$")


@dataclass
class Block:
    section: str
    lang: str
    code: str
    line: int
    marker: str | None = None
    reason: str | None = None


def parse(text: str) -> list[Block]:
    """The fenced blocks of a markdown text, with their section (## heading) and marker."""
    blocks: list[Block] = []
    section = ""
    marker: tuple[str, str | None] | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        found = _MARKER.match(line)
        if found:
            marker = (found.group(1), found.group(2))
        fence = _FENCE.match(line)
        if fence:
            start = i + 1
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                i += 1
            code = "\n".join(lines[start:i]) + "\n"
            kind, reason = marker if marker else (None, None)
            blocks.append(Block(section, fence.group(1), code, start, kind, reason))
            marker = None
        elif line.strip() and not found:
            marker = None  # a marker applies only to the block right after it
        i += 1
    return blocks


def test_the_parser_reads_markers_sections_and_blocks() -> None:
    text = (
        "## A\n\n<!-- readme-test: skip (no account) -->\n```sh\necho 1\n```\n\n"
        "text\n\n```python\nx = 1\n```\n## B\n<!-- readme-test: background (endless) -->\n"
        "```sh\nsleep 9\n```\n<!-- readme-test: skip (x) -->\nprose breaks it\n```sh\necho\n```\n"
    )
    got = [(b.section, b.lang, b.code, b.marker, b.reason) for b in parse(text)]
    assert got == [
        ("A", "sh", "echo 1\n", "skip", "no account"),
        ("A", "python", "x = 1\n", None, None),
        ("B", "sh", "sleep 9\n", "background", "endless"),
        ("B", "sh", "echo\n", None, None),
    ]


class Session:
    """A newcomer's terminal: a directory, an environment carried between shell blocks, servers."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.state = cwd.parent / "readme-shell.env"
        self.env_file = cwd.parent / "readme-shell.env0"
        self.port = free_port()
        self.background: list[subprocess.Popen[bytes]] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITBIRD_", "TINYBIRD_"))}
        env["PATH"] = f"{Path(EXE).parent}{os.pathsep}{env.get('PATH', '')}"
        env["AUDITBIRD_SPOOL_DIR"] = str(cwd.parent / "spool")
        env["COLUMNS"] = "100"
        self.env = env
        self.state.write_text("")

    def text(self, code: str) -> str:
        return re.sub(r"\b8000\b", str(self.port), code)

    def _script(self, code: str) -> str:
        return (
            f'set -eo pipefail\nsource "{self.state}"\n{self.text(code)}\n'
            f'export -p > "{self.state}"\nenv -0 > "{self.env_file}"\n'
        )

    def shell(self, block: Block) -> str:
        result = subprocess.run(
            ["bash", "-c", self._script(block.code)],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, (
            f"README.md line {block.line} ({block.section}) exited {result.returncode}:\n"
            f"{block.code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        self.env = dict(item.split("=", 1) for item in self.env_file.read_text().split("\0") if "=" in item)
        return result.stdout

    def start(self, block: Block) -> None:
        log = (self.cwd.parent / f"background-{block.line}.log").open("wb")
        proc = subprocess.Popen(
            ["bash", "-c", f'source "{self.state}"\nexec {self.text(block.code).strip()}'],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.background.append(proc)
        wait_until_up(f"http://127.0.0.1:{self.port}/healthz", proc)

    def start_tinybird_local(self) -> None:
        pytest.importorskip("chdb", reason="the Tinybird section runs on `auditbird tinybird local`")
        port = free_port()
        token = "readme-dev-token"
        data = self.cwd.parent / "tb"
        log = (self.cwd.parent / "tinybird-local.log").open("wb")
        proc = subprocess.Popen(
            [
                EXE,
                "tinybird",
                "local",
                "--port",
                str(port),
                "--token",
                token,
                "--data",
                str(data),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.background.append(proc)
        wait_until_up(f"http://127.0.0.1:{port}/", proc, timeout=180)
        exports = f"export TINYBIRD_TOKEN={token}\nexport TINYBIRD_HOST=http://127.0.0.1:{port}\n"
        self.state.write_text(self.state.read_text() + exports)
        self.env.update(TINYBIRD_TOKEN=token, TINYBIRD_HOST=f"http://127.0.0.1:{port}")

    def python(self, block: Block, namespace: dict[str, object]) -> None:
        code = compile(self.text(block.code), f"README.md:{block.line}", "exec")
        with _environment(self.env), _cwd(self.cwd), contextlib.redirect_stdout(io.StringIO()):
            exec(code, namespace)  # noqa: S102 - the README's own example, the point of the test

    def close(self) -> None:
        for proc in self.background:
            stop(proc)


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    before = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


# Not marked slow: the README test runs in the default `make test` (issue 11), about 30 s.
def test_every_readme_example_runs_as_written_in_order(tmp_path: Path) -> None:
    blocks = [b for b in parse(README.read_text()) if b.lang in ("sh", "bash", "python")]
    skipped: dict[str, int] = {}
    for block in blocks:
        if block.marker == "skip":
            assert block.reason, f"README.md line {block.line}: a skipped block must say why"
            skipped[block.section] = skipped.get(block.section, 0) + 1
    assert skipped == EXPECTED_SKIPS, "a README block is skipped (or no longer) without the test saying so"

    work = tmp_path / "newcomer"
    work.mkdir()
    session = Session(work)
    namespaces: dict[str, dict[str, object]] = {}
    ran = 0
    try:
        for block in blocks:
            if block.marker == "skip":
                continue
            if block.section == "Tinybird" and "TINYBIRD_HOST" not in session.env:
                session.start_tinybird_local()
            if block.marker == "background":
                session.start(block)
            elif block.lang == "python":
                session.python(block, namespaces.setdefault(block.section, {"__name__": "__readme__"}))
            else:
                session.shell(block)
            ran += 1
    finally:
        session.close()
    assert ran == len(blocks) - sum(EXPECTED_SKIPS.values())
    assert ran >= 15
    # What the README's examples promise, checked after the fact on disk.
    assert (work / "audit.keys.db").exists() and not (work / "auditbird.keys.db").exists()
    assert (work / "events.ndjson").exists() and (work / "audit.csv").read_text().startswith("uid,")
