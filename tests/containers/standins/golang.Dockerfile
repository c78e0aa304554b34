# Stand-in for golang:1.26.*-bookworm: this machine's Go toolchain (copied in by bases.sh) on Debian bookworm.
# Untested by it: nothing the SeaweedFS build depends on (the same Go release, CGO off).
FROM lab-standin/debian:bookworm
COPY certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
COPY go /usr/local/go
ENV PATH=/usr/local/go/bin:/go/bin:$PATH GOPATH=/go
CMD ["go", "version"]
