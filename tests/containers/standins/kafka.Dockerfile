# Stand-in for apache/kafka:4.3.1: the same Kafka 4.3.1 broker jars (from Maven Central, as embedded set-up
# fetches them into .lab/tools) on Debian's Java 17, started by kafka-start.sh, which maps the KAFKA_* variables
# docker-compose.yml sets to server.properties the way the official image does (KAFKA_FOO_BAR -> foo.bar) and
# formats the log dir with CLUSTER_ID once. Untested by it: the official image's own start scripts and its JVM
# (GraalVM native / Temurin), and variables the compose file does not set.
FROM lab-standin/debian:bookworm
RUN mkdir -p /usr/share/man/man1 && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless && rm -rf /var/lib/apt/lists/*
COPY libs/ /opt/kafka/libs/
COPY kafka-start.sh /usr/local/bin/kafka-start
RUN chmod 755 /usr/local/bin/kafka-start && mkdir -p /opt/kafka/config /var/lib/kafka/data
ENTRYPOINT ["/usr/local/bin/kafka-start"]
