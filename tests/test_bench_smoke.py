"""The fan-out benchmark's small run: every scenario runs and every delivery checks out.

Only correctness is asserted (exit status, one JSON line per scenario, every check
true), never a figure: timings on a shared 2-core CI machine mean nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .harness import ROOT

SCENARIOS = {"flat_out", "server_cpu", "connect", "memory", "latency", "replay"}


@pytest.mark.timeout(300)
def test_quick_benchmark_run_is_correct() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fanout.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    results = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    assert {result["scenario"] for result in results} == SCENARIOS
    for result in results:
        checks = {name: value for name, value in result["checks"].items() if name != "details"}
        assert checks, result
        assert all(checks.values()), result
        assert result["correct"] is True, result
        assert result["quick"] is True
        assert "target" in result and isinstance(result["pass"], bool)
