"""The benchmarks still run end to end, at toy sizes (no figure is judged here: speed is
measured by the scripts in bench/, on a quiet machine, never by a test).

A benchmark nobody runs breaks quietly: a setting checked more strictly, a renamed function.
These runs take a few seconds each and prove every step works: the servers start as `make
run` starts them, the databases migrate and fill, every phase gets only successful replies,
and the summary is printed."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from masking.db import normalise_database_url
from tests.conftest import BACKENDS, ROOT, TEST_DATABASE_URL

pytestmark = pytest.mark.slow


def run_bench(script: str, *args: str) -> str:
    env = {key: value for key, value in os.environ.items() if key != "BENCH_DATABASE_URL"}
    done = subprocess.run([sys.executable, f"bench/{script}", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stdout + done.stderr
    return done.stdout


def server_args(backend: str, name: str) -> list[str]:
    """SQLite, or only PostgreSQL on the test server, in databases of this run's own."""
    if backend == "sqlite":
        return []
    server = make_url(normalise_database_url(TEST_DATABASE_URL)).set(database="postgres")
    return ["--database-url", server.render_as_string(hide_password=False),
            "--pg-database", f"masking_{name}_{os.getpid()}"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_api_benchmark_runs(backend):
    args = server_args(backend, "bench_api_smoke")
    if backend != "sqlite":
        args.append("--skip-sqlite")
    out = run_bench("api_bench.py", "--rounds", "1", "--duration", "0.5", "--serial", "0.2", "--warmup", "0.2",
                    "--clients", "2", "--preload", "50", "--pool-size", "20", *args)
    label = "SQLite" if backend == "sqlite" else "PostgreSQL"
    assert f"  {label}:" in out
    assert "set/bare throughput:" in out and "set latency 50/empty:" in out
    assert "ERRORS" not in out


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_dashboard_benchmark_runs(backend):
    out = run_bench("dashboard_bench.py", "--attempts", "3000", "--agents", "5", "--requests", "2", "--rounds", "1",
                    "--warmup", "1", "--export-rows", "500", "--export-repeats", "1",
                    *server_args(backend, "bench_dash_smoke"))
    assert "history, no filter" in out and "CSV export" in out


def test_the_set_cpu_measure_runs():
    out = run_bench("set_cpu.py", "--layouts", "1x1", "2x2", "--sets", "40")
    assert "bare endpoint, 1 process x 1 thread:" in out
    assert out.count("ms CPU per set") == 2
