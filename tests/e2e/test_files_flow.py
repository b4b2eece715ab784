"""Documents on the local storage driver through Envoy, as `make run` serves them: presign an
upload, PUT the bytes to the signed URL (no bearer token; larger than the API's 1 MiB body cap:
the file route streams), confirm (size and SHA-256 checked), presign a download and GET the
bytes back. A declared length over the 25 MiB upload limit is refused by Envoy itself."""

from __future__ import annotations

import hashlib
import socket
import uuid
from urllib.parse import urlsplit

import httpx

MiB = 1024 * 1024


def login(suite) -> str:
    email, password = suite.admin_credentials
    r = httpx.post(f"{suite.url}/v1/auth/login", json={"email": email, "password": password, "aud": "web"})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_document_round_trip_through_envoy(suite):
    api = httpx.Client(base_url=suite.url, headers={"Authorization": f"Bearer {login(suite)}"}, timeout=60)
    assignment = api.post("/v1/assignments", json={"source_type": "direct", "borrower_name": "Meera Joshi"})
    assert assignment.status_code == 201, assignment.text
    data = b"%PDF-1.7\n" + bytes((i * 31 + 7) % 256 for i in range(3 * MiB))
    presign = api.post(
        "/v1/documents/presign-upload",
        json={
            "filename": "approval-plan.pdf",
            "content_type": "application/pdf",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "classification": "approval_plan",
            "source": "desktop_upload",
            "assignment_id": assignment.json()["id"],
        },
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert presign.status_code == 201, presign.text
    upload = presign.json()
    assert upload["upload_url"].startswith("/v1/files/")

    anonymous = httpx.Client(base_url=suite.url, timeout=60)  # the signed URL is the authorisation
    put = anonymous.put(upload["upload_url"], content=data, headers=upload["upload_headers"])
    assert put.status_code == 200, put.text
    assert put.json() == {"size_bytes": len(data)}
    confirmed = api.post(f"/v1/documents/{upload['document_id']}/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "uploaded", confirmed.text

    url = api.get(f"/v1/documents/{upload['document_id']}/download").json()["url"]
    got = anonymous.get(url)
    assert got.status_code == 200, got.text
    assert got.content == data
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"] == 'attachment; filename="approval-plan.pdf"'

    # a tampered grant is refused (problem+json), a spent upload URL too
    bad = anonymous.get(url[:-2] + ("AA" if not url.endswith("AA") else "BB"))
    assert bad.status_code == 401 and bad.headers["content-type"].startswith("application/problem+json")
    # (ten times: ops refuses at the first message while the body is still streaming; its
    # refusal must arrive as itself, never as grpc's "Internal error from Core")
    assert [anonymous.put(upload["upload_url"], content=data).status_code for _ in range(10)] == [409] * 10


def test_envoy_refuses_a_declared_upload_over_the_limit(suite):
    # Answered from the headers: the client never has to send the 25 MiB.
    parts = urlsplit(suite.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            b"PUT /v1/files/any.token HTTP/1.1\r\nHost: zenops\r\n" + f"Content-Length: {25 * MiB + 1}\r\n\r\n".encode()
        )
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    assert received.split(b"\r\n", 1)[0].startswith(b"HTTP/1.1 413"), received[:200]
