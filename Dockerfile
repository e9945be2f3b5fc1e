# One image for every Python process of the exchange (services, the topics one-shot and the
# `python -m exchange` command line, which takes the stack by flags or environment here);
# docker-compose.yml picks the module with `command: ["python", "-m", ...]`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
COPY exchange ./exchange
RUN pip install . \
    && useradd --system --no-create-home exchange
USER exchange

CMD ["python", "-m", "libs.topics", "list"]
