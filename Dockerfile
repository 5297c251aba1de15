# One image for both services; the command chooses which one runs:
#   docker run IMAGE jwt-auth serve issuer   --bind 0.0.0.0:8001   (the default)
#   docker run IMAGE jwt-auth serve verifier --bind 0.0.0.0:8002
# docker-compose.yml builds it and wires redis, the dev keys, the issuer and the verifier.

# --- builder: the locked dependencies in a virtual environment, compiled where they must be ---
FROM python:3.11-slim AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# gunicorn-h1c (gunicorn's C parser) is on the registry only as a source archive: gcc builds it
# here, and only here; the image that runs has no compiler
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/jwt-auth
ENV PATH=/opt/jwt-auth/bin:$PATH

# Dependencies first, exactly as locked: requirements/runtime.txt, which scripts/lock makes from
# pyproject.toml's dependencies, names every version and the hashes of its files (the source
# archive's, for what is built here), and pip refuses anything else. A layer of its own, so that
# a code change does not reinstall them.
COPY requirements/runtime.txt requirements/build.txt /tmp/
RUN pip install --no-compile --require-hashes -r /tmp/runtime.txt \
    && pip install --no-compile --require-hashes -r /tmp/build.txt \
    && rm /tmp/runtime.txt /tmp/build.txt

# Then the project itself, installed (not run from the source folder), without dependencies:
# the layer above has them all.
COPY pyproject.toml README.md /src/
COPY shared /src/shared
COPY issuer /src/issuer
COPY verifier /src/verifier
COPY jwt_auth /src/jwt_auth
RUN pip install --no-compile --no-deps --no-build-isolation /src

# --- the image that runs: the same base, the virtual environment, no compiler ---------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/jwt-auth/bin:$PATH

COPY --from=builder /opt/jwt-auth /opt/jwt-auth

WORKDIR /app

# A fixed, numeric non-root user (so runAsNonRoot-style checks can verify it). The /secrets
# folders exist in the image owned by that user because Docker copies a mount point's owner into
# a new named volume: the compose volumes are then writable by the dev-keys job.
RUN groupadd --system --gid 10001 jwtauth \
    && useradd --system --uid 10001 --gid jwtauth --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin jwtauth \
    && mkdir -p /secrets/issuer /secrets/verifier /secrets/dev \
    && chown -R 10001:10001 /secrets \
    && chmod -R 0700 /secrets
USER 10001:10001

EXPOSE 8001 8002

# No curl in the slim image: the check is python's urllib (jwt_auth/healthcheck.py). Set
# JWT_AUTH_HEALTHCHECK_URL=http://127.0.0.1:8002/healthz when the container runs the verifier.
ENV JWT_AUTH_HEALTHCHECK_URL=http://127.0.0.1:8001/healthz
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "jwt_auth.healthcheck"]

CMD ["jwt-auth", "serve", "issuer", "--bind", "0.0.0.0:8001"]
