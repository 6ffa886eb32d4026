# airgrid: one image for every service (`serve registry|telemetry|dispatch`), the migration Job
# (`db upgrade`) and the simulator (`sim`). Multi-stage: dependencies are built in `build`;
# `runtime` carries the virtualenv and the source only, and runs as uid 10001 (non-root) with
# a read-only root filesystem (write to /tmp, an emptyDir in deploy/k8s).
#   docker build -t ghcr.io/airgrid/airgrid:1.0.0 .
#   docker run --rm -p 8003:8003 -e AIRGRID_KAFKA_BOOTSTRAP=... -e AIRGRID_DATABASE_URL=... \
#     ghcr.io/airgrid/airgrid:1.0.0 serve dispatch

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY airgrid ./airgrid
COPY entrypoints ./entrypoints
COPY services ./services
COPY gateways ./gateways
# Install the dependencies through the project, then drop the installed copy of the project
# itself: the runtime imports the source tree (data files and migrations included).
RUN pip install . && pip uninstall --yes airgrid && python -m compileall -q /src

FROM python:3.11-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 airgrid \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin airgrid
COPY --from=build /opt/venv /opt/venv
COPY --from=build /src/airgrid /app/airgrid
COPY --from=build /src/entrypoints /app/entrypoints
COPY --from=build /src/services /app/services
COPY --from=build /src/gateways /app/gateways
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AIRGRID_HOST=0.0.0.0 \
    AIRGRID_STATE_DIR=/tmp/airgrid
WORKDIR /app
USER 10001:10001
EXPOSE 8001 8002 8003
ENTRYPOINT ["python", "-m", "entrypoints"]
CMD ["serve", "registry"]
