"""The readers of the facts package: one function per FHIR resource type, found by type."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cds_service.fhir.facts.builder import FactsBuilder

Reader = Callable[["FactsBuilder", Any, str], None]

Finisher = Callable[["FactsBuilder"], None]

# resource type -> its reader; every other type is ignored
READERS: dict[str, Reader] = {}
# run once every resource is read, before the facts are frozen: links between resources
# (an EpisodeOfCare naming its Condition) can only be resolved then
FINISHERS: list[Finisher] = []


def reads(resource_type: str) -> Callable[[Reader], Reader]:
    """Register the decorated function as the reader of `resource_type` (one per type)."""

    def register(reader: Reader) -> Reader:
        if resource_type in READERS:
            raise RuntimeError(f"two readers for {resource_type}")
        READERS[resource_type] = reader
        return reader

    return register


def finishes(finisher: Finisher) -> Finisher:
    """Register the decorated function to run once all resources are read."""
    FINISHERS.append(finisher)
    return finisher
