# The Offsite image: one image, every process (`offsite worker`, `offsite ingest ...`, `offsite api`).
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg mosquitto-clients \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY offsite offsite
COPY streams streams
COPY ingest ingest
COPY detectors detectors
COPY geo geo
COPY storage storage
COPY api api
COPY web web
COPY bench bench
RUN pip install --no-cache-dir .
ENV OFFSITE_STATE_DIR=/var/lib/offsite
ENTRYPOINT ["offsite"]
