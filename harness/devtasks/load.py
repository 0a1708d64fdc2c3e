"""A bounded HTTPS load generator for zero-downtime checks and benchmarks.

Only ever aimed at the test VPS (an address in a network namespace this machine created): each
client keeps one keep-alive connection and sends GETs until told to stop, until ``max_seconds``
or until ``max_requests`` in total — whichever comes first.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    requests: int = 0
    failures: int = 0
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # the first few failures, for messages

    def summary(self) -> str:
        return (f"{self.requests} requests, {self.failures} failed in {self.seconds:.1f}s "
                f"({dict(self.statuses)}){'; first: ' + self.errors[0] if self.errors else ''}")


class Load:
    """``with Load(addr, domain, cafile) as load: ...`` then ``load.result``; ``cafile=None``
    for plain HTTP."""

    def __init__(self, address: str, domain: str, cafile: str | None, path: str = "/",
                 clients: int = 20, max_seconds: float = 300, max_requests: int = 200_000
                 ) -> None:
        self.address, self.domain, self.path = address, domain, path
        self.context = ssl.create_default_context(cafile=cafile) if cafile else None
        self.clients, self.max_seconds, self.max_requests = clients, max_seconds, max_requests
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.result = LoadResult()
        self.threads: list[threading.Thread] = []

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        self.threads = [threading.Thread(target=self._client, daemon=True)
                        for _ in range(self.clients)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
        self.result.seconds = time.monotonic() - self.started

    def _connect(self) -> http.client.HTTPConnection:
        """HTTPS verified against ``cafile``; plain HTTP on port 80 without one."""
        if self.context is None:
            return http.client.HTTPConnection(self.address, 80, timeout=30)
        conn = http.client.HTTPSConnection(self.domain, 443, context=self.context, timeout=30)
        conn.sock = self.context.wrap_socket(
            socket.create_connection((self.address, 443), timeout=30),
            server_hostname=self.domain)
        return conn

    def _client(self) -> None:
        conn = None
        deadline = self.started + self.max_seconds
        while not self.stop.is_set() and time.monotonic() < deadline:
            with self.lock:
                if self.result.requests >= self.max_requests:
                    return
                self.result.requests += 1
            status, conn = self._get(conn)
            with self.lock:
                self.result.statuses[status] += 1
                if status != 200:
                    self.result.failures += 1
                    if len(self.result.errors) < 5:
                        self.result.errors.append(str(status))
        if conn:
            conn.close()

    def _get(self, conn: http.client.HTTPConnection | None
             ) -> tuple[int | str, http.client.HTTPConnection | None]:
        """One GET. A reused keep-alive connection the server closed meanwhile is retried once
        on a fresh one, as browsers and urllib3 do; a failure on a fresh connection counts."""
        retry = conn is not None
        while True:
            try:
                conn = conn or self._connect()
                conn.request("GET", self.path, headers={"Host": self.domain})
                response = conn.getresponse()
                response.read()
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    return response.status, None
                return response.status, conn
            except (OSError, http.client.HTTPException) as exc:
                if conn:
                    conn.close()
                conn = None
                if not retry:
                    return f"{type(exc).__name__}: {exc}", None
                retry = False
