"""R4B validation of FHIR resources, remembering the resources a worker has already validated.

Validation with fhir.resources is most of the cost of facts extraction, and the same records
arrive again and again: the CDS Hooks Sandbox fires order-select on every change, and
order-sign follows order-select with the same prefetch. The cache is keyed by a digest of the
resource's canonical JSON, so a changed resource is validated afresh; it lives in the worker's
memory only and is bounded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

MAX_ENTRIES = 10_000
_cache: OrderedDict[bytes, Any] = OrderedDict()
_lock = threading.Lock()


def _digest(kind: str, resource: Mapping[str, Any]) -> bytes:
    canonical = json.dumps(resource, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(f"{kind}\x1f{canonical}".encode(), digest_size=20).digest()


def validated(kind: str, resource: Mapping[str, Any]) -> Any:
    """The R4B model of a resource dict; raises (pydantic ValidationError) when it is invalid."""
    key = _digest(kind, resource)
    with _lock:
        model = _cache.get(key)
        if model is not None:
            _cache.move_to_end(key)
            return model
    model = get_fhir_model_class(kind).model_validate(dict(resource))
    with _lock:
        _cache[key] = model
        if len(_cache) > MAX_ENTRIES:
            _cache.popitem(last=False)
    return model


def clear() -> None:
    """Forget every validated resource (benchmarks measure the cold path with it)."""
    with _lock:
        _cache.clear()
