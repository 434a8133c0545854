"""Storage faults under the SQLite store: disk full, read-only storage, damaged or missing
files, file permissions. Each gives one clear error naming the file and what to do; nothing
half-written; the CLI prints one line and no traceback.

Root ignores file modes (CI runs as root), so "read-only for this user" runs the check in a
subprocess as an unprivileged uid (``nobody``) when the tests run as root; a read-only mount and
a full disk use a small tmpfs in a user + mount namespace (``unshare -rm``), which needs no root.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from auditbird import AuditLog, StoreUnavailable
from auditbird.stores.sqlite import SQLiteStore

SRC = os.environ.get("AUDITBIRD_TEST_SRC", str(Path(__file__).resolve().parents[1] / "src"))
AUDITBIRD = [sys.executable, "-c", "from auditbird.cli import main; main()"]


def event(i: int, size: int = 10) -> dict[str, object]:
    blobs = {f"b{k}": "x" * 400 for k in range(size // 400)}  # free-form strings stop at 500
    return {"id": f"doc:{i}", "action": "doc.shared", "metadata": {**blobs, "i": i}}


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC, "AUDITBIRD_URL": ""}


# -- disk full ------------------------------------------------------------------------------


def test_disk_full_is_one_clear_error_and_nothing_is_half_written(db_path: Path) -> None:
    # max_page_count makes SQLite answer SQLITE_FULL exactly as a full disk does (same code, same
    # automatic rollback); the tmpfs test below fills a real filesystem.
    store = SQLiteStore(db_path)
    log = AuditLog(store)
    log.publish_many([event(i) for i in range(10)])
    (pages,) = store._conn.execute("PRAGMA page_count").fetchone()
    store._conn.execute(f"PRAGMA max_page_count = {pages + 4}")
    with pytest.raises(StoreUnavailable) as caught:
        log.publish_many([event(i, 2_000) for i in range(10, 60)])
    message = str(caught.value)
    assert "cannot rollback" not in message
    assert str(db_path) in message and "disk is full" in message and "nothing of it was stored" in message
    assert type(caught.value).__name__ == "StoreFull"
    assert len(log.list(limit=1000).events) == 10  # the batch is all or nothing
    store._conn.execute("PRAGMA max_page_count = 1073741823")
    log.publish_audit_log(event(99))  # the store goes on once there is room
    assert len(log.list(limit=1000).events) == 11
    log.close()


def namespace_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return done.returncode == 0


needs_namespace = pytest.mark.skipif(
    not namespace_available(),
    reason="needs `unshare -rm` (user + mount namespaces) to mount a small tmpfs without root",
)


def in_tmpfs(mountpoint: Path, script: str, *, size: str = "256k", stdin: str | None = None) -> str:
    """Run a shell ``script`` in a private mount namespace with a tmpfs of ``size`` at
    ``mountpoint``; return its combined output."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    wrapped = f'mount -t tmpfs -o size={size},mode=0777 tmpfs "{mountpoint}" && {script}'
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", wrapped],
        capture_output=True,
        text=True,
        env=env(),
        input=stdin,
        timeout=120,
    )
    return done.stdout + done.stderr + f"\nexit={done.returncode}"


@needs_namespace
def test_a_real_full_disk_gives_the_cli_one_line_and_no_traceback(tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    lines = "".join(json.dumps(event(i, 3_000)) + "\n" for i in range(400))  # ~1.2 MB > 256 KiB
    cmd = " ".join(AUDITBIRD[:2]) + f' "{AUDITBIRD[2]}" --store sqlite:///{mnt}/a.db publish -q'
    out = in_tmpfs(mnt, cmd, stdin=lines)
    assert "exit=1" in out, out
    assert "Traceback" not in out and "cannot rollback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{mnt}/a.db" in errors[0] and "disk is full" in errors[0], out


@needs_namespace
def test_a_real_full_disk_gives_the_service_a_clear_503(tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    keys = tmp_path / "keys.db"
    from auditbird.service.keys import KeyStore

    store = KeyStore(keys)
    secret = store.create(workspace="acme", scope="admin").secret
    store.close()
    client = textwrap.dedent(
        f"""
        import subprocess, sys, time, httpx, socket
        s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
        server = subprocess.Popen([sys.executable, "-c", {AUDITBIRD[2]!r}, "--store", "sqlite:///{mnt}/a.db",
            "serve", "--port", str(port), "--keys", "{keys}", "--log-level", "warning"])
        url = f"http://127.0.0.1:{{port}}"
        for _ in range(300):
            try:
                if httpx.get(url + "/healthz").status_code == 200: break
            except httpx.HTTPError: time.sleep(0.1)
        headers = {{"Authorization": "Bearer {secret}"}}
        try:
            blob = {{f"b{{k}}": "x" * 400 for k in range(8)}}
            for i in range(400):
                body = [{{"id": f"d:{{i}}:{{j}}", "action": "a.b", "metadata": blob}} for j in range(5)]
                r = httpx.post(url + "/v1/events", json=body, headers=headers, timeout=30)
                if r.status_code != 201:
                    print("STATUS", r.status_code); print("BODY", r.text); break
        finally:
            server.terminate(); server.wait(10)
        """
    )
    script = tmp_path / "client.py"
    script.write_text(client)
    out = in_tmpfs(mnt, f'"{sys.executable}" "{script}"', size="512k")
    assert "STATUS 503" in out, out
    body = json.loads(out.split("BODY ", 1)[1].splitlines()[0])
    assert "disk is full" in body["detail"] and f"{mnt}/a.db" in body["detail"], body
    assert "cannot rollback" not in out and "Traceback" not in out, out


# -- read-only storage ----------------------------------------------------------------------


def as_unprivileged(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` as a user to whom file modes apply. As root: inside a user namespace
    as a non-zero uid mapped onto ours (no capabilities after exec), so a 0444 file or a 0555
    directory is read-only for it as for anyone."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if not namespace_available():
            pytest.skip("root ignores file modes, and user namespaces (unshare) are unavailable")
        prefix = ["unshare", "--user", "--map-user=1000", "--map-group=1000"]
    return subprocess.run(
        [*prefix, sys.executable, "-c", code, *args], capture_output=True, text=True, env=env(), timeout=60
    )


def make_log(path: Path) -> None:
    with AuditLog(f"sqlite:///{path}") as log:
        log.publish_audit_log(event(1))


OPEN_AND_READ = """
import sys
from auditbird import AuditLog, StoreUnavailable
try:
    with AuditLog("sqlite:///" + sys.argv[1]) as log:
        log.publish_audit_log({"id": "doc:2", "action": "doc.shared"})
except StoreUnavailable as exc:
    print(type(exc).__name__ + ": " + str(exc))
"""


def test_a_read_only_directory_is_a_clear_error_for_a_new_log(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    folder.chmod(0o555)
    done = as_unprivileged(OPEN_AND_READ, str(folder / "a.db"))
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout.startswith("StoreReadOnly: "), done.stdout + done.stderr
    assert f"{folder}/a.db" in done.stdout and "read-only" in done.stdout
    cli = as_unprivileged(
        "from auditbird.cli import main; main()",
        "--store",
        f"sqlite:///{folder}/a.db",
        "publish",
        json.dumps(event(1)),
    )
    assert cli.returncode != 0 and "Traceback" not in cli.stderr, cli.stderr
    assert cli.stderr.count("\n") == 1 and "read-only" in cli.stderr


def test_an_existing_log_in_a_read_only_directory_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    make_log(folder / "a.db")
    folder.chmod(0o555)  # the -wal and -shm files cannot be made
    done = as_unprivileged(OPEN_AND_READ, str(folder / "a.db"))
    assert done.stdout.startswith("StoreReadOnly: "), done.stdout + done.stderr
    assert "its directory is read-only" in done.stdout and f"{folder}/a.db" in done.stdout


def test_a_read_only_file_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    make_log(folder / "a.db")
    (folder / "a.db").chmod(0o444)
    done = as_unprivileged(OPEN_AND_READ, str(folder / "a.db"))
    assert done.stdout.startswith("StoreReadOnly: "), done.stdout + done.stderr
    assert f"{folder}/a.db" in done.stdout and "read-only" in done.stdout


@needs_namespace
def test_a_read_only_mount_is_a_clear_error(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    script = tmp_path / "open.py"
    script.write_text(OPEN_AND_READ)
    make = f'"{sys.executable}" "{script}" "{mnt}/a.db"'
    out = in_tmpfs(mnt, f'{make} && mount -o remount,ro "{mnt}" && {make}')
    assert "StoreReadOnly: " in out and f"{mnt}/a.db" in out and "read-only" in out, out
    assert "Traceback" not in out, out


# -- damaged, empty and missing files ---------------------------------------------------------


def test_a_file_that_is_not_a_database_is_a_clear_error(db_path: Path) -> None:
    make_log(db_path)
    with open(db_path, "r+b") as f:
        f.write(b"this is not SQLite")
    with pytest.raises(StoreUnavailable, match="is damaged or not an auditbird log") as caught:
        AuditLog(f"sqlite:///{db_path}")
    assert str(db_path) in str(caught.value) and f"auditbird --store sqlite:///{db_path} check" in str(
        caught.value
    )


def test_a_zero_byte_file_is_refused_not_opened_as_an_empty_log(db_path: Path) -> None:
    make_log(db_path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    db_path.write_bytes(b"")
    with pytest.raises(StoreUnavailable, match=r"empty \(0 bytes\)") as caught:
        AuditLog(f"sqlite:///{db_path}")
    assert f"rm {db_path}" in str(caught.value)
    assert db_path.stat().st_size == 0  # nothing was written over it


def test_reading_a_log_whose_directory_does_not_exist_is_an_error_not_an_empty_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nonexistent/dir/a.db"
    with AuditLog(url) as log, pytest.raises(StoreUnavailable, match="does not exist") as caught:
        log.list()
    assert f"{tmp_path}/nonexistent/dir/a.db" in str(caught.value)
    assert not (tmp_path / "nonexistent").exists()  # a read creates nothing
    cli = subprocess.run(
        [*AUDITBIRD, "--store", url, "log", "monitor:1"], capture_output=True, text=True, env=env()
    )
    assert cli.returncode == 1 and "Traceback" not in cli.stderr, cli.stderr
    assert cli.stderr.startswith("error: no audit log at") and cli.stderr.count("\n") == 1
    assert not (tmp_path / "nonexistent").exists()
    with AuditLog(url) as log:  # the first write creates it
        log.publish_audit_log(event(1))
        assert len(log.list().events) == 1
    assert stat.S_IMODE((tmp_path / "nonexistent" / "dir").stat().st_mode) == 0o700


# -- permissions ----------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_a_new_log_and_its_wal_and_shm_are_private_to_their_user(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "a.db"
    old = os.umask(umask)
    try:
        log = AuditLog(f"sqlite:///{path}")
        log.publish_audit_log(event(1))
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        log.close()
    finally:
        os.umask(old)
    assert modes == {"a.db": 0o600, "a.db-wal": 0o600, "a.db-shm": 0o600}


def test_two_processes_creating_one_log_at_once_both_succeed(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    code = (
        "import sys; from auditbird import AuditLog\n"
        "with AuditLog('sqlite:///' + sys.argv[1]) as log:\n"
        "    log.publish_many([{'id': f'd:{i}', 'action': 'doc.shared'} for i in range(50)])\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(path)], env=env(), stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 200
    assert not list(tmp_path.glob(".*creating*"))


def test_a_log_opened_before_its_directory_existed_reads_it_once_it_does(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/later/a.db"
    reader = AuditLog(url)  # e.g. `serve` started before the first publish
    with pytest.raises(StoreUnavailable, match="does not exist"):
        reader.list()
    with AuditLog(url) as writer:  # another process makes the log
        writer.publish_audit_log(event(1))
    assert len(reader.list().events) == 1
    reader.close()
