"""The shipped datafiles against Tinybird's own parsers, and the local server's datafile rules.

Tinybird's two CLIs (the current one, PyPI ``tinybird``, and the Classic one, ``tinybird-cli``)
run in their own venvs (scripts/test-deps.d/20-tinybird-clis.sh); their parsers decide what is
valid, and auditbird's parser must refuse the same files with the same message.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from auditbird.tinybird.datafiles import SHIPPED, DatafileError, load_dir, shipped_files

Parse = Callable[..., list[dict[str, Any]]]

# No network at test time: no version check against PyPI, no telemetry.
CLI_ENV = {"PATH": "/usr/bin:/bin", "TB_VERSION_WARNING": "0", "TB_CLI_TELEMETRY_OPTOUT": "1"}
SCHEMA = "SCHEMA >\n    `uid` String `json:$.uid`,\n    `n` Int32 `json:$.n`"


def test_every_shipped_datafile_parses_clean_under_both_tinybird_clis(
    tinybird_parse: Parse, tb_cli_python: Path, tb_classic_python: Path
) -> None:
    files = [SHIPPED / rel for rel in shipped_files()]
    assert {p.suffix for p in files} == {".datasource", ".pipe"}
    for python in (tb_cli_python, tb_classic_python):
        results = tinybird_parse(python, *files)
        assert [r["path"] for r in results] == [str(p) for p in files]
        for r in results:
            assert r["ok"], f"{python.parent.parent.name} refuses {r['path']}: {r['error']}"
            assert r["warnings"] == [], f"{python.parent.parent.name} warns on {r['path']}: {r['warnings']}"


# name -> (file name, text, the current CLI's message); the Classic CLI's verdict is checked too.
BAD = {
    "materialized": (
        "m.datasource",
        SCHEMA + ",\n    `m` Int32 MATERIALIZED n * 2\n",
        "MATERIALIZED columns are not supported",
    ),
    "alias": ("a.datasource", SCHEMA + ",\n    `m` Int32 ALIAS n * 2\n", "ALIAS columns are not supported"),
    "default then materialized": (
        "dm.datasource",
        SCHEMA + ",\n    `m` Int32 `json:$.m` DEFAULT 1 MATERIALIZED 2\n",
        "MATERIALIZED columns are not supported",
    ),
    "null syntax": ("nl.datasource", SCHEMA + " NULL\n", "NULL column syntax not supported"),
    "column ttl": ("ttl.datasource", SCHEMA + " TTL now()\n", "column TTL is not supported"),
    "boolean": ("b.datasource", SCHEMA + ",\n    `b` Boolean `json:$.b`\n", "Boolean type is not supported"),
    "datetime64": (
        "d.datasource",
        SCHEMA + ",\n    `d` DateTime64 `json:$.d`\n",
        "DateTime64 type without precision is not supported",
    ),
    "unknown engine option": (
        "e.datasource",
        SCHEMA + '\n\nENGINE "MergeTree"\nENGINE_FOO "bar"\n',
        "ENGINE_FOO is not a valid option in datasource files.",
    ),
    "unknown directive": (
        "u.datasource",
        SCHEMA + '\n\nENGINE "MergeTree"\nFOO "bar"\n',
        "FOO is not a valid option in datasource files.",
    ),
    "settings": (
        "s.datasource",
        SCHEMA + '\n\nENGINE "MergeTree"\nSETTINGS "index_granularity = 1"\n',
        "SETTINGS option is not allowed, use ENGINE_SETTINGS instead.",
    ),
    "ver in sorting key": (
        "v.datasource",
        SCHEMA + '\n\nENGINE "ReplacingMergeTree"\nENGINE_SORTING_KEY "uid, n"\nENGINE_VER "n"\n',
        "ENGINE_VER column 'n' cannot be included in the sorting key for ReplacingMergeTree.",
    ),
    "nullable sorting key": (
        "nk.datasource",
        SCHEMA + ',\n    `x` Nullable(String) `json:$.x`\n\nENGINE_SORTING_KEY "x"\n',
        "Sorting key contains nullable column 'x'. Nullable columns cannot be used in sorting keys.",
    ),
    "a parameter named q": (
        "q.pipe",
        "NODE n0\nSQL >\n    %\n    SELECT * FROM t WHERE a = {{ String(q, 'a') }}\n\nTYPE endpoint\n",
        '"q" can not be used as a variable name, line 2',
    ),
    "two endpoints": (
        "two.pipe",
        "NODE a\nSQL >\n    SELECT 1\n\nTYPE endpoint\n\nNODE b\nSQL >\n    SELECT 2\n\nTYPE endpoint\n",
        "Multiple non-standard nodes in pipe. There can only be one",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_datafile_tinybird_refuses_is_refused_with_tinybirds_message(
    case: str, tmp_path: Path, tinybird_parse: Parse, tb_cli_python: Path, tb_classic_python: Path
) -> None:
    name, text, message = BAD[case]
    path = tmp_path / name
    path.write_text(text)
    [current] = tinybird_parse(tb_cli_python, path)
    assert not current["ok"] and message in current["error"], current
    with pytest.raises(DatafileError) as refused:
        load_dir(tmp_path)
    assert message in str(refused.value) and name in str(refused.value)
    [classic] = tinybird_parse(tb_classic_python, path)
    if not classic["ok"]:  # the Classic CLI's words differ here and there; the verdict must not
        assert case not in {"materialized"}, classic


def test_the_classic_cli_alone_takes_materialized_columns_the_current_one_refuses(
    tmp_path: Path, tinybird_parse: Parse, tb_classic_python: Path
) -> None:
    path = tmp_path / "m.datasource"
    path.write_text(BAD["materialized"][1])
    assert tinybird_parse(tb_classic_python, path)[0]["ok"]  # so the stricter, current, rule applies


def test_what_both_clis_accept_is_accepted_too(
    tmp_path: Path, tinybird_parse: Parse, tb_cli_python: Path, tb_classic_python: Path
) -> None:
    """Parameters named like a column or declared twice: neither CLI refuses them, so neither do we."""
    (tmp_path / "t.datasource").write_text(SCHEMA + "\n")
    (tmp_path / "p.pipe").write_text(
        "NODE n0\nSQL >\n    %\n    SELECT * FROM t WHERE uid = {{ String(uid, 'a') }}"
        " AND n = {{ Int32(n, 1) }} AND uid != {{ String(uid, 'b') }}\n\nTYPE endpoint\n"
    )
    for python in (tb_cli_python, tb_classic_python):
        assert all(r["ok"] for r in tinybird_parse(python, *sorted(tmp_path.iterdir())))
    datasources, pipes = load_dir(tmp_path)
    assert set(datasources) == {"t"} and set(pipes) == {"p"}


_DECLARED = re.compile(
    r"\b(?:String|Int8|Int16|Int32|Int64|UInt8|UInt16|UInt32|UInt64|Float32|Float64|"
    r"Boolean|DateTime|DateTime64|Date|Array|column|columns|symbol)\(\s*([A-Za-z_]\w*)"
)


def test_shipped_pipes_declare_each_parameter_once_and_none_named_like_a_column() -> None:
    datasources, pipes = load_dir(SHIPPED)
    columns = {c.name for ds in datasources.values() for c in ds.columns}
    for pipe in pipes.values():
        declared = [m.group(1) for node in pipe.nodes for m in _DECLARED.finditer(node.sql)]
        assert declared, pipe.name
        assert len(declared) == len(set(declared)), f"{pipe.name} declares a parameter twice: {declared}"
        assert not set(declared) & columns, f"{pipe.name}: parameters named like a column"


def test_the_local_server_refuses_an_engine_setting_clickhouse_does_not_know(tmp_path: Path) -> None:
    """Both CLIs pass ENGINE_SETTINGS through; the table's CREATE is what refuses an unknown one."""
    folder = tmp_path / "df"
    folder.mkdir()
    (folder / "odd.datasource").write_text(
        SCHEMA + '\n\nENGINE "MergeTree"\nENGINE_SORTING_KEY "uid"\nENGINE_SETTINGS "no_such_setting = 1"\n'
    )
    pytest.importorskip("chdb")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditbird",
            "tinybird",
            "local",
            "--port",
            "0",
            "--datafiles",
            str(folder),
            "--data",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "odd.datasource" in done.stderr and "no_such_setting" in done.stderr


def test_the_local_server_refuses_a_materialized_column_before_it_starts(tmp_path: Path) -> None:
    (tmp_path / "m.datasource").write_text(BAD["materialized"][1])
    done = subprocess.run(
        [sys.executable, "-m", "auditbird", "tinybird", "local", "--port", "0", "--datafiles", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "MATERIALIZED columns are not supported" in done.stderr, done.stderr


def test_the_written_project_is_one_both_clis_read(
    tmp_path: Path, tb_cli_python: Path, tb_cli_bin: Path, tb_classic_bin: Path
) -> None:
    """`auditbird tinybird datafiles DIR`: the current CLI's project finder (what `tb build` and
    `tb deploy` read) finds every file, and both CLIs' `tb fmt` read each without an error."""
    dest = tmp_path / "project"
    done = subprocess.run(
        [sys.executable, "-m", "auditbird", "tinybird", "datafiles", str(dest)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "tb --cloud deploy" in done.stderr and "tb push datasources/audit_log.datasource" in done.stderr
    found = subprocess.run(
        [
            str(tb_cli_python),
            "-c",
            "import sys; from tinybird.tb.modules.project import Project; "
            "print('\\n'.join(sorted(Project(folder=sys.argv[1], workspace_name='w').get_project_files())))",
            str(dest),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert found == sorted(str(dest / rel) for rel in shipped_files())
    for tb in (tb_cli_bin, tb_classic_bin):
        for rel in shipped_files():
            fmt = subprocess.run(
                [str(tb), "fmt", "--diff", str(rel)],
                cwd=dest,
                capture_output=True,
                text=True,
                timeout=120,
                env={**CLI_ENV, "HOME": str(tmp_path)},
                check=False,
            )
            # 1: the file parsed and `tb fmt` would lay it out otherwise (a style, not a refusal).
            assert fmt.returncode in (0, 1) and "error" not in (fmt.stdout + fmt.stderr).lower(), (
                tb,
                rel,
                fmt,
            )


def test_a_data_folder_from_other_datafiles_is_refused_with_what_to_do(
    tmp_path: Path, tinybird_server_factory: Callable[..., Any]
) -> None:
    older = tmp_path / "older"
    older.mkdir()
    (older / "audit_log.datasource").write_text(SCHEMA + '\n\nENGINE "MergeTree"\nENGINE_SORTING_KEY "uid"\n')
    data = tmp_path / "data"
    tinybird_server_factory(datafiles=[older], data=data).stop()  # a table of two columns, kept in data/
    done = subprocess.run(
        [sys.executable, "-m", "auditbird", "tinybird", "local", "--port", "0", "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "holds table audit_log with other columns (uid, n)" in done.stderr
    assert "another --data folder" in done.stderr
