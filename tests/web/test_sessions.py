"""Session cookies: signed, expiring, tamper-evident; safe redirects after login."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfsup.web.sessions import SessionSigner, load_or_create_key, safe_next

KEY = b"k" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_issued_cookie_verifies_to_its_session_id() -> None:
    signer = SessionSigner(KEY, max_age_s=60, clock=Clock())
    assert signer.verify(signer.issue("3f2a9c01b7de")) == "3f2a9c01b7de"


def test_cookie_expires_after_max_age() -> None:
    clock = Clock()
    signer = SessionSigner(KEY, max_age_s=60, clock=clock)
    value = signer.issue("abc")
    clock.now += 59
    assert signer.verify(value) == "abc"
    clock.now += 2
    assert signer.verify(value) is None


def test_cookie_of_another_key_is_refused() -> None:
    value = SessionSigner(b"a" * 32).issue("abc")
    assert SessionSigner(b"b" * 32).verify(value) is None


@given(st.integers(min_value=0, max_value=200), st.characters(min_codepoint=33, max_codepoint=126))
def test_any_single_character_change_is_refused(position: int, char: str) -> None:
    signer = SessionSigner(KEY, clock=Clock())
    value = signer.issue("3f2a9c01b7de")
    i = position % len(value)
    tampered = value[:i] + char + value[i + 1 :]
    if tampered != value:
        assert signer.verify(tampered) is None


def test_extending_the_expiry_breaks_the_signature() -> None:
    signer = SessionSigner(KEY, max_age_s=60, clock=Clock())
    session_id, expiry, signature = signer.issue("abc").split(".")
    assert signer.verify(f"{session_id}.{int(expiry) + 10**6}.{signature}") is None


@pytest.mark.parametrize("value", [None, "", ".", "..", "a.b.c", "x" * 600])
def test_malformed_cookies_are_refused(value: str | None) -> None:
    assert SessionSigner(KEY).verify(value) is None


@pytest.mark.parametrize("bad", ["", "a.b", "a b", "é"])
def test_session_ids_that_would_break_the_format_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="session id"):
        SessionSigner(KEY).issue(bad)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        SessionSigner(b"short")


def test_key_file_is_created_private_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Private from creation: no chmod after the write, during which others could read it.
    def no_chmod(*args: object, **kwargs: object) -> None:
        raise AssertionError("the key file must be created 0600, not chmod-ed afterwards")

    monkeypatch.setattr(os, "chmod", no_chmod)
    old = os.umask(0o022)
    try:
        path = tmp_path / "data" / "web_session.key"
        key = load_or_create_key(path)
    finally:
        os.umask(old)
    assert len(key) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_key(path) == key


@pytest.mark.parametrize(
    ("given_next", "expected"),
    [
        ("/runs/abc?status=selected", "/runs/abc?status=selected"),
        (None, "/"),
        ("", "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
    ],
)
def test_next_after_login_stays_on_this_site(given_next: str | None, expected: str) -> None:
    assert safe_next(given_next) == expected
