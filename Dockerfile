# The relay's one image: the edge (`uvicorn relay.app:app`) and the workers (`arq worker.main.WorkerSettings`).
# docker-compose.yml picks the command; no secret is baked in (RELAY_SECRET comes from the environment).

# The locked dependencies, in a layer of their own: it is rebuilt only when requirements/runtime.txt
# changes, so an edit to worker/tasks.py rebuilds in seconds and never reaches the package index.
FROM python:3.11-slim AS deps
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY requirements/runtime.txt /tmp/runtime.txt
RUN pip install --require-hashes --no-deps -r /tmp/runtime.txt && rm /tmp/runtime.txt

# A wheel of the relay alone, built with the locked setuptools (no build isolation, no index): the
# runtime image then holds the installed package only, not the source tree, from which `relay` would
# otherwise be imported instead of site-packages.
FROM deps AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY relay ./relay
COPY worker ./worker
RUN pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /wheels .

FROM deps
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A fixed uid, no login shell, no home to write to: the relay keeps its state in Redis.
RUN groupadd --system --gid 10001 relay \
    && useradd --system --uid 10001 --gid relay --no-create-home --shell /usr/sbin/nologin relay
COPY --from=build /wheels /wheels
RUN pip install --no-deps --no-index /wheels/*.whl && rm -rf /wheels
# An empty working directory: no stray .env is read from it (settings come from the environment).
WORKDIR /srv/relay
USER 10001:10001

EXPOSE 3266
# The edge's flags: the same in docker-compose.yml, relay/cli/devrun.py and docs/deploy.md (systemd).
CMD ["uvicorn", "relay.app:app", "--host", "0.0.0.0", "--port", "3266", \
     "--loop", "uvloop", "--http", "relay.edge.protocol:EdgeHttpProtocol", \
     "--limit-concurrency", "1000", "--timeout-keep-alive", "5", "--timeout-graceful-shutdown", "1", \
     "--no-proxy-headers", "--no-server-header", \
     "--no-access-log"]
