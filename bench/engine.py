"""Benchmark of the decision engine on the standard request fixture (a benchmark, not a test).

Measures, on examples/order-select-request.json:
  decide      decide(facts, order, policy) per order
  facts       extract_facts over the prefetched resources (warm: resources validated before;
              cold: the validated-resource cache emptied before every run)
  evaluate    the whole hook evaluation (orders, facts, decide, cards, rating), no HTTP, warm
              and cold
  scale       the whole hook evaluation of generated records of 100 / 1,000 / 10,000 resources,
              cold and warm: *mixed* (a US-style record: unrelated labs and vital signs over
              years, a few relevant findings) and *all-relevant* (every Observation a body
              temperature inside the fever window); growth ratios, the cost per irrelevant
              resource, and the peak Python memory of a cold 10,000-resource call (tracemalloc)
Writes bench/results/engine.json and prints a summary.
"""

from __future__ import annotations

import copy
import json
import platform
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
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


_LABS = [
    ("2339-0", "Glucose", "mg/dL"), ("38483-4", "Creatinine", "mg/dL"),
    ("2947-0", "Sodium", "mmol/L"), ("6298-4", "Potassium", "mmol/L"),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL"), ("8302-2", "Body Height", "cm"),
    ("8867-4", "Heart rate", "/min"), ("9279-1", "Respiratory rate", "/min"),
    ("39156-5", "Body Mass Index", "kg/m2"), ("2093-3", "Cholesterol", "mg/dL"),
]  # fmt: skip


def _observation(i: int, code: tuple[str, str, str], days: int, value: float) -> dict:
    return {
        "resourceType": "Observation",
        "id": f"g{i}",
        "status": "final",
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code[0], "display": code[1]}]},
        "subject": {"reference": "Patient/sample-patient-1"},
        "effectiveDateTime": (datetime.now(UTC) - timedelta(days=days)).isoformat(),
        "valueQuantity": {"value": value, "unit": code[2]},
    }


def generated(request: dict, size: int, kind: str) -> dict:
    """The standard request with `size` generated Observations in its prefetch."""
    if kind == "mixed":
        extra = [
            _observation(i, _LABS[i % len(_LABS)], (i * 7) % 2000, 50 + i % 40) for i in range(size)
        ]
    else:
        temperature = ("8310-5", "Body temperature", "Cel")
        # every one in the window; half of them a fever (38.0-39.4 °C), half normal
        extra = [_observation(i, temperature, i % 14, 36.5 + (i % 30) / 10) for i in range(size)]
    request = copy.deepcopy(request)
    observations = request["prefetch"]["observations"]
    observations["entry"] = [*observations.get("entry", []), *({"resource": r} for r in extra)]
    return request


def scale(request: dict, settings: Settings, knowledge, catalogue, now: datetime) -> dict:
    """Cold and warm evaluation of generated records, their growth and the peak memory."""

    def run(body: dict) -> None:
        evaluate(body, settings=settings, knowledge=knowledge, catalogue=catalogue, now=now)

    found: dict = {}
    for kind in ("mixed", "all-relevant"):
        for size in (100, 1000, 10000):
            body = generated(request, size, kind)
            repeat = {100: 200, 1000: 30, 10000: 5}[size]
            found[f"{kind}-{size}"] = {
                "cold": _time(lambda b=body: (clear_validated(), run(b)), repeat),
                "warm": _time(lambda b=body: run(b), repeat),
            }
    for kind in ("mixed", "all-relevant"):
        small, large = found[f"{kind}-1000"]["cold"], found[f"{kind}-10000"]["cold"]
        found[f"{kind}-growth-1k-to-10k"] = round(large["median_us"] / small["median_us"], 2)
    found["irrelevant_us_per_resource"] = round(
        (found["mixed-10000"]["cold"]["median_us"] - found["mixed-1000"]["cold"]["median_us"])
        / 9000,
        2,
    )
    for kind in ("mixed", "all-relevant"):
        body = generated(request, 10000, kind)
        clear_validated()
        tracemalloc.start()
        run(body)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        found[f"{kind}-10000-peak_mb"] = round(peak / 2**20, 1)
    return found


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
    results["scale"] = scale(request, settings, knowledge, catalogue, now)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"standard fixture: {results['resources_in_prefetch']} resources, 1 lumbar order")
    for name in ("decide", "facts", "facts_cold", "evaluate", "evaluate_cold"):
        r = results[name]
        print(
            f"{name:>13}: median {r['median_us']:>9.1f} µs   p99 {r['p99_us']:>9.1f} µs"
            f"   ({r['runs']} runs)"
        )
    for name, r in results["scale"].items():
        if isinstance(r, dict):
            print(
                f"{name:>18}: cold median {r['cold']['median_us'] / 1000:>8.2f} ms"
                f"   warm median {r['warm']['median_us'] / 1000:>8.2f} ms"
            )
        else:
            print(f"{name:>18}: {r}")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
