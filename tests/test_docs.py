"""The hook reference stays complete: every hook is documented and exercised by a test."""

from __future__ import annotations

import inspect
import re

import pytest

from core import hookspecs
from tests.conftest import ROOT

HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
               if hasattr(fn, "factoryline_spec"))


def test_there_are_hooks() -> None:
    assert {"register_connectors", "register_transforms", "register_emulators", "run_finished"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_signature(hook: str) -> None:
    docs = (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert re.search(rf"^## {hook}\({re.escape(params)}\)$", docs, re.M), f"docs/hooks.md lacks '## {hook}({params})'"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_an_implementation_the_tests_load(hook: str) -> None:
    # the test plugins and the built-in connectors (which the tests load through the registry)
    files = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "connectors").rglob("__init__.py")]
    assert any(f"def {hook}(" in p.read_text(encoding="utf-8") for p in files), f"nothing implements {hook}"
