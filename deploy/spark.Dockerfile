# One image for the three Spark roles (spark-master, spark-worker, spark-job): Spark from the pinned pyspark
# wheel (its jars and bin/spark-class), Java 17, the lab package (executors run its transcode code), and the
# spark-sql-kafka connector jars baked in and named in LAB_SPARK_JARS (read by lab/streaming/session.py).
# Not apache/spark: its images ship Python 3.10, the lab needs 3.11+.
FROM python:3.11.14-slim-bookworm
# (the man dir works around the JRE's postinst on slim images)
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LAB_MODE=containers LAB_HOST=0.0.0.0 LAB_TOOLS_DIR=/opt/lab-tools
WORKDIR /app
# Dependencies first, from pyproject.toml alone: this layer (pyspark and the rest, about 1 GB) is rebuilt only
# when pyproject.toml changes, not on every change of the code copied after it.
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
      > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY README.md ./
COPY lab ./lab
# editable, as in the lab image: lab.config.ROOT is /app (pyproject.toml holds the version pins)
RUN pip install --no-deps -e .
# The connector for the installed pyspark, resolved from Maven Central by the same code embedded mode uses
# (Ivy, shipped with pyspark); the jars pyspark already has are left out. LAB_MODE=embedded for this one
# step only: it needs no secrets.
RUN LAB_MODE=embedded python -c "from lab.stack.tools import spark_kafka_jars; print(*spark_kafka_jars(), sep='\n')"
# keep in step with pyspark in pyproject.toml (tests/unit/test_compose.py checks the version)
ENV LAB_SPARK_JARS=/opt/lab-tools/spark-sql-kafka-4.2.0/spark-sql-kafka-0-10_2.13-4.2.0.jar,/opt/lab-tools/spark-sql-kafka-4.2.0/spark-token-provider-kafka-0-10_2.13-4.2.0.jar,/opt/lab-tools/spark-sql-kafka-4.2.0/kafka-clients-3.9.2.jar,/opt/lab-tools/spark-sql-kafka-4.2.0/commons-pool2-2.13.1.jar
RUN for jar in $(echo "$LAB_SPARK_JARS" | tr ',' ' '); do \
      test -f "$jar" || { echo "LAB_SPARK_JARS names $jar, which the resolver did not fetch" >&2; exit 1; }; \
    done
# /var/lib/lab: state (checkpoints, lesson logs); /home/lab: HOME of the jupyter service, which runs as the
# host's uid (any uid, so both are world-writable with the sticky bit, like /tmp).
RUN mkdir -p /var/lib/lab /home/lab && chmod 1777 /var/lib/lab /home/lab
CMD ["lab", "--help"]
