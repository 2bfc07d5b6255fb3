"""Every Python snippet in README.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import run_python

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_python_snippets():
    assert python_blocks(), "README.md shows Python usage"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_snippet_runs(index, tmp_path):
    out = run_python(python_blocks()[index], cwd=tmp_path)
    assert out.returncode == 0, f"snippet {index} failed:\n{out.stderr}"
