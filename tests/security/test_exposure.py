"""Only S3 auth leads to objects: SeaweedFS's own filer and volume HTTP interfaces refuse requests without
a token (lab/stack/services.py, security.toml), while the S3 gateway and presigned GETs keep working.
Requires the embedded S3 (SeaweedFS); the container stack's is set up by docker-compose.yml."""

from __future__ import annotations

import uuid

import httpx
import pytest

from lab import storage
from lab.config import settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]
H = settings.lab_host


@pytest.fixture(scope="module")
def stored() -> tuple[str, str]:
    """An object written through S3, large enough to live in volume chunks, not inline in the filer."""
    key = f"security-probe/{uuid.uuid4().hex}.ts"
    storage.put(settings.bucket_live, key, b"\x47" * 300_000, content_type="video/mp2t", cache_control="no-store")
    yield settings.bucket_live, key
    storage.delete_prefix(settings.bucket_live, key)


def test_s3_with_its_credential_and_presigned_urls_reach_the_object(stored):
    bucket, key = stored
    assert len(storage.get_bytes(bucket, key)) == 300_000
    assert httpx.get(storage.presigned_get(bucket, key, 60)).status_code == 200


@pytest.mark.parametrize("path", ["/buckets/{bucket}/{key}", "/buckets/{bucket}/{key}?metadata=true",
                                  "/buckets/{bucket}/", "/buckets/", "/"])
def test_the_filer_refuses_reads_and_listings_without_a_token(stored, path):
    bucket, key = stored
    resp = httpx.get(f"http://{H}:{settings.seaweed_filer_port}" + path.format(bucket=bucket, key=key))
    assert resp.status_code == 401, (path, resp.status_code, resp.text[:200])


def test_the_filer_refuses_writes_and_deletes_without_a_token(stored):
    bucket, key = stored
    base = f"http://{H}:{settings.seaweed_filer_port}/buckets/{bucket}"
    assert httpx.put(f"{base}/security-probe/evil.txt", content=b"evil").status_code == 401
    assert httpx.delete(f"{base}/{key}").status_code == 401
    assert len(storage.get_bytes(bucket, key)) == 300_000


def test_the_volume_server_refuses_reads_and_its_ui_without_a_token():
    """Without a read key the volume server answers 404 for a file id it does not hold; with one, it asks
    for the token first: 401 whatever the id, so file ids cannot even be probed."""
    base = f"http://{H}:{settings.seaweed_volume_port}"
    for path in ("/1,0100000000", "/3,01637037d6", "/ui/index.html"):
        assert httpx.get(base + path).status_code == 401, path


def test_the_volume_server_refuses_writes_with_an_id_from_the_master():
    """The master hands out file ids to anyone on lab_host, but no token: the volume server refuses the write."""
    assign = httpx.get(f"http://{H}:{settings.seaweed_master_port}/dir/assign").json()
    assert "auth" not in assign
    resp = httpx.post(f"http://{assign['url']}/{assign['fid']}", files={"file": ("x.txt", b"evil")})
    assert resp.status_code == 401
