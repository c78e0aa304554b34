#!/bin/bash
# The stand-in Kafka's entrypoint (standins/kafka.Dockerfile): KAFKA_* -> server.properties as apache/kafka
# maps them (_ -> ., __ -> _, ___ -> -), the JVM variables left out; format once; run the broker in the foreground.
set -euo pipefail
conf=/opt/kafka/config/server.properties
: > "$conf"
while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_HEAP_OPTS|KAFKA_OPTS|KAFKA_JVM_PERFORMANCE_OPTS|KAFKA_LOG4J_OPTS|KAFKA_GC_LOG_OPTS) ;;
    KAFKA_*) key="${name#KAFKA_}"; key="${key,,}"; key="${key//___/-}"; key="${key//__/@}"; key="${key//_/.}"
             echo "${key//@/_}=$value" >> "$conf" ;;
  esac
done < <(env)
cat > /opt/kafka/config/log4j2.properties <<'LOG'
appender.console.type=Console
appender.console.name=STDOUT
appender.console.layout.type=PatternLayout
appender.console.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.stdout.ref=STDOUT
logger.kafka.name=kafka
logger.kafka.level=WARN
LOG
java=(java -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties -cp '/opt/kafka/libs/*')
"${java[@]}" -Xmx128m kafka.tools.StorageTool format --cluster-id "${CLUSTER_ID:?}" --config "$conf" --ignore-formatted
# shellcheck disable=SC2086  # KAFKA_HEAP_OPTS is a list of JVM options
exec "${java[@]}" ${KAFKA_HEAP_OPTS:-} kafka.Kafka "$conf"
