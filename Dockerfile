# The Onboarder service image: `onboard serve` as uid 1000, state on the /data volume.
#
#   docker build -t onboarder .
#   docker run -d -p 8080:8080 -v onboarder-data:/data \
#     -e ONBOARD_SERVICE_GITHUB_WEBHOOK_SECRET=... -e ONBOARD_GITHUB_TOKEN=... \
#     -e ONBOARD_GITHUB_REPOS='{"optimum-intel": "me/optimum-intel"}' \
#     -e ONBOARD_SANDBOX=docker -e DOCKER_HOST=tcp://docker-engine:2376 -e DOCKER_TLS_VERIFY=1 \
#     -e DOCKER_CERT_PATH=/certs -v onboarder-certs:/certs:ro onboarder
#
# Sandboxes: the service reaches a Docker engine through DOCKER_HOST (TLS).
# Never mount /var/run/docker.sock into this container: whoever holds the
# socket is root on the host, and the service handles untrusted issue text.
# The service never passes the engine (socket or certificates) on to the
# sandboxes it starts. Without an engine, `onboard serve` refuses to start
# unless ONBOARD_SERVICE_ALLOW_LOCAL_SANDBOX=1 accepts ONBOARD_SANDBOX=local: checks then run
# under bubblewrap inside this container, as an unprivileged uid in a user namespace; the
# container must be allowed to create one (the engine's default seccomp profile refuses it),
# else the local backend refuses to run, saying why.
#
# Without secrets the service starts with its webhook, chat and jobs
# endpoints disabled (fail closed) and says so in its log and /healthz.
#
# Classic-builder compatible (no RUN --mount). On a machine without a registry,
# pass --build-arg BASE=<a local image with python3.11>.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
# SCALE=1 adds scale mode (Celery workers, Postgres ledger, Flower): compose.scale.yml builds it so.
ARG SCALE=0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock requirements-scale.lock pyproject.toml README.md ./
# CPU torch first, from its own index: the default index would pull CUDA wheels (GBs) the
# service never uses. Then the locked stack, then the project itself without deps.
RUN set -eu; \
    python3.11 -m venv /opt/venv; \
    /opt/venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu \
        "$(grep '^torch==' requirements.lock)" "$(grep '^torchvision==' requirements.lock)"; \
    /opt/venv/bin/pip install -r requirements.lock; \
    if [ "$SCALE" = 1 ]; then /opt/venv/bin/pip install -c requirements.lock -r requirements-scale.lock; fi
COPY agent ./agent
COPY tools ./tools
COPY sandboxes ./sandboxes
COPY prompts ./prompts
RUN /opt/venv/bin/pip install --no-deps . \
    && /opt/venv/bin/python -c "import agent.service.app, tools.forge.github, uvicorn"

FROM ${BASE}
# git: worktrees, commits and pushes (HTTPS; the token reaches git through a credential helper).
# bubblewrap: the local sandbox backend.
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends git ca-certificates bubblewrap; \
    rm -rf /var/lib/apt/lists/*; \
    grep -q '^onboard:' /etc/group || echo 'onboard:x:1000:' >> /etc/group; \
    grep -q '^onboard:' /etc/passwd || echo 'onboard:x:1000:1000:onboard:/home/onboard:/usr/sbin/nologin' >> /etc/passwd; \
    mkdir -p /home/onboard /data; \
    chown 1000:1000 /home/onboard /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/home/onboard \
    PYTHONUNBUFFERED=1 \
    ONBOARD_DATA_DIR=/data \
    ONBOARD_SERVICE_HOST=0.0.0.0 \
    ONBOARD_SERVICE_PORT=8080
USER 1000:1000
WORKDIR /home/onboard
# Queue, checkpoints, mirrors, tiny models and PR records: everything that must survive a restart.
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ONBOARD_SERVICE_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["onboard"]
CMD ["serve"]
