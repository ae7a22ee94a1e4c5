# syntax=docker/dockerfile:1
# intake: the service image. Data lives in the volume /app/var (see docs/operations.md).
#   docker build -t intake .
#   docker run --rm -v intake-var:/app/var intake intake db upgrade
#   docker run -d --name intake -v intake-var:/app/var -e INTAKE_CONFIG=/app/var/intake.toml intake

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/intake
WORKDIR /src
COPY pyproject.toml README.md ./
COPY config ./config
COPY parsers ./parsers
COPY notifications ./notifications
COPY service ./service
# tzdata: zoneinfo needs the IANA database and slim images need not carry one.
RUN /opt/intake/bin/pip install . tzdata==2026.6

FROM python:3.11-slim
ENV PATH=/opt/intake/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    INTAKE_HEALTH__HOST=0.0.0.0 \
    INTAKE_HEALTH__PORT=8080
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
EXPOSE 8080
# `intake health` reads the database: database up, schema current, mailbox read recently.
HEALTHCHECK --interval=1m --timeout=30s --start-period=10m --retries=3 CMD ["intake", "health"]
# SIGTERM stops scheduling, lets the job in hand finish, and exits 0.
STOPSIGNAL SIGTERM
CMD ["intake", "run"]
