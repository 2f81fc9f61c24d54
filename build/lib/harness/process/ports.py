"""TCP ports on 127.0.0.1: a free one for each server, or a clear error when a named one is taken."""

from __future__ import annotations

import socket

from harness.errors import SetupError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_free(port: int, purpose: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise SetupError(
                f"Port {port} on 127.0.0.1, asked for the {purpose}, is already in use ({exc.strerror}).",
                f"Stop what listens there (`ss -ltnp 'sport = :{port}'` shows it) or choose another port; "
                "without a port option the harness picks a free one.") from None
    return port
