# One image recipe for every process of the suite: identity, ops, billing, repogen, gateway.
# Build from the repository root, naming the service:
#   docker build --build-arg SERVICE=ops -t zenops/ops:dev .
#   docker build --build-arg SERVICE=gateway -t zenops/gateway:dev .
# Run: serve (default) | migrate   (python -m zenops_<service> <command>)

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: the locked dependencies and the three local packages in a venv
FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=<identity|ops|billing|repogen|gateway>" >&2; exit 1; }
# (pip compiles the installed modules to bytecode here, so the read-only runtime never has to.)
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first: this layer is shared by every service and reused until the lock changes.
COPY requirements/lock.txt requirements/lock.txt
RUN pip install --no-cache-dir -r requirements/lock.txt
COPY libs/ libs/
COPY services/${SERVICE}/ services/${SERVICE}/
RUN pip install --no-cache-dir --no-deps ./libs/contracts ./libs/kit ./services/${SERVICE}

# ---- runtime: the venv only (no sources, no build tools), as a non-root user
FROM ${PYTHON_IMAGE}
ARG SERVICE
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    ZENOPS_SERVICE=${SERVICE}
RUN groupadd --system --gid 10001 zenops \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin zenops
COPY --from=build /opt/venv /opt/venv
WORKDIR /tmp
# Numeric, so Kubernetes' runAsNonRoot can verify it; the root filesystem can be read-only
# (bytecode was compiled at install time, /tmp is the only scratch space).
USER 10001:10001
# gRPC services listen on 50051, the gateway on 8000; every process serves metrics on 9464.
EXPOSE 50051 8000 9464
# exec: the service is PID 1 and gets SIGTERM itself (graceful shutdown).
ENTRYPOINT ["/bin/sh", "-c", "exec python -m \"zenops_${ZENOPS_SERVICE}\" \"$@\"", "zenops"]
CMD ["serve"]
