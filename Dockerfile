# syntax=docker/dockerfile:1
# The deskgate gateway. Build from the repository root:   docker build -t deskgate .
# Run with a config whose listeners bind 0.0.0.0 and whose paths point into /var/lib/deskgate:
#   docker run -p 8443:8443 -v "$PWD/deskgate.yaml:/etc/deskgate/deskgate.yaml:ro" \
#              -v "$PWD/tls:/etc/deskgate/tls:ro" -v deskgate-data:/var/lib/deskgate deskgate
# (deploy/deskgate.yaml is such a config.) Before a new version's first start: deskgate db upgrade.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# python-ldap ships no wheel: it is compiled here against libldap and libsasl.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        nodejs npm gcc libc6-dev libldap2-dev libsasl2-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# The same noVNC copy as `make deps`: the web app serves it at /static/novnc/.
RUN novnc=gateway/web/static/novnc \
    && rm -rf "$novnc" && mkdir -p "$novnc/docs" \
    && cp -R node_modules/@novnc/novnc/core node_modules/@novnc/novnc/vendor \
             node_modules/@novnc/novnc/AUTHORS node_modules/@novnc/novnc/LICENSE.txt "$novnc/" \
    && cp node_modules/@novnc/novnc/docs/LICENSE.* "$novnc/docs/" \
    && python -m pip wheel --no-cache-dir --wheel-dir /dist .

FROM ${PYTHON_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libldap-2.5-0 libsasl2-2 \
        tesseract-ocr tesseract-ocr-jpn tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --uid 10001 --home-dir /var/lib/deskgate --shell /usr/sbin/nologin deskgate \
    && install -d -o deskgate -g deskgate -m 0750 /var/lib/deskgate \
    && install -d -m 0755 /etc/deskgate
COPY --from=build /dist/ /tmp/dist/
RUN python -m venv /opt/deskgate \
    && /opt/deskgate/bin/pip install --no-cache-dir --no-index --find-links /tmp/dist deskgate \
    && rm -rf /tmp/dist
ENV PATH=/opt/deskgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /var/lib/deskgate
# Numeric: Kubernetes' runAsNonRoot can check it.
USER 10001:10001
VOLUME ["/var/lib/deskgate"]
EXPOSE 8443 9108
# Asks listen.http of the config, over TLS when tls: is set (deskgate health).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["deskgate", "health", "--config", "/etc/deskgate/deskgate.yaml"]
# docker stop / Kubernetes send SIGTERM: the gateway drains for listen.drain_timeout (give the container longer).
STOPSIGNAL SIGTERM
ENTRYPOINT ["deskgate"]
CMD ["serve", "--config", "/etc/deskgate/deskgate.yaml"]
