#!/bin/sh
# Starts the service under gunicorn: what `cds-service serve` runs (the image, `make run`, tests).
# Logs are JSON lines on stderr (gunicorn_conf.py); the app writes one line per request.
# Each worker runs CDS_THREADS threads (64), and every request has CDS_REQUEST_DEADLINE_SECONDS
# to be read and answered (observability/worker.py), so slow clients cannot hold it.
set -eu
# Fail closed: settings the service cannot safely start with (in production: no trusted issuers,
# no pseudonym key, no https base URL) are refused here in one line, exit 2, before gunicorn.
python3 -m cds_service.preflight || exit $?
export CDS_REQUEST_DEADLINE_SECONDS="${CDS_REQUEST_DEADLINE_SECONDS:-15}"
# /metrics adds up all workers only in prometheus_client's multiprocess mode: without a
# directory given, each start gets a fresh one of its own (gunicorn_conf.py empties it).
if [ -z "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  PROMETHEUS_MULTIPROC_DIR="$(mktemp -d "${TMPDIR:-/tmp}/cds-metrics.XXXXXX")"
  export PROMETHEUS_MULTIPROC_DIR
fi
exec gunicorn \
  --bind "${CDS_HOST:-0.0.0.0}:${CDS_PORT:-8080}" \
  --workers "${CDS_WORKERS:-2}" \
  --threads "${CDS_THREADS:-64}" \
  --timeout "${CDS_WORKER_TIMEOUT:-30}" \
  --config python:cds_service.observability.gunicorn_conf \
  --forwarded-allow-ips "${CDS_FORWARDED_ALLOW_IPS:-127.0.0.1}" \
  "cds_service:create_app()"
