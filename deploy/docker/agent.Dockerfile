# syntax=docker/dockerfile:1
#
# EdgePlane edge agent: the device daemon alone, with the `agent` extra (TFLite runtime)
# and none of the server's dependencies. Build from the repository root:
#
#   docker build -f deploy/docker/agent.Dockerfile -t edgeplane-agent .
#
# Run it with its configuration and a persistent state volume (model files, outbox):
#
#   docker run -d --init --restart unless-stopped \
#     -v /etc/edgeplane/agent.toml:/etc/edgeplane/agent.toml:ro \
#     -v edgeplane-agent:/var/lib/edgeplane-agent edgeplane-agent
#
# For arm64 devices build with `--platform linux/arm64` (the `agent` extra then brings
# ai-edge-litert instead of tflite-runtime).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, read from pyproject.toml alone, so that a code change does not
# reinstall them.
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['agent']))" \
        > /tmp/requirements.txt \
    && pip install --requirement /tmp/requirements.txt

COPY README.m[d] ./
COPY server ./server
COPY edge_agent ./edge_agent
# The project's own wheel with the agent extra (its dependencies are already installed above).
# hadolint ignore=DL3013
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --no-deps --wheel-dir /wheels . \
    && wheel="$(echo /wheels/edgeplane-*.whl)" \
    && pip install "${wheel}[agent]" \
    && pip check

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

RUN groupadd --system --gid 10001 edgeplane \
    && useradd --system --uid 10001 --gid edgeplane --home-dir /home/edgeplane \
        --create-home --shell /usr/sbin/nologin edgeplane \
    && install -d -o edgeplane -g edgeplane -m 0750 /var/lib/edgeplane-agent \
    && install -d -m 0755 /etc/edgeplane

COPY --from=build /opt/venv /opt/venv

# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /var/lib/edgeplane-agent
VOLUME ["/var/lib/edgeplane-agent"]

ENTRYPOINT ["edgeplane", "agent"]
CMD ["run", "--config", "/etc/edgeplane/agent.toml"]
