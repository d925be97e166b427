# embcluster service image: gRPC on 50051, Prometheus metrics on 9464, data under /data.
# Not built or run in CI (no Docker engine there); tests/unit/test_deploy_files.py checks it statically.
#   docker build -t embcluster:0.1.0 .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    EMBCLUSTER_HOST=0.0.0.0 \
    EMBCLUSTER_PORT=50051 \
    EMBCLUSTER_METRICS_HOST=0.0.0.0 \
    EMBCLUSTER_METRICS_PORT=9464 \
    EMBCLUSTER_DATA_DIR=/data

# The CPU build of the pinned torch first, from PyTorch's CPU index: from PyPI, torch pulls
# gigabytes of CUDA libraries. `pip install .` below then finds torch==2.13.0 satisfied.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /app
COPY pyproject.toml README.md ./
COPY server ./server
COPY clients ./clients
RUN pip install . && python -c "import embcluster.pipeline, embcluster_client"

# Non-root; the data volume is the only place it writes.
RUN useradd --system --uid 10001 --create-home --home-dir /home/embcluster embcluster \
    && mkdir -p /data && chown embcluster:embcluster /data
USER embcluster
VOLUME ["/data"]
EXPOSE 50051 9464

# The standard gRPC health service (SERVING once the model is loaded and the port is open), on
# 127.0.0.1 and EMBCLUSTER_PORT.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["embcluster", "health"]

CMD ["embcluster", "serve"]
