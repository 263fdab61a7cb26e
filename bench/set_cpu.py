"""CPU time of one Masking/set in-process, by processes x threads, against the bare endpoint's.

    .venv/bin/python bench/set_cpu.py                      # 1x1, 1x8, 2x1, 2x8
    .venv/bin/python bench/set_cpu.py --layouts 1x1 4x1 --sets 2000

No socket and no gunicorn: each process (forked) builds the app on one SQLite file and its
threads call it through Flask's test client, each with its own fresh parties, so every call
is a real allocation. The figure is the process's CPU time (user + system, from getrusage)
per set while its threads run, with the API's log line going to /dev/null. The bare
endpoint (bench/bare_app.py) is measured the same way, one thread.

What it answers: how much of a set's CPU is its own work (one process, one thread) and how
much the threads and processes sharing SQLite add. bench/README.md uses it to bound the
set/bare ratio api_bench.py can reach.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import threading
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import api_bench  # noqa: E402
import loadgen  # noqa: E402


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bare_cpu_ms(requests: int) -> float:
    import bare_app

    client = bare_app.create_app().test_client()
    body = json.dumps({"m1": loadgen.party("98", 1, 0, 0), "m2": loadgen.party("99", 1, 0, 0), "eventId": "b"})
    for _ in range(200):  # warm-up
        client.post(api_bench.BARE_PATH, data=body)
    started = cpu_seconds()
    for _ in range(requests):
        client.post(api_bench.BARE_PATH, data=body)
    return (cpu_seconds() - started) / requests * 1e3


def child(url: str, creds: dict, tag: int, threads: int, sets: int, report_fd: int, log: bool) -> None:
    """One process: ``threads`` threads share ``sets`` sets; writes its CPU ms per set to ``report_fd``."""
    app = api_bench.make_app(url)
    logging.getLogger("masking").handlers[:] = [logging.FileHandler(os.devnull)]
    if not log:
        logging.disable(logging.INFO)
    per_thread = sets // threads
    failures = []

    def run(thread: int, count: int, offset: int = 0) -> None:
        client = app.test_client()
        for k in range(count):
            body, _ = loadgen.set_body(creds, tag, thread, offset + k)
            reply = client.post(api_bench.SET_PATH, data=body)
            if b'"success"' not in reply.data:
                failures.append(reply.data[:200])

    run(threads, 100)  # warm-up, on parties of its own
    started = cpu_seconds()
    workers = [threading.Thread(target=run, args=(t, per_thread)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    spent = cpu_seconds() - started
    os.write(report_fd, json.dumps({"ms": spent / (per_thread * threads) * 1e3, "failures": len(failures),
                                    "first_failure": failures[0].decode() if failures else None}).encode())
    os._exit(0)


def measure(layout: str, sets: int, workdir: Path, log: bool) -> list[dict]:
    processes, threads = (int(n) for n in layout.split("x"))
    url = f"sqlite:///{workdir / f'set-cpu-{layout}.db'}"
    api_bench.migrate(url)
    creds = api_bench.seed(url, 200)
    children = []
    for p in range(processes):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            child(url, creds, 10 + p, threads, sets, write_fd, log)
        os.close(write_fd)
        children.append((pid, read_fd))
    results = []
    for pid, read_fd in children:
        with os.fdopen(read_fd, "rb") as pipe:
            data = pipe.read()
        os.waitpid(pid, 0)
        if not data:
            raise RuntimeError(f"layout {layout}: a process died without a report")
        results.append(json.loads(data))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layouts", nargs="+", default=["1x1", "1x8", "2x1", "2x8"], help="PROCESSESxTHREADS")
    parser.add_argument("--sets", type=int, default=1600, help="sets per process (default 1600)")
    parser.add_argument("--no-log", action="store_true", help="without the API's log line (INFO off)")
    args = parser.parse_args()
    if not 0 < args.sets <= 9000:  # loadgen.party numbers a thread's requests with four digits
        parser.error(f"--sets is 1 to 9000, got {args.sets}")
    for layout in args.layouts:
        parts = layout.split("x")
        if len(parts) != 2 or not all(p.isdigit() and 0 < int(p) <= 64 for p in parts):
            parser.error(f"a layout is PROCESSESxTHREADS, each 1 to 64, e.g. 2x8; got {layout!r}")
    workdir = Path(tempfile.mkdtemp(prefix="masking-set-cpu-"))
    broke = False
    try:
        print(f"bare endpoint, 1 process x 1 thread: {bare_cpu_ms(5000):.3f} ms CPU per request", flush=True)
        for layout in args.layouts:
            results = measure(layout, args.sets, workdir, not args.no_log)
            per_set = ", ".join(f"{r['ms']:.3f}" for r in results)
            print(f"set, {layout.replace('x', ' process(es) x ')} thread(s): {per_set} ms CPU per set "
                  f"(one figure per process)", flush=True)
            for r in results:
                if r["failures"]:
                    broke = True
                    print(f"  {r['failures']} sets failed, e.g. {r['first_failure']}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if broke else 0


if __name__ == "__main__":
    sys.exit(main())
