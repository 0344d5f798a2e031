# Aurora in a container: `python app.py` with its settings from the environment (AURORA_*, DATABASE_URL,
# PORT; docs/operations.md). Linted by hadolint in `make test` (tests/test_deploy.py), not built there:
# the test machine has no Docker engine. compose.yaml runs two of these behind nginx (docs/scaling.md).
#
# The interpreter is the one the suite runs on (3.11.7); bump the tag deliberately, with the tests.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AURORA_DATA_DIR=/data \
    PORT=3001

# libmagic: python-magic sniffs upload types with it (every other runtime package ships a wheel).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1=1:5.44-3 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# The pinned runtime packages only (requirements-dev.txt is for the tests), in their own layer.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY app.py ./
COPY aurora/ aurora/
COPY config/ config/
# The web app served at /app/ and the JS SDK it imports from /app/sdk/.
COPY web/ web/
COPY clients/js/src/ clients/js/src/
COPY clients/js/index.d.ts clients/js/

# Not root. /data holds uploads (and, outside production, the generated keys): a volume.
RUN groupadd --system --gid 10001 aurora \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin aurora \
    && mkdir -p /data \
    && chown 10001:10001 /data
USER 10001:10001
VOLUME ["/data"]

EXPOSE 3001

# 200 while this process serves (also "degraded": Redis down); 503 when its database cannot answer or
# write. urlopen raises on 503, so the check fails. The timeout is above PostgreSQL's connect_timeout (5 s).
HEALTHCHECK --interval=15s --timeout=8s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '3001'), timeout=7)"]

# SIGTERM (docker stop) is a clean shutdown: sockets closed, queued messages stored (docs/operations.md).
CMD ["python", "app.py", "--host", "0.0.0.0", "serve"]
