"""The field-mapping report, checked the way its readers see it: rendered in headless Chromium.

Runs go through the CLI into a DuckDB file, with two third-party plugins: ``acme`` (tests/plugins)
and ``drifty``, a plugin this module writes into tmp_path and installs through an entry point
(a dist-info folder on PYTHONPATH). drifty's records change between two runs (``DRIFTY_PHASE``),
which is the drift the report must show.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from core.mapping import load_mapping
from pipelines.report import mask_email, mask_value, scrub_text
from tests.conftest import IN_CI, PG_DSN, ROOT, cli

#: a raw email address, as a reader (or a regulator) would recognise one
RAW_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
PCT = re.compile(r"^\d{1,3}\.\d%$")

DRIFTY = '''
"""drifty: a connector whose records change shape between runs (DRIFTY_PHASE=1 or 2)."""
import os
from pathlib import Path

from core.connector import ConnectorSpec, Page, StreamSpec
from core.hookspecs import hookimpl


def records():
    phase = os.environ.get("DRIFTY_PHASE", "1")
    recs = [
        {"id": "d1", "email": "Zoe.Quinn@example.org", "first": "Zoe", "phone": "+1 555 010 2233",
         "created": "2026-01-01T00:00:00Z", "score": 12, "backup_email": "zq@mail.example.net",
         "handle": "@zoeq", "old_field": "legacy"},
        {"id": "d2", "email": "bob@@example.com", "first": "Bob", "phone": "+44 20 7946 0958",
         "created": "2026-01-02T00:00:00Z", "score": 7, "backup_email": "bob.b@example.co.uk",
         "handle": "@bobb", "old_field": "legacy"},
        {"id": "d3", "email": "cy@example.net", "first": "Cy", "phone": None,
         "created": "yesterday", "score": 3, "backup_email": None, "handle": None, "old_field": None},
    ]
    if phase == "2":
        for r in recs:
            r.pop("old_field")
            r["score"] = str(r["score"])
            r["loyalty_tier"] = "silver"
    return recs


class Drifty:
    def __init__(self, config):
        self.config = config

    def extract(self, stream, state, ctx):
        yield Page(records=records(), state={"seen": True})

    def close(self):
        pass


@hookimpl
def register_connectors(register):
    register(ConnectorSpec(
        name="drifty", system="drifty",
        streams=(StreamSpec(name="members", primary_key="id", mappings=("members.yaml",)),),
        factory=Drifty, mappings_dir=Path(__file__).parent / "mappings"))
'''

DRIFTY_MAPPING = """\
entity: person
record_id: id
fields:
  email: {path: email, transform: email}
  first_name: first
  phone: phone
  lead_source: source
  created_at: {path: created, transform: timestamp}
"""


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------


def _chromium() -> str:
    names = [os.environ["CHROMIUM"]] if os.environ.get("CHROMIUM") else ["chromium", "chromium-browser", "google-chrome"]
    found = next((p for p in map(shutil.which, names) if p), None)
    if not found:
        message = "headless Chromium is needed to render the report: apt-get install -y chromium"
        if IN_CI:
            pytest.fail(f"{message} (CI is set, so this is an error, not a skip)")
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def chromium() -> str:
    return _chromium()


def render(chrome: str, url: str, tmp: Path) -> str:
    """The DOM after the page's JS ran, as headless Chromium sees it."""
    profile = tmp / f"profile-{abs(hash(url))}"
    done = subprocess.run(
        [chrome, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<body" in done.stdout, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def drifty_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The drifty plugin as an installed distribution: a package plus a dist-info with its entry point."""
    site = tmp_path_factory.mktemp("drifty-site")
    pkg = site / "drifty_factoryline"
    (pkg / "mappings").mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(DRIFTY), encoding="utf-8")
    (pkg / "mappings" / "members.yaml").write_text(DRIFTY_MAPPING, encoding="utf-8")
    info = site / "drifty_factoryline-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: drifty-factoryline\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[factoryline]\ndrifty = drifty_factoryline\n", encoding="utf-8")
    return site


@pytest.fixture(scope="module")
def world(acme_site: Path, drifty_site: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two runs of acme + drifty (drifty changes shape in between), then the report."""
    tmp = tmp_path_factory.mktemp("report")
    db = tmp / "f.duckdb"
    env = {"PYTHONPATH": os.pathsep.join([str(acme_site), str(drifty_site)]), "FACTORYLINE_PLUGINS": "acme,drifty",
           "SOURCES__ACME__API_KEY": "k-123456"}
    for phase in ("1", "2"):
        done = cli("run", "acme", "drifty", "--no-sandbox", "--db", str(db), cwd=tmp,
                   env={**env, "DRIFTY_PHASE": phase})
        assert done.returncode == 0, done.stdout + done.stderr
    out = tmp / "report"
    made = cli("report", "mapping", "--db", str(db), "--out", str(out), cwd=tmp, env=dict(env))
    assert made.returncode == 0, made.stdout + made.stderr
    for name in ("report.html", "report.json", "report.md"):
        assert name in made.stdout and (out / name).is_file()
    return {"tmp": tmp, "db": db, "out": out, "acme": acme_site, "drifty": drifty_site}


@pytest.fixture(scope="module")
def dom(chromium: str, world: dict[str, Path]) -> str:
    return render(chromium, (world["out"] / "report.html").as_uri(), world["tmp"])


class _Tables(HTMLParser):
    """Every ``<table id=...>``: its header labels and, per body row, the cell texts and the row's style."""

    def __init__(self) -> None:
        super().__init__()
        self.heads: dict[str, list[str]] = {}
        self.rows: dict[str, list[tuple[list[str], str]]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._style = ""
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.heads[self._table], self.rows[self._table] = [], []
        elif tag == "tr" and self._table:
            self._row, self._style = [], a.get("style") or ""
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "li" and self._cell:
            self._cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            if not self.heads[self._table]:
                self.heads[self._table] = self._row
            else:
                self.rows[self._table].append((self._row, self._style))
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _parse(html: str) -> _Tables:
    p = _Tables()
    p.feed(html)
    return p


def tables(html: str) -> dict[str, list[dict[str, str]]]:
    """Rows of every table as {header label: cell text}."""
    p = _parse(html)
    return {t: [dict(zip(p.heads[t], r, strict=True)) for r, _s in rows] for t, rows in p.rows.items()}


def hidden_rows(html: str, table: str) -> list[dict[str, str]]:
    p = _parse(html)
    return [dict(zip(p.heads[table], r, strict=True)) for r, style in p.rows[table] if "display: none" in style]


# ---------------------------------------------------------------------------------------------
# the rendered page
# ---------------------------------------------------------------------------------------------


def test_every_mapped_field_of_every_stream_appears_with_a_fill_rate(dom: str, world: dict[str, Path]) -> None:
    assert 'data-js="ready"' in dom  # the page's script ran in the browser
    seen = {(r["Stream"], r["Canonical field"]): r for r in tables(dom)["t-coverage"]}
    mappings = {"acme/people": world["acme"] / "acme_factoryline" / "mappings" / "people.yaml",
                "drifty/members": world["drifty"] / "drifty_factoryline" / "mappings" / "members.yaml"}
    for stream, path in mappings.items():
        spec = load_mapping(path)
        expected = [f for f, *_ in spec.fields] + (["source_updated_at"] if "updated_at" in spec.record_fields else [])
        for field in expected:
            row = seen.get((stream, field))
            assert row is not None, f"{stream} {field} missing from the coverage table"
            assert PCT.match(row["Fill rate"]), f"{stream} {field}: no fill rate, got {row['Fill rate']!r}"
    # figures that must be right: acme people p3 has a bad timestamp, drifty maps a field nobody sends
    assert seen[("acme/people", "source_updated_at")]["Fill rate"] == "66.7%"
    assert seen[("drifty/members", "lead_source")]["Fill rate"] == "0.0%"
    email = seen[("drifty/members", "email")]
    assert (email["Fill rate"], email["Conformance"], email["Rejected"]) == ("66.7%", "66.7%", "1")
    assert f"Showing {len(seen)} of {len(seen)} rows" in dom  # the page's JS counted the rows


def test_no_raw_email_address_anywhere(dom: str, world: dict[str, Path]) -> None:
    for name, text in (("rendered page", dom), ("report.json", (world["out"] / "report.json").read_text()),
                       ("report.md", (world["out"] / "report.md").read_text()),
                       ("report.html", (world["out"] / "report.html").read_text())):
        found = RAW_EMAIL.findall(text)
        assert not found, f"raw email address in {name}: {found[:3]}"
    samples = {(r["Stream"], r["Canonical field"]): r["Samples (masked)"] for r in tables(dom)["t-coverage"]}
    assert "z***@e***.org" in samples[("drifty/members", "email")]  # masked, still recognisable as an email
    names = samples[("drifty/members", "first_name")]
    assert "Z***" in names and "Zoe" not in names
    phones = samples[("drifty/members", "phone")]
    assert "33" in phones and "555" not in phones  # last two digits only
    unmapped = {r["Vendor field"]: r["Samples (masked)"] for r in tables(dom)["t-unmapped"]
                if r["Stream"] == "drifty/members"}
    assert "z***@m***.net" in unmapped["backup_email"]  # unmapped: masked by name and value pattern
    assert unmapped["handle"] and "zoeq" not in unmapped["handle"]


def test_drift_between_two_runs_shows_up(dom: str) -> None:
    drift = {(r["Stream"], r["Vendor field"]): r for r in tables(dom)["t-drift"]}
    assert drift[("drifty/members", "loyalty_tier")]["Change"] == "added"
    removed = drift[("drifty/members", "old_field")]
    assert (removed["Change"], removed["Certainty"]) == ("removed", "clear")
    score = drift[("drifty/members", "score")]
    assert (score["Change"], score["Type before"], score["Type after"]) == ("type changed", "number", "string")
    assert not [k for k in drift if k[0] == "acme/people"]  # acme sent the same fields twice: no drift
    compared = {r["Stream"]: r for r in tables(dom)["t-drift_compared"]}
    assert compared["drifty/members"]["Changes"] == "3" and compared["acme/people"]["Note"] == "no change"


def test_rejects_appear_with_their_reasons_and_how_to_trace_them(dom: str, world: dict[str, Path]) -> None:
    reasons = {(r["Stream"], r["Field"], r["Reason"]): r for r in tables(dom)["t-rejects"]}
    bad_email = reasons[("drifty/members", "email", "not an email address: <value>")]
    assert (bad_email["Kind"], bad_email["Count"]) == ("field", "1")
    how = bad_email["Examples (masked) and how to trace them"]
    assert "b***@e***.com" in how and f"factoryline trace person d2 --db {world['db']}" in how
    assert ("drifty/members", "created_at", "not an ISO 8601 timestamp or epoch ms: <value>") in reasons
    no_id = reasons[("acme/people", "record_id", "record has no id at 'pid'")]
    assert no_id["Kind"] == "record" and "rejects id=" in no_id["Examples (masked) and how to trace them"]


def test_gaps_unmapped_candidates_definitions_and_tables(dom: str) -> None:
    t = tables(dom)
    unfilled = {(r["Entity"], r["Canonical field"]): r["Status"] for r in t["t-unfilled"]}
    assert unfilled[("person", "last_name")] == "not mapped by any stream"
    assert unfilled[("person", "lead_source")] == "mapped, but empty in every loaded row"
    unmapped = [r["Vendor field"] for r in t["t-unmapped"] if r["Stream"] == "drifty/members"]
    assert unmapped[:2] == ["loyalty_tier", "score"]  # ranked by fill rate (100%), then name
    assert "old_field" not in unmapped and "email" not in unmapped and "id" not in unmapped
    has_definitions = (ROOT / "mappings" / "definitions.yaml").exists() or (ROOT / "mappings" / "definitions").is_dir()
    if not has_definitions:
        assert "No definitions yet." in dom
    loaded = {r["Table"]: r for r in t["t-tables"]}
    for table in ("person", "rejects", "acme__people", "drifty__members", "runs", "field_profiles"):
        row = loaded.get(table)
        assert row and row["Last loaded (UTC)"] and re.match(r"\d{8}T\d{6}Z-", row["By run"]), row


def test_filter_box_and_query_parameter_filter_rows(world: dict[str, Path], chromium: str) -> None:
    filtered = render(chromium, (world["out"] / "report.html").as_uri() + "?q=first_name", world["tmp"])
    hidden = hidden_rows(filtered, "t-coverage")
    visible = [r for r in tables(filtered)["t-coverage"] if r not in hidden]
    assert hidden and visible and all(r["Canonical field"] == "first_name" for r in visible)


def test_clicking_a_header_sorts_the_table(world: dict[str, Path], chromium: str) -> None:
    page = (world["out"] / "report.html").read_text()
    click = ("<script>var th=[].find.call(document.querySelectorAll('#t-coverage th'),"
             "function(h){return h.textContent==='Fill rate';});th.click();%s</script></body>")
    values: dict[str, list[float]] = {}
    for name, extra in (("ascending", ""), ("descending", "th.click();")):
        clicked = world["tmp"] / f"sorted-{name}.html"
        clicked.write_text(page.replace("</body>", click % extra), encoding="utf-8")
        rows = tables(render(chromium, clicked.as_uri(), world["tmp"]))["t-coverage"]
        values[name] = [float(r["Fill rate"].rstrip("%")) for r in rows]
    assert values["ascending"] == sorted(values["ascending"]) and len(set(values["ascending"])) > 1
    assert values["descending"] == sorted(values["ascending"], reverse=True)


# ---------------------------------------------------------------------------------------------
# the other outputs
# ---------------------------------------------------------------------------------------------


def test_json_markdown_and_bi_tables_carry_the_same_figures(world: dict[str, Path]) -> None:
    data = json.loads((world["out"] / "report.json").read_text())
    md = (world["out"] / "report.md").read_text()
    cov = next(c for c in data["coverage"] if c["connector"] == "drifty" and c["canonical_field"] == "email")
    assert (cov["filled"], cov["rows"], cov["field_rejects"]) == (2, 3, 1)
    assert "| drifty/members | person | email | email | email | 66.7% | 2 / 3 | 66.7% | 1 |" in md
    con = duckdb.connect(str(world["db"]), read_only=True)
    try:
        q = "SELECT fill_rate, conformance FROM factory.report_field_coverage WHERE connector = 'drifty' " \
            "AND canonical_field = 'email'"
        assert con.sql(q).fetchall() == [(cov["fill_rate"], cov["conformance"])]
        drift = con.sql("SELECT vendor_field, change FROM factory.report_drift ORDER BY 1").fetchall()
        assert drift == [("loyalty_tier", "added"), ("old_field", "removed"), ("score", "type changed")]
        assert con.sql("SELECT count(*) FROM factory.report_rejects").fetchall()[0] == (len(data["rejects"]),)
        assert con.sql("SELECT count(*) FROM factory.report_unmapped_fields").fetchall()[0] == (len(data["unmapped"]),)
        texts = con.sql("SELECT string_agg(samples, ' ') FROM factory.report_field_coverage").fetchall()[0]
        assert texts and texts[0] and not RAW_EMAIL.search(texts[0])
    finally:
        con.close()


def test_screenshot_command_writes_a_png(world: dict[str, Path], chromium: str) -> None:
    png = world["tmp"] / "shot.png"
    done = subprocess.run([str(ROOT / "bench" / "screenshot_report.sh"), str(world["out"]), str(png), "1440x1600"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "CHROMIUM": chromium})
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


# ---------------------------------------------------------------------------------------------
# the built-in HubSpot connector against its sandbox
# ---------------------------------------------------------------------------------------------


def test_hubspot_sandbox_report(tmp_path: Path, chromium: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.destination import Target
    from pipelines.report import write_mapping_report
    from pipelines.run import run
    from sandbox.api import start_sandbox

    monkeypatch.setenv("FACTORYLINE_PLUGINS", "hubspot")
    target = Target(db_path=tmp_path / "hs.duckdb")
    with start_sandbox(["hubspot"], size=150, state_dir=tmp_path / "sandbox") as sb:
        settings = sb.emulators["hubspot"].settings
        assert run(["hubspot"], target=target, overrides={"hubspot": settings}).status == "success"
        sb.advance()
        assert run(["hubspot"], target=target, overrides={"hubspot": settings}).status == "success"
    paths = write_mapping_report(target, tmp_path / "report")
    dom = render(chromium, paths[0].as_uri(), tmp_path)
    t = tables(dom)
    seen = {(r["Stream"], r["Canonical field"].removesuffix(" required")): r for r in t["t-coverage"]}
    for stream in ("contacts", "companies", "deals"):
        spec = load_mapping(ROOT / "mappings" / "hubspot" / f"{stream}.yaml")
        for field, *_ in spec.fields:
            row = seen.get((f"hubspot/{stream}", field))
            assert row is not None and PCT.match(row["Fill rate"]), (stream, field, row)
    assert float(seen[("hubspot/contacts", "email")]["Fill rate"].rstrip("%")) > 50
    assert "@" in seen[("hubspot/contacts", "email")]["Samples (masked)"]  # samples shown, masked
    for name, text in (("rendered page", dom), *((p.name, p.read_text()) for p in paths)):
        assert not RAW_EMAIL.findall(text), f"raw email address in {name}"
    assert {r["Stream"] for r in t["t-unmapped"]} >= {"hubspot/contacts"}
    from connectors.hubspot import connector_spec

    # both runs read every stream: each one's fields were compared for drift
    assert {r["Stream"] for r in t["t-drift_compared"]} == {f"hubspot/{s.name}" for s in connector_spec().streams}


# ---------------------------------------------------------------------------------------------
# PostgreSQL: the same SQL, another dialect
# ---------------------------------------------------------------------------------------------

@pytest.mark.postgres
def test_report_from_postgres(drifty_site: Path, tmp_path: Path, pg_dataset: str) -> None:
    import psycopg2

    env = {"PYTHONPATH": str(drifty_site), "FACTORYLINE_PLUGINS": "drifty", "DESTINATION__POSTGRES__CREDENTIALS": PG_DSN}
    pg = ("--destination", "postgres", "--dataset", pg_dataset)
    for phase in ("1", "2"):
        done = cli("run", "drifty", *pg, cwd=tmp_path, env={**env, "DRIFTY_PHASE": phase})
        assert done.returncode == 0, done.stdout + done.stderr
    made = cli("report", "mapping", *pg, "--out", str(tmp_path / "report"), cwd=tmp_path, env=dict(env))
    assert made.returncode == 0, made.stdout + made.stderr
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    email = next(c for c in data["coverage"] if c["canonical_field"] == "email")
    assert (email["filled"], email["rows"], email["field_rejects"]) == (2, 3, 1)
    assert {(d["vendor_field"], d["change"]) for d in data["drift"]} == {
        ("loyalty_tier", "added"), ("old_field", "removed"), ("score", "type changed")}
    backup = next(u for u in data["unmapped"] if u["vendor_field"] == "backup_email")
    assert backup["samples"] and all("***" in v for v in backup["samples"])  # read from JSON payloads in SQL
    assert not RAW_EMAIL.search((tmp_path / "report" / "report.json").read_text())
    con = psycopg2.connect(PG_DSN)
    with con.cursor() as cur:
        cur.execute(f'SELECT vendor_field, change FROM "{pg_dataset}".report_drift ORDER BY 1')
        assert cur.fetchall() == [("loyalty_tier", "added"), ("old_field", "removed"), ("score", "type changed")]
    con.close()


# ---------------------------------------------------------------------------------------------
# masking
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "kwargs", "expected"), [
    ("ada.lovelace@example.co.uk", {"field": "email"}, "a***@e***.uk"),
    ("Ada Lovelace", {"field": "first_name"}, "A*** L***"),
    ("+1 (555) 010-2233", {"field": "phone"}, "+* (***) ***-**33"),
    ("@ada", {"field": "social_handle"}, "@a***"),
    ("grace@navy.mil", {"path": "properties.hs_additional_emails"}, "g***@n***.mil"),
    ("Grace", {"path": "properties.firstname"}, "G***"),
    ("0171 555 0199", {}, "**** *** **99"),
    ("7281000.00", {}, "7281000.00"),
    ("2026-01-02", {}, "2026-01-02"),
    ("12345678901", {"field": "owner_id"}, "12345678901"),
    ("ann@@example.com", {}, "a***@e***.com"),
    ("gold", {"path": "tier"}, "gold"),
    ("write to ops@example.com today", {"path": "notes"}, "write to o***@e***.com today"),
])
def test_mask_value(value: str, kwargs: dict[str, str], expected: str) -> None:
    assert mask_value(value, **kwargs) == expected


def test_a_missing_database_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    from core.errors import FactorylineError
    from pipelines.destination import Target
    from pipelines.report import write_mapping_report

    with pytest.raises(FactorylineError, match=r"no database at .*run `factoryline run`"):
        write_mapping_report(Target(db_path=tmp_path / "none.duckdb"), tmp_path / "out")
    assert not (tmp_path / "none.duckdb").exists() and not (tmp_path / "out").exists()


def test_scrub_text_leaves_no_email() -> None:
    text = "from a.b+c@x-y.example.com, cc: Z@Q.IO and bob@@example.com"
    assert not RAW_EMAIL.search(scrub_text(text))
    assert mask_email("x@localhost") == "x***@l***"
