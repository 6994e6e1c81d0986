"""The HTTP API (FastAPI): telemetry ingest, consultation, actions."""
