"""The avoided-scans report: SQL aggregates over the audit tables, rendered as JSON, CSV, HTML."""
