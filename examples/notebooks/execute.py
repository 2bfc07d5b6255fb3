"""Runs notebooks top to bottom and saves their outputs in place (the committed
outputs: small text, PNG plots), without per-run noise (cell timings, interpreter
versions): ``python examples/notebooks/execute.py examples/notebooks/NAME.ipynb``."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nb.metadata.pop("language_info", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        execute(Path(arg))
        print(f"executed {arg}")
