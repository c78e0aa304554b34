# The lab image: the `lab` package and every Python dependency, for api, producer, jupyter and lab-init.
# It runs the same entrypoints as embedded mode (`lab api`, `lab producer`, `lab provision`, JupyterLab).
# ffmpeg is the one in the imageio-ffmpeg wheel, as in embedded mode: no apt step.

# hls.js for the API's /player page, from the npm registry (embedded mode: lab.stack.tools.hlsjs()).
FROM node:22-bookworm-slim AS hlsjs
# keep in step with [tool.lab.versions] hlsjs in pyproject.toml (tests/unit/test_compose.py checks)
ARG HLSJS_VERSION=1.7.4
WORKDIR /hls
RUN npm pack "hls.js@${HLSJS_VERSION}" --silent && tar -xzf hls.js-*.tgz package/dist/hls.min.js

FROM python:3.11.14-slim-bookworm
ARG HLSJS_VERSION=1.7.4
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LAB_MODE=containers LAB_HOST=0.0.0.0
WORKDIR /app
# Dependencies first, from pyproject.toml alone: this layer (pyspark and the rest, about 1 GB) is rebuilt only
# when pyproject.toml changes, not on every change of the code copied after it.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
      > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY README.md ./
COPY lab ./lab
# Editable on purpose: lab.config.ROOT is then /app, where the code finds pyproject.toml (the version pins),
# notebooks/, data/ and .lab/tools/, exactly as in a checkout.
RUN pip install --no-deps -e . \
    && useradd --create-home --uid 1000 lab \
    && mkdir -p notebooks data .lab/state /var/lib/lab \
    && chown -R lab /app /var/lib/lab
COPY --from=hlsjs --chown=lab /hls/package/dist/hls.min.js .lab/tools/hls.js-${HLSJS_VERSION}/hls.min.js
USER lab
CMD ["lab", "--help"]
