# syntax=docker/dockerfile:1
# One image for every gapwatch part: the sub-command picks the role
# (`topics create`, `ingest`, `api`, `publish`, `refdata build|check`).
# Checked statically by tests/unit/test_deploy_static.py (no container engine on dev machines).

# Debian bookworm pinned so the base does not move between Debian releases under the tag.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install the project and its pinned dependencies into a venv -----------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# README.md* : pyproject names README.md as the long description; the glob keeps the build
# working while it is absent (setuptools only warns), and picks it up once it exists.
COPY pyproject.toml README.md* ./
COPY services/ services/
# Every runtime dependency (45 with transitives) has a manylinux wheel for CPython 3.11 on
# x86_64 (confluent-kafka bundles librdkafka, fastavro its C extension), so this stage
# needs no compiler.
RUN pip install .

# --- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

# 10001: a fixed, non-root uid so Kubernetes `runAsNonRoot` can verify it from the image
# (deploy/k8s sets the same runAsUser).
RUN groupadd --system --gid 10001 gapwatch \
    && useradd --system --uid 10001 --gid gapwatch --home-dir /var/lib/gapwatch \
       --shell /usr/sbin/nologin gapwatch \
    && mkdir -p /var/lib/gapwatch /refdata \
    && chown gapwatch:gapwatch /var/lib/gapwatch /refdata

COPY --from=build /opt/venv /opt/venv
COPY schemas/ /app/schemas/

# GAPWATCH_SCHEMAS_DIR: the settings default (<checkout>/schemas) does not exist once the
#   package is installed into site-packages.
# GAPWATCH_REFDATA_DIR: a volume; fill it once with `gapwatch refdata build`.
# *_HOST=0.0.0.0: the defaults (127.0.0.1) would be unreachable from probes, Prometheus and
#   other containers.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/gapwatch \
    GAPWATCH_SCHEMAS_DIR=/app/schemas \
    GAPWATCH_REFDATA_DIR=/refdata \
    GAPWATCH_API_HOST=0.0.0.0 \
    GAPWATCH_INGEST_WEB_HOST=0.0.0.0

# A writable working directory and HOME; with a read-only root filesystem mount an emptyDir
# here and on /tmp (faust's data dir, GAPWATCH_INGEST_DATA_DIR, defaults to /tmp).
WORKDIR /var/lib/gapwatch
USER 10001:10001

# 8000: API (/healthz, /readyz, /metrics, /v1/...); 6066: ingest worker web (/healthz,
# /readyz, /metrics). No HEALTHCHECK here: the port and path depend on the sub-command, so
# docker-compose.yml and the Kubernetes probes declare one per role.
EXPOSE 8000 6066

ENTRYPOINT ["gapwatch"]
CMD ["--help"]
