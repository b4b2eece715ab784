"""The kit's file storage (zenops_kit.storage), its local driver on a real directory: the
service's own writes (whole or nothing, size and SHA-256 answered), reads, deletes, the key
shape, and signed grants bound to their URL prefix. The S3 driver is exercised against a real
S3 wire-protocol server by ops' and repogen's tests."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime

import pytest

from zenops_kit.errors import NotFound, Unauthenticated
from zenops_kit.storage import CHUNK_BYTES, StoredObject, build_storage, is_storage_key, storage_key
from zenops_kit.storage.local import GET, PUT, Grant, GrantSigner, LocalStorage
from zenops_kit.storage.settings import StorageSettings

TENANT = "0f1e2d3c-4b5a-4968-8776-655443322110"
OWNER = "1b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9"
KEY = f"tenant/{TENANT}/2025/03/{OWNER}/3-docx.docx"


def local(tmp_path, prefix: str = "/v1/artifact-files/") -> LocalStorage:
    return LocalStorage(tmp_path, b"test-signing-key", url_prefix=prefix)


def test_storage_keys():
    assert storage_key(TENANT, OWNER, datetime(2025, 3, 9, tzinfo=UTC), "3-docx.docx") == KEY
    assert is_storage_key(KEY)
    for bad in (
        f"tenant/{TENANT}/2025/03/{OWNER}/.hidden",
        f"tenant/{TENANT}/2025/03/{OWNER}/a/b",
        f"tenant/{TENANT}/2025/3/{OWNER}/x.pdf",
        "../etc/passwd",
        KEY + "\n",
    ):
        assert not is_storage_key(bad), bad
    with pytest.raises(ValueError):
        storage_key(TENANT, OWNER, datetime(2025, 3, 9, tzinfo=UTC), "../x")


async def test_put_stat_read_delete(tmp_path):
    storage = local(tmp_path)
    data = bytes(range(256)) * (CHUNK_BYTES // 128)  # two chunks and more
    stat = await storage.put(KEY, data, content_type="application/octet-stream")
    assert (stat.size_bytes, stat.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert await storage.stat(KEY) == stat
    assert [p.name for p in (tmp_path / KEY).parent.iterdir()] == ["3-docx.docx"]  # no temporary file left
    async with storage.reader(KEY) as reader:
        assert reader.size_bytes == len(data)
        assert b"".join([chunk async for chunk in reader.chunks()]) == data
    again = await storage.put(KEY, b"second", content_type="text/plain")  # a retry replaces its own object
    assert again.size_bytes == 6 and (tmp_path / KEY).read_bytes() == b"second"
    await storage.delete(KEY)
    await storage.delete(KEY)
    assert await storage.stat(KEY) is None
    with pytest.raises(NotFound):
        async with storage.reader(KEY):
            pass
    with pytest.raises(ValueError):
        await storage.put("not/a/key", b"x", content_type="text/plain")


async def test_grants_are_bound_to_their_prefix_purpose_and_time(tmp_path):
    artifacts, documents = local(tmp_path), local(tmp_path, "/v1/files/")
    obj = StoredObject(
        key=KEY,
        tenant_id=TENANT,
        object_id=OWNER,
        filename="report.docx",
        content_type="application/pdf",
        size_bytes=5,
        sha256="00" * 32,
    )
    signed = await artifacts.presign_download(obj, 60)
    assert signed.url.startswith("/v1/artifact-files/") and signed.method == "GET"
    token = signed.url.removeprefix("/v1/artifact-files/")
    grant = artifacts.grant(token, GET)
    assert (grant.key, grant.object_id, grant.filename) == (KEY, OWNER, "report.docx")
    # Another service's route (same key, other prefix) and another purpose refuse it.
    for refuse in (lambda: documents.grant(token, GET), lambda: artifacts.grant(token, PUT)):
        with pytest.raises(Unauthenticated) as err:
            refuse()
        assert err.value.reason == "SIGNED_URL_INVALID"
    signer = GrantSigner(b"test-signing-key", "/v1/artifact-files/")
    expired = signer.sign(Grant(**{**vars(grant), "expires_at": int(time.time()) - 1}))
    with pytest.raises(Unauthenticated) as err:
        artifacts.grant(expired, GET)
    assert err.value.reason == "SIGNED_URL_EXPIRED"
    with pytest.raises(ValueError):
        GrantSigner(b"key", "v1/no-slashes")


def test_the_settings_choose_the_driver(tmp_path):
    settings = StorageSettings(storage_dir=str(tmp_path))
    storage = build_storage(settings, url_prefix="/v1/files/")
    assert storage.driver == "local" and isinstance(storage, LocalStorage)
    assert (
        build_storage(
            StorageSettings(storage_driver="s3", s3_endpoint_url="http://127.0.0.1:9"), url_prefix="/v1/files/"
        ).driver
        == "s3"
    )
