"""Where the dashboard listens: ``--dashboard [HOST:]PORT``, loopback unless a token is set.

>>> Address.parse("8050")
Address(host='127.0.0.1', port=8050)
>>> Address.parse("0.0.0.0:8050").loopback, Address.parse("[::1]:0").loopback
(False, True)
>>> Address.parse("localhost:99999")
Traceback (most recent call last):
...
ValueError: '99999' is not a port number (0 to 65535; 0 picks a free one)
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["Address", "TOKEN_ENV", "DEFAULT_HOST"]

TOKEN_ENV = "MONITOR_DASHBOARD_TOKEN"
DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Address:
    """A host and port to listen on (port 0: any free port)."""

    host: str = DEFAULT_HOST
    port: int = 0

    @classmethod
    def parse(cls, text: str) -> "Address":
        """'PORT', 'HOST:PORT' or '[IPv6]:PORT'; ValueError with a one-line reason otherwise."""
        text = str(text).strip()
        host, sep, port = text.rpartition(":")
        if not sep:
            host = DEFAULT_HOST
        elif host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            raise ValueError(f"{text!r}: write an IPv6 address in brackets, like [::1]:8050")
        if not host:
            raise ValueError(f"{text!r}: no host before the ':' (give PORT or HOST:PORT)")
        if not port.isdigit() or int(port) > 65535:
            raise ValueError(f"{port!r} is not a port number (0 to 65535; 0 picks a free one)")
        return cls(host=host, port=int(port))

    @property
    def loopback(self) -> bool:
        """True for 127.0.0.0/8, ::1 and localhost: reachable from this machine only."""
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name: it may resolve to anything
            return False

    def check_token(self, token: str | None) -> None:
        """ValueError when a non-loopback address has no token to require."""
        if not self.loopback and not token:
            raise ValueError(f"{self.host} is not a loopback address: set {TOKEN_ENV} to a secret that every "
                             f"request must carry, or listen on 127.0.0.1")
