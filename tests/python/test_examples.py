"""The runnable examples keep working and show what they claim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


def run_example(name: str, cwd: Path) -> str:
    """Runs examples/python/NAME in `cwd`; its output, once it exits cleanly."""
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_order_flow_example(tmp_path):
    text = run_example("order_flow.py", tmp_path)
    for order in ["order-1001", "order-1002", "order-1003"]:
        assert f"{order}: created -> paid -> shipped -> delivered" in text
    assert "transaction_state='COMMIT'" in text
    for service in ["sms", "inventory", "analytics"]:
        assert f"{service:<10} <- orders" in text
    assert "lag per service: {'sms': 0, 'inventory': 0, 'analytics': 0}" in text
    assert "right away: 0 message(s) for billing" in text
    assert "order-1003 paid in time: its cancel recalled: True" in text
    later = text.split("30 minutes later")[1]
    assert "billing    <- orders" in later and "order-1002 cancel-if-unpaid" in later
    assert "order-1003 cancel" not in later, "a recalled cancel is never delivered"
    assert (tmp_path / "data" / "order-flow").is_dir(), "the example keeps its store under ./data"


def test_asyncio_service_example(tmp_path):
    text = run_example("asyncio_service.py", tmp_path)
    assert "placed 20 orders, every one on disk: True" in text
    assert "shipped 20 orders in " in text
    assert "shipping lag: 0" in text
    assert "shipments stored: 20" in text
    # order-2007 and order-2017 are declined: rolled back, never visible.
    assert "payments committed: 18, declined: 2" in text
    assert "payments visible to consumers: 18" in text
    assert (tmp_path / "data" / "asyncio-service").is_dir(), "the example keeps its store under ./data"
