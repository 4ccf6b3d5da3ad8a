"""Command line: `cds-service serve | evaluate | explain-text | textcheck | cards | db | audit |
report | label`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from cds_service.shipped import CARDS_DIR, SERVE_SCRIPT


def _serve(_: argparse.Namespace) -> int:
    # The script runs `gunicorn`: the one installed beside this Python, even when its bin/ is not
    # on PATH (a virtualenv's cds-service run by its full path).
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    os.execvp("sh", ["sh", str(SERVE_SCRIPT)])  # noqa: S606,S607 - replaces this process by design
    return 0  # pragma: no cover


def _trail_lines(result: Any, language: str) -> list[str]:
    from cds_service.cards.render import load_catalogue

    lines = [f"hook: {result.hook}   language: {language}"]
    if not result.orders:
        lines.append("no lumbar imaging order in scope: no card, no rating")
    catalogue = load_catalogue(CARDS_DIR)
    for item in result.orders:
        decision = item.decision
        order = decision.order
        lines.append("")
        lines.append(f"{order.reference}  {order.modality.value}  ({order.code_display})")
        lines.append(f"  decision: {decision.outcome.value}   policy {decision.policy_version}")
        for criterion in decision.criteria:
            reason = catalogue.reason_label(criterion.reason, criterion.id, language)
            lines.append(f"  [{criterion.status.value:>7}] {criterion.id}: {reason}")
            for ref in criterion.evidence:
                lines.append(f"            evidence {ref}")
        for advice in decision.advice:
            lines.append(f"  advice: {advice.code} ({advice.reason})")
        if decision.missing:
            lines.append(f"  missing data: {', '.join(decision.missing)}")
    facts = getattr(result, "facts", None)
    if facts is not None and facts.text_evidence:
        lines.append("")
        lines.append("how free text was read:")
        for t in facts.text_evidence:
            cue = f" by '{t.cue}'" if t.cue else ""
            lines.append(f"  {t.reference}  {t.concept}: {t.context}{cue} ('{t.words}')")
    return lines


def _evaluate(args: argparse.Namespace) -> int:
    import requests

    from cds_service.cards.render import load_catalogue
    from cds_service.config import load_settings
    from cds_service.errors import CdsError
    from cds_service.evaluation import evaluate
    from cds_service.hooks.discovery import SERVICES
    from cds_service.hooks.validation import validate_hook_request
    from cds_service.rules.knowledge import load_knowledge

    try:
        request = json.loads(Path(args.request).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        print(f"cannot read {args.request}: {exc}", file=sys.stderr)
        return 2
    settings = load_settings()
    hooks = {s.hook for s in SERVICES.values()}
    try:
        hook = request.get("hook") if isinstance(request, dict) else None
        if hook not in hooks:
            print(f"hook must be one of {sorted(hooks)}", file=sys.stderr)
            return 2
        validate_hook_request(request, hook)
        now = datetime.fromisoformat(args.now) if args.now else None
        result = evaluate(
            request,
            settings=settings,
            knowledge=load_knowledge(Path(settings.mappings_dir)),
            catalogue=load_catalogue(Path(settings.cards_dir)),
            accept_language=args.lang,
            now=now,
            session=requests.Session(),
        )
    except CdsError as exc:
        print(json.dumps(exc.to_operation_outcome(), indent=2), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.response, indent=2, ensure_ascii=False))
    else:
        print("\n".join(_trail_lines(result, result.language)))
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from cds_service.audit.store import AuditStore
    from cds_service.config import load_settings
    from cds_service.errors import ConfigError

    try:
        url = args.database_url or load_settings().database_url
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    store = AuditStore.from_url(url)
    try:
        store.upgrade()
    finally:
        store.engine.dispose()
    print("audit schema is at the newest migration")
    return 0


def _db_purge(args: argparse.Namespace) -> int:
    from cds_service.audit.retention import purge
    from cds_service.audit.store import AuditStore
    from cds_service.config import MIN_RETENTION_DAYS, load_settings
    from cds_service.errors import ConfigError

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    days = settings.audit_retention_days if args.older_than_days is None else args.older_than_days
    if days < MIN_RETENTION_DAYS:
        print(f"--older-than-days must be at least {MIN_RETENTION_DAYS}", file=sys.stderr)
        return 2
    store = AuditStore.from_url(args.database_url or settings.database_url)
    try:
        store.upgrade()
        result = purge(store.engine, days, dry_run=args.dry_run)
    except Exception as exc:  # a failed batch leaves the rows it did not reach: run it again
        print(f"purge failed ({type(exc).__name__}); run it again to go on", file=sys.stderr)
        return 1
    finally:
        store.engine.dispose()
    verb = "would delete" if result.dry_run else "deleted"
    print(
        f"{verb} {result.evaluations} evaluations recorded before "
        f"{result.cutoff.date().isoformat()} ({days} days), with {result.feedback} feedback "
        f"and {result.suggestions} suggestion rows, and {result.replay_tokens} expired jti rows"
    )
    return 0


def _audit_replay(_: argparse.Namespace) -> int:
    from cds_service.audit.service import spool_path
    from cds_service.audit.spool import Spool
    from cds_service.audit.store import AuditStore
    from cds_service.config import load_settings
    from cds_service.errors import ConfigError

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    spool = Spool(spool_path(settings))
    store = AuditStore.from_url(settings.database_url)
    try:
        store.upgrade()
        inserted = spool.replay(store)
    except Exception as exc:  # report and keep the spool: nothing is lost
        print(f"replay failed ({type(exc).__name__}); the spool is kept", file=sys.stderr)
        return 1
    finally:
        store.engine.dispose()
    print(f"{inserted} audit rows replayed from {spool.path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from datetime import date

    from cds_service.audit.reports.figures import AlarmPage, Period
    from cds_service.audit.reports.run import build_mirror, build_report, clinician_pseudonym
    from cds_service.audit.store import AuditStore
    from cds_service.config import load_settings
    from cds_service.errors import ConfigError

    if args.action == "refresh":
        return _report_refresh(args)
    try:
        settings = load_settings()
        if not (args.date_from and args.date_to):
            raise ValueError("report: --from and --to are required (YYYY-MM-DD)")
        period = Period(date.fromisoformat(args.date_from), date.fromisoformat(args.date_to))
        clinician = None
        if args.clinician_id is not None:
            if args.by is not None:
                raise ValueError("--by and --clinician-id do not go together")
            clinician = clinician_pseudonym(settings, args.clinician_id)
        alarms = AlarmPage(args.alarms_offset, args.alarms_limit)
    except (ConfigError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    language = args.lang or settings.default_language
    store = AuditStore.from_url(args.database_url or settings.database_url)
    try:
        if clinician is not None:
            _, text = build_mirror(
                store.engine, settings, period, clinician, fmt=args.format, language=language
            )
        else:
            _, text = build_report(
                store.engine,
                settings,
                period,
                by=args.by,
                fmt=args.format,
                language=language,
                progress=sys.stderr.isatty(),
                source=args.source,
                alarms=alarms,
            )
    finally:
        store.engine.dispose()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8", newline="")
    else:
        sys.stdout.write(text)
    return 0


def _label(args: argparse.Namespace) -> int:
    from cds_service.audit.reports.labels import FULL_LENGTH, label_of
    from cds_service.audit.reports.run import clinician_pseudonym
    from cds_service.audit.reports.tokens import mirror_token
    from cds_service.config import load_settings
    from cds_service.errors import ConfigError

    try:
        settings = load_settings()
        pseudonym = clinician_pseudonym(settings, args.clinician_id)
        token = mirror_token(settings.report_token, pseudonym) if args.mirror_token else None
    except (ConfigError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    print(label_of("clinician", pseudonym))
    # A report lengthens a label only where two clinicians would share it; the longer label
    # then starts with this one and with the full form.
    print(f"full form: {label_of('clinician', pseudonym, FULL_LENGTH)}", file=sys.stderr)
    if token is not None:
        print(f"mirror-report token: {token}")
    return 0


def _report_refresh(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from cds_service.audit.reports.refresh import RefreshRunning, refresh
    from cds_service.audit.store import AuditStore, DatabaseTimeouts
    from cds_service.config import load_settings

    settings = load_settings()
    # A day's or a patient batch's query may take longer than a hook call's statement; the
    # lock wait stays the hook path's, and SQLite waits for a hook call's write rather than fail.
    timeouts = DatabaseTimeouts(
        connect_seconds=settings.database_connect_timeout_seconds,
        statement_ms=120_000,
        lock_ms=settings.database_lock_timeout_ms,
        sqlite_busy_ms=5_000,
    )
    store = AuditStore.from_url(args.database_url or settings.database_url, timeouts)
    try:
        store.upgrade()
        result = refresh(store.engine, full=args.full)
    except RefreshRunning as exc:
        print(f"refresh skipped: {exc}", file=sys.stderr)
        return 0
    except SQLAlchemyError as exc:  # nothing half-done counts: the next run redoes it
        print(f"refresh failed ({type(exc).__name__}); run it again", file=sys.stderr)
        return 1
    finally:
        store.engine.dispose()
    kind = "full" if result.full else "incremental"
    print(
        f"report rollups refreshed ({kind}) up to evaluation {result.evaluation_id}: "
        f"{result.new_rows} new and {result.changed_rows} changed rows, {result.days} days, "
        f"{result.months} months, {result.patients} patients in {result.seconds:.1f} s"
    )
    return 0


def _knowledge() -> Any:
    from cds_service.config import load_settings
    from cds_service.rules.knowledge import load_knowledge

    return load_knowledge(Path(load_settings().mappings_dir))


def _explain_text(args: argparse.Namespace) -> int:
    text = " ".join(args.text) if args.text else sys.stdin.read()
    reading = _knowledge().text_reader.read(text, section=args.section)
    if not reading.findings:
        print("no finding read")
    for finding in reading.findings:
        print(finding.explain())
    if reading.truncated:
        print(f"(read up to the limit of {reading.characters} characters)")
    return 0


def _textcheck(args: argparse.Namespace) -> int:
    from cds_service.rules.textcheck import (
        CorpusError,
        as_json,
        load_corpus,
        report_lines,
        score,
    )

    knowledge = _knowledge()
    try:
        entries = load_corpus(Path(args.corpus), knowledge.concepts)
    except (OSError, CorpusError) as exc:
        print(f"corpus: {exc}", file=sys.stderr)
        return 2
    result = score(knowledge.text_reader, entries)
    if args.json:
        print(json.dumps(as_json(result), indent=2, ensure_ascii=False))
    else:
        print("\n".join(report_lines(result, errors=not args.no_errors)))
    passed = result.micro.f1 >= args.min_f1 and result.red_flags.recall >= args.min_red_flag_recall
    return 0 if passed else 1


def _safety_report(args: argparse.Namespace) -> int:
    from cds_service.safety.hazards import HazardLogError, load_hazard_log
    from cds_service.safety.report import render_html, render_text

    knowledge = _knowledge()
    try:
        log = load_hazard_log(rule_ids=frozenset(knowledge.rules))
    except (OSError, HazardLogError) as exc:
        print(f"hazard log: {exc}", file=sys.stderr)
        return 2
    watch = None
    if args.audit:
        watch = _watch_counts(args)
        if watch is None:
            return 2
    output = render_html(knowledge, log, watch) if args.html else render_text(knowledge, log, watch)
    if args.out:
        Path(args.out).write_text(output, encoding="utf-8")
    else:
        print(output)
    return 0


def _watch_counts(args: argparse.Namespace) -> dict[str, Any] | None:
    """The missed-alarm counts for the safety report (default: the last 365 days); None and a
    message on stderr when the period or the audit store is unusable."""
    from datetime import date, timedelta

    from sqlalchemy.exc import SQLAlchemyError

    from cds_service.audit.reports.figures import Period
    from cds_service.audit.store import AuditStore
    from cds_service.config import load_settings
    from cds_service.safety.report import watch_counts

    try:
        last = date.fromisoformat(args.date_to) if args.date_to else date.today()
        first = date.fromisoformat(args.date_from) if args.date_from else last - timedelta(364)
        period = Period(first, last)
    except ValueError as exc:
        print(f"period: {exc}", file=sys.stderr)
        return None
    store = AuditStore.from_url(args.database_url or load_settings().database_url)
    try:
        return watch_counts(store.engine, period)
    except SQLAlchemyError as exc:
        # A report only reads: an unreachable store, or one not yet migrated, is said so.
        print(
            f"audit store unreadable ({type(exc).__name__}); is it reachable and at the newest "
            "migration (cds-service db upgrade)?",
            file=sys.stderr,
        )
        return None
    finally:
        store.engine.dispose()


def _cards(args: argparse.Namespace) -> int:
    from cds_service.cards.catalogue import load_catalogue
    from cds_service.cards.gallery import gallery_cards, render_gallery
    from cds_service.config import load_settings
    from cds_service.rules.knowledge import load_knowledge

    settings = load_settings()
    entries = gallery_cards(
        load_catalogue(Path(settings.cards_dir)),
        load_knowledge(Path(settings.mappings_dir)),
        settings.public_base_url,
    )
    Path(args.html).write_text(render_gallery(entries), encoding="utf-8")
    print(f"{len(entries)} cards written to {args.html}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all sub-commands."""
    parser = argparse.ArgumentParser(prog="cds-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service under gunicorn (CDS_* settings)")
    serve.set_defaults(func=_serve)
    evaluate = commands.add_parser(
        "evaluate", help="print the decision trail for a hook request file, without a server"
    )
    evaluate.add_argument("request", help="a CDS Hooks order-select or order-sign request (JSON)")
    evaluate.add_argument("--lang", choices=("nl", "en"), help="card language")
    evaluate.add_argument("--json", action="store_true", help="print the CDS Hooks response")
    evaluate.add_argument("--now", help="evaluate as of this ISO 8601 moment (default: now)")
    evaluate.set_defaults(func=_evaluate)
    explain = commands.add_parser(
        "explain-text", help="print how the text reader reads a sentence (or standard input)"
    )
    explain.add_argument("text", nargs="*", help="the text; read from standard input if absent")
    explain.add_argument("--section", choices=("S", "O", "E", "P"), help="the SOEP line type")
    explain.set_defaults(func=_explain_text)
    textcheck = commands.add_parser(
        "textcheck", help="score the text reader on the labelled sentence corpus"
    )
    textcheck.add_argument(
        "--corpus",
        default="tests/text/corpus",  # of a checkout: the corpus is test data, not shipped
        help="folder of corpus YAML files (default: tests/text/corpus of the current directory)",
    )
    textcheck.add_argument("--json", action="store_true", help="print the score as JSON")
    textcheck.add_argument("--no-errors", action="store_true", help="leave out the error list")
    textcheck.add_argument("--min-f1", type=float, default=0.95, help="exit 1 below this micro F1")
    textcheck.add_argument(
        "--min-red-flag-recall", type=float, default=0.98, help="exit 1 below this recall"
    )
    textcheck.set_defaults(func=_textcheck)
    safety = commands.add_parser(
        "safety-report", help="the clinical safety case: hazards, controls, evidence, rules"
    )
    safety.add_argument("--html", action="store_true", help="the full case as an HTML page")
    safety.add_argument("--out", help="write to this file (default: standard output)")
    safety.add_argument(
        "--audit", action="store_true", help="read the missed-alarm counts from the audit store"
    )
    safety.add_argument("--from", dest="date_from", help="with --audit: first day (365 days ago)")
    safety.add_argument("--to", dest="date_to", help="with --audit: last day (default: today)")
    safety.add_argument("--database-url", help="with --audit: default CDS_DATABASE_URL")
    safety.set_defaults(func=_safety_report)
    cards = commands.add_parser(
        "cards", help="the card gallery: every card kind in both languages, as a client shows it"
    )
    cards.add_argument("--html", required=True, metavar="OUT", help="write the HTML page here")
    cards.set_defaults(func=_cards)
    database = commands.add_parser("db", help="audit database maintenance")
    db_commands = database.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="apply the audit schema migrations")
    upgrade.add_argument("--database-url", help="default: CDS_DATABASE_URL")
    upgrade.set_defaults(func=_db_upgrade)
    purge = db_commands.add_parser(
        "purge", help="delete audit rows older than the retention period (CDS_AUDIT_RETENTION_DAYS)"
    )
    purge.add_argument("--older-than-days", type=int, help="default: CDS_AUDIT_RETENTION_DAYS")
    purge.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    purge.add_argument("--database-url", help="default: CDS_DATABASE_URL")
    purge.set_defaults(func=_db_purge)
    audit = commands.add_parser("audit", help="audit store maintenance")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    replay = audit_commands.add_parser(
        "replay", help="move audit rows spooled while the database was down into the database"
    )
    replay.set_defaults(func=_audit_replay)
    report = commands.add_parser(
        "report",
        help="the avoided-scans report from the audit store; `report refresh` updates the "
        "rollups it reads (run it from cron)",
    )
    report.add_argument(
        "action", nargs="?", choices=("refresh",), help="refresh: bring the rollups up to date"
    )
    report.add_argument("--full", action="store_true", help="refresh: rebuild every rollup")
    report.add_argument("--from", dest="date_from", help="first day, YYYY-MM-DD")
    report.add_argument("--to", dest="date_to", help="last day, YYYY-MM-DD")
    report.add_argument(
        "--source",
        choices=("auto", "rollups", "raw"),
        default="auto",
        help="rollups (as of the last refresh), raw (every row: the check), auto (rollups "
        "once refreshed)",
    )
    report.add_argument("--alarms-offset", type=int, default=0, help="missed-alarm list: from")
    report.add_argument(
        "--alarms-limit", type=int, default=100, help="missed-alarm list: how many (default 100)"
    )
    report.add_argument("--by", choices=("month", "clinician", "organisation"))
    report.add_argument("--format", choices=("html", "csv", "json"), default="html")
    report.add_argument("--out", help="write to this file (default: standard output)")
    report.add_argument("--database-url", help="default: CDS_DATABASE_URL")
    report.add_argument("--lang", choices=("nl", "en"), help="default: CDS_DEFAULT_LANGUAGE")
    report.add_argument(
        "--clinician-id",
        help="the mirror report of this practitioner (context.userId, e.g. Practitioner/123)",
    )
    report.set_defaults(func=_report)
    label = commands.add_parser(
        "label", help="the report label (H-7Q3K) of a practitioner, under CDS_PSEUDONYM_KEY"
    )
    label.add_argument("--clinician-id", required=True, help="context.userId, e.g. Practitioner/1")
    label.add_argument(
        "--mirror-token",
        action="store_true",
        help="also print the practitioner's mirror-report token (needs CDS_REPORT_TOKEN)",
    )
    label.set_defaults(func=_label)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cds-service` command."""
    from cds_service.errors import ConfigError, RuleDataError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, RuleDataError) as exc:
        # a bad CDS_* variable or rule file: say which, without a traceback
        print(f"configuration: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader of our output went away (`cds-service textcheck | head`): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
