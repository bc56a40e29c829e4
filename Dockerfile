# syntax=docker/dockerfile:1
# One image for the four services; each container picks its service with
# `python -m services.<name>` (see compose.yaml and deploy/k8s).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
COPY tools ./tools
COPY bench ./bench
COPY engine_client ./engine_client
# Runtime dependencies only (pinned in pyproject.toml); the dev extra stays out.
RUN pip install --no-cache-dir . \
    && python -m compileall -q /opt/venv

FROM ${PYTHON_IMAGE} AS runtime
# Bytecode is compiled at build time, so the root filesystem can be read-only.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_HOST=0.0.0.0 \
    OPS_HOST=0.0.0.0
RUN groupadd --system --gid 10001 engine \
    && useradd --system --uid 10001 --gid engine --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin engine
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Numeric so Kubernetes can verify runAsNonRoot without a passwd lookup.
USER 10001:10001
# gateway 8000; ops ports of router, executor and projector.
EXPOSE 8000 9101 9102 9103
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services.gateway"]
