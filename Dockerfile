# Shipboard: one image for every role (collector, api, aggregator, dashboards) and the relay.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    SHIPBOARD_DATA_DIR=/data SHIPBOARD_HTTP_HOST=0.0.0.0 SHIPBOARD_INGEST_HOST=0.0.0.0

WORKDIR /src
COPY pyproject.toml README.md ./
COPY shipboard shipboard
COPY collector collector
COPY aggregator aggregator
COPY storage storage
COPY annotations annotations
COPY dashboards dashboards
RUN pip install . \
    && useradd --system --home-dir /data --create-home shipboard

USER shipboard
WORKDIR /data
VOLUME /data
EXPOSE 8080 8125/udp 8125/tcp 2003 8050
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"
ENTRYPOINT ["shipboard"]
CMD ["run"]
