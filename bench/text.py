"""Benchmark of the clinical text reader (a benchmark, not a test).

Measures, with the shipped mappings:
  corpus      reading time per entry of the labelled corpus (tests/text/corpus): for each
              entry the best of 5 reads (so a busy machine does not count), then the median,
              p95 and mean over the entries
  scale       a keyword-dense note of 10 KB, 100 KB and 1 MB read in full (the size limit
              raised for the run), best of 3, and the same note under the default limit
Writes bench/results/text.json and prints a summary.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cds_service.rules.knowledge import load_knowledge  # noqa: E402
from cds_service.rules.textcheck import load_corpus  # noqa: E402
from cds_service.rules.textreader import TextReader  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "text.json"
CORPUS = ROOT / "tests" / "text" / "corpus"
# A GP line dense with keywords and cues of every family: the reader's worst case per byte.
DENSE_LINE = (
    "S: geen koorts, gewichtsverlies of nachtzweten; wel uitstraling li been, kr 4/5. "
    "Bij urineretentie of krachtsverlies direct contact. Moeder borstkanker. VG: HNP 2015. "
    "DD: maligniteit? O: KPR li verminderd, sens L5 re verminderd, Lasègue re pos.\n"
)


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def corpus_times(reader: TextReader, texts: list[str]) -> dict[str, float]:
    """Best-of-5 reading time per text, summarised over the texts (microseconds)."""
    for text in texts:
        reader.read(text)  # warm the word-form cache, as a running worker has it
    times = sorted(_best(lambda t=text: reader.read(t), 5) * 1e6 for text in texts)
    return {
        "entries": len(times),
        "median_us": round(statistics.median(times), 1),
        "p95_us": round(times[int(len(times) * 0.95)], 1),
        "mean_us": round(statistics.fmean(times), 1),
    }


def scale_times(reader: TextReader) -> dict[str, dict[str, float]]:
    """Full reads of dense notes of growing size, and the default limit on the largest."""
    results: dict[str, dict[str, float]] = {}
    big = dataclasses.replace(reader.rules, max_chars=2_000_000)
    full = _reader_with(reader, big)
    for size in (10_000, 100_000, 1_000_000):
        note = (DENSE_LINE * (size // len(DENSE_LINE) + 1))[:size]
        seconds = _best(lambda n=note: full.read(n), 3)
        findings = len(full.read(note).findings)
        results[f"{size // 1000}KB"] = {
            "ms": round(seconds * 1e3, 1),
            "us_per_kb": round(seconds * 1e6 / (size / 1000), 1),
            "findings": findings,
        }
    note = (DENSE_LINE * (1_000_000 // len(DENSE_LINE) + 1))[:1_000_000]
    results["1MB-default-limit"] = {
        "ms": round(_best(lambda: reader.read(note), 3) * 1e3, 1),
        "limit_chars": reader.rules.max_chars,
    }
    return results


def _reader_with(reader: TextReader, rules) -> TextReader:
    """The same reader (same phrase index and word forms) under other limits."""
    other = copy.copy(reader)
    other.rules = rules
    return other


def main() -> None:
    """Run the text benchmarks and write bench/results/text.json."""
    knowledge = load_knowledge()
    reader = knowledge.text_reader
    texts = [e.text for e in load_corpus(CORPUS, knowledge.concepts)]
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "corpus": corpus_times(reader, texts),
        "scale": scale_times(reader),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    c = result["corpus"]
    print(
        f"text reader, corpus of {c['entries']} entries: median {c['median_us']} µs, "
        f"p95 {c['p95_us']} µs, mean {c['mean_us']} µs per entry (best of 5 each)"
    )
    for name, figures in result["scale"].items():
        print(f"  {name:>18}: {figures}")


if __name__ == "__main__":
    main()
