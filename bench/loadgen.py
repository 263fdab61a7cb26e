"""A small closed-loop HTTP/1.1 load generator for the benchmark.

Each client is a separate process (so the clients do not share one GIL) holding one
keep-alive TCP connection to 127.0.0.1. It sends a request, reads the whole response,
records the latency, and sends the next one. The HTTP handling is deliberately minimal
(pre-built request bytes, Content-Length framing, no header objects) so that on a small
machine the clients take as little CPU away from the server as possible.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import socket
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"
_CTX = mp.get_context("fork")


class HttpError(RuntimeError):
    pass


class Connection:
    """One persistent HTTP/1.1 connection; reconnects if the server closed it."""

    def __init__(self, port: int, host: str = HOST):
        self.address = (host, port)
        self.sock: socket.socket | None = None
        self.buffer = b""

    def connect(self) -> None:
        self.close()
        sock = socket.create_connection(self.address, timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buffer = sock, b""

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def post(self, path: bytes, body: bytes) -> tuple[int, bytes]:
        if self.sock is None:
            self.connect()
        request = (b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        self.sock.sendall(request)
        return self._read_response()

    def _read_response(self) -> tuple[int, bytes]:
        sock, buffer = self.sock, self.buffer
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            chunk = sock.recv(65536)
            if not chunk:
                self.close()
                raise HttpError("the server closed the connection")
            buffer += chunk
        head = buffer[:end].split(b"\r\n")
        status = int(head[0].split(b" ", 2)[1])
        length, close = 0, False
        for line in head[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
            elif name == b"transfer-encoding":
                raise HttpError("chunked responses are not expected here")
        start = end + 4
        while len(buffer) < start + length:
            chunk = sock.recv(65536)
            if not chunk:
                self.close()
                raise HttpError("the server closed the connection mid-response")
            buffer += chunk
        body = buffer[start:start + length]
        self.buffer = buffer[start + length:]
        if close:
            self.close()
        return status, body


# ---------------------------------------------------------------- request bodies

MAX_PER_CLIENT = 10_000  # requests per client and phase that get distinct party numbers


def party(prefix: str, tag: int, client: int, k: int) -> str:
    """A distinct Indian mobile number per (prefix, phase tag < 100, client < 100, request < 10,000)."""
    return f"+91{prefix}{tag:02d}{client:02d}{k:04d}"


def set_body(creds: dict, tag: int, client: int, k: int) -> tuple[bytes, tuple[str, str]]:
    m1, m2 = party("98", tag, client, k), party("99", tag, client, k)
    body = {**creds, "m1": m1, "m2": m2, "eventId": f"bench-{tag}-{client}-{k}", "expiry_duration": 60}
    return json.dumps(body, separators=(",", ":")).encode(), (m1, m2)


def unset_body(creds: dict, mask: str, m1: str, m2: str) -> bytes:
    body = {**creds, "mask": mask, "m1": m1, "m2": m2, "expiry_duration": -1}
    return json.dumps(body, separators=(",", ":")).encode()


# ---------------------------------------------------------------- phases

@dataclass
class PhaseResult:
    name: str
    clients: int
    elapsed: float
    latencies_ms: list[float]
    errors: dict[str, int] = field(default_factory=dict)
    created: list[tuple[str, str, str]] = field(default_factory=list)  # (mask, m1, m2) of successful sets

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[index]

    def summary(self) -> dict:
        return {"name": self.name, "clients": self.clients, "requests": self.ok, "errors": self.errors,
                "seconds": round(self.elapsed, 3), "rps": round(self.rps, 1),
                "p50_ms": round(self.percentile(50), 2), "p99_ms": round(self.percentile(99), 2),
                "mean_ms": round(sum(self.latencies_ms) / max(1, self.ok), 2)}


def merge(name: str, results: list[PhaseResult]) -> PhaseResult:
    """Several phases of the same kind as one: requests and seconds add up."""
    merged = PhaseResult(name=name, clients=results[0].clients if results else 0, elapsed=0.0, latencies_ms=[])
    for result in results:
        merged.elapsed += result.elapsed
        merged.latencies_ms.extend(result.latencies_ms)
        merged.created.extend(result.created)
        for key, count in result.errors.items():
            merged.errors[key] = merged.errors.get(key, 0) + count
    return merged


def _is_success(body: bytes) -> bool:
    return body.startswith(b'{"status":"success"')


def _error_key(status: int, body: bytes) -> str:
    try:
        payload = json.loads(body)
        return f"http {status} code {payload.get('code')}: {payload.get('message')}"
    except ValueError:
        return f"http {status}: {body[:80]!r}"


def _client(kind: str, port: int, path: bytes, creds: dict, tag: int, client: int, duration: float,
            items: list, barrier, queue) -> None:
    conn = Connection(port)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    created: list[tuple[str, str, str]] = []
    try:
        conn.connect()
        barrier.wait(timeout=60)
        started = time.perf_counter()
        deadline = started + duration
        k = 0
        perf = time.perf_counter
        while True:
            if kind == "unset":
                if k >= len(items):
                    break
                body, parties = unset_body(creds, *items[k]), None
            else:
                if perf() >= deadline or (kind == "set" and k >= MAX_PER_CLIENT):
                    break
                body, parties = set_body(creds, tag, client, k)
            k += 1
            t0 = perf()
            try:
                status, reply = conn.post(path, body)
            except (OSError, HttpError) as exc:
                errors[f"transport: {exc}"] = errors.get(f"transport: {exc}", 0) + 1
                conn.close()
                continue
            latency = (perf() - t0) * 1000
            if status == 200 and _is_success(reply):
                latencies.append(latency)
                if kind == "set":
                    data = json.loads(reply)["data"]
                    created.append((data["mask"], parties[0], parties[1]))
            else:
                key = _error_key(status, reply)
                errors[key] = errors.get(key, 0) + 1
        finished = time.perf_counter()
        queue.put((client, started, finished, latencies, errors, created))
    except BaseException as exc:  # report, never hang the parent
        queue.put((client, None, None, latencies, {f"client crashed: {exc!r}": 1}, created))
    finally:
        conn.close()


def run_phase(name: str, kind: str, port: int, path: str, *, clients: int, creds: dict | None = None,
              tag: int = 0, duration: float = 10.0, items: list | None = None) -> PhaseResult:
    """Drive ``clients`` concurrent connections.

    kind "set" / "bare": for ``duration`` seconds, each request with fresh party numbers.
    kind "unset": exactly the given ``items`` (mask, m1, m2), shared out among the clients.
    """
    if clients > 100:
        raise ValueError("at most 100 clients (party numbers use two digits for the client)")
    creds = creds or {}
    shares = [list(items[i::clients]) for i in range(clients)] if kind == "unset" else [[] for _ in range(clients)]
    if kind == "unset":
        clients = max(1, min(clients, len(items)))
        shares = shares[:clients]
    barrier = _CTX.Barrier(clients)
    queue = _CTX.Queue()
    procs = [
        _CTX.Process(target=_client, args=(kind, port, path.encode(), creds, tag, i, duration, shares[i], barrier, queue),
                     daemon=True)
        for i in range(clients)
    ]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=duration + 600) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    starts = [r[1] for r in results if r[1] is not None]
    ends = [r[2] for r in results if r[2] is not None]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    created: list[tuple[str, str, str]] = []
    for _, _, _, lat, errs, made in sorted(results, key=lambda r: r[0]):
        latencies.extend(lat)
        created.extend(made)
        for key, count in errs.items():
            errors[key] = errors.get(key, 0) + count
    elapsed = (max(ends) - min(starts)) if starts and ends else 0.0
    return PhaseResult(name=name, clients=clients, elapsed=elapsed, latencies_ms=latencies, errors=errors,
                       created=created)
