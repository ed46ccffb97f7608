# syntax=docker/dockerfile:1
# The nbmon sidecar. Build from the repository root: docker build -t nbmon:0.1.0 .
# Both stages use the same base image: the wheels built in the first must fit the interpreter of the second.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor/ monitor/
# nbmon's wheel and a wheel for every dependency of the sidecar (the daemon, proxy and fleet extras), so the final
# stage installs offline and never builds anything. With [proxy] in the config, publish its port too (8017).
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[daemon,proxy,fleet]"

FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 \
    PATH=/opt/nbmon/bin:$PATH \
    NBMON_CONFIG_FILE=/etc/nbmon/nbmon.toml \
    NBMON_LISTEN_HOST=0.0.0.0 \
    NBMON_STATE_FILE=/var/lib/nbmon/state.json \
    NO_PROXY=127.0.0.1,localhost,::1 \
    no_proxy=127.0.0.1,localhost,::1
# A venv without pip: the base image's pip installs into it from the build stage's wheels, which never land in a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/nbmon \
    && python -m pip --python /opt/nbmon/bin/python install --no-cache-dir --no-index --find-links=/wheels "nbmon[daemon,proxy,fleet]" \
    && useradd --system --no-log-init --uid 10001 --user-group --home-dir /var/lib/nbmon --shell /usr/sbin/nologin nbmon \
    && mkdir -p /var/lib/nbmon \
    && chown nbmon:nbmon /var/lib/nbmon
COPY deploy/nbmon.toml /etc/nbmon/nbmon.toml
# Relative paths in a mounted config land on the state volume (the outbox is kept beside the state file anyway).
WORKDIR /var/lib/nbmon
USER 10001:10001
VOLUME ["/var/lib/nbmon"]
EXPOSE 8016
# No curl in a slim image: the venv's python asks /healthz and raises (exit 1) on a refused connection or non-2xx.
# No proxy: an HTTP(S)_PROXY set for Slack/PagerDuty egress must not capture a loopback probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('NBMON_LISTEN_PORT', '8016'), timeout=4)"]
ENTRYPOINT ["nbmon"]
CMD ["run"]
