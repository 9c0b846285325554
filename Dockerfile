# The relay's one image: the edge (`uvicorn relay.app:app`) and the workers (`arq worker.main.WorkerSettings`).
# docker-compose.yml picks the command; no secret is baked in (RELAY_SECRET comes from the environment).

# Build a wheel first so that the runtime image holds the installed package only, not the source tree:
# with sources in the working directory, `relay` would be imported from there instead of site-packages.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY relay ./relay
COPY worker ./worker
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels

# A fixed uid, no login shell, no home to write to: the relay keeps its state in Redis.
RUN groupadd --system --gid 10001 relay \
    && useradd --system --uid 10001 --gid relay --no-create-home --shell /usr/sbin/nologin relay
# An empty working directory: no stray .env is read from it (settings come from the environment).
WORKDIR /srv/relay
USER 10001:10001

EXPOSE 3266
# The same flags as docker-compose.yml's edge command (README, "Security and limits").
CMD ["uvicorn", "relay.app:app", "--host", "0.0.0.0", "--port", "3266", \
     "--loop", "uvloop", "--http", "relay.edge.protocol:EdgeHttpProtocol", \
     "--limit-concurrency", "1000", "--timeout-keep-alive", "5", "--no-proxy-headers", "--no-server-header", \
     "--no-access-log"]
