"""Benchmark of the decision engine on the standard request fixture (a benchmark, not a test).

Measures, on examples/order-select-request.json:
  decide      decide(facts, order, policy) per order
  facts       extract_facts over the prefetched resources (warm: resources validated before;
              cold: the validated-resource cache emptied before every run)
  evaluate    the whole hook evaluation (orders, facts, decide, cards, rating), no HTTP, warm
              and cold
Writes bench/results/engine.json and prints a summary.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cds_service.cards.render import load_catalogue  # noqa: E402
from cds_service.config import Settings  # noqa: E402
from cds_service.evaluation import evaluate  # noqa: E402
from cds_service.fhir.facts import extract_facts  # noqa: E402
from cds_service.fhir.orders import draft_resources, lumbar_orders  # noqa: E402
from cds_service.fhir.prefetch import flatten  # noqa: E402
from cds_service.fhir.validated import clear as clear_validated  # noqa: E402
from cds_service.rules.decide import decide  # noqa: E402
from cds_service.rules.knowledge import load_knowledge  # noqa: E402

FIXTURE = ROOT / "examples" / "order-select-request.json"
RESULTS = ROOT / "bench" / "results" / "engine.json"


def _time(fn, repeat: int) -> dict[str, float]:
    for _ in range(min(200, repeat // 10)):  # warm caches and the allocator
        fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - started) / 1000)
    samples.sort()
    return {
        "runs": repeat,
        "median_us": round(statistics.median(samples), 2),
        "p99_us": round(samples[int(len(samples) * 0.99) - 1], 2),
        "min_us": round(samples[0], 2),
    }


def main() -> int:
    """Run the measurements and write the result file."""
    request = json.loads(FIXTURE.read_text(encoding="utf-8"))
    settings = Settings(env="test")
    knowledge = load_knowledge(settings.mappings_dir)
    catalogue = load_catalogue(settings.cards_dir)
    now = datetime.now(UTC)
    resources = flatten(request["prefetch"])
    drafts = draft_resources(request["context"]["draftOrders"])
    (_, order), *_ = lumbar_orders(drafts, knowledge)
    facts = extract_facts(resources, knowledge=knowledge, now=now)

    results = {
        "fixture": str(FIXTURE.relative_to(ROOT)),
        "resources_in_prefetch": len(resources),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "when": now.isoformat(timespec="seconds"),
        "decide": _time(lambda: decide(facts, order, knowledge.policy), 20000),
        "facts": _time(lambda: extract_facts(resources, knowledge=knowledge, now=now), 2000),
        "facts_cold": _time(
            lambda: (clear_validated(), extract_facts(resources, knowledge=knowledge, now=now)),
            2000,
        ),
        "evaluate": _time(
            lambda: evaluate(
                request, settings=settings, knowledge=knowledge, catalogue=catalogue, now=now
            ),
            2000,
        ),
        "evaluate_cold": _time(
            lambda: (
                clear_validated(),
                evaluate(
                    request, settings=settings, knowledge=knowledge, catalogue=catalogue, now=now
                ),
            ),
            2000,
        ),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"standard fixture: {results['resources_in_prefetch']} resources, 1 lumbar order")
    for name in ("decide", "facts", "facts_cold", "evaluate", "evaluate_cold"):
        r = results[name]
        print(
            f"{name:>13}: median {r['median_us']:>9.1f} µs   p99 {r['p99_us']:>9.1f} µs"
            f"   ({r['runs']} runs)"
        )
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
