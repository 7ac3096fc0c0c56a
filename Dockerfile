# The dmlc runtime image (ghcr.io/dmlc/runtime:0.1): what Argo / KFP / TFJob / KServe pods run.
#   docker build -t ghcr.io/dmlc/runtime:0.1 .
#   docker build --build-arg EXTRA=gpu -t ghcr.io/dmlc/runtime:0.1-gpu .   # steps with `gpu` get this one
#   docker run --rm ghcr.io/dmlc/runtime:0.1 ingest --spec-json '{"attrs": {"dataset": "digits"}, "outputs_dir": "/tmp/out"}'
# Every step is `python -m dmlc.runtime KIND --spec SPEC.json` (or --spec-json TEXT), DESIGN §4.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # Keras 2 (tf_keras): Keras 3 breaks MultiWorkerMirroredStrategy
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    # a serve step in a pod listens on all interfaces (KServe probes the container port)
    DMLC_SERVE_HOST=0.0.0.0

WORKDIR /opt/dmlc
COPY pyproject.toml README.md ./
COPY grammar ./grammar
COPY dmlc ./dmlc
COPY targets ./targets
ARG EXTRA=ml
RUN pip install ".[${EXTRA}]" && rm -rf /root/.cache

# unprivileged user; HOME holds ~/.keras/datasets for the Keras loaders
RUN useradd --create-home --uid 1000 dmlc
USER 1000
WORKDIR /home/dmlc
EXPOSE 8080

ENTRYPOINT ["python", "-m", "dmlc.runtime"]
CMD ["--help"]
