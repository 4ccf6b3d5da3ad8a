"""The audit trail: one row per evaluated order, clinician feedback, and the avoided-scans report.

Privacy by construction: patients, clinicians, encounters and orders are stored only as keyed
pseudonyms (HMAC-SHA256), orders only by recognised codes, and nothing the client wrote as free
text (names, notes, comments, tokens) is ever stored.
"""
