# syntax=docker/dockerfile:1
# intake: the service image. Data lives in the volume /app/var (see docs/operations.md).
#   docker build -t intake .
#   docker run --rm -v intake-var:/app/var intake intake db upgrade
#   docker run -d --name intake -v intake-var:/app/var -e INTAKE_CONFIG=/app/var/intake.toml intake
# The Debian release is the one the test suite runs on (Debian 12, bookworm), and every
# Debian package installed below is one `.ci/run` installs for the tests
# (tests/unit/test_image.py checks both, and that the Python packages come from pyproject.toml).

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/intake
WORKDIR /src
COPY pyproject.toml README.md ./
COPY config ./config
COPY parsers ./parsers
COPY notifications ./notifications
COPY service ./service
RUN /opt/intake/bin/pip install .

FROM python:3.11-slim-bookworm
# Used at run time: LibreOffice Writer (headless) converts legacy .doc and WPS forms;
# fonts-noto-cjk renders Chinese text in converted and rendered documents.
# OCR of scans (RapidOCR, ONNX Runtime, headless OpenCV) comes from pyproject.toml as wheels
# that link only glibc, libstdc++ and zlib: nothing from apt. Each OCR worker process takes
# about 1 GB of memory (ocr.workers, ocr.memory_limit_mb).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libreoffice-writer-nogui fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/intake/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/app \
    INTAKE_HEALTH__HOST=0.0.0.0 \
    INTAKE_HEALTH__PORT=8081 \
    INTAKE_WEB__HOST=0.0.0.0 \
    INTAKE_WEB__PORT=8080
COPY --from=build /opt/intake /opt/intake
RUN groupadd --system --gid 10001 intake \
    && useradd --system --uid 10001 --gid intake --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin intake \
    && mkdir -p /app/var \
    && chown -R intake:intake /app
WORKDIR /app
USER 10001:10001
# The SQLite database, the archive of raw mail and the file transport's outbox default to
# ./var, i.e. here. With PostgreSQL only the archive is kept here.
VOLUME ["/app/var"]
# 8080: the staff workspace; 8081: /healthz and /metrics.
EXPOSE 8080 8081
# `intake health` reads the database: database up, schema current, mailbox read recently.
HEALTHCHECK --interval=1m --timeout=30s --start-period=10m --retries=3 CMD ["intake", "health"]
# SIGTERM stops scheduling, lets the job in hand finish, and exits 0.
STOPSIGNAL SIGTERM
CMD ["intake", "run"]
