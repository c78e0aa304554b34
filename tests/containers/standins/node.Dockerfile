# Stand-in for node:22-bookworm-slim: Debian bookworm's Node.js 18 and npm 9. The lab image uses it only to
# `npm pack` hls.js. Untested by it: Node 22 itself.
FROM lab-standin/debian:bookworm
COPY certs/ /usr/local/share/ca-certificates/
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm \
    && update-ca-certificates && rm -rf /var/lib/apt/lists/*
# Node trusts its own bundled CA list only: this machine's CA certificates are added
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["node"]
