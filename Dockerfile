# Slim image: the locked dependencies, then the project installed as a package (its mappings,
# cards, OpenAPI document and serve script are package data), run by `cds-service serve`.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    CDS_HOST=0.0.0.0 \
    CDS_PORT=8080

WORKDIR /app

# Dependencies first, from the lock file with its hashes, so a code change does not reinstall them.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

COPY pyproject.toml README.md ./
COPY cds_service/ cds_service/
# The source copy goes once installed: the service runs the package, not a checkout.
RUN pip install --no-cache-dir --no-deps . && rm -rf /app/cds_service /app/build \
    && useradd --system --uid 10001 --home /app cds \
    && mkdir -p /app/var && chown cds /app/var

# Never run as root: the service needs no privileges.
USER cds
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CDS_PORT','8080'), timeout=2)"
ENTRYPOINT ["cds-service", "serve"]
