# The service image: fails closed (production unless told otherwise), non-root, audit data on a
# volume. Built and started by docker/check.sh. The base is a build argument so that a machine
# without a registry can build it on a local Debian bookworm base (python3 3.11 + python3-venv).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# CDS_ENV=production: without trusted issuers, a pseudonym key and an https CDS_PUBLIC_BASE_URL
# the entrypoint refuses to start, in one line (cds_service/preflight.py). Migrations are a step
# of their own (`docker run … IMAGE db upgrade`), so replicas never race to migrate.
# matplotlib (the report's charts) writes its cache under MPLCONFIGDIR: the home is not writable.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/app \
    CDS_ENV=production \
    CDS_HOST=0.0.0.0 \
    CDS_PORT=8080 \
    CDS_DATABASE_URL=sqlite:////app/var/cds.db \
    CDS_DATABASE_AUTO_UPGRADE=false \
    MPLCONFIGDIR=/tmp/matplotlib

WORKDIR /app

# Dependencies first, so a code change does not reinstall them; the code itself runs from
# /app (PYTHONPATH) so that cards/ and mappings/ sit beside it as in a checkout.
RUN python3 -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY cds_service/__init__.py cds_service/__init__.py
# A build behind a TLS-inspecting proxy passes its CA bundle as the secret build-ca (check.sh
# does); it is used for the downloads only and never lands in the image.
RUN --mount=type=secret,id=build-ca \
    if [ -s /run/secrets/build-ca ]; then export PIP_CERT=/run/secrets/build-ca; fi \
    && pip install . && pip uninstall -y lumbar-imaging-cds

COPY cds_service/ cds_service/
COPY cards/ cards/
COPY mappings/ mappings/
COPY safety/ safety/
COPY openapi.yaml ./
COPY docker/entrypoint.sh docker/
# `cds-service` on PATH, for `docker exec` and `docker run IMAGE <sub-command>`.
RUN printf '#!/opt/venv/bin/python\nimport sys\nfrom cds_service.cli import main\nsys.exit(main())\n' \
      > /opt/venv/bin/cds-service \
    && chmod 755 /opt/venv/bin/cds-service /app/docker/entrypoint.sh \
    && groupadd --system --gid 10001 cds \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home cds \
    && mkdir -p /app/var && chown cds:cds /app/var \
    && python -m compileall -q /app/cds_service
# Start-up on a loaded machine is mostly imports: the code is byte-compiled above, and
# matplotlib's font cache is made once here rather than by every new container.
USER 10001:10001
RUN python -c "import matplotlib.pyplot"

# Never run as root (USER above): the service needs no privileges. Numeric, so runAsNonRoot
# can check it.
# The SQLite audit database and its spool (CDS_DATABASE_URL): the evidence of every decision.
VOLUME ["/app/var"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CDS_PORT','8080'), timeout=2)"
ENTRYPOINT ["/app/docker/entrypoint.sh"]
