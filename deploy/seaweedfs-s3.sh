#!/bin/sh
# The entrypoint of the S3 server's image (deploy/seaweedfs.Dockerfile). The S3 identity is written at start from
# S3_ACCESS_KEY / S3_SECRET_KEY (from .env through compose), so no credential is baked into the image.
set -eu
: "${S3_ACCESS_KEY:?S3_ACCESS_KEY is not set}" "${S3_SECRET_KEY:?S3_SECRET_KEY is not set}"
esc() { printf '%s' "$1" | sed 's/[\\"]/\\&/g'; }
mkdir -p /data/etc
cat > /data/etc/s3.json <<JSON
{"identities": [{"name": "lab",
  "credentials": [{"accessKey": "$(esc "$S3_ACCESS_KEY")", "secretKey": "$(esc "$S3_SECRET_KEY")"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
# The master, volume server and filer serve every object without S3 auth: they listen on this container's
# loopback only (-ip, -ip.bind), where the S3 gateway in the same process reaches them. Only the S3 gateway
# (-s3.ip.bind) and the metrics (-metricsIp) listen on the network.
exec weed server -dir=/data -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.ip.bind=0.0.0.0 -metricsIp=0.0.0.0 \
  -master.port=9333 -master.volumeSizeLimitMB=256 -master.telemetry=false \
  -volume.port=8080 -volume.max=0 -filer -filer.port=8888 \
  -s3 -s3.port=8333 -s3.config=/data/etc/s3.json -s3.port.iceberg=0 -s3.port.lance=0 \
  -metricsPort=9327 "$@"
