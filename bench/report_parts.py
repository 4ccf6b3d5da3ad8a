"""What issue 17 adds to the report's time, over a data set bench/report.py kept (a benchmark).

Alternately, in one process: the figures alone (figures.compute_report), the comparison with
the period before alone, the whole report as the CLI and endpoint build it (run.full_report:
figures, comparison, labels, definitions), and its JSON and Dutch HTML rendering. Ratios on one
machine under one load, not absolute targets: those are bench/report.py's.

    python bench/report_parts.py sqlite:///path/to/bench.db
    python bench/report_parts.py postgresql://postgres@127.0.0.1:5432/test --schema cds_bench_x
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import PERIOD, scoped_url  # noqa: E402

from cds_service.audit.reports.comparison import compare_periods  # noqa: E402
from cds_service.audit.reports.figures import compute_report, report_connection  # noqa: E402
from cds_service.audit.reports.render import render  # noqa: E402
from cds_service.audit.reports.run import costs_of, full_report  # noqa: E402
from cds_service.audit.store import AuditStore  # noqa: E402
from cds_service.config import Settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--schema", help="a PostgreSQL schema kept by bench/report.py")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    url = scoped_url(args.url, args.schema) if args.schema else args.url
    store = AuditStore.from_url(url)
    settings = Settings(env="test")
    try:
        for _ in range(args.repeats):
            started = time.perf_counter()
            figures = compute_report(store.engine, PERIOD, costs_of(settings), by="clinician")
            alone = time.perf_counter() - started
            started = time.perf_counter()
            with report_connection(store.engine) as connection:
                compare_periods(connection, PERIOD, figures)
            comparison = time.perf_counter() - started
            started = time.perf_counter()
            report = full_report(store.engine, settings, PERIOD, by="clinician", language="nl")
            whole = time.perf_counter() - started
            started = time.perf_counter()
            render(report, "json", "nl")
            as_json = time.perf_counter() - started
            started = time.perf_counter()
            render(report, "html", "nl")
            as_html = time.perf_counter() - started
            print(
                f"figures {alone:.2f} s | comparison {comparison:.2f} s | whole report "
                f"{whole:.2f} s | json {as_json:.2f} s | html (nl) {as_html:.2f} s",
                flush=True,
            )
    finally:
        store.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
