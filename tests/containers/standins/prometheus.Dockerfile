# Stand-in for prom/prometheus:v3.16.0: the same Prometheus release (Go module v0.316.0, built into .lab/tools
# by set-up) with the image's entrypoint and data dir, plus wget for the compose health check. Untested by it:
# the official image's build (its web UI assets are the module's), its user (nobody) and console templates.
FROM lab-standin/debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends wget && rm -rf /var/lib/apt/lists/*
COPY prometheus /bin/prometheus
RUN mkdir -p /prometheus
WORKDIR /prometheus
ENTRYPOINT ["/bin/prometheus"]
