# Stand-in for alpine:3.22: Debian bookworm with wget (the s3 health check) and a POSIX sh (dash, not busybox).
# Untested by it: musl and busybox; the SeaweedFS binary is static (CGO off), so it runs on either.
FROM lab-standin/debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends wget && rm -rf /var/lib/apt/lists/*
CMD ["/bin/sh"]
