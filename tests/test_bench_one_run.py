"""bench.one_run: every preset names a benchmark module that exists and runs as ``-m``, and the
frame records what RESULTS.md needs (machine, times, load, the module's own output)."""

from __future__ import annotations

import importlib
import io
import sys

import pytest
from bench import one_run


@pytest.mark.parametrize("issue", sorted(one_run.PRESETS))
def test_every_preset_module_has_a_main(issue: str) -> None:
    for module, _args in one_run.PRESETS[issue]:
        assert callable(importlib.import_module(module).main), module


def test_a_run_frames_each_module_with_machine_times_load_and_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in module list: the frame is what is under test, not a 20-minute benchmark.
    monkeypatch.setitem(one_run.PRESETS, "t", [("json.tool", ["--help"]), ("bench.one_run", ["--list"])])
    log = io.StringIO()
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert one_run.run(["t"], log) == 0
    text = log.getvalue()
    assert text.startswith("# one run for issue(s) t\n# ")
    assert "cores" in text.splitlines()[1]  # bench.machine.describe()
    assert text.count("# started ") == 2 and text.count("exit 0, load average ") == 2
    assert "15: python -m bench.core_sqlite" in text  # the second module's own output, unedited


def test_a_failing_module_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(one_run.PRESETS, "t", [("bench.no_such_module", [])])
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert one_run.run(["t"], None) == 1
