# Stand-in for python:3.11.*-slim-bookworm: Debian bookworm's Python 3.11 (3.11.2, not the image's 3.11.14) in a
# venv first on PATH, so `python` and `pip` are what the official image gives. Untested by it: the official
# image's own CPython build (patch release, compile options).
FROM lab-standin/debian:bookworm
COPY certs/ /usr/local/share/ca-certificates/
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && update-ca-certificates && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /usr/local/python && /usr/local/python/bin/pip install -q --upgrade pip
# pip trusts this machine's CA certificates (its own certifi bundle does not have them)
ENV PATH=/usr/local/python/bin:$PATH PIP_CERT=/etc/ssl/certs/ca-certificates.crt LANG=C.UTF-8
CMD ["python3"]
