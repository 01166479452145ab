"""Client certificates from the webhook settings, as the files TLS needs.

The settings carry a client certificate and key as PEM text (for the TLS client-authentication
methods, or mutual TLS on the webhook itself); Python's ``ssl`` loads them only from files. They
are written, by the hash of their content, into a directory of this process's own (mode 0700,
files 0600) that is removed when the process stops with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


class ClientFiles:
    def __init__(self, directory: Path) -> None:
        self._directory = directory

    @classmethod
    @contextlib.contextmanager
    def private(cls) -> Iterator[ClientFiles]:
        """A private directory for the block's duration."""
        directory = Path(tempfile.mkdtemp(prefix="webhook-kit-clients-"))
        try:
            yield cls(directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def pair(self, cert_pem: str, key_pem: str) -> tuple[Path, Path]:
        """The files holding this certificate and key (written once)."""
        name = hashlib.sha256((cert_pem + "\0" + key_pem).encode()).hexdigest()[:32]
        cert, key = self._directory / f"{name}.crt", self._directory / f"{name}.key"
        for path, text in ((cert, cert_pem), (key, key_pem)):
            if not path.exists():
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(text)
        return cert, key
