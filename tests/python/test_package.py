"""The package as a user imports it: names, stubs, exceptions, versions."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pocketmq
import pocketmq._native as native


def test_public_names_exist():
    for name in [
        "Broker", "Producer", "TransactionProducer", "Consumer", "Message", "SendResult",
        "ManualClock", "TxState", "Error", "InvalidArgument", "MessageTooLarge",
        "TopicNotFound", "StoreLocked", "StoreCorrupted", "Closed", "IoError",
        "DiskFull",
    ]:
        assert hasattr(pocketmq, name), name
    assert set(pocketmq.__all__) <= set(dir(pocketmq))


def test_classes_present_themselves_as_pocketmq():
    assert pocketmq.Broker.__module__ == "pocketmq"
    assert pocketmq.Message.__module__ == "pocketmq"


def test_exception_hierarchy():
    for exc in [pocketmq.InvalidArgument, pocketmq.MessageTooLarge, pocketmq.TopicNotFound,
                pocketmq.StoreLocked, pocketmq.StoreCorrupted, pocketmq.Closed, pocketmq.IoError]:
        assert issubclass(exc, pocketmq.Error)
    assert issubclass(pocketmq.Error, Exception)
    assert issubclass(pocketmq.InvalidArgument, ValueError)
    assert issubclass(pocketmq.IoError, OSError)
    assert issubclass(pocketmq.DiskFull, pocketmq.Error)
    assert issubclass(pocketmq.DiskFull, OSError)
    assert not issubclass(pocketmq.Closed, ValueError)


def test_tx_state_enum():
    assert [s.name for s in pocketmq.TxState] == ["COMMIT", "ROLLBACK", "UNKNOWN"]
    assert pocketmq.TxState("COMMIT") is pocketmq.TxState.COMMIT
    assert str(pocketmq.TxState.ROLLBACK) == "ROLLBACK"


def test_version_is_the_package_version():
    from importlib.metadata import version

    assert pocketmq.__version__ == version("pocketmq")


def test_typing_marker_and_stubs_ship():
    pkg = Path(pocketmq.__file__).parent
    assert (pkg / "py.typed").exists()
    assert (pkg / "_native.pyi").exists()


def _stub_classes() -> dict[str, set[str]]:
    tree = ast.parse((Path(pocketmq.__file__).parent / "_native.pyi").read_text())
    out: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            out[node.name] = {
                n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
    return out


def test_stubs_match_the_native_module():
    stubs = _stub_classes()
    assert stubs, "no classes in the stub"
    for cls_name, methods in stubs.items():
        cls = getattr(native, cls_name)
        for meth in methods:
            assert hasattr(cls, meth), f"{cls_name}.{meth} is stubbed but missing"
        public = {n for n, _ in inspect.getmembers(cls) if not n.startswith("_")}
        assert public <= methods, f"{cls_name} lacks stubs for {sorted(public - methods)}"
