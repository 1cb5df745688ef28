"""Safe-by-default serving: loopback bind unless asked explicitly, and optional login.

Kept apart from Gradio so `mmrag serve` can refuse a bad setting before loading anything.
"""

from __future__ import annotations

import ipaddress
import os

from mmrag.errors import ConfigError

AUTH_ENV = "MMRAG_AUTH"  # "user:password", read when --auth is not given


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach."""
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_bind(host: str, explicit: bool) -> str:
    """Return ``host`` if it is safe to bind; a non-loopback host needs an explicit ``--host``."""
    if is_loopback(host):
        return host
    if not explicit:
        raise ConfigError(
            f"refusing to serve on {host}: that address is reachable from other machines. "
            f"The app binds 127.0.0.1 by default; pass --host {host} explicitly if you mean to "
            "expose it (and consider --auth user:password)"
        )
    return host


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``"user:password"`` → ``(user, password)``; None or empty → no login."""
    if value is None or not value.strip():
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ConfigError("--auth / MMRAG_AUTH must be 'user:password' with both parts non-empty")
    return user, password


def resolve_auth(cli_value: str | None, environ: dict | None = None) -> tuple[str, str] | None:
    """The login to require: ``--auth`` first, else the ``MMRAG_AUTH`` environment variable."""
    env = os.environ if environ is None else environ
    return parse_auth(cli_value if cli_value else env.get(AUTH_ENV))
