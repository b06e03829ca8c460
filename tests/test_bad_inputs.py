"""scripts/bad_inputs.py: every bad input in its table gets exit code 2 (or its documented 1), one
`actionimages CMD: error: ...` line, no traceback and no files; docs/results/bad_inputs.md names
every case."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "docs" / "results" / "bad_inputs.md"
REGENERATE = "python scripts/bad_inputs.py --out docs/results/bad_inputs.md"


@pytest.fixture(scope="module")
def bad_inputs():
    name = "bad_inputs_script"
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "bad_inputs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)


def test_every_bad_input_is_refused_in_one_line(bad_inputs):
    """The whole table, as `--check` runs it (the shared tiny run and dataset are made once)."""
    results = bad_inputs.run_cases()
    assert len(results) == len(bad_inputs.CASES) >= 40
    failing = [f"{r.case.name}: {r.verdict}\n  {r.command}\n  {r.stderr}" for r in results if not r.passes]
    assert not failing, "\n".join(failing)
    assert bad_inputs.main(["--check", "-q", "-k", "plan-memory"]) == 0


def test_the_table_lists_every_case(bad_inputs):
    names = [c.name for c in bad_inputs.CASES]
    assert len(set(names)) == len(names), "case names must be unique"
    table = TABLE.read_text()
    missing = [n for n in names if f"| `{n}` |" not in table]
    assert not missing, f"{TABLE} lacks {missing}: run {REGENERATE}"
    assert bad_inputs.END_MARKER in table  # the hand-written notes below it survive a regeneration


def test_the_check_catches_what_it_is_for(bad_inputs, monkeypatch):
    """A command that succeeds, one that raises (a traceback), a known gap that no longer fails."""
    import actionimages.cli.plan_memory as plan_memory

    Case = bad_inputs.Case
    ok = Case("accepted", "plan-memory --config tiny")
    raising = Case("raises", "plan-memory --config small")
    stale_gap = Case("stale-gap", "plan-memory --config nope", gap="was a traceback once")
    real = plan_memory.run_plan_memory

    def run(args):
        if args.config == "small":
            raise ValueError("a bug")
        return real(args)

    monkeypatch.setattr(plan_memory, "run_plan_memory", run)
    by_name = {r.case.name: r for r in bad_inputs.run_cases([ok, raising, stale_gap])}
    assert by_name["accepted"].verdict.startswith("FAIL: exit 0, expected 2")
    assert "traceback" in by_name["raises"].verdict and by_name["raises"].code == "raised ValueError"
    assert by_name["raises"].message == "ValueError: a bug"
    assert by_name["stale-gap"].verdict.startswith("FIXED?") and not by_name["stale-gap"].passes
    text = bad_inputs.render(list(by_name.values()), kept="\n## kept\n")
    assert "| `raises` |" in text and text.endswith("## kept\n")
