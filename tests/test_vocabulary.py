"""Every mapping file speaks core/vocabulary.py: the same click is a ``click`` from every vendor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from core.vocabulary import CATEGORIES, CHANNELS, TOUCH_TYPES, touch_type
from tests.conftest import ROOT

MAPPINGS = sorted(p for p in (ROOT / "mappings").rglob("*.yaml") if p.parent.name != "mappings")
#: (entity, field) -> the values it may take
CHECKED: dict[tuple[str, str], set[str]] = {
    ("touch", "touch_type"): set(TOUCH_TYPES),
    ("touch", "channel"): set(CHANNELS),
    ("touch", "category"): set(CATEGORIES),
    ("campaign", "channel"): set(CHANNELS),
}


def produced_values(spec: Any, where: str) -> set[str]:
    """The values a field spec can produce; a field that passes vendor text through is an error."""
    if isinstance(spec, str) or (isinstance(spec, dict) and spec.get("transform") in (None, "string")
                                 and "then" not in spec):
        raise AssertionError(f"{where}: passes vendor values through; map them with an enum table or a constant")
    assert isinstance(spec, dict), where
    if "then" in spec:
        then = spec["then"]
        return produced_values(then if isinstance(then, dict) else {"transform": then}, where)
    transform = spec["transform"]
    if transform == "constant":
        return {spec["value"]}
    if transform == "enum":
        values = set(spec["table"].values())
        if spec.get("default") is not None:
            values.add(spec["default"])
        return values
    raise AssertionError(f"{where}: transform {transform!r} gives values this test cannot check; use enum or constant")


def vocabulary_fields() -> list[tuple[Path, str, Any]]:
    found = []
    for path in MAPPINGS:
        doc = yaml.safe_load(path.read_text())
        if not isinstance(doc, dict) or "entity" not in doc:
            continue
        for name, spec in (doc.get("fields") or {}).items():
            if (doc["entity"], name) in CHECKED:
                found.append((path, f"{doc['entity']}.{name}", spec))
    return found


def test_every_touch_mapping_names_a_touch_type() -> None:
    touch_files = [p for p in MAPPINGS if (yaml.safe_load(p.read_text()) or {}).get("entity") == "touch"]
    typed = {p for p, field, _ in vocabulary_fields() if field == "touch.touch_type"}
    assert set(touch_files) == typed, "every touch mapping must fill touch_type"


@pytest.mark.parametrize(("path", "field", "spec"), vocabulary_fields(),
                         ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else None)
def test_mapped_values_are_in_the_vocabulary(path: Path, field: str, spec: Any) -> None:
    entity, column = field.split(".")
    values = produced_values(spec, f"{path.relative_to(ROOT)} {field}")
    unknown = values - CHECKED[(entity, column)]
    assert not unknown, f"{path.relative_to(ROOT)} {field}: {sorted(unknown)} not in core/vocabulary.py"


def test_each_touch_type_has_a_known_channel_and_category() -> None:
    for t in TOUCH_TYPES.values():
        assert t.channel in CHANNELS and t.category in CATEGORIES, t


def test_unknown_touch_type_lists_the_valid_ones() -> None:
    with pytest.raises(KeyError, match="email_open"):
        touch_type("opened")
