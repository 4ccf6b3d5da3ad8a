#!/bin/sh
# Starts the service under gunicorn; used by the Dockerfile, `make run` and a test.
# Logs are JSON lines on stderr (gunicorn_conf.py); the app writes one line per request.
set -eu
exec gunicorn \
  --bind "${CDS_HOST:-0.0.0.0}:${CDS_PORT:-8080}" \
  --workers "${CDS_WORKERS:-2}" \
  --timeout "${CDS_WORKER_TIMEOUT:-30}" \
  --config python:cds_service.observability.gunicorn_conf \
  --forwarded-allow-ips "${CDS_FORWARDED_ALLOW_IPS:-127.0.0.1}" \
  "cds_service:create_app()"
