"""Per-clinician mirror-report tokens: derived from CDS_REPORT_TOKEN, so nothing is stored.

A clinician's token opens only their own mirror report. It is an HMAC of their pseudonym
under the report token, so changing CDS_REPORT_TOKEN withdraws every clinician token at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def mirror_token(report_token: str, clinician: str) -> str:
    """The token of one clinician (by pseudonym): 32 base32 characters (160 bits)."""
    if not report_token:
        raise ValueError("mirror tokens need CDS_REPORT_TOKEN")
    message = f"mirror-report\x1f{clinician}".encode()
    digest = hmac.new(report_token.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b32encode(digest[:20]).decode("ascii")


def is_mirror_token(report_token: str, clinician: str, presented: bytes) -> bool:
    """Whether `presented` is that clinician's token (compared in constant time)."""
    if not report_token:
        return False
    expected = mirror_token(report_token, clinician).encode("ascii")
    return hmac.compare_digest(presented, expected)
