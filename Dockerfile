# One image for every driftline process (ingest, stream, trainer); compose.yaml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY driftline ./driftline
COPY schemas ./schemas
COPY stream ./stream
COPY consumers ./consumers
RUN pip install --no-cache-dir .
ENTRYPOINT ["driftline"]
