"""Run the harness as a user would (``python -m loadtest ...``) and read its report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def loadtest(out: Path, *args: str, timeout: float = 150.0) -> dict[str, Any]:
    """Run ``python -m loadtest ARGS --out OUT --quiet``; its report.json."""
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest", *args, "--out", str(out), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    return report


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "report"
