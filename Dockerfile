# Slim image: the service runs from a source copy, as in development (cards/ and mappings/ are data).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    CDS_HOST=0.0.0.0 \
    CDS_PORT=8080 \
    PYTHONPATH=/app

WORKDIR /app

# Dependencies first, so a code change does not reinstall them; the code itself runs from
# /app (PYTHONPATH) so that cards/ and mappings/ sit beside it as in a checkout.
COPY pyproject.toml README.md ./
COPY cds_service/__init__.py cds_service/__init__.py
RUN pip install --no-cache-dir . && pip uninstall -y lumbar-imaging-cds

COPY cds_service/ cds_service/
COPY cards/ cards/
COPY mappings/ mappings/
COPY safety/ safety/
COPY openapi.yaml docker/entrypoint.sh ./
RUN useradd --system --uid 10001 --home /app cds \
    && mkdir -p /app/var && chown cds /app/var

# Never run as root: the service needs no privileges.
USER cds
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CDS_PORT','8080'), timeout=2)"
ENTRYPOINT ["/app/entrypoint.sh"]
