# One image for the web app and the worker (different commands; see docker-compose.yml).
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/sdilab
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY seed ./seed
# llama-cpp-python compiles here once, at build time; nothing downloads at run time.
RUN pip install --no-cache-dir -e .

ENV SDILAB_DATA_DIR=/data \
    PYTHONUNBUFFERED=1
RUN useradd --system --home /srv/sdilab sdilab && mkdir -p /data && chown sdilab /data
USER sdilab
EXPOSE 8000
CMD ["sdilab", "serve", "--host", "0.0.0.0", "--port", "8000"]
