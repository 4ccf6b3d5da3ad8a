"""GET /reports/avoided-scans: the avoided-scans report over HTTP, behind CDS_REPORT_TOKEN."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("reports", __name__, url_prefix="/reports")
