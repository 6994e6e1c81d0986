# One image for every Python service (upgrade, api, scheduler, simulator, dashboard);
# docker-compose.yml picks the command. The commands are the entry points the tests run.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN useradd --create-home --uid 10001 app && chown -R app /app
USER app

EXPOSE 8000 8501
CMD ["uvicorn", "ingest.main:app", "--host", "0.0.0.0", "--port", "8000"]
