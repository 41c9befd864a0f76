"""Network addresses as ``selfsup serve`` and ``selfsup view`` see them."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address: listening there needs no warning
    about tokens crossing the network in clear text."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
