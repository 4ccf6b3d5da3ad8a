# The service image: the locked dependencies and the project's wheel (its mappings, cards,
# OpenAPI document and serve script are package data) in a virtualenv, run by `cds-service
# serve`. It fails closed (production unless told otherwise), runs as a non-root user and keeps
# the audit data on a volume. Built and started by docker/check.sh. The base is a build argument
# so that a machine without a registry can build on a local Debian bookworm base (python3 3.11
# and python3-venv; check.sh makes one with debootstrap).
ARG BASE_IMAGE=python:3.11-slim

# --- the wheel, built from the source tree; nothing of this stage but the wheel is kept --------
FROM ${BASE_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cds_service/ cds_service/
# A build behind a TLS-inspecting proxy passes its CA bundle as the secret build-ca (check.sh
# does); it is used for the downloads only and never lands in an image.
RUN --mount=type=secret,id=build-ca \
    if [ -s /run/secrets/build-ca ]; then export PIP_CERT=/run/secrets/build-ca; fi \
    && /opt/build/bin/pip wheel --no-deps --wheel-dir /wheels .

# --- the image ---------------------------------------------------------------------------------
FROM ${BASE_IMAGE}

# CDS_ENV=production: without trusted issuers, a pseudonym key and an https CDS_PUBLIC_BASE_URL
# the service refuses to start, in one line (cds_service/preflight.py). Migrations are a step of
# their own (`docker run … IMAGE db upgrade`), so replicas never race to migrate.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CDS_ENV=production \
    CDS_HOST=0.0.0.0 \
    CDS_PORT=8080 \
    CDS_DATABASE_URL=sqlite:////app/var/cds.db \
    CDS_DATABASE_AUTO_UPGRADE=false

RUN groupadd --system --gid 10001 cds \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home cds \
    && mkdir -p /app/var && chown cds:cds /app/var \
    && python3 -m venv /opt/venv
WORKDIR /app

# Dependencies first, from the lock file with its hashes, so a code change does not reinstall them.
COPY requirements.lock /tmp/requirements.lock
RUN --mount=type=secret,id=build-ca \
    if [ -s /run/secrets/build-ca ]; then export PIP_CERT=/run/secrets/build-ca; fi \
    && pip install --require-hashes -r /tmp/requirements.lock && rm /tmp/requirements.lock

# The project as an installed (not editable) wheel: no source tree in the image.
COPY --from=wheel /wheels/ /tmp/wheels/
RUN pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels

# Never run as root: the service needs no privileges. Numeric, so runAsNonRoot can check it.
USER 10001:10001
# The report's charts are the project's own small SVGs (issue 17): nothing needs a writable home.
# The SQLite audit database and its spool (CDS_DATABASE_URL): the evidence of every decision.
VOLUME ["/app/var"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CDS_PORT','8080'), timeout=2)"
# `docker run IMAGE` serves; `docker run IMAGE db upgrade` (any sub-command) runs the CLI.
ENTRYPOINT ["cds-service"]
CMD ["serve"]
