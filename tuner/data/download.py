"""What a download of a torchvision dataset shares, for CIFAR-10 and the others: a socket
timeout, and the errors that mean "not there, or not readable"."""

from __future__ import annotations

import contextlib
import pickle
import socket
import tarfile
from collections.abc import Iterator

# urllib waits forever by default; behind a firewall that drops packets a download attempt
# would hang the CLI instead of failing with the "put the files there" message.
DOWNLOAD_TIMEOUT_S = 30.0
# What torchvision raises for missing, corrupt or unreachable files (URLError is an OSError).
_CIFAR_FAILURES = (
    OSError,
    RuntimeError,
    ValueError,
    EOFError,
    pickle.UnpicklingError,
    tarfile.TarError,
)


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
