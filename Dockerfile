# syntax=docker/dockerfile:1
# The bot as an image: `docker build -t memorybot .`, then e.g.
#   docker run --env-file .env -v memory:/data memorybot            (serve the configured platforms)
#   docker run --env-file .env -v memory:/data memorybot sessions   (any `python -m bot` command)
# compose.yaml builds it for PostgreSQL and two workers.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/bot
# The locked dependencies first, in a layer of their own: a change to the bot's code rebuilds
# only the small layer below, and pip checks every download against the lock's hashes.
COPY requirements/runtime.txt /tmp/runtime.txt
RUN /opt/bot/bin/pip install --require-hashes -r /tmp/runtime.txt
# Then the bot itself, installed (not run from a checkout) so its adapters' entry points exist.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY adapters ./adapters
RUN /opt/bot/bin/pip install --no-deps .

FROM ${PYTHON_IMAGE}
# tini as PID 1 passes SIGTERM on to the bot and reaps what MCP servers leave behind; Debian's
# own package, at the version this base image's release carries.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 bot \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --create-home bot
COPY --from=build /opt/bot /opt/bot
ENV PATH=/opt/bot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BOT_METRICS_PORT=9100
# A SQLite memory (the default BOT_DB_PATH, memory.sqlite3) lands here: mount a volume on it.
WORKDIR /data
USER 10001:10001
# 9100: /healthz, /readyz and /metrics; 3000: Slack in HTTP mode (SLACK_PORT).
EXPOSE 9100 3000
# The bot finishes the turns under way within BOT_SHUTDOWN_GRACE (30 s) of this signal: give
# `docker stop` more than that (compose.yaml's stop_grace_period; docker stop -t 45).
STOPSIGNAL SIGTERM
# /readyz answers 503 while the database or a platform connection is down; the slim image has
# no curl, so Python asks (urlopen fails on a 503).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % (os.environ.get('BOT_METRICS_PORT') or 9100), timeout=3)"]
ENTRYPOINT ["/usr/bin/tini", "--", "python", "-m", "bot"]
CMD ["serve"]
