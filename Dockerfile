# The project's image: Ray, the tuner and its CLI. One image for the Ray head and every worker.
FROM python:3.11-slim

# libgomp: torch's CPU kernels; the CUDA libraries come with the torch wheel, and the NVIDIA
# container runtime mounts the driver.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/cnn-tuner
COPY pyproject.toml README.md ./
COPY tuner ./tuner
COPY search_spaces ./search_spaces
COPY analysis ./analysis
RUN pip install --no-cache-dir ".[postgres]"  # psycopg: --storage postgresql://...

# The shared volume: decoded datasets and experiment directories every node can reach
# (Ray Tune on several nodes needs a shared storage path).
ENV TUNER_DATA_DIR=/shared/data
WORKDIR /shared
