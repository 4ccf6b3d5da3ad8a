"""Public keys of trusted issuers: JWK Sets fetched over HTTP(S), cached, refreshed sparingly.

A key is looked up by (JWKS URL, kid). An unknown kid triggers a refresh of that URL, but at most
one fetch per URL every `min_refresh_seconds`, so a stream of tokens with made-up kids cannot
turn the service into a fetch amplifier. Fetches have a timeout and a size limit, follow no
redirects, and a failed refresh keeps the keys already known.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, KeySet, RSAKey

log = logging.getLogger(__name__)
ASYMMETRIC: dict[str, type[ECKey] | type[RSAKey]] = {"EC": ECKey, "RSA": RSAKey}
MAX_JWKS_BYTES = 256 * 1024


def import_key_set(value: Any) -> KeySet:
    """The public EC and RSA signing keys (with a kid) of a JWK Set; others are skipped.

    Symmetric ("oct") keys are never imported: a shared secret cannot identify a client, and
    HMAC-signed tokens are refused anyway. Private parts, if a careless JWKS carries them, are
    dropped. ValueError when the value is not a JWK Set at all.
    """
    if not isinstance(value, Mapping) or not isinstance(value.get("keys"), list):
        raise ValueError('expected a JWK Set: {"keys": [...]}')
    keys: list[Key] = []
    seen: set[str] = set()
    for item in value["keys"]:
        if not isinstance(item, Mapping):
            continue
        key_class = ASYMMETRIC.get(str(item.get("kty")))
        kid = item.get("kid")
        if key_class is None or not isinstance(kid, str) or not kid or kid in seen:
            continue
        if item.get("use") not in (None, "sig"):
            continue
        try:
            key = key_class.import_key(dict(item))
            public = key_class.import_key(key.as_dict(private=False))
        except (JoseError, ValueError, TypeError) as exc:
            log.info("JWKS: skipped key %r (%s)", kid[:64], type(exc).__name__)
            continue
        seen.add(kid)
        keys.append(public)
    return KeySet(keys)


def keys_by_kid(keys: KeySet) -> dict[str, Any]:
    """kid -> key of a KeySet."""
    return {key.kid: key for key in keys.keys if key.kid}


@dataclass
class _Entry:
    keys: dict[str, Any] = field(default_factory=dict)
    fetched_at: float | None = None  # last successful fetch
    attempted_at: float | None = None  # last fetch, successful or not
    lock: threading.Lock = field(default_factory=threading.Lock)


class JwksCache:
    """Keys per JWKS URL, shared by the threads of one process."""

    def __init__(
        self,
        *,
        timeout_seconds: float = 3.0,
        ttl_seconds: float = 3600.0,
        min_refresh_seconds: float = 60.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.ttl_seconds = ttl_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self.session = session or requests.Session()
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._entries_lock = threading.Lock()

    def key(self, url: str, kid: str) -> Any | None:
        """The key with this kid at this JWKS URL, fetching or refreshing when allowed."""
        with self._entries_lock:
            entry = self._entries.setdefault(url, _Entry())
        if kid not in entry.keys or self._wants_fetch(entry, kid):
            # Taken also when no fetch is due, so that a call whose kid is not known yet waits
            # for a fetch another thread is making (at most its timeout) instead of being
            # refused while the keys are on their way: the first calls after a start.
            with entry.lock:
                if self._wants_fetch(entry, kid):  # another thread may just have fetched
                    self._refresh(url, entry)
        return entry.keys.get(kid)

    def _wants_fetch(self, entry: _Entry, kid: str) -> bool:
        now = self.clock()
        if entry.attempted_at is not None and now - entry.attempted_at < self.min_refresh_seconds:
            return False
        stale = entry.fetched_at is None or now - entry.fetched_at >= self.ttl_seconds
        return stale or kid not in entry.keys

    def _refresh(self, url: str, entry: _Entry) -> None:
        entry.attempted_at = self.clock()
        try:
            keys = keys_by_kid(import_key_set(self._download(url)))
        except (requests.RequestException, ValueError) as exc:
            # Keep what we had: an issuer's brief outage must not lock its clients out.
            log.warning("JWKS fetch failed for %s: %s", url, type(exc).__name__)
            return
        entry.keys = keys
        entry.fetched_at = entry.attempted_at

    def _download(self, url: str) -> Any:
        with self.session.get(
            url,
            timeout=self.timeout_seconds,
            allow_redirects=False,
            stream=True,
            headers={"Accept": "application/jwk-set+json, application/json"},
        ) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            body = response.raw.read(MAX_JWKS_BYTES + 1, decode_content=True)
        if len(body) > MAX_JWKS_BYTES:
            raise ValueError("JWK Set too large")
        return json.loads(body)
