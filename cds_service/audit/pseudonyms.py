"""Keyed pseudonyms: HMAC-SHA256 of an identifier, stable per key and not reversible without it."""

from __future__ import annotations

import hashlib
import hmac
import re

# Used only when CDS_ENV is development or test and no CDS_PSEUDONYM_KEY is set; config.py
# refuses to start in production without a real key.
DEVELOPMENT_KEY = "development-only-pseudonym-key-do-not-use-in-production"
# Checked with fullmatch: `$` would let a trailing newline through.
_SAFE_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class Pseudonymiser:
    """Turns identifiers into pseudonyms; `kind` separates name spaces (patient 1 ≠ clinician 1)."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("a pseudonym key is required")
        self._key = key.encode("utf-8")

    def __call__(self, kind: str, value: str) -> str:
        """The 64-hex-digit pseudonym of `value` in name space `kind`."""
        message = f"{kind}\x1f{value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def optional(self, kind: str, value: object) -> str | None:
        """The pseudonym of a string value, or None when there is none."""
        return self(kind, value) if isinstance(value, str) and value else None


def safe_token(value: object, max_length: int = 64) -> str | None:
    """`value` when it is a short identifier-like token (a uuid, a code), else None.

    Anything else the client sent could be free text, so it is never stored as such.
    """
    if isinstance(value, str) and len(value) <= max_length and _SAFE_TOKEN.fullmatch(value):
        return value
    return None


def uuid_or_pseudonym(pseudonym: Pseudonymiser, kind: str, value: object) -> str:
    """`value` when it is a UUID (which names nothing but itself), else its keyed pseudonym.

    A client may put a case number, a BSN or a name where a UUID belongs; even a value that
    looks like a token can identify someone, so only a UUID is kept as it is.
    """
    if isinstance(value, str) and _UUID.fullmatch(value):
        return value
    return pseudonym(kind, str(value))
