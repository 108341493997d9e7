"""The tenant follower that `make run` starts next to the services logs as they do: every
line one JSON object (issue 16), here as its own process against the secured broker."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import SecuredBroker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_every_line_of_the_tenant_follower_is_json(secured: SecuredBroker) -> None:
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "pmm-contracts"), "tenants", "--once", *secured.cli_args()],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert lines, "the follower said nothing"
    for line in lines:
        record = json.loads(line)  # fails on a plain-text line
        assert record["service"] == "tenants"
        assert {"event", "level", "timestamp"} <= record.keys()
    assert any("have a principal" in json.loads(line)["event"] for line in lines)
