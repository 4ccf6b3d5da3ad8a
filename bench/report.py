"""Benchmark of the avoided-scans report over N audit rows (a benchmark, not a test).

Fills a SQLite file and, when a PostgreSQL URL is given (--postgres, default
CDS_TEST_DATABASE_URL), a throw-away schema with N synthetic evaluations (default 1,000,000:
12 months, 250,000 patients, 2,000 clinicians, realistic decision and feedback mixes), then
times the whole report (all queries + JSON rendering) a few times. Targets: ≤ 5 s on SQLite,
≤ 3 s on PostgreSQL. The first three months are a silent pilot (mode shadow, no feedback).

The missed-alarm watch (issue 16) is timed on its own as well: its query over the year, and
the write path's check (`_follows_reassurance`, run for each urgent row stored) for 1,000
urgent rows; so are the HTML page in Dutch and one clinician's mirror report (issue 17).
Writes bench/results/report.json and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from cds_service.audit.models import evaluation  # noqa: E402
from cds_service.audit.reports.figures import (  # noqa: E402
    Period,
    missed_alarms,
    report_connection,
)
from cds_service.audit.reports.run import build_mirror, build_report  # noqa: E402
from cds_service.audit.store import AuditStore, _follows_reassurance  # noqa: E402
from cds_service.config import Settings  # noqa: E402

COLUMNS = [c.name for c in evaluation.columns if c.name != "id"]
START = datetime(2025, 1, 1, tzinfo=UTC)
PERIOD = Period(date(2025, 1, 1), date(2025, 12, 31))
RESPONSES = ["cancelled"] * 25 + ["replaced"] * 15 + ["overridden"] * 30 + ["accepted"] * 5
RESPONSES += [None] * 25
REASONS = ["prefers-alternative", "red-flag-not-recorded", "expert-contradicts", "other"]
PILOT_END = datetime(2025, 4, 1, tzinfo=UTC)  # January to March: the silent pilot
URGENT_REASONS = ["red-flag:cauda-equina", "red-flag:fever-with-risk-factor", "neuro-deficit:mrc-2"]


def synthetic_rows(count: int, seed: int = 5):
    """Rows as tuples in COLUMNS order."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    patients = max(1, count // 4)
    for _ in range(count):
        when = START + timedelta(seconds=rng.randrange(365 * 86400))
        decision = rng.choices(
            ["urgent", "indicated", "not-indicated", "insufficient-data"], [3, 35, 45, 17]
        )[0]
        response = rng.choice(RESPONSES) if decision == "not-indicated" else None
        if decision == "urgent" and rng.random() < 0.2:
            response = "accepted"
        shadow = when < PILOT_END
        if shadow:
            response = None  # no card shown, so no feedback
        reasons = rng.choice(URGENT_REASONS) if decision == "urgent" else ""
        reason = rng.choice(REASONS) if response == "overridden" else None
        hook = rng.choice(["order-select", "order-sign"])
        modality = rng.choices(["mri", "xray", "ct"], [55, 35, 10])[0]
        yield (
            when.isoformat(sep=" "),
            int(when.timestamp() * 1000),
            when.strftime("%Y-%m"),
            f"lumbar-imaging-{hook}",
            hook,
            str(uuid.UUID(int=rng.getrandbits(128))),
            rng.choice(["north", "south", "east"]),
            f"{rng.randrange(patients):064x}",
            f"{rng.randrange(2000):064x}",
            None,
            f"{rng.getrandbits(128):032x}",
            "http://www.ama-assn.org/go/cpt",
            {"mri": "72148", "xray": "72100", "ct": "72131"}[modality],
            modality,
            decision,
            reasons.partition(":")[0],
            "bench",
            str(uuid.UUID(int=rng.getrandbits(128))),
            str(uuid.UUID(int=rng.getrandbits(128))),
            rng.randrange(5, 200),
            response,
            "https://lumbar-imaging-cds.local/CodeSystem/override-reason" if reason else None,
            reason,
            (when + timedelta(minutes=1)).isoformat(sep=" ") if response else None,
            "shadow" if shadow else "live",
            reasons,
        )


def fill_sqlite(path: Path, count: int) -> str:
    url = f"sqlite:///{path}"
    store = AuditStore.from_url(url)
    store.upgrade()
    store.engine.dispose()
    connection = sqlite3.connect(path)
    names = ", ".join(COLUMNS)
    marks = ", ".join("?" * len(COLUMNS))
    connection.executemany(
        f"INSERT INTO audit_evaluation ({names}) VALUES ({marks})",  # noqa: S608 - fixed names
        synthetic_rows(count),
    )
    connection.commit()
    connection.execute("ANALYZE")
    connection.close()
    return url


def fill_postgres(base_url: str, count: int) -> tuple[str, str]:
    import psycopg

    schema = f"cds_bench_{uuid.uuid4().hex[:8]}"
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    scoped = scoped_url(base_url, schema)
    store = AuditStore.from_url(scoped)
    store.upgrade()
    store.engine.dispose()
    with psycopg.connect(plain, options=f"-csearch_path={schema}") as connection:
        names = ", ".join(COLUMNS)
        with connection.cursor().copy(f"COPY audit_evaluation ({names}) FROM STDIN") as copy:
            for row in synthetic_rows(count):
                copy.write_row(row)
    # What autovacuum would do soon after a bulk load: statistics and the visibility map
    # (without which index-only scans still visit the table).
    with psycopg.connect(plain, options=f"-csearch_path={schema}", autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE audit_evaluation")
    return scoped, schema


def scoped_url(base_url: str, schema: str, options: str = "") -> str:
    """The URL of `schema` on the server of `base_url` (as its search_path)."""
    url = make_url(base_url).set(drivername="postgresql+psycopg")
    scoped = url.update_query_dict({"options": f"-csearch_path={schema} {options}".strip()})
    return scoped.render_as_string(hide_password=False)


def drop_schema(base_url: str, schema: str) -> None:
    store = AuditStore.from_url(base_url)
    with store.engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    store.engine.dispose()


def time_report(url: str, repeats: int) -> dict:
    store = AuditStore.from_url(url)
    settings = Settings(env="test")
    timings = []
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            report, _ = build_report(store.engine, settings, PERIOD, by="clinician", fmt="json")
            timings.append(time.perf_counter() - started)
    finally:
        store.engine.dispose()
    watch = time_watch(url, repeats)
    pages = time_pages(url, repeats)
    return {
        "seconds_best": round(min(timings), 3),
        "seconds_median": round(statistics.median(timings), 3),
        "evaluations": report["evaluations"]["total"],
        "net_avoided": report["notIndicated"]["netAvoided"],
        "clinicians": len(report["clinicians"]),
        "shadow_evaluations": report["comparison"]["shadow"]["evaluations"],
        "live_evaluations": report["comparison"]["live"]["evaluations"],
        "missed_alarms": report["missedAlarms"]["total"],
        "missed_alarm_patients": report["missedAlarms"]["patients"],
        **watch,
        **pages,
    }


def time_pages(url: str, repeats: int) -> dict:
    """The whole report as the Dutch HTML page, and one clinician's mirror report (HTML)."""
    store = AuditStore.from_url(url)
    settings = Settings(env="test")
    html, mirror = [], []
    clinician = f"{7:064x}"  # one of synthetic_rows' 2,000 clinicians
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            build_report(store.engine, settings, PERIOD, by=None, fmt="html", language="nl")
            html.append(time.perf_counter() - started)
            started = time.perf_counter()
            report, _ = build_mirror(
                store.engine, settings, PERIOD, clinician, fmt="html", language="nl"
            )
            mirror.append(time.perf_counter() - started)
    finally:
        store.engine.dispose()
    return {
        "html_nl_seconds_best": round(min(html), 3),
        "mirror_seconds_best": round(min(mirror), 3),
        "mirror_peers": report["peers"]["count"],
    }


def time_watch(url: str, repeats: int, checks: int = 1000) -> dict:
    """The missed-alarm watch alone: its query over the year, and the write path's check."""
    store = AuditStore.from_url(url)
    timings = []
    try:
        for _ in range(repeats):
            with report_connection(store.engine) as connection:
                started = time.perf_counter()
                watch = missed_alarms(connection, PERIOD)
                timings.append(time.perf_counter() - started)
        with store.engine.connect() as connection:  # the hook path's own timeouts
            columns = ("patient", "ts", "hook_instance", "hook", "order_ref", "decision")
            names = ", ".join(columns)
            urgent = connection.execute(
                text(
                    f"SELECT {names} FROM audit_evaluation "  # noqa: S608 - fixed names
                    f"WHERE decision = 'urgent' ORDER BY consult_id LIMIT {checks}"
                )
            ).all()
            # As the store sees a new row: another hook call of the same patient and moment.
            rows = [{**dict(r._mapping), "hook_instance": f"new-{i}"} for i, r in enumerate(urgent)]
            started = time.perf_counter()
            alarms = sum(_follows_reassurance(connection, row) for row in rows)
            check_ms = (time.perf_counter() - started) * 1000 / max(1, len(rows))
    finally:
        store.engine.dispose()
    return {
        "watch_seconds_best": round(min(timings), 3),
        "watch_seconds_median": round(statistics.median(timings), 3),
        "watch_items": watch["total"],
        "write_check_ms_per_urgent_row": round(check_ms, 3),
        "write_check_alarms_of_1000": alarms,
    }


def time_rollups(url: str, rows: int, *, raw: bool, generated_s: float) -> dict:
    """The national-scale figures: full refresh, report from rollups (cold and warm), one more
    day of traffic and its incremental refresh, and (with `raw`) the raw-row report once."""
    from report_fill import add_day

    from cds_service.audit.reports.refresh import refresh

    store = AuditStore.from_url(url)
    settings = Settings(env="test")
    out: dict = {"rows": rows, "generate_seconds": round(generated_s, 1)}
    try:
        full = refresh(store.engine, full=True)
        out["refresh_full_seconds"] = full.seconds
        out["refresh_full_days"] = full.days
        out["refresh_full_patients"] = full.patients
        print(json.dumps(out), flush=True)  # so far, in case a later step is cut short

        def report(source: str) -> tuple[float, dict]:
            started = time.perf_counter()
            figures, _ = build_report(
                store.engine, settings, PERIOD, by="clinician", fmt="json", source=source
            )
            return time.perf_counter() - started, figures

        store.engine.dispose()  # cold: a new connection, nothing cached by this process
        cold, rolled = report("rollups")
        warm = min(report("rollups")[0] for _ in range(3))
        out["report_rollups_cold_seconds"] = round(cold, 3)
        out["report_rollups_warm_seconds"] = round(warm, 3)
        out["evaluations"] = rolled["evaluations"]["total"]
        out["missed_alarms"] = rolled["missedAlarms"]["total"]
        out["missed_alarms_listed"] = len(rolled["missedAlarms"]["items"])
        out["clinicians"] = len(rolled["clinicians"])
        print(json.dumps(out), flush=True)  # so far, in case a later step is cut short
        day = rows // 365
        started = time.perf_counter()
        add_day(store.engine, rows, day, int(datetime(2025, 12, 31, tzinfo=UTC).timestamp() * 1000))
        out["add_day_rows"] = day
        out["add_day_seconds"] = round(time.perf_counter() - started, 1)
        incremental = refresh(store.engine)
        out["refresh_incremental_seconds"] = incremental.seconds
        out["refresh_incremental_days"] = incremental.days
        out["refresh_incremental_patients"] = incremental.patients
        after = report("rollups")[0]
        out["report_rollups_after_day_seconds"] = round(after, 3)
        print(json.dumps(out), flush=True)  # so far, in case a later step is cut short
        if raw:
            seconds, raw_figures = report("raw")
            rolled = report("rollups")[1]
            out["report_raw_seconds"] = round(seconds, 1)
            strip = {"source"}
            out["rollups_equal_raw"] = {k: v for k, v in rolled.items() if k not in strip} == {
                k: v for k, v in raw_figures.items() if k not in strip
            }
    finally:
        store.engine.dispose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("CDS_TEST_DATABASE_URL"))
    parser.add_argument("--sqlite-file", help="keep the SQLite data set here (reused if present)")
    parser.add_argument("--keep-postgres", action="store_true", help="do not drop the schema")
    parser.add_argument(
        "--postgres-schema", help="time a schema kept by --keep-postgres instead of filling one"
    )
    parser.add_argument(
        "--rollups",
        choices=("sqlite", "postgresql"),
        help="national-scale mode: rows generated in the database (bench/report_fill.py), "
        "then refresh and report timings from the rollups (bench/results/report_rollups_*.json)",
    )
    parser.add_argument("--no-raw", action="store_true", help="rollups mode: skip the raw report")
    args = parser.parse_args()
    if args.rollups:
        return rollups_main(args)

    results: dict = {
        "rows": args.rows,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(args.sqlite_file or Path(scratch) / "bench.db")
        started = time.perf_counter()
        if not path.exists():
            fill_sqlite(path, args.rows)
        print(f"sqlite: {args.rows:,} rows ready in {time.perf_counter() - started:.1f} s")
        results["sqlite"] = time_report(f"sqlite:///{path}", args.repeats)
        print(f"sqlite: report {results['sqlite']}")
    if args.postgres:
        started = time.perf_counter()
        if args.postgres_schema:
            schema = args.postgres_schema
            url = scoped_url(args.postgres, schema)
            upgraded = AuditStore.from_url(url)
            upgraded.upgrade()  # a schema kept by an older run gets the newest migrations
            upgraded.engine.dispose()
        else:
            url, schema = fill_postgres(args.postgres, args.rows)
        print(f"postgresql: {args.rows:,} rows ready in {time.perf_counter() - started:.1f} s")
        try:
            results["postgresql"] = time_report(url, args.repeats)
            print(f"postgresql: report {results['postgresql']}")
        finally:
            if args.keep_postgres or args.postgres_schema:
                print(f"postgresql: kept schema {schema}")
            else:
                drop_schema(args.postgres, schema)
    out = ROOT / "bench" / "results" / "report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


# The fill's statements and a refresh's queries at this scale outlast the hook path's 1 s
# statement timeout (`cds-service report refresh` sets 120 s for its own).
NO_STATEMENT_TIMEOUT = "-cstatement_timeout=0"


def rollups_main(args: argparse.Namespace) -> int:
    """--rollups: fill (or reuse) one store in the database itself and time the rollups."""
    from report_fill import fill

    started = time.perf_counter()
    schema = None
    if args.rollups == "sqlite":
        path = Path(args.sqlite_file or "/tmp/cds_bench_rollups.db")  # noqa: S108 - a bench file
        url = f"sqlite:///{path}"
        fresh = not path.exists()
    elif args.postgres_schema:
        schema, fresh = args.postgres_schema, False
        url = scoped_url(args.postgres, schema, NO_STATEMENT_TIMEOUT)
    else:
        import psycopg

        schema, fresh = f"cds_bench_{uuid.uuid4().hex[:8]}", True
        plain = make_url(args.postgres).set(drivername="postgresql")
        with psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True) as c:
            c.execute(f'CREATE SCHEMA "{schema}"')
        url = scoped_url(args.postgres, schema, NO_STATEMENT_TIMEOUT)
    store = AuditStore.from_url(url)
    store.upgrade()
    if fresh:
        fill(store.engine, args.rows)
        with store.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM ANALYZE audit_evaluation" if schema else "ANALYZE")
            )
    store.engine.dispose()
    generated = time.perf_counter() - started
    print(f"{args.rollups}: {args.rows:,} rows ready in {generated:.1f} s", flush=True)
    results = time_rollups(url, args.rows, raw=not args.no_raw, generated_s=generated)
    results["database"] = args.rollups
    results["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps(results, indent=2), flush=True)
    out = ROOT / "bench" / "results" / f"report_rollups_{args.rollups}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if schema and not args.keep_postgres:
        drop_schema(args.postgres, schema)
    return 0


if __name__ == "__main__":
    sys.exit(main())
