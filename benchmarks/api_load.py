"""Load test of the REST API: a real server on 127.0.0.1, driven by wrk.

    python benchmarks/api_load.py                     # the committed run: 10 s, 64 connections
    python benchmarks/api_load.py --quick             # 5 s smoke run, writes nothing

The single-text run is 10 s because at about 9,000 requests/s a longer run cycles through the
97,734 distinct tweets more than once, and repeated texts meet the model's caches; the table's
"sent more than once" column shows how many did.

Starts `python -m sentimentkit serve --workers N` on a free loopback port, warms it up, then runs
wrk with single-text POST /v1/predict requests that rotate over distinct tweets the server has not
seen (`../shared/data/unlabeled/tweets.csv`, minus any text of the SemEval-2017 splits; the warm-up
sends SemEval train tweets instead) and reports requests/s, p50/p95/p99 latency, errors (non-2xx +
socket errors), how many requests repeated a text, and memory (RSS sampled with psutil: the server's
process tree, and the whole tree of this run: server workers + wrk + this script). Then it measures
the batch endpoint at 100 and 1,000 texts per request, on other unlabeled tweets. It also records how busy the machine was with other
work, because wrk and the server share the same cores. Results go to benchmarks/api_load.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "benchmarks" / "api_wrk.lua"
SHARED = ROOT.parent / "shared" / "data"
DEFAULT_DATA = SHARED / "unlabeled" / "tweets.csv"
SEMEVAL = SHARED / "semeval2017"


@dataclass
class Run:
    name: str
    result: dict
    rss_peak_mb: float
    all_peak_mb: float  # server + wrk + this script
    server_cpu_s: float
    wrk_cpu_s: float
    busy_cpu_s: float  # all cores, whole machine
    texts_per_request: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.result["duration_us"] / 1e6

    @property
    def rps(self) -> float:
        return self.result["requests"] / self.seconds

    @property
    def errors(self) -> int:
        r = self.result
        return sum(
            r[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_status", "errors_timeout")
        )

    @property
    def other_cpu_s(self) -> float:
        return max(0.0, self.busy_cpu_s - self.server_cpu_s - self.wrk_cpu_s)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_bodies(texts: list[str], size: int, path: Path, count: int = 40) -> Path:
    """One JSON body per line: single texts, or `count` batches of `size` consecutive texts."""
    with open(path, "w", encoding="utf-8") as out:
        if size == 1:
            out.writelines(json.dumps({"text": t}) + "\n" for t in texts)
        else:
            for i in range(count):
                start = (i * size) % max(1, len(texts) - size + 1)
                out.write(json.dumps({"texts": texts[start : start + size]}) + "\n")
    return path


def tree(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def tree_cpu(pid: int) -> float:
    total = 0.0
    for proc in tree(pid):
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def tree_rss_mb(pid: int) -> float:
    total = 0
    for proc in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total / 2**20


def busy_cpu_s() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + t.nice + getattr(t, "irq", 0) + getattr(t, "softirq", 0)


class MemorySampler(threading.Thread):
    """Peak RSS of the server's process tree, and of this process's whole tree (server, wrk, us)."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.all_peak = pid, every, 0.0, 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            self.all_peak = max(self.all_peak, tree_rss_mb(os.getpid()))
            self.stop.wait(self.every)


def start_server(args: argparse.Namespace, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "sentimentkit", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(args.workers), "--model", str(args.model)]  # fmt: skip
    log = open(log_path, "wb")  # noqa: SIM115 - closed when the server stops
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    ready = 0
    while ready < 3 * args.workers:  # several fresh connections, so that every worker has answered
        if process.poll() is not None or time.monotonic() > deadline:
            process.terminate()
            process.wait(timeout=30)
            raise SystemExit(f"server did not become ready:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:  # noqa: S310 - loopback
                ready += response.status == 200
        except OSError:
            time.sleep(0.3)
    return process, url


def run_wrk(url: str, bodies: Path, seconds: int, connections: int, threads: int, name: str,
            server_pid: int, texts_per_request: int = 1) -> Run:  # fmt: skip
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s",
               "-s", str(LUA), url]  # fmt: skip
    sampler = MemorySampler(server_pid)
    sampler.start()
    cpu0, busy0 = tree_cpu(server_pid), busy_cpu_s()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "BODIES": str(bodies)}
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    cpu1, busy1 = tree_cpu(server_pid), busy_cpu_s()
    sampler.stop.set()
    sampler.join()
    line = next((x for x in text.splitlines() if x.startswith("WRK_RESULT ")), None)
    if process.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({process.returncode}):\n{text}")
    result = json.loads(line.removeprefix("WRK_RESULT "))
    return Run(name, result, sampler.peak, sampler.all_peak, cpu1 - cpu0, usage.ru_utime + usage.ru_stime, busy1 - busy0,
               texts_per_request, {"connections": connections, "threads": threads, "wrk_output": text})  # fmt: skip


def ms(us: float) -> str:
    return f"{us / 1000:.1f}"


def table(runs: list[Run]) -> str:
    rows = [
        "| run | connections | requests/s | texts/s | p50 ms | p95 ms | p99 ms | max ms | errors | distinct texts "
        "| texts sent more than once | server RSS peak MiB | all processes RSS peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        x = r.result
        rows.append(
            f"| {r.name} | {r.extra['connections']} | {r.rps:,.0f} | {r.rps * r.texts_per_request:,.0f} | "
            f"{ms(x['p50_us'])} | {ms(x['p95_us'])} | {ms(x['p99_us'])} | {ms(x['max_us'])} | "
            f"{r.errors} ({x['errors_status']} non-2xx) | {r.extra['distinct']:,} | {repeated(r):.0%} "
            f"| {r.rss_peak_mb:,.0f} | {r.all_peak_mb:,.0f} |"
        )
    return "\n".join(rows)


def repeated(run: Run) -> float:
    """Share of the texts sent that had been sent before in the same run (wrk cycles its bodies)."""
    sent = run.result["requests"] * run.texts_per_request
    return max(0, sent - run.extra["distinct"]) / max(1, sent)


def distinct_unseen(path: Path) -> list[str]:
    """Non-blank distinct texts of `path` that are not texts of the SemEval-2017 splits."""
    seen = set()
    for split in ("train", "validation", "test"):
        seen.update(pd.read_csv(SEMEVAL / f"{split}.csv", dtype=str, keep_default_na=False)["text"])
    texts = pd.read_csv(path, dtype=str, keep_default_na=False)["text"]
    return [t for t in dict.fromkeys(texts) if t.strip() and t not in seen]


def cpu_table(runs: list[Run], cores: int) -> str:
    rows = [
        "| run | seconds | server CPU (cores) | wrk CPU (cores) | other processes (cores) | server CPU ms/request |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        s = r.seconds
        rows.append(
            f"| {r.name} | {s:.0f} | {r.server_cpu_s / s:.2f} | {r.wrk_cpu_s / s:.2f} | {r.other_cpu_s / s:.2f} "
            f"of {cores} | {r.server_cpu_s / r.result['requests'] * 1000:.3f} |"
        )
    return "\n".join(rows)


def verdict(run: Run, target_rps: float, target_p99_ms: float) -> str:
    checks = [
        (run.rps >= target_rps, f"{run.rps:,.0f} requests/s (target >= {target_rps:,.0f})"),
        (run.result["p99_us"] / 1000 <= target_p99_ms, f"p99 {ms(run.result['p99_us'])} ms (target <= {target_p99_ms:.0f} ms)"),
        (run.errors == 0, f"{run.errors} errors (target 0)"),
    ]  # fmt: skip
    return "\n".join(f"- {'met' if ok else 'MISSED'}: {what}" for ok, what in checks)


def machine_note(cores: int, load_before: tuple[float, float, float]) -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return (
        f"{cores} logical CPUs ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; load average before the run "
        f"{load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f} (1 / 5 / 15 min)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=int, default=10, help="seconds of the single-text run")
    parser.add_argument("--warmup", type=int, default=10, help="seconds of unreported warm-up load")
    parser.add_argument("--batch-duration", type=int, default=5)
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--model", type=Path, default=ROOT / "model.pkl")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CSV with a text column")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "api_load.md")
    parser.add_argument("--quick", action="store_true", help="5 s runs, print only (smoke test)")
    parser.add_argument(
        "--commit", default=None, help="the code's commit, for the report (default: git HEAD)"
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.batch_duration = 5, 2, 3
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    texts = distinct_unseen(args.data)
    split = int(len(texts) * 0.7)  # single-text run | batch runs: never the same tweets
    warm_texts = [
        t for t in pd.read_csv(SEMEVAL / "train.csv", dtype=str, keep_default_na=False)["text"] if t.strip()
    ]
    cores = psutil.cpu_count() or 1
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        single = write_bodies(texts[:split], 1, tmp / "single.jsonl")
        warm = write_bodies(warm_texts, 1, tmp / "warm.jsonl")
        process, url = start_server(args, tmp / "server.log")
        try:
            pid = process.pid
            idle_rss = tree_rss_mb(pid)
            predict = url + "/v1/predict"
            run_wrk(predict, warm, args.warmup, args.connections, args.threads, "warm-up", pid)
            started = time.time()
            runs = [run_wrk(predict, single, args.duration, args.connections, args.threads,
                            "single text, POST /v1/predict", pid)]  # fmt: skip
            runs[0].extra["distinct"] = split
            server_side = server_latency(tmp / "server.log", started, time.time())
            for size in (100, 1000):
                batch_texts = texts[split:]
                count = len(batch_texts) // size
                bodies = write_bodies(batch_texts, size, tmp / f"batch{size}.jsonl", count)
                runs.append(run_wrk(url + "/v1/predict/batch", bodies, args.batch_duration, args.batch_connections,
                                    1, f"batch of {size:,}, POST /v1/predict/batch", pid, size))  # fmt: skip
                runs[-1].extra["distinct"] = count * size
            final_rss = tree_rss_mb(pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
    report = render(args, runs, cores, load_before, idle_rss, final_rss, server_side)
    print(report)
    print(runs[0].extra["wrk_output"])
    if not args.quick:
        args.out.write_text(report)
        print(f"wrote {args.out}")


def server_latency(log_path: Path, start: float, end: float) -> dict[str, float]:
    """Percentiles of the latency the server itself logged for the single-text requests of one run
    (from the request reaching the app to the answer being handed to uvicorn)."""
    values = []
    with open(log_path, encoding="utf-8", errors="replace") as log:
        for line in log:
            if line.startswith('{"ts"') and '"route": "/v1/predict"' in line:
                entry = json.loads(line)
                if start <= entry["ts"] <= end:
                    values.append(entry["latency_ms"])
    if not values:
        return {}
    values.sort()
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"n": len(values), "p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99), "max": values[-1]}


def _server_side_text(stats: dict[str, float]) -> str:
    if not stats:
        return "not available"
    return (
        f"p50 {stats['p50']:.1f} ms, p95 {stats['p95']:.1f} ms, p99 {stats['p99']:.1f} ms, "
        f"max {stats['max']:.1f} ms over {stats['n']:,} requests"
    )


def commit_of(args: argparse.Namespace) -> str:
    if args.commit:
        return args.commit
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def render(args: argparse.Namespace, runs: list[Run], cores: int, load_before: tuple[float, float, float],
           idle_rss: float, final_rss: float, server_side: dict[str, float]) -> str:  # fmt: skip
    main_run = runs[0]
    shared = main_run.other_cpu_s / main_run.seconds
    command = (
        f"python benchmarks/api_load.py --workers {args.workers} --connections {args.connections} "
        f"--threads {args.threads} --duration {args.duration} --warmup {args.warmup} "
        f"--batch-duration {args.batch_duration} --batch-connections {args.batch_connections}"
    )
    return f"""# REST API load test

Measured {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())} with wrk against a real server
(`python -m sentimentkit serve --workers {args.workers}`, uvicorn + uvloop + httptools) on 127.0.0.1,
model `{args.model.name}`, code at commit {commit_of(args)}. Texts: distinct tweets from `{args.data.name}` that
are not in any SemEval-2017 split, 70% for the single-text run and the rest for the batch runs; wrk
cycles through them, so a run longer than its texts repeats some (column "sent more than once").
After a {args.warmup} s unreported warm-up on SemEval train tweets, the single-text run lasts {args.duration} s with
{args.connections} connections ({args.threads} wrk threads); each batch run lasts {args.batch_duration} s
with {args.batch_connections} connections.

{table(runs)}

Errors = non-2xx answers + socket errors (connect, read, write, timeout). Server RSS is the sum over
the server's process tree (uvicorn supervisor + workers); "all processes" adds the load generator
(wrk and this script, which holds the texts); both sampled every 0.5 s. Server: {idle_rss:,.0f} MiB idle
after start-up, {final_rss:,.0f} MiB at the end.

Latency the server itself logged for the single-text run (request reaching the app to answer handed
to uvicorn; the rest of wrk's figure is time in socket buffers, the event loop's queue and waiting
for a CPU): {_server_side_text(server_side)}.

## Target (single text, {args.connections} connections): >= 1,000 requests/s, p99 <= 50 ms, zero errors

{verdict(main_run, 1000, 50)}

## Where the CPU went

{cpu_table(runs, cores)}

"Other processes" is the whole machine's busy CPU time minus the server's and wrk's during each run.
{"**The machine was shared**: other work used " + f"{shared:.2f} of the {cores} cores during the single-text run, so these figures understate what the server does on an idle machine." if shared > 0.2 else "The machine was otherwise idle during the single-text run."}

## Machine

{machine_note(cores, load_before)}

## Command

```
{command}
```
"""


if __name__ == "__main__":
    main()
