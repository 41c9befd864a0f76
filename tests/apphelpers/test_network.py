"""``selfsup.apphelpers.network``: which hosts get no clear-text warning."""

from __future__ import annotations

import pytest

from selfsup.apphelpers.network import is_loopback


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.1.2.3", "::1"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "example.org", "", "localhost."])
def test_other_hosts(host: str) -> None:
    assert not is_loopback(host)
