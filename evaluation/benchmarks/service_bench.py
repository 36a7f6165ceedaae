"""The REST service under load: ``ragkit serve`` in a subprocess, against the same work done in process.

    python evaluation/benchmarks/service_bench.py --work W --out W/service.json           # full sizes
    python evaluation/benchmarks/service_bench.py --work W --out W/service.json --quick   # tiny sizes

One process, in this order:

1. ingest squad-dev documents into a fresh store (``Collection.create(...).ingest(...)``);
2. in process: ``collection.search`` one question at a time (the embedder
   runs for every query: query vectors are not cached);
3. the local generator alone: cold load, then time to first token and
   tokens/s for a ~300- and a ~1500-token prompt, 64 new tokens (16 with ``--quick``);
4. in process: ``RagPipeline.ask`` with ``max_tokens`` 32;
5. ``ragkit serve`` as a subprocess on a free loopback port, warmed up (both
   models loaded), its RSS measured, then a soak of searches at concurrency 8
   with the RSS sampled as it goes;
6. the HTTP layer's cost: the same questions searched in process and over
   HTTP, alternating, one at a time (both sides see the same machine state);
7. an ``httpx.AsyncClient`` (HTTP/1.1 keep-alive) sends a fixed number of
   ``search`` and ``ask`` requests at concurrency 1, 8 and 32, and streamed
   asks (``stream: true``) one at a time;
8. the server is stopped (SIGTERM, then kill) and one JSON file written.

The client runs on the same machine as the server and shares its cores: the
requests/s are what one 2-core box does serving and loading itself, and the
client's own CPU seconds are recorded beside the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import log

COLLECTION = "squad"
TOP_K = 5
CONCURRENCY = (1, 8, 32)
ASK_MAX_TOKENS = 32
GENERATOR_PROMPT_TOKENS = (300, 1500)
CONTEXT_CHARS = 40_000
"""Document text the generator prompts are cut from (far more than 1,500 tokens)."""
WARMUP_SEARCHES = 5
PAIRED_ID = "bench-paired-"
"""``X-Request-ID`` prefix of the alternating searches, to find their server-side durations in the access log."""
VERSIONED = [
    "ragkit",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "h11",
    "httpx",
    "pydantic",
    "torch",
    "transformers",
    "sentence-transformers",
    "faiss-cpu",
    "psutil",
]

SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "documents": None,
        "search_questions": 1000,
        "ask_questions": 20,
        "search_requests": 2000,
        "ask_requests": {1: 16, 8: 32, 32: 64},
        "stream_questions": 10,
        "soak_requests": 10_000,
        "soak_sample_every": 1000,
        "generator_repeats": 3,
        "generator_new_tokens": 64,
        "ask_top_k": TOP_K,
    },
    "quick": {
        # an ask costs seconds of a 2-core CPU (prefill of a ~1,000-token prompt): the quick run sends a
        # handful with shorter prompts, enough to go through every path
        "documents": 3,
        "search_questions": 50,
        "ask_questions": 2,
        "search_requests": 100,
        "ask_requests": {1: 1, 8: 2, 32: 2},
        "stream_questions": 1,
        "soak_requests": 300,
        "soak_sample_every": 100,
        "generator_repeats": 1,
        "generator_new_tokens": 16,
        "ask_top_k": 2,
    },
}


# -- the in-process baseline ------------------------------------------------------------------------------


def time_each(call: Callable[[str], Any], texts: Sequence[str]) -> list[float]:
    """Seconds of ``call(text)`` for each text, one after another."""
    seconds = []
    for text in texts:
        t0 = time.perf_counter()
        call(text)
        seconds.append(time.perf_counter() - t0)
    return seconds


def in_process_search(collection: Any, questions: Sequence[str]) -> dict[str, Any]:
    """``collection.search`` latency per question, after a few untimed searches."""
    for i in range(WARMUP_SEARCHES):  # code paths and the model warm, on texts not among the questions
        collection.search(f"warm-up query number {i}", top_k=TOP_K)
    seconds = time_each(lambda text: collection.search(text, top_k=TOP_K), questions)
    result = common.percentiles(seconds)
    log(f"in process: search p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms")
    return result


def in_process_ask(pipeline: Any, collection: Any, questions: Sequence[str], top_k: int) -> dict[str, Any]:
    """``pipeline.ask`` latency per question with ``max_tokens`` 32, and the pipeline's own stage timings."""
    from ragkit.generation import GenerationOptions

    options = GenerationOptions(max_tokens=ASK_MAX_TOKENS)
    seconds, tokens, stages = [], [], []
    for question in questions:
        t0 = time.perf_counter()
        answer = pipeline.ask(question, collection, top_k=top_k, options=options)
        seconds.append(time.perf_counter() - t0)
        tokens.append(answer.usage.completion_tokens)
        stages.append(answer.timings)
    log(f"in process: ask p50 {common.percentiles(seconds)['p50_ms']:.0f} ms over {len(questions)} questions")
    return {
        **common.percentiles(seconds),
        "per_question_ms": [round(s * 1000, 3) for s in seconds],
        "completion_tokens_mean": round(statistics.fmean(tokens), 1) if tokens else None,
        "stage_p50_ms": _stage_medians(stages),
    }


def _stage_medians(timings: Sequence[dict[str, float]]) -> dict[str, float]:
    """Median milliseconds of each pipeline stage over several answers."""
    names = sorted({name for t in timings for name in t})
    return {name: round(statistics.median(t[name] for t in timings if name in t) * 1000, 3) for name in names}


# -- the generator alone ------------------------------------------------------------------------------------


def prompt_of_size(generator: Any, template: Any, question: str, text: str, tokens: int) -> list[Any]:
    """The pipeline's prompt for ``question`` with the longest prefix of ``text`` as context within ``tokens``."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if generator.count_message_tokens(template.messages(question, text[:middle])) <= tokens:
            low = middle
        else:
            high = middle - 1
    return template.messages(question, text[:low])


def generate_once(generator: Any, messages: list[Any], max_tokens: int) -> dict[str, Any]:
    """One streamed generation: time to first text, decode rate after it, tokens made."""
    from ragkit.generation import GenerationOptions

    first = last = None
    usage = None
    t0 = time.perf_counter()
    for delta in generator.stream(messages, GenerationOptions(max_tokens=max_tokens, temperature=0.0)):
        now = time.perf_counter()
        if delta.text:
            first = first if first is not None else now
            last = now
        if delta.usage is not None:
            usage = delta.usage
    end = time.perf_counter()
    made = usage.completion_tokens if usage else 0
    decode = (made - 1) / (last - first) if first is not None and last is not None and last > first else None
    return {
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": made,
        "ttft_ms": round((first - t0) * 1000, 3) if first is not None else None,
        "seconds": round(end - t0, 4),
        "decode_tokens_per_s": round(decode, 2) if decode else None,
        "tokens_per_s": round(made / (end - t0), 2) if made else None,
    }


def generator_alone(template: Any, question: str, text: str, repeats: int, new_tokens: int) -> dict[str, Any]:
    """The packaged transformers generator without the pipeline: load, then TTFT and tokens/s by prompt size.

    The prompts are the pipeline's own template around a prefix of the documents, cut to ~300 and ~1500
    tokens; each is generated ``repeats`` times with ``new_tokens`` at most (greedy: it may stop earlier).
    """
    from ragkit import registry

    generator = registry.build("generator", {"type": "transformers"})
    torch_loaded = "torch" in sys.modules
    t0 = time.perf_counter()
    generator.load()
    load_s = time.perf_counter() - t0
    log(f"generator: {generator.model_name} loaded in {load_s:.1f}s on {generator.device} ({generator.dtype})")
    first_call = generate_once(generator, prompt_of_size(generator, template, question, text, 100), 8)
    prompts = {}
    for size in GENERATOR_PROMPT_TOKENS:
        messages = prompt_of_size(generator, template, question, text, size)
        runs = [generate_once(generator, messages, new_tokens) for _ in range(repeats)]
        prompts[str(size)] = {
            "prompt_tokens": runs[0]["prompt_tokens"],
            "ttft_ms": _median(r["ttft_ms"] for r in runs),
            "decode_tokens_per_s": _median(r["decode_tokens_per_s"] for r in runs),
            "tokens_per_s": _median(r["tokens_per_s"] for r in runs),
            "completion_tokens": [r["completion_tokens"] for r in runs],
            "runs": runs,
        }
        log(
            f"generator: {runs[0]['prompt_tokens']}-token prompt: first token {prompts[str(size)]['ttft_ms']:.0f} ms, "
            f"{prompts[str(size)]['decode_tokens_per_s']} tokens/s after it (median of {repeats})"
        )
    return {
        "model": generator.model_name,
        "device": generator.device,
        "dtype": generator.dtype,
        "load_s": round(load_s, 3),
        "torch_imported_before_load": torch_loaded,
        "first_call": first_call,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "prompts": prompts,
    }


def _median(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


# -- the server -----------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ragkit_executable() -> str:
    """The ``ragkit`` console script of this interpreter's environment."""
    beside = Path(sys.executable).parent / "ragkit"
    found = str(beside) if beside.exists() else shutil.which("ragkit")
    if not found:
        raise SystemExit("the ragkit command is not installed beside this Python (pip install -e '.[serve]')")
    return found


class Server:
    """``ragkit serve`` as a child process: started, polled until ready, measured, stopped."""

    def __init__(self, store_dir: Path, log_file: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            ragkit_executable(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--store-dir",
            str(store_dir),
        ]
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None
        self._ps: Any = None

    def start(self, timeout: float = 300.0) -> float:
        """Start the server and wait for ``GET /readyz`` to answer 200; the seconds it took."""
        import httpx
        import psutil

        # the service's own settings come from RAGKIT_* variables: run it with its defaults
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAGKIT_")}
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_OFFLINE"] = "1"
        log(f"server: {' '.join(self.command)}")
        t0 = time.perf_counter()
        with open(self.log_file, "wb") as handle:
            self.process = subprocess.Popen(self.command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        self._ps = psutil.Process(self.process.pid)
        while time.perf_counter() - t0 < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"ragkit serve exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=5, trust_env=False).status_code == 200:
                    return time.perf_counter() - t0
            time.sleep(0.2)
        raise RuntimeError(f"ragkit serve was not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def rss(self) -> int:
        """The server's resident set size now (its child processes included, if any)."""
        import psutil

        total = self._ps.memory_info().rss
        for child in self._ps.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return int(total)

    def peak_rss(self) -> int | None:
        """The server's peak resident set size so far (``VmHWM``), where the system reports it."""
        try:
            for line in Path(f"/proc/{self._ps.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def cpu_seconds(self) -> float:
        """User plus system CPU seconds the server has used."""
        times = self._ps.cpu_times()
        return float(times.user + times.system)

    def threads(self) -> int:
        """The server's thread count now."""
        return int(self._ps.num_threads())

    def access_durations(self, prefix: str) -> dict[str, float]:
        """Seconds the app spent on each request whose ``X-Request-ID`` starts with ``prefix`` (its access log).

        The access-log line's ``duration_ms`` runs from the outermost middleware taking the request to the
        response's last byte handed to uvicorn: everything but uvicorn's parsing and the socket.
        """
        found: dict[str, float] = {}
        try:
            lines = self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return found
        for line in lines:
            if prefix not in line:
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError):
                record = json.loads(line)
                if str(record["request_id"]).startswith(prefix):
                    found[record["request_id"]] = float(record["duration_ms"]) / 1000
        return found

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the server wrote."""
        try:
            return "\n".join(self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 30.0) -> dict[str, Any]:
        """SIGTERM, then SIGKILL after ``grace`` seconds; how it ended."""
        if self.process is None or self.process.poll() is not None:
            return {"returncode": None if self.process is None else self.process.returncode, "killed": False}
        t0 = time.perf_counter()
        self.process.send_signal(signal.SIGTERM)
        killed = False
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            killed = True
        code = self.process.returncode
        # uvicorn re-raises the signal after a clean shutdown: -SIGTERM is a graceful exit
        return {
            "returncode": code,
            "seconds": round(time.perf_counter() - t0, 2),
            "killed": killed,
            "graceful": not killed and code in (0, -signal.SIGTERM),
        }


# -- the load ---------------------------------------------------------------------------------------------------


def _client(base_url: str, concurrency: int, timeout: float) -> Any:
    """An HTTP/1.1 keep-alive client with one pooled connection per concurrent request."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout, trust_env=False)


async def load(
    server: Server,
    path: str,
    bodies: Sequence[dict[str, Any]],
    count: int,
    concurrency: int,
    timeout: float,
    keep: Callable[[int, float, Any], None] | None = None,
) -> dict[str, Any]:
    """``count`` POSTs of ``bodies`` (in turn) to ``path``, ``concurrency`` at a time; rate, latency, errors.

    A request counts as an error when it raises or answers anything but 200;
    latency percentiles are over the successful ones. ``keep(i, response)``
    sees each successful response (after its clock stopped).
    """
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    issued = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < count:
            index = issued
            issued += 1
            t0 = time.perf_counter()
            try:
                response = await client.post(path, json=bodies[index % len(bodies)])
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - t0
            if response.status_code != 200:
                errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
                continue
            latencies.append(elapsed)
            if keep is not None:
                keep(index, elapsed, response)

    cpu0, server_cpu0 = time.process_time(), server.cpu_seconds()
    async with _client(server.url, concurrency, timeout) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - t0
    return {
        "concurrency": concurrency,
        "requests": count,
        "seconds": round(seconds, 3),
        "requests_per_s": round(len(latencies) / seconds, 2) if seconds else None,
        "latency": common.percentiles(latencies),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "client_cpu_s": round(time.process_time() - cpu0, 2),
        "server_cpu_s": round(server.cpu_seconds() - server_cpu0, 2),
    }


def _search_body(question: str) -> dict[str, Any]:
    return {"query": question, "top_k": TOP_K}


def _ask_body(question: str, top_k: int, stream: bool = False) -> dict[str, Any]:
    return {"question": question, "top_k": top_k, "max_tokens": ASK_MAX_TOKENS, "stream": stream}


async def stream_ask(server: Server, question: str, top_k: int, timeout: float) -> dict[str, Any]:
    """One ``stream: true`` ask: when the first ``token`` event arrives, against the server's own clock."""

    path = f"/v1/collections/{COLLECTION}/ask"
    first = last = None
    token_events = 0
    answer: dict[str, Any] | None = None
    error = None
    async with _client(server.url, 1, timeout) as client:
        await client.get("/healthz")  # the connection is open before the clock starts, as in the load runs
        t0 = time.perf_counter()
        async with client.stream("POST", path, json=_ask_body(question, top_k, stream=True)) as response:
            if response.status_code != 200:
                await response.aread()
                return {"error": f"HTTP {response.status_code}: {response.text[:200]}"}
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[len("event:") :].strip()
                elif line.startswith("data:"):
                    now = time.perf_counter()
                    if event == "token":
                        token_events += 1
                        first = first if first is not None else now
                        last = now
                    elif event == "answer":
                        answer = json.loads(line[len("data:") :])
                    elif event == "error":
                        error = line[len("data:") :].strip()
                elif not line:
                    event = ""
        end = time.perf_counter()
    if answer is None or first is None or last is None:
        return {"error": error or "the stream ended without a token and an answer"}
    timings = answer["timings"]
    server_first = sum(timings.get(stage, 0.0) for stage in ("retrieve", "assemble", "first_token"))
    made = answer["usage"]["completion_tokens"]
    return {
        "client_ttft_ms": round((first - t0) * 1000, 3),
        "server_ttft_ms": round(server_first * 1000, 3),
        "delay_ms": round((first - t0 - server_first) * 1000, 3),
        "server_timings_ms": {k: round(v * 1000, 3) for k, v in timings.items()},
        "total_ms": round((end - t0) * 1000, 3),
        "token_events": token_events,
        "completion_tokens": made,
        "client_tokens_per_s": round((made - 1) / (last - first), 2) if made > 1 and last > first else None,
    }


async def soak(server: Server, questions: Sequence[str], count: int, every: int) -> dict[str, Any]:
    """``count`` searches at concurrency 8, the server's RSS sampled every ``every`` requests."""
    path = f"/v1/collections/{COLLECTION}/search"
    before = server.rss()
    samples = [{"requests": 0, "rss_bytes": before}]
    done, errors, seconds = 0, 0, 0.0
    latencies: list[dict[str, Any]] = []
    while done < count:
        batch = min(every, count - done)
        bodies = [_search_body(q) for q in (questions[(done + i) % len(questions)] for i in range(batch))]
        result = await load(server, path, bodies, batch, 8, timeout=120)
        done += batch
        errors += result["errors"]
        seconds += result["seconds"]
        latencies.append(result["latency"])
        samples.append({"requests": done, "rss_bytes": server.rss()})
        log(
            f"soak: {done:,} searches, server RSS {samples[-1]['rss_bytes'] / 2**20:,.0f} MiB, "
            f"p50 {result['latency'].get('p50_ms', 0):.1f} ms"
        )
    after = samples[-1]["rss_bytes"]
    rss = [s["rss_bytes"] for s in samples]
    return {
        "requests": count,
        "concurrency": 8,
        "distinct_questions": min(len(questions), count),
        "requests_per_s": round(count / seconds, 2) if seconds else None,
        "p50_ms_per_window": [w.get("p50_ms") for w in latencies],
        "errors": errors,
        "rss_before_bytes": before,
        "rss_after_bytes": after,
        "growth_pct": round((after - before) / before * 100, 2),
        "rss_max_bytes": max(rss),
        "rss_min_bytes": min(rss),
        "samples": samples,
    }


async def drive(
    server: Server, collection: Any, sizes: dict[str, Any], sets: dict[str, list[str]], in_process: dict[str, Any]
) -> dict[str, Any]:
    """Everything sent to the running server: warm-up, soak, paired searches, search and ask loads, streams."""
    search_path = f"/v1/collections/{COLLECTION}/search"
    out: dict[str, Any] = {"warmup": await warm_up(server, sets, sizes["ask_top_k"])}
    rss_warm = server.rss()
    out["memory"] = {"rss_after_warmup_bytes": rss_warm, "threads_after_warmup": server.threads()}
    log(f"server: warm, RSS {rss_warm / 2**20:,.0f} MiB")

    out["memory"]["soak"] = await soak(server, sets["soak"], sizes["soak_requests"], sizes["soak_sample_every"])

    out["paired_search"] = await paired_search(server, collection, sets["search"])

    out["search"] = []
    bodies = [_search_body(q) for q in sets["search"]]
    for concurrency in CONCURRENCY:
        result = await load(server, search_path, bodies, sizes["search_requests"], concurrency, timeout=120)
        out["search"].append(result)
        log(f"search c={concurrency}: {_summary(result)}")
    out["ask"] = await ask_levels(server, sets["ask"], sizes, in_process["ask"]["per_question_ms"])
    out["stream"] = await streams(server, sets["stream"], sizes["ask_top_k"])
    out["memory"].update(rss_end_bytes=server.rss(), peak_rss_bytes=server.peak_rss(), threads_end=server.threads())
    out["overhead"] = overhead(in_process, out)
    return out


def _summary(result: dict[str, Any]) -> str:
    latency = result["latency"]
    return (
        f"{result['requests_per_s'] or 0:.2f} req/s, p50 {latency.get('p50_ms', 0):.2f} ms, "
        f"p99 {latency.get('p99_ms', 0):.2f} ms, {result['errors']} errors"
    )


async def warm_up(server: Server, sets: dict[str, list[str]], top_k: int) -> dict[str, float]:
    """A few searches and one ask, so the collection is open and both models are loaded; how long the first took."""
    search_path = f"/v1/collections/{COLLECTION}/search"
    async with _client(server.url, 1, 600) as client:
        t0 = time.perf_counter()
        (await client.post(search_path, json=_search_body(sets["search"][0]))).raise_for_status()
        first_search = time.perf_counter() - t0
        for question in sets["search"][1:WARMUP_SEARCHES]:
            (await client.post(search_path, json=_search_body(question))).raise_for_status()
        t0 = time.perf_counter()
        ask = await client.post(f"/v1/collections/{COLLECTION}/ask", json=_ask_body(sets["ask"][0], top_k))
        ask.raise_for_status()
        first_ask = time.perf_counter() - t0
    log(
        f"server: first search {first_search:.1f}s (collection opened, embedder loaded), "
        f"first ask {first_ask:.1f}s (generator loaded)"
    )
    return {"first_search_s": round(first_search, 3), "first_ask_s": round(first_ask, 3)}


async def ask_levels(
    server: Server, questions: Sequence[str], sizes: dict[str, Any], local_ms: Sequence[float]
) -> list[dict[str, Any]]:
    """Non-streaming asks at each concurrency, with the server's own ``timings.total`` of every answer.

    ``local_ms``: the in-process latency of each question, compared one by one at concurrency 1.
    """
    path = f"/v1/collections/{COLLECTION}/ask"
    bodies = [_ask_body(q, sizes["ask_top_k"]) for q in questions]
    levels = []
    for concurrency in CONCURRENCY:
        seen: dict[int, tuple[float, float]] = {}

        def keep(index: int, seconds: float, response: Any, seen: dict[int, tuple[float, float]] = seen) -> None:
            seen[index] = (seconds, float(response.json()["timings"]["total"]))

        count = sizes["ask_requests"][concurrency]
        result = await load(server, path, bodies, count, concurrency, timeout=1800, keep=keep)
        result["server_total"] = common.percentiles([total for _, total in seen.values()])
        result["client_minus_server_total"] = common.percentiles([max(0.0, c - t) for c, t in seen.values()])
        if concurrency == 1:  # the same questions, one at a time, as in process: compare them one by one
            gaps = [seconds * 1000 - local_ms[i % len(local_ms)] for i, (seconds, _) in seen.items()]
            result["same_question_overhead_median_ms"] = round(statistics.median(gaps), 3) if gaps else None
        levels.append(result)
        log(f"ask c={concurrency}: {_summary(result)}")
    return levels


async def streams(server: Server, questions: Sequence[str], top_k: int) -> dict[str, Any]:
    """Streamed asks one at a time: the client's first token against the server's, and the stream's rate."""
    runs = [await stream_ask(server, q, top_k, timeout=600) for q in questions]
    good = [s for s in runs if "error" not in s]
    delays = [s["delay_ms"] for s in good]
    result = {
        "questions": len(runs),
        "errors": len(runs) - len(good),
        "client_ttft_p50_ms": _median(s["client_ttft_ms"] for s in good),
        "server_ttft_p50_ms": _median(s["server_ttft_ms"] for s in good),
        "delay_p50_ms": _median(delays),
        "delay_max_ms": round(max(delays), 3) if delays else None,
        "client_tokens_per_s_p50": _median(s["client_tokens_per_s"] for s in good),
        "runs": runs,
    }
    log(
        f"stream: first token at the client {result['client_ttft_p50_ms']} ms, "
        f"{result['delay_p50_ms']} ms after the generator made it (median)"
    )
    return result


async def paired_search(server: Server, collection: Any, questions: Sequence[str]) -> dict[str, Any]:
    """The same questions searched in process and over HTTP, one at a time, alternating which goes first.

    Both sides run in the same minute on the same machine, so a busy neighbour slows both alike: the
    difference of their medians is the HTTP layer (client, loopback, server) and little else.
    """
    path = f"/v1/collections/{COLLECTION}/search"
    local: list[float] = []
    remote: list[float] = []
    errors = 0
    async with _client(server.url, 1, 120) as client:
        await client.get("/healthz")  # the keep-alive connection is open before the first timed request

        def in_process(question: str) -> None:
            t0 = time.perf_counter()
            collection.search(question, top_k=TOP_K)
            local.append(time.perf_counter() - t0)

        async def over_http(index: int, question: str) -> None:
            nonlocal errors
            headers = {"X-Request-ID": f"{PAIRED_ID}{index}"}
            t0 = time.perf_counter()
            response = await client.post(path, json=_search_body(question), headers=headers)
            if response.status_code == 200:
                remote.append(time.perf_counter() - t0)
            else:
                errors += 1

        for i, question in enumerate(questions):
            if i % 2 == 0:
                in_process(question)
                await over_http(i, question)
            else:
                await over_http(i, question)
                in_process(question)
    await asyncio.sleep(0.5)  # the last access-log lines reach the file
    app = list(server.access_durations(PAIRED_ID).values())
    result: dict[str, Any] = {
        "questions": len(questions),
        "errors": errors,
        "in_process": common.percentiles(local),
        "http": common.percentiles(remote),
        "server_app": common.percentiles(app),
    }
    if local and remote:
        http_ms, local_ms = result["http"]["p50_ms"], result["in_process"]["p50_ms"]
        result.update(overhead_p50_ms=round(http_ms - local_ms, 3), ratio=round(http_ms / local_ms, 3))
    log(
        f"HTTP layer: search p50 {result['http'].get('p50_ms', 0):.2f} ms over HTTP vs "
        f"{result['in_process'].get('p50_ms', 0):.2f} ms in process, alternating"
    )
    return result


def overhead(in_process: dict[str, Any], http: dict[str, Any]) -> dict[str, Any]:
    """What the HTTP layer adds at concurrency 1: HTTP p50 minus the in-process p50, and their ratio.

    ``search``: from the alternating run (the fair comparison); ``search_separate_runs``: the load run at
    concurrency 1 against the in-process run minutes before it; ``ask``: the same for answers, with the
    client's latency minus the server's own ``timings.total`` (the HTTP layer measured per request).
    """

    def compare(http_ms: float | None, local_ms: float | None) -> dict[str, Any]:
        if http_ms is None or local_ms is None:
            return {"http_p50_ms": http_ms, "in_process_p50_ms": local_ms}
        return {
            "http_p50_ms": http_ms,
            "in_process_p50_ms": local_ms,
            "overhead_p50_ms": round(http_ms - local_ms, 3),
            "ratio": round(http_ms / local_ms, 3),
        }

    paired = http["paired_search"]
    ask_c1 = http["ask"][0]
    app_ms = paired["server_app"].get("p50_ms")
    result = {
        "search": {
            **compare(paired["http"].get("p50_ms"), paired["in_process"].get("p50_ms")),
            "method": "alternating, same questions",
            "questions": paired["questions"],
            "server_app_p50_ms": app_ms,
        },
        "search_separate_runs": compare(http["search"][0]["latency"].get("p50_ms"), in_process["search"].get("p50_ms")),
        "ask": compare(ask_c1["latency"].get("p50_ms"), in_process["ask"].get("p50_ms")),
    }
    result["ask"]["same_question_median_ms"] = ask_c1.get("same_question_overhead_median_ms")
    result["ask"]["client_minus_server_p50_ms"] = ask_c1["client_minus_server_total"].get("p50_ms")
    return result


# -- the whole step --------------------------------------------------------------------------------------------


def question_sets(dataset: Path, documents: Path, sizes: dict[str, Any]) -> dict[str, list[str]]:
    """The questions about the documents, shuffled with a fixed seed: every run sends the same ones.

    ``search``: timed in process and over HTTP; ``soak``: every question (the memory run cycles through
    them); ``ask`` and ``stream``: the first of ``search``.
    """
    import random

    names = [p.name for p in documents.iterdir() if p.is_file()]
    pool = [q["question"] for q in common.load_questions(dataset, names)]
    random.Random(0).shuffle(pool)
    n, k, s = sizes["search_questions"], sizes["ask_questions"], sizes["stream_questions"]
    if len(pool) < max(n, k + s):
        raise SystemExit(f"only {len(pool)} questions about {len(names)} documents; {max(n, k + s)} needed")
    return {"search": pool[:n], "soak": pool, "ask": pool[:k], "stream": pool[k : k + s]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark; see the module docstring."""
    started = time.perf_counter()
    sizes = common.override_sizes(SIZES["quick" if args.quick else "full"], args.size, "--size")
    work = Path(args.work).resolve() / "service"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    dataset = common.dataset_dir(args.dataset)
    documents = common.prepare_documents(dataset, work, sizes["documents"])
    sets = question_sets(dataset, documents, sizes)
    store_dir = work / "store"

    from ragkit import Collection
    from ragkit.rag import RagPipeline

    log(f"service: ingesting {documents} into a fresh store at {store_dir}")
    collection = Collection.create(COLLECTION, store_dir=store_dir)
    t0 = time.perf_counter()
    report = collection.ingest([documents])
    ingest = {
        "files": report.added + report.updated,
        "chunks": report.chunks_written,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    log(f"service: {report.summary()}")

    in_process: dict[str, Any] = {"search": in_process_search(collection, sets["search"])}
    pipeline = RagPipeline.load("basic")
    texts = (p.read_text(encoding="utf-8") for p in sorted(documents.iterdir()) if p.is_file())
    context = "\n\n".join(texts)[:CONTEXT_CHARS]
    generator = generator_alone(
        pipeline.config.prompt, sets["ask"][0], context, sizes["generator_repeats"], sizes["generator_new_tokens"]
    )
    in_process["ask"] = in_process_ask(pipeline, collection, sets["ask"], sizes["ask_top_k"])

    server = Server(store_dir, work / "server.log")
    try:
        startup_s = server.start()
        log(f"server: ready in {startup_s:.1f}s at {server.url}")
        http = asyncio.run(drive(server, collection, sizes, sets, in_process))
    finally:
        stopped = server.stop()
        log(f"server: stopped ({stopped})")
        collection.close()
    return {
        "step": "service",
        "mode": "quick" if args.quick else "full",
        "sizes": {**sizes, "ask_requests": {str(k): v for k, v in sizes["ask_requests"].items()}},
        "search_top_k": TOP_K,
        "ask_max_tokens": ASK_MAX_TOKENS,
        "versions": common.versions(VERSIONED),
        "torch_threads": common.torch_threads(),
        "collection": ingest,
        "in_process": in_process,
        "generator": generator,
        "server": {
            "command": "ragkit serve --host 127.0.0.1 --port <free> --store-dir <fresh store>",
            "startup_s": round(startup_s, 3),
            "settings": _service_defaults(),
            "stopped": stopped,
            **http.pop("warmup"),
        },
        **http,
        "bench_process_peak_rss_bytes": common.peak_rss_bytes(),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _service_defaults() -> dict[str, Any]:
    """The service settings that shape the load numbers (the defaults: the bench sets none)."""
    from ragkit.service import ServiceSettings

    fields = ServiceSettings.model_fields
    return {
        name: fields[name].default
        for name in ("max_concurrent_asks", "blocking_threads", "preload", "log_json", "log_level")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--work", default="bench-out/work", help="scratch folder (the store goes in <work>/service)")
    parser.add_argument("--dataset", help=f"squad-dev folder (default ${common.DATASET_ENV} or ../shared/datasets/...)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: 3 documents, 100 requests per level")
    parser.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one of the mode's sizes (repeatable; names as in SIZES, ask_requests as 1:2,8:2,32:2)",
    )
    args = parser.parse_args(argv)
    # a SIGTERM (the runner stopped) unwinds through run()'s cleanup, so the server is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    result = run(args)
    common.write_json(Path(args.out), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
