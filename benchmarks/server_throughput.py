"""Scheduling throughput and run-status latency of ``selfsup serve``, on loopback.

    python benchmarks/server_throughput.py                         # SQLite file database
    python benchmarks/server_throughput.py --runs 400 --clients 50 --seconds 10
    python benchmarks/server_throughput.py --database-url postgresql+psycopg://...

Two measurements against one uvicorn server (a real socket on 127.0.0.1):

1. **Claims per second.** ``--runs`` scheduled runs are claimed by 8 concurrent workers
   (``--workers``), each with its own connection, polling ``claim`` until nothing is left;
   every claimed run is marked COMPLETED, as a worker would. The baseline in the same run is
   one worker claiming the same number of runs alone; the ratio shows what concurrency buys
   (or costs: SQLite serialises writers).
2. **Run-status latency.** ``--clients`` concurrent clients each fetch ``GET /v1/runs/{id}``
   in a loop for ``--seconds`` seconds; the script prints requests/s and the p50/p99 latency.
   The baseline is one client alone.

Each client is a thread with its own HTTP connection; the load generator shares the 2 cores
with the server, so the figures are a lower bound of what the server alone can do.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from selfsup.api import ApiWorkflowClient, WorkerApiClient
from selfsup.server.testing import LiveServer, ServerHarness

WORKER_CONFIG = {"stopping_condition": {"n_samples": 1}}


def schedule(client: ApiWorkflowClient, n: int) -> list[str]:
    """Schedule ``n`` runs of the client's dataset; their ids."""
    return [client.schedule_compute_worker_run(worker_config=WORKER_CONFIG) for _ in range(n)]


def claim_all(url: str, token: str, workers: int) -> tuple[float, int]:
    """Claim every OPEN run with ``workers`` concurrent workers: (seconds, runs claimed)."""
    barrier = threading.Barrier(workers + 1)

    def worker(index: int) -> int:
        api = WorkerApiClient(token=token, base_url=url, timeout=120)
        try:
            me = api.register(f"bench-{workers}-{index}-{time.monotonic_ns()}")
            barrier.wait(timeout=60)
            n = 0
            while (claim := api.claim(me.id)) is not None:
                api.set_state(me.id, claim.run.id, "COMPLETED")
                n += 1
            return n
        finally:
            api.close()

    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(worker, i) for i in range(workers)]
        barrier.wait(timeout=60)
        start = time.perf_counter()
        total = sum(f.result(timeout=600) for f in futures)
        return time.perf_counter() - start, total


def status_latency(
    url: str, token: str, run_ids: list[str], clients: int, seconds: float
) -> tuple[list[float], float]:
    """Latencies (s) of ``GET /v1/runs/{id}`` from ``clients`` looping clients, and the span."""
    headers = {"Authorization": f"Bearer {token}"}
    barrier = threading.Barrier(clients + 1)
    stop = threading.Event()

    def client(index: int) -> list[float]:
        out: list[float] = []
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            barrier.wait(timeout=60)
            i = index
            while not stop.is_set():
                t = time.perf_counter()
                response = http.get(f"/v1/runs/{run_ids[i % len(run_ids)]}")
                out.append(time.perf_counter() - t)
                if response.status_code != 200:
                    raise RuntimeError(f"GET run status answered {response.status_code}")
                i += clients
        return out

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, i) for i in range(clients)]
        barrier.wait(timeout=60)
        start = time.perf_counter()
        time.sleep(seconds)
        stop.set()
        latencies = [x for f in futures for x in f.result(timeout=120)]
        return latencies, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) by the nearest-rank method."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def run_ids_of(client: ApiWorkflowClient) -> list[str]:
    """Ids of the runs (attempts) the client can see."""
    return [r.id for r in client.get_compute_worker_runs()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="scheduled runs to claim")
    parser.add_argument("--workers", type=int, default=8, help="concurrent claiming workers")
    parser.add_argument("--clients", type=int, default=50, help="concurrent status clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency test duration")
    parser.add_argument("--database-url", default="", help="default: a SQLite file in a tmp dir")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "input").mkdir()
        url = args.database_url or f"sqlite:///{root / 'server.db'}"
        harness = ServerHarness(url, root / "data", local_roots=(root,), lease_seconds=600)
        token = harness.token("bench")
        with harness.live() as live:
            report(args, live, token, root)
        harness.close()


def report(args: argparse.Namespace, live: LiveServer, token: str, root: Path) -> None:
    client = ApiWorkflowClient(token=token, base_url=live.url)
    client.create_dataset("bench")
    client.set_local_config(resource_path=str(root / "input"), purpose="INPUT")
    print(f"selfsup serve on {live.url}, database {args.database_url or 'SQLite file'}")

    def measure(workers: int) -> float:
        schedule(client, args.runs)
        seconds, claimed = claim_all(live.url, token, workers)
        if claimed != args.runs:
            raise RuntimeError(f"{workers} workers claimed {claimed} of {args.runs} runs")
        rate = claimed / seconds
        print(f"  {workers} worker(s): {claimed} runs claimed in {seconds:.2f} s = {rate:.1f}/s")
        return rate

    print("Scheduling throughput (claim + COMPLETED per run):")
    baseline = measure(1)
    concurrent = measure(args.workers)
    print(f"  ratio {args.workers} workers / 1 worker: {concurrent / baseline:.2f}x")

    run_ids = run_ids_of(client)
    print(f"Run-status latency, GET /v1/runs/{{id}} over {len(run_ids)} runs:")
    results: dict[int, tuple[float, float]] = {}
    for clients in (1, args.clients):
        latencies, span = status_latency(live.url, token, run_ids, clients, args.seconds)
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        results[clients] = (p50, p99)
        print(
            f"  {clients:>3} client(s): {len(latencies) / span:8.1f} req/s, "
            f"p50 {p50 * 1000:7.1f} ms, p99 {p99 * 1000:7.1f} ms, "
            f"mean {statistics.fmean(latencies) * 1000:7.1f} ms"
        )
    p50_1, _ = results[1]
    p50_n, _ = results[args.clients]
    print(f"  p50 with {args.clients} clients / p50 alone: {p50_n / p50_1:.1f}x")
    client.close()


if __name__ == "__main__":
    main()
