# One image for both services; the command chooses which one runs:
#   docker run IMAGE jwt-auth serve issuer   --bind 0.0.0.0:8001   (the default)
#   docker run IMAGE jwt-auth serve verifier --bind 0.0.0.0:8002
# docker-compose.yml builds it and wires redis, the dev keys, the issuer and the verifier.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Dependencies first, read from pyproject.toml itself (no second list to keep in step), in a
# layer of their own so that a code change does not reinstall them.
COPY pyproject.toml /src/
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --no-compile -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself, installed (not run from the source folder, which is removed).
COPY README.md /src/
COPY shared /src/shared
COPY issuer /src/issuer
COPY verifier /src/verifier
COPY jwt_auth /src/jwt_auth
RUN pip install --no-compile --no-deps /src \
    && rm -rf /src

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
