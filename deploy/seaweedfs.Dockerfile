# The S3 server of the lab: the same pinned SeaweedFS embedded mode builds (lab/stack/tools.py), built with
# Go from the module proxy. `go install module@version` refuses it (its go.mod has replace directives), so the
# module is copied out of the module cache and built there, as tools.py does. Builds with the classic builder
# and with BuildKit: the entrypoint is a committed script (deploy/seaweedfs-s3.sh), not a Dockerfile heredoc.
FROM golang:1.26.8-bookworm AS build
# keep in step with [tool.lab.versions] seaweedfs in pyproject.toml (tests/unit/test_compose.py checks)
ARG SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6
WORKDIR /src
# The download and the build are two layers: the source and its modules stay cached when the build, or
# another image's build, fails or is cancelled (no BuildKit cache mount needed).
RUN dir="$(go mod download -json "github.com/seaweedfs/seaweedfs@${SEAWEEDFS_VERSION}" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" \
    && cp -r "$dir/." . && chmod -R u+w . && go mod download
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/weed ./weed

FROM alpine:3.22
COPY --from=build /out/weed /usr/local/bin/weed
# (the script's mode is set here: a checkout on Windows or with core.fileMode=false may not keep +x)
COPY deploy/seaweedfs-s3.sh /usr/local/bin/seaweedfs-s3
RUN chmod 755 /usr/local/bin/seaweedfs-s3
VOLUME /data
EXPOSE 8333 9327
ENTRYPOINT ["/usr/local/bin/seaweedfs-s3"]
