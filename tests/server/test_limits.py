"""Request size limits are enforced before authentication and before the body is read.

The checks talk raw HTTP over a socket to a real uvicorn: the client sends only the headers
of a huge request and then waits. An answer that comes back at once proves the server never
waited for (nor stored) the body.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from selfsup.server.testing import LiveServer, ServerHarness

UPLOAD = "/v1/workers/{worker}/runs/{run}/artifacts"


def _raw(url: str, head: str, body_parts: Iterable[bytes] = ()) -> tuple[int, str]:
    """Send ``head`` (request line and headers), then ``body_parts`` while the server reads;
    return the status and body of the answer. Times out (fails) if the server waits for
    more body than was sent."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode("latin-1"))
        for part in body_parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and closed: that is what we test for
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head_bytes, _, rest = data.partition(b"\r\n\r\n")
        status = int(head_bytes.split(b" ", 2)[1])
        length = 0
        for line in head_bytes.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, rest.decode("utf-8", "replace")


def _head(
    method: str, path: str, length: int | None, extra: str = "", chunked: bool = False
) -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    if extra:
        lines.append(extra)
    return "\r\n".join(lines) + "\r\n\r\n"


@pytest.fixture
def live(make_server: Callable[..., ServerHarness]) -> Iterator[tuple[ServerHarness, str]]:
    server = make_server(max_body_bytes=64 * 1024, max_upload_bytes=1024 * 1024)
    with LiveServer(server.app) as running:
        yield server, running.url


def test_a_huge_json_body_without_a_token_is_413_before_it_is_read(
    live: tuple[ServerHarness, str],
) -> None:
    _server, url = live
    # 50 MB announced, nothing sent: a server that read first would wait (socket timeout).
    status, body = _raw(url, _head("POST", "/v1/datasets", 50 * 1024**2))
    assert status == 413, body
    assert "65536" in body
    assert "Content-Length" in body


def test_a_huge_chunked_body_is_cut_off_at_the_limit(live: tuple[ServerHarness, str]) -> None:
    server, url = live
    token = server.token("alice")
    chunk = b"x" * 16384
    sent: list[int] = []

    def parts() -> Iterator[bytes]:
        for _ in range(10_000):  # up to 160 MB, far beyond the 64 KiB limit
            sent.append(len(chunk))
            yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"

    head = _head("POST", "/v1/datasets", None, f"Authorization: Bearer {token}", chunked=True)
    status, body = _raw(url, head, parts())
    assert status == 413, body
    assert "65536" in body
    assert sum(sent) < 50 * 1024**2  # the server stopped us long before the end


def test_an_upload_without_a_valid_token_is_401_before_it_is_read(
    live: tuple[ServerHarness, str],
) -> None:
    _server, url = live
    path = UPLOAD.format(worker="a" * 24, run="b" * 24)
    for auth in ("", "Authorization: Bearer selfsup_0123456789ab_nope", "Authorization: Basic x"):
        head = _head("POST", path, 100 * 1024**2, auth).replace(
            "application/json", "multipart/form-data; boundary=xyz"
        )
        status, body = _raw(url, head)
        assert status == 401, (auth, body)
        assert "token" in body


def test_an_upload_over_the_limit_is_413_before_it_is_read(
    live: tuple[ServerHarness, str],
) -> None:
    server, url = live
    token = server.token("alice")
    path = UPLOAD.format(worker="a" * 24, run="b" * 24)
    head = _head("POST", path, 100 * 1024**2, f"Authorization: Bearer {token}").replace(
        "application/json", "multipart/form-data; boundary=xyz"
    )
    status, body = _raw(url, head)
    assert status == 413, body
    assert "upload" in body


def test_bodies_within_the_limits_still_work(
    make_server: Callable[..., ServerHarness], make_actor: Callable[..., Any]
) -> None:
    server = make_server(max_body_bytes=64 * 1024, max_upload_bytes=1024 * 1024)
    alice = make_actor("alice", on=server)
    alice.schedule(alice.ready_dataset())
    worker_id = alice.worker()
    claim = alice.claim(worker_id)
    assert claim is not None
    url = f"{alice.run_path(worker_id, claim['run']['id'])}/artifacts"
    r = server.http.post(
        url, files={"file": ("a.bin", b"x" * 500_000)}, data={"type": "OTHER"}, headers=alice.h
    )
    assert r.status_code == 201, r.text
    r = server.http.post("/v1/datasets", json={"name": "n" * 100}, headers=alice.h)
    assert r.status_code == 201, r.text


def test_limits_are_checked_when_the_settings_are_made(tmp_path: Any) -> None:
    from selfsup.server.settings import ServerSettings

    with pytest.raises(ValueError, match="max_body_bytes"):
        ServerSettings(database_url="sqlite:///x.db", data_dir=tmp_path, max_body_bytes=0)
