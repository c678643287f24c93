"""Plugin discovery and registration: built-ins and third-party plugins take the same path."""

from __future__ import annotations

import json
import os
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import duckdb
import pluggy
import pytest

from core import hookspecs
from core.connector import ConnectorSpec, StreamSpec
from core.errors import RegistrationError
from core.hookspecs import hookimpl
from core.plugins import PluginWarning, build_registry, get_plugin_manager, get_registry
from tests.conftest import cli


def _pm(*plugins: Any) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("factoryline")
    pm.add_hookspecs(hookspecs)
    for i, p in enumerate(plugins):
        pm.register(p, name=f"plugin{i}")
    return pm


def _spec(name: str = "x", **stream: Any) -> ConnectorSpec:
    s = {"name": "things", "primary_key": "id", **stream}
    return ConnectorSpec(name=name, system=name, streams=(StreamSpec(**s),), factory=lambda c: None)  # type: ignore[arg-type,return-value]


class _Registers:
    def __init__(self, *specs: ConnectorSpec) -> None:
        self.specs = specs

    @hookimpl
    def register_connectors(self, register: Any) -> None:
        for s in self.specs:
            register(s)


def test_builtin_connector_is_declared_as_an_entry_point_and_loaded() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="factoryline")}
    assert names.get("hubspot") == "connectors.hubspot"
    pm = get_plugin_manager()
    assert pm.get_plugin("hubspot").__name__ == "connectors.hubspot"
    assert "hubspot" in get_registry().connectors
    assert get_registry().connectors["hubspot"].plugin == "hubspot"
    # every built-in vendor registers its sandbox emulator through register_emulators
    assert {"hubspot", "salesforce", "marketo", "mailchimp", "x", "shopify"} <= set(get_registry().emulators)


def test_duplicate_connector_name_is_refused_naming_both_plugins() -> None:
    pm = _pm(_Registers(_spec("dup")), _Registers(_spec("dup")))
    with pytest.raises(RegistrationError, match=r"plugin 'plugin1': connector 'dup' is already registered by 'plugin0'"):
        build_registry(pm, strict=True)


def test_merge_without_primary_key_is_refused() -> None:
    with pytest.raises(RegistrationError, match="write_disposition 'merge' needs a primary_key"):
        build_registry(_pm(_Registers(_spec(primary_key=""))), strict=True)


def test_incremental_stream_without_cursor_is_refused() -> None:
    with pytest.raises(RegistrationError, match="incremental stream needs a cursor_field"):
        build_registry(_pm(_Registers(_spec(incremental=True))), strict=True)


def test_missing_mapping_file_is_refused() -> None:
    with pytest.raises(RegistrationError, match=r"mapping file 'nope\.yaml' not found"):
        build_registry(_pm(_Registers(_spec(mappings=("nope.yaml",)))), strict=True)


def test_outside_strict_mode_a_refused_connector_warns_and_the_rest_load() -> None:
    with pytest.warns(PluginWarning, match="refused: .*incremental stream needs a cursor_field"):
        registry = build_registry(_pm(_Registers(_spec("bad", incremental=True), _spec("good"))))
    assert list(registry.connectors) == ["good"]
    assert "bad" in registry.refused[0]


def test_a_failing_hook_warns_with_the_plugin_name_and_others_still_register() -> None:
    class Broken:
        @hookimpl
        def register_connectors(self, register: Any) -> None:
            raise RuntimeError("boom")

    with pytest.warns(PluginWarning, match=r"plugin 'plugin0' failed in register_connectors: RuntimeError: boom"):
        registry = build_registry(_pm(Broken(), _Registers(_spec("ok"))))
    assert list(registry.connectors) == ["ok"]


def test_allow_list_selects_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACTORYLINE_PLUGINS", "nothing_by_that_name")
    pm = get_plugin_manager()
    assert pm.get_plugin("hubspot") is None
    assert pm.get_plugin("core_transforms") is not None  # core's own transforms always load


def test_third_party_distribution_shows_up_and_runs(acme_site: Path, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(acme_site)}
    listed = cli("connectors", cwd=tmp_path, env=dict(env))
    assert listed.returncode == 0, listed.stderr
    assert "acme" in listed.stdout and "third-party" in listed.stdout and "acme_factoryline" in listed.stdout
    assert "hubspot" in listed.stdout and "built-in" in listed.stdout
    # the broken entry point in the same distribution warns with its name and takes nothing down
    assert "'broken' failed to load" in listed.stderr

    announced = tmp_path / "announced.jsonl"
    done = cli("run", "acme", "--db", str(tmp_path / "acme.duckdb"), cwd=tmp_path,
               env={**env, "SOURCES__ACME__API_KEY": "k-123456", "ACME_STATUS_FILE": str(announced)})
    status = json.loads(done.stdout.strip().splitlines()[-1])
    # the plugin's run_finished hook received the same status the CLI printed
    assert [json.loads(line) for line in announced.read_text().splitlines()] == [status]
    assert done.returncode == 0, done.stderr
    assert status["status"] == "success"
    assert status["streams"][0]["records"] == 4
    assert status["streams"][1]["records"] == 5
    con = duckdb.connect(str(tmp_path / "acme.duckdb"), read_only=True)
    people = con.sql("SELECT source_record_id, email FROM factory.person ORDER BY 1").fetchall()
    assert people == [("p1", "ada@example.com"), ("p2", "grace@example.com"), ("p3", "linus@example.com")]
    reasons = [r[0] for r in con.sql("SELECT reason FROM factory.rejects").fetchall()]
    assert any("id" in r for r in reasons), reasons  # the record without an id is kept as a reject


def test_a_repeated_key_opens_a_new_chunk_and_the_newer_record_wins(acme_site: Path, tmp_path: Path) -> None:
    db = tmp_path / "chunks.duckdb"
    done = cli("run", "acme", "--stream", "visits", "--db", str(db), cwd=tmp_path,
               env={"PYTHONPATH": str(acme_site), "SOURCES__ACME__API_KEY": "k-123456",
                    "FACTORYLINE_CHUNK_RECORDS": "1000"})
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout.strip().splitlines()[-1])
    # pages 1 | 2+3: the second page repeats v2, so it starts a second load package
    assert len(status["load_ids"]["acme"]) == 2
    con = duckdb.connect(str(db), read_only=True)
    rows = con.sql("SELECT source_record_id, url FROM factory.touch ORDER BY 1").fetchall()
    raw = con.sql("SELECT count(*) FROM factory.acme__visits").fetchall()
    assert rows == [("v1", "/pricing"), ("v2", "/docs/updated"), ("v3", "/signup"), ("v4", "/blog")]
    assert raw == [(4,)]


def test_small_chunks_give_the_same_tables_as_one_chunk(acme_site: Path, tmp_path: Path) -> None:
    tables = []
    for chunk in ("1", "100000"):
        db = tmp_path / f"c{chunk}.duckdb"
        done = cli("run", "acme", "--db", str(db), cwd=tmp_path,
                   env={"PYTHONPATH": str(acme_site), "SOURCES__ACME__API_KEY": "k-1", "FACTORYLINE_CHUNK_RECORDS": chunk})
        assert done.returncode == 0, done.stderr
        con = duckdb.connect(str(db), read_only=True)
        tables.append([con.sql(f"SELECT id, source_record_id, extras FROM factory.{t} ORDER BY id").fetchall()
                       for t in ("person", "touch")])
    assert tables[0] == tables[1] and len(tables[0][1]) == 4


def test_merge_packages_are_bounded_in_bytes_appends_into_empty_tables_are_not(acme_site: Path,
                                                                              tmp_path: Path) -> None:
    db = tmp_path / "bytes.duckdb"
    env = {"PYTHONPATH": str(acme_site), "SOURCES__ACME__API_KEY": "k-1", "FACTORYLINE_CHUNK_MERGE_BYTES": "1"}
    loads, tables = [], []
    for extra in ((), ("--full-refresh",)):
        done = cli("run", "acme", "--stream", "people", "--db", str(db), *extra, cwd=tmp_path, env=dict(env))
        assert done.returncode == 0, done.stderr
        loads.append(len(json.loads(done.stdout.strip().splitlines()[-1])["load_ids"]["acme"]))
        con = duckdb.connect(str(db), read_only=True)
        tables.append(con.sql("SELECT id, source_record_id, email FROM factory.person ORDER BY id").fetchall())
        con.close()
    # first run: person is empty, so both pages append in one package; the full refresh merges into
    # filled tables, and a 1-byte budget gives each page its own load
    assert loads == [1, 2]
    assert tables[0] == tables[1] and len(tables[0]) == 3


def test_a_first_run_appends_every_package_until_a_key_comes_again(acme_site: Path, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(acme_site), "SOURCES__ACME__API_KEY": "k-1", "FACTORYLINE_CHUNK_RECORDS": "2"}
    found: dict[str, Any] = {}
    for stream in ("people", "visits"):
        db = tmp_path / f"{stream}.duckdb"
        done = cli("run", "acme", "--stream", stream, "--db", str(db), cwd=tmp_path, env=dict(env))
        assert done.returncode == 0, done.stderr
        con = duckdb.connect(str(db), read_only=True)
        found[stream] = {
            "loads": len(json.loads(done.stdout.strip().splitlines()[-1])["load_ids"]["acme"]),
            # a MERGE stages its rows first; an append does not
            "staged": {r[0] for r in con.sql("SELECT table_name FROM information_schema.tables "
                                             "WHERE table_schema = 'factory_staging'").fetchall()},
            "rows": con.sql(f"SELECT record_id, count(*) FROM factory.acme__{stream} "
                            "GROUP BY 1 ORDER BY 1").fetchall(),
        }
        if stream == "visits":
            found["url"] = con.sql("SELECT url FROM factory.touch WHERE source_record_id = 'v2'").fetchall()
        con.close()
    # people: two packages with different keys, both appended
    assert found["people"]["loads"] == 2
    assert not found["people"]["staged"] & {"person", "acme__people"}
    assert found["people"]["rows"] == [("p1", 1), ("p2", 1), ("p3", 1)]
    # visits: the second page brings v2 again, so from that package on its tables merge: one row per
    # key, the later version
    assert found["visits"]["loads"] == 3
    assert {"touch", "acme__visits"} <= found["visits"]["staged"]
    assert found["visits"]["rows"] == [("v1", 1), ("v2", 1), ("v3", 1), ("v4", 1)]
    assert found["url"] == [("/docs/updated",)]


def test_run_without_credentials_names_the_setting(acme_site: Path, tmp_path: Path) -> None:
    done = cli("run", "acme", "--no-sandbox", "--db", str(tmp_path / "a.duckdb"), cwd=tmp_path,
               env={"PYTHONPATH": str(acme_site)})
    status = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 1
    assert status["status"] == "failed"
    assert "SOURCES__ACME__API_KEY" in status["errors"][0]


def test_a_second_run_on_the_same_destination_refuses_to_start(acme_site: Path, tmp_path: Path) -> None:
    from pipelines.destination import Target, run_lock

    db = tmp_path / "locked.duckdb"
    with run_lock(Target(db_path=db)):  # as a run still loading would hold it
        done = cli("run", "acme", "--db", str(db), cwd=tmp_path,
                   env={"PYTHONPATH": str(acme_site), "SOURCES__ACME__API_KEY": "k-1"})
    assert done.returncode == 2
    assert "another factoryline run" in done.stderr and f"pid {os.getpid()}" in done.stderr
    assert not db.exists()  # it did nothing
    after = cli("run", "acme", "--db", str(db), cwd=tmp_path,
                env={"PYTHONPATH": str(acme_site), "SOURCES__ACME__API_KEY": "k-1"})
    assert after.returncode == 0, after.stderr  # the lock went with its holder
