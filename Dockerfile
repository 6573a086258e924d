# One image for every service; the command's --target picks which run in the container.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install .
EXPOSE 8000
CMD ["python", "-m", "services", "--target", "all", "--host", "0.0.0.0", "--port", "8000"]
