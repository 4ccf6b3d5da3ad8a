"""Benchmark of the record corpus over real HTTP (a benchmark, not a test).

Starts the service under gunicorn (cds_service/serve.sh, one worker, SQLite) and a loopback FHIR
server holding every record of tests/records (issue 10), then posts each record's order-sign
call once cold (the first call on that record: nothing validated yet) and `--warm` times more.
Reports the decision distribution over the corpus, and the median / p95 latency, cold and warm,
of all records and of the largest ones. Writes bench/results/records.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.records.corpus import SERVICE_PATH, records, request_for, serve  # noqa: E402
from tests.support.fhir_stub import FhirStub  # noqa: E402
from tests.support.live import entrypoint_server  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "records.json"
DECISIONS = "org.lumbar-imaging-cds.decisions"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values), 1),
        "p95_ms": round(_percentile(values, 0.95), 1),
        "max_ms": round(max(values), 1),
    }


def main() -> None:
    """Run the benchmark and print its summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=5, help="warm calls per record (default 5)")
    parser.add_argument("--largest", type=int, default=10, help="how many largest records")
    args = parser.parse_args()

    corpus = records()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, FhirStub() as stub:
        for record in corpus:
            serve(stub, record)
        log = Path(tmp) / "stderr.log"
        with entrypoint_server({"CDS_LOG_LEVEL": "WARNING"}, stderr_path=log) as base:
            session = requests.Session()
            for record in corpus:
                times = []
                decision = None
                for _ in range(1 + args.warm):
                    body = request_for(record, stub.base_url)
                    started = time.perf_counter()
                    response = session.post(f"{base}{SERVICE_PATH}", json=body, timeout=30)
                    times.append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
                    decision = response.json()["extension"][DECISIONS][0]["decision"]
                rows.append(
                    {
                        "id": record.id,
                        "resources": len(record.resources),
                        "transport": record.case.get("transport"),
                        "decision": decision,
                        "expected": record.expect["decision"],
                        "cold_ms": round(times[0], 2),
                        "warm_ms": round(statistics.median(times[1:]), 2) if args.warm else None,
                    }
                )
    largest = sorted(rows, key=lambda r: r["resources"], reverse=True)[: args.largest]
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.python_version()}",
        "records": len(rows),
        "by_shape": dict(Counter(r["id"].split("/")[0] for r in rows)),
        "decisions": dict(Counter(r["decision"] for r in rows).most_common()),
        "decisions_by_shape": {
            shape: dict(Counter(r["decision"] for r in rows if r["id"].startswith(shape)))
            for shape in ("nl-gp", "us-ehr")
        },
        "as_expected": sum(r["decision"] == r["expected"] for r in rows),
        "all": {
            "cold": _summary([r["cold_ms"] for r in rows]),
            "warm": _summary([r["warm_ms"] for r in rows if r["warm_ms"] is not None]),
        },
        "largest": {
            "sizes": [r["resources"] for r in largest],
            "cold": _summary([r["cold_ms"] for r in largest]),
            "warm": _summary([r["warm_ms"] for r in largest if r["warm_ms"] is not None]),
        },
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"records: {result['records']} {result['by_shape']}, as expected {result['as_expected']}")
    print(f"decisions: {result['decisions']}")
    for shape, counts in result["decisions_by_shape"].items():
        print(f"  {shape}: {counts}")
    for name in ("all", "largest"):
        part = result[name]
        print(f"{name}: cold {part['cold']}  warm {part['warm']}")
    print(f"largest sizes: {result['largest']['sizes']}")
    print(f"written: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
