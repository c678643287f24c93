"""Definitions as code: the shipped glossary is complete and valid; every invalid rule is an error
that names the file and the line (found here by searching the broken file, not by the loader)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.definitions import GLOSSARY, DefinitionError, load_definitions
from core.plugins import get_registry
from pipelines.cli import app

DEFINITIONS = Path(__file__).resolve().parents[1] / "mappings" / "definitions.yaml"
TEXT = DEFINITIONS.read_text(encoding="utf-8")


def test_shipped_glossary_is_complete() -> None:
    defs = load_definitions()
    assert set(GLOSSARY) <= set(defs.terms)
    for t in defs.terms.values():
        assert t.meaning and t.owner and t.version, t.name
    # every canonical stage is entered by exactly one term, and every stage term has a rule
    assert sorted(t.stage for t in defs.terms.values() if t.stage) == sorted(defs.stages)
    assert all(t.clauses for t in defs.terms.values() if t.stage or t.activity)
    defs.check_models(get_registry().attribution_models)


def test_cli_prints_the_glossary() -> None:
    result = CliRunner().invoke(app, ["definitions"])
    assert result.exit_code == 0, result.output
    defs = load_definitions()
    for t in defs.terms.values():
        assert t.name in result.output and t.definition_version in result.output


def _broken(tmp_path: Path, old: str, new: str, count: int = 1) -> tuple[Path, str]:
    assert old in TEXT, old
    text = TEXT.replace(old, new, count)
    path = tmp_path / "mappings" / "definitions.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path, text


def _line_of(text: str, needle: str, nth: int = 1) -> int:
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return lines[nth - 1]


CASES = [
    # (what is broken, replace old, with new, needle on the line the error must name, nth occurrence, message)
    ("unknown field", "{field: lifecycle_stage, in: [lead, mql",
     "{field: lifecycle_phase, in: [lead, mql", "lifecycle_phase", 1, "unknown field 'lifecycle_phase'"),
    ("unknown stage", "    stage: sql\n", "    stage: sales_qualified\n", "stage: sales_qualified", 1,
     "unknown stage 'sales_qualified'"),
    ("unknown touch type", "touch_type, in: [call, meeting, sales_email]",
     "touch_type, in: [call, meeting, fax]", "fax]", 1, "unknown touch_type 'fax'"),
    ("unknown vendor", "- raw: marketo__leads\n          where: [{path: id",
     "- raw: pardot__prospects\n          where: [{path: id", "pardot__prospects", 1, "unknown vendor 'pardot'"),
    ("unknown time field", "at: [close_date, source_updated_at]", "at: [closed_on, source_updated_at]", "closed_on",
     1, "unknown time field"),
    ("two operators", "{field: is_won, is: true}", "{field: is_won, is: true, eq: x}", "eq: x", 1,
     "exactly one operator"),
    ("duplicate term", "  opportunity:\n    stage: opportunity", "  lead:\n    stage: opportunity", "  lead:", 2,
     "'lead' is defined twice"),
    ("stage of two terms", "    stage: qualified_prospect\n", "    stage: sql\n", "  qualified prospect:", 1,
     "stage 'sql' is already defined"),
    ("unknown activity term in attribution", "touches: [marketing activity, sales activity]",
     "touches: [marketing activity, sales chat]", "sales chat", 1, "unknown activity term"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_invalid_rule_names_file_and_line(tmp_path: Path, case: tuple[str, str, str, str, int, str]) -> None:
    _what, old, new, needle, nth, message = case
    path, text = _broken(tmp_path, old, new)
    with pytest.raises(DefinitionError) as info:
        load_definitions(path)
    assert info.value.file == "mappings/definitions.yaml"
    assert info.value.line == _line_of(text, needle, nth), str(info.value)
    assert message in str(info.value)
    assert str(info.value).startswith(f"mappings/definitions.yaml:{info.value.line}: ")


def test_missing_glossary_term_is_an_error(tmp_path: Path) -> None:
    path, _ = _broken(tmp_path, "  conversion ratio:", "  funnel ratio:")
    with pytest.raises(DefinitionError, match="misses 'conversion ratio'"):
        load_definitions(path)


def test_unregistered_model_names_its_line(tmp_path: Path) -> None:
    path, text = _broken(tmp_path, "    w_shaped: {milestone: 0.3}", "    z_shaped: {milestone: 0.3}")
    defs = load_definitions(path)
    with pytest.raises(DefinitionError) as info:
        defs.check_models(get_registry().attribution_models)
    assert info.value.line == _line_of(text, "z_shaped") and "w_shaped" in str(info.value)


def test_a_term_defined_in_two_files_of_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "mappings" / "definitions"
    folder.mkdir(parents=True)
    (folder / "a.yaml").write_text(TEXT, encoding="utf-8")
    extra = "terms:\n  # the same term again\n  win:\n    stage: won\n    meaning: x\n    owner: y\n    version: 9\n"
    (folder / "b.yaml").write_text(extra, encoding="utf-8")
    with pytest.raises(DefinitionError) as info:
        load_definitions(folder)
    assert info.value.file == "mappings/definitions/b.yaml" and info.value.line == 3
    assert f"first at mappings/definitions/a.yaml:{_line_of(TEXT, '  win:')}" in str(info.value)


def test_changing_a_rule_changes_the_version_stamp(tmp_path: Path) -> None:
    before = load_definitions().stage_term("sql").definition_version
    path, _ = _broken(tmp_path, "path: IsConverted, is: true}]\n          at: ConvertedDate",
                      "path: IsConverted, is: true}]\n          at: LastModifiedDate")
    after = load_definitions(path).stage_term("sql").definition_version
    # same declared version, different rule: a different stamp, so derived rows never mix the two
    assert after.split(":")[0] == before.split(":")[0] and after != before


def test_report_shows_the_glossary_with_version_stamps() -> None:
    from pipelines.report._collect import _definitions

    shown = _definitions()
    defs = load_definitions()
    assert shown["note"] is None and shown["source"] == "mappings/definitions.yaml"
    assert {(t["term"], t["version"], t["owner"]) for t in shown["terms"]} == {
        (t.name, t.definition_version, t.owner) for t in defs.terms.values()}
