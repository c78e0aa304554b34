# The one image of the lab's own processes: api, producer, jupyter, lab-init and the three Spark roles
# (spark-master, spark-worker, spark-job). They run the same entrypoints as embedded mode (`lab api`,
# `lab producer`, `lab provision`, `lab spark-job`, JupyterLab, and pyspark's bin/spark-class). One image, not a
# lab image and a Spark image: the pip layer (pyspark and the rest, 1.3 GB) is built and stored once.
# Not apache/spark: its images ship Python 3.10, the lab needs 3.11+. ffmpeg is the one in the imageio-ffmpeg
# wheel, as in embedded mode. Builds with the classic builder and with BuildKit (no BuildKit-only syntax).

# hls.js for the API's /player page, from the npm registry (embedded mode: lab.stack.tools.hlsjs()).
FROM node:22-bookworm-slim AS hlsjs
# keep in step with [tool.lab.versions] hlsjs in pyproject.toml (tests/unit/test_compose.py checks)
ARG HLSJS_VERSION=1.7.4
WORKDIR /hls
RUN npm pack "hls.js@${HLSJS_VERSION}" --silent && tar -xzf hls.js-*.tgz package/dist/hls.min.js

FROM python:3.11.14-slim-bookworm
ARG HLSJS_VERSION=1.7.4
# Java 17 for Spark (the daemons, the driver, lesson 03's SparkSession) and for Ivy at build time, at /opt/java
# whatever the architecture; nss_wrapper for deploy/lab-entrypoint.sh (a passwd entry for any uid).
# (the man dir works around the JRE's postinst on slim images)
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless libnss-wrapper \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/lib/jvm/java-17-openjdk-* /opt/java
# LAB_JAVA=system: the lab runs Kafka's and Spark's JVMs on this Java, not on a JDK wheel.
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LAB_MODE=containers LAB_HOST=0.0.0.0 LAB_TOOLS_DIR=/opt/lab-tools \
    LAB_JAVA=system JAVA_HOME=/opt/java
WORKDIR /app
# Dependencies first, from pyproject.toml alone: this layer (pyspark and the rest, 1.3 GB) is rebuilt only
# when pyproject.toml changes, not on every change of the code copied after it.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
      > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
# /var/lib/lab: state (checkpoints, lesson logs); /home/lab: HOME of the jupyter service, which runs as the
# host's uid (any uid, so both are world-writable with the sticky bit, like /tmp).
RUN useradd --uid 1000 --home-dir /home/lab lab \
    && mkdir -p /var/lib/lab /home/lab /opt/lab-tools && chmod 1777 /var/lib/lab /home/lab
COPY --from=hlsjs /hls/package/dist/hls.min.js /opt/lab-tools/hls.js-${HLSJS_VERSION}/hls.min.js
COPY README.md ./
COPY lab ./lab
# Editable on purpose: lab.config.ROOT is then /app, where the code finds pyproject.toml (the version pins),
# notebooks/ and data/, exactly as in a checkout.
RUN pip install --no-deps -e . && mkdir -p notebooks data .lab/state && chown -R lab /app
# The Kafka connector for the installed pyspark, fetched from Maven Central by the function embedded set-up
# uses (Ivy, shipped with pyspark); the jars pyspark already has are left out. LAB_MODE=embedded for this
# one step only: it needs no secrets. The jars are named in LAB_SPARK_JARS (lab/streaming/session.py). Ivy's
# download cache (140 MB: every jar it resolved, pyspark's own included) goes with the step.
RUN LAB_MODE=embedded python -c "from lab.stack.tools import fetch_spark_kafka_jars as f; print(*f(), sep='\n')" \
    && rm -rf /root/.ivy2*
# keep in step with pyspark in pyproject.toml (tests/unit/test_compose.py checks the version)
# The worker's work dir: Spark's default is inside site-packages/pyspark, which uid lab cannot write
# (AccessDeniedException .../pyspark/work seen at the first `make test-containers`).
ENV SPARK_WORKER_DIR=/var/lib/lab/spark-work
ENV LAB_SPARK_JARS=/opt/lab-tools/spark-sql-kafka-4.2.0/spark-sql-kafka-0-10_2.13-4.2.0.jar,/opt/lab-tools/spark-sql-kafka-4.2.0/spark-token-provider-kafka-0-10_2.13-4.2.0.jar,/opt/lab-tools/spark-sql-kafka-4.2.0/kafka-clients-3.9.2.jar,/opt/lab-tools/spark-sql-kafka-4.2.0/commons-pool2-2.13.1.jar
RUN for jar in $(echo "$LAB_SPARK_JARS" | tr ',' ' '); do \
      test -f "$jar" || { echo "LAB_SPARK_JARS names $jar, which the resolver did not fetch" >&2; exit 1; }; \
    done
COPY deploy/lab-entrypoint.sh /usr/local/bin/lab-entrypoint
RUN chmod 755 /usr/local/bin/lab-entrypoint
USER lab
ENTRYPOINT ["/usr/local/bin/lab-entrypoint"]
CMD ["lab", "--help"]
