# syntax=docker/dockerfile:1
#
# EdgePlane control plane: API, Celery worker and beat, MQTT ingest and migrations
# all run from this one image (`edgeplane <command>`). Build from the repository root:
#
#   docker build -f deploy/docker/server.Dockerfile -t edgeplane-server .
#
# Needs BuildKit (the default builder since Docker 23): the bracket patterns below are
# wildcards that may match nothing, which the legacy builder refuses.

ARG PYTHON_IMAGE=python:3.11-slim
ARG NODE_IMAGE=node:20-slim

# ---- dashboard: web/ -> /web/dist ---------------------------------------------------
FROM ${NODE_IMAGE} AS web
WORKDIR /web
# While the repository has no web/ app these COPYs match nothing, the npm steps are
# skipped and dist/ stays empty: the API then answers / with "dashboard not built".
COPY we[b]/package.jso[n] we[b]/package-lock.jso[n] ./
RUN --mount=type=cache,target=/root/.npm \
    if [ -f package.json ]; then npm ci --no-audit --no-fund; fi
COPY we[b] ./
RUN if [ -f package.json ]; then npm run build; fi && mkdir -p dist

# ---- wheel and virtualenv ------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
# Extras of the project to install, comma-separated: `server,training` adds TensorFlow
# for workers that retrain the model (a much larger image).
ARG EXTRAS=server
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, read from pyproject.toml alone, so that a code change does not
# reinstall them.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extras = [e.strip() for e in os.environ['EXTRAS'].split(',')]; print('\n'.join(p['dependencies'] + [r for e in extras for r in p['optional-dependencies'][e]]))" \
        > /tmp/requirements.txt \
    && pip install --requirement /tmp/requirements.txt

COPY README.m[d] ./
COPY server ./server
COPY edge_agent ./edge_agent
# The project's own wheel and extras (their dependencies are already installed above).
# hadolint ignore=DL3013
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --no-deps --wheel-dir /wheels . \
    && wheel="$(echo /wheels/edgeplane-*.whl)" \
    && pip install "${wheel}[${EXTRAS}]" \
    && pip check

# ---- runtime --------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    EDGEPLANE_DATA_DIR=/var/lib/edgeplane \
    EDGEPLANE_WEB__DIST_DIR=/app/web/dist

RUN groupadd --system --gid 10001 edgeplane \
    && useradd --system --uid 10001 --gid edgeplane --home-dir /home/edgeplane \
        --create-home --shell /usr/sbin/nologin edgeplane \
    && install -d -o edgeplane -g edgeplane -m 0750 \
        /var/lib/edgeplane /var/lib/edgeplane/mosquitto-auth

COPY --from=build /opt/venv /opt/venv

# Read-only for the service user: migrations (Alembic runs from here) and the
# dashboard. Everything the processes write goes to /var/lib/edgeplane or /tmp.
WORKDIR /app
COPY alembic.in[i] ./
COPY migration[s] ./migrations/
COPY --from=web /web/dist ./web/dist

# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8000

# Liveness of the API. docker-compose.yml turns it off for the worker, beat and ingest
# containers, which run from this image but serve no HTTP.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["edgeplane"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
