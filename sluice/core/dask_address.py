"""The address of a Dask scheduler, checked by its form alone (no connection is made)."""

from __future__ import annotations

import ipaddress
import re

SCHEMES = ("tcp", "tls", "ws", "wss")
ADDRESS_FORM = "[tcp|tls|ws|wss://]HOST:PORT, e.g. tcp://scheduler:8786"
_HOST = r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252}))"
_ADDRESS = re.compile(rf"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?{_HOST}:(?P<port>[0-9]{{1,5}})")


def dask_address(text: str) -> str:
    """``text`` as a scheduler address ``scheme://host:port`` (``tcp://`` when no scheme is
    given). Raises ValueError naming what is allowed when it is not of that form."""
    value = text.strip()
    match = _ADDRESS.fullmatch(value)
    if match is None:
        raise ValueError(f"{text!r} is not a Dask scheduler address ({ADDRESS_FORM})")
    scheme = (match.group("scheme") or "tcp").lower()
    if scheme not in SCHEMES:
        raise ValueError(
            f"{text!r}: scheme {scheme!r} is not one sluice connects to ({', '.join(SCHEMES)})"
        )
    port = int(match.group("port"))
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} is not between 1 and 65535")
    return f"{scheme}://{match.group('host')}:{port}"


def is_loopback(address: str) -> bool:
    """Whether a checked address (:func:`dask_address`) names this machine (localhost, 127.0.0.0/8
    or ::1)."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
