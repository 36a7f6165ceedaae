"""The REST-service part of the benchmark report (``service_bench.py``'s step).

Its targets (errors, the HTTP layer's cost, tail latency, streaming delay,
memory), its plain-text summary lines and its Markdown section ("REST
service"), rendered from ``results["service"]``.
"""

from __future__ import annotations

from typing import Any

from formatting import Row, at_most, below, fx, get, mib, ms, num, ratio, table


def service_level(service: dict[str, Any], route: str, concurrency: int) -> dict[str, Any] | None:
    """The load run of ``route`` (``search`` or ``ask``) at ``concurrency``, if it was measured."""
    for level in service.get(route) or []:
        if level.get("concurrency") == concurrency:
            return dict(level)
    return None


def targets(results: dict[str, Any]) -> list[Row]:
    """The REST service's targets."""
    service = results.get("service") or {}
    c32 = service_level(service, "search", 32) or {}
    errors = c32.get("errors")
    search = get(service, "overhead", "search") or {}
    added = search.get("overhead_p50_ms")
    p50, p99 = get(c32, "latency", "p50_ms"), get(c32, "latency", "p99_ms")
    spread = ratio(p99, p50)
    delay, worst = get(service, "stream", "delay_p50_ms"), get(service, "stream", "delay_max_ms")
    rss = get(service, "memory", "rss_after_warmup_bytes")
    soak = get(service, "memory", "soak") or {}
    growth, n = soak.get("growth_pct"), soak.get("requests")
    return [
        (
            "search at c=32: zero errors",
            "no request fails (exception or status other than 200)",
            errors,
            "–" if errors is None else f"{errors} of {c32['requests']:,} failed",
            None if errors is None else errors == 0,
        ),
        (
            "HTTP layer adds < 2 ms at p50 over in-process",
            "search, one request at a time: HTTP p50 minus `col.search` p50, same questions, alternating",
            added,
            "–"
            if added is None
            else f"{added:+.2f} ms ({ms(search.get('http_p50_ms'))} vs {ms(search.get('in_process_p50_ms'))})",
            below(added, 2),
        ),
        (
            "p99 < 5x p50 at c=32",
            "search latency at concurrency 32",
            spread,
            "–" if spread is None else f"{fx(spread)} ({ms(p99)} / {ms(p50)})",
            below(spread, 5),
        ),
        (
            "first SSE token leaves within 50 ms of the generator",
            "streamed ask: client's first `token` event minus the server's retrieve + assemble + first_token, "
            "median < 50 ms",
            delay,
            "–" if delay is None else f"{ms(delay)} (max {ms(worst)})",
            below(delay, 50),
        ),
        (
            "serve RSS with models loaded < 2 GiB",
            "server RSS after warm-up (embedder and generator loaded)",
            rss,
            mib(rss),
            below(rss, 2 * 2**30),
        ),
        (
            f"RSS flat within 10% across {n or 10_000:,} searches",
            "server RSS after the searches (concurrency 8) within 10 % of before",
            growth,
            "–"
            if growth is None
            else f"{growth:+.1f} % ({mib(soak.get('rss_before_bytes'))} → {mib(soak.get('rss_after_bytes'))})",
            at_most(None if growth is None else abs(growth), 10),
        ),
    ]


def text(results: dict[str, Any]) -> list[str]:
    """The plain-text summary: load per route and concurrency, the HTTP layer, streaming, generator, memory."""
    service = results.get("service")
    if not service:
        return []
    lines = [
        "",
        f"REST service ({get(service, 'collection', 'files')} documents, "
        f"{get(service, 'collection', 'chunks')} chunks; the client on the same cores)",
    ]
    lines.append(f"{'route':<12}{'c':>4}{'requests':>10}{'req/s':>10}{'p50':>13}{'p99':>13}{'errors':>8}")
    for route in ("search", "ask"):
        for level in service.get(route) or []:
            latency = level.get("latency", {})
            lines.append(
                f"{route:<12}{level['concurrency']:>4}{level['requests']:>10}"
                f"{num(level.get('requests_per_s')):>10}{ms(latency.get('p50_ms')):>13}"
                f"{ms(latency.get('p99_ms')):>13}{level['errors']:>8}"
            )
    over = service.get("overhead", {})
    search, ask = over.get("search", {}), over.get("ask", {})
    lines.append(
        f"HTTP layer at c=1: search {ms(search.get('http_p50_ms'))} vs {ms(search.get('in_process_p50_ms'))} "
        f"in process (alternating); ask {ms(ask.get('http_p50_ms'))} vs {ms(ask.get('in_process_p50_ms'))}, "
        f"client minus server total {ms(ask.get('client_minus_server_p50_ms'))}"
    )
    stream = service.get("stream", {})
    lines.append(
        f"SSE: first token at the client {ms(stream.get('client_ttft_p50_ms'))}, "
        f"{ms(stream.get('delay_p50_ms'))} after the generator (max {ms(stream.get('delay_max_ms'))}), "
        f"{num(stream.get('client_tokens_per_s_p50'), 1)} tokens/s"
    )
    generator = service.get("generator", {})
    prompts = ", ".join(
        f"{p.get('prompt_tokens')}-token prompt: first token {ms(p.get('ttft_ms'))}, "
        f"{num(p.get('decode_tokens_per_s'), 1)} tokens/s"
        for p in (generator.get("prompts") or {}).values()
    )
    lines.append(f"generator: loads in {num(generator.get('load_s'), 1)}s; {prompts}")
    memory = service.get("memory", {})
    soak = memory.get("soak", {})
    lines.append(
        f"server RSS after warm-up {mib(memory.get('rss_after_warmup_bytes'))}; "
        f"{soak.get('requests', 0):,} searches: {mib(soak.get('rss_before_bytes'))} → "
        f"{mib(soak.get('rss_after_bytes'))} ({soak.get('growth_pct', 0):+.1f} %)"
    )
    return lines


def section(results: dict[str, Any]) -> str:
    """The "REST service" section: load per route and concurrency, the HTTP layer's cost, streaming, the
    generator, memory ("" without service results)."""
    service = results.get("service")
    if not service:
        return ""
    versions = service.get("versions", {})
    settings = get(service, "server", "settings") or {}
    generator = service.get("generator") or {}
    sizes = service.get("sizes") or {}
    collection = service.get("collection") or {}
    parser = "httptools" if versions.get("httptools", "missing") != "missing" else "h11"
    loop = "uvloop" if versions.get("uvloop", "missing") != "missing" else "asyncio"
    out = ["## REST service\n"]
    out.append(
        f"`ragkit serve` (uvicorn {versions.get('uvicorn', '?')} with {parser} and the {loop} loop, one worker, "
        f"FastAPI {versions.get('fastapi', '?')}; default settings: {settings.get('max_concurrent_asks', '?')} answers "
        f"generated at once, {settings.get('blocking_threads', '?')} threads for blocking work, a JSON access-log "
        f"line per request) as a subprocess on a loopback port, over a fresh store holding "
        f"{collection.get('files', '?')} squad-dev documents ({collection.get('chunks', '?')} chunks). It answered "
        f"`/readyz` {num(get(service, 'server', 'startup_s'), 1)} s after starting; warm-up: first search "
        f"{num(get(service, 'server', 'first_search_s'), 1)} s (collection opened, embedder loaded), first ask "
        f"{num(get(service, 'server', 'first_ask_s'), 1)} s (generator loaded). The client is an "
        f"`httpx.AsyncClient` {versions.get('httpx', '')} (HTTP/1.1 keep-alive, one connection per concurrent "
        "request) in the benchmark's own process, on the same cores as the server: its CPU seconds are in the "
        f"table. Searches: top {service.get('search_top_k', 5)} dense, squad-dev questions in turn (the embedder "
        "runs for every query; query vectors are not cached). Asks: the `basic` pipeline, `top_k` "
        f"{sizes.get('ask_top_k', '?')}, `max_tokens` {service.get('ask_max_tokens', '?')}, answered by the packaged "
        f"{generator.get('model', 'generator')} on the {generator.get('device', 'cpu')} "
        f"({generator.get('dtype', '?')}). An error is an exception or any status but 200; latencies are over the "
        "successful requests.\n"
    )
    out.append("### Load\n")
    rows = []
    for route in ("search", "ask"):
        for level in service.get(route) or []:
            latency = level.get("latency", {})
            done = latency.get("n") or 0
            rows.append(
                [
                    f"`{route}`",
                    str(level["concurrency"]),
                    f"{level['requests']:,}",
                    num(level.get("requests_per_s")),
                    ms(latency.get("p50_ms")),
                    ms(latency.get("p99_ms")),
                    str(level["errors"]),
                    ms(level["server_cpu_s"] * 1000 / done) if done else "–",
                    ms(level["client_cpu_s"] * 1000 / done) if done else "–",
                ]
            )
    out.append(
        table(
            [
                "route",
                "concurrency",
                "requests",
                "requests/s",
                "p50",
                "p99",
                "errors",
                "server CPU / request",
                "client CPU / request",
            ],
            rows,
        )
        + "\n"
    )
    asks = service.get("ask") or []
    if asks:
        out.append(
            "Answers are bounded by the model: the generator writes one answer at a time on these cores, so more "
            "concurrency only lengthens the queue, and an ask's latency at concurrency c is mostly its wait behind "
            "the others. The server's own `timings.total` per answer (median): "
            + ", ".join(f"{ms(get(a, 'server_total', 'p50_ms'))} at c={a['concurrency']}" for a in asks)
            + f" (it starts once one of the {settings.get('max_concurrent_asks', '?')} answer slots is taken: the "
            "wait for the model behind the other slot holders is in it, the wait for a slot is not).\n"
        )
    out.append("### What the HTTP layer adds\n")
    over = service.get("overhead") or {}
    search, separate, ask = over.get("search") or {}, over.get("search_separate_runs") or {}, over.get("ask") or {}

    def added(entry: dict[str, Any]) -> str:
        value = entry.get("overhead_p50_ms")
        return "–" if value is None else f"{value:+.2f} ms"

    rows = [
        [
            f"search, one at a time: the same {search.get('questions', '?')} questions in process and over HTTP, "
            "alternating",
            ms(search.get("in_process_p50_ms")),
            ms(search.get("http_p50_ms")),
            added(search),
            fx(search.get("ratio")),
        ],
        [
            "… of which inside the server's app (access-log `duration_ms`: from the outermost middleware to the "
            "response's last byte; not uvicorn's parsing, the socket or the client)",
            ms(search.get("in_process_p50_ms")),
            ms(search.get("server_app_p50_ms")),
            "–"
            if search.get("server_app_p50_ms") is None or search.get("in_process_p50_ms") is None
            else f"{search['server_app_p50_ms'] - search['in_process_p50_ms']:+.2f} ms",
            fx(ratio(search.get("server_app_p50_ms"), search.get("in_process_p50_ms"))),
        ],
        [
            "search, separate runs: `col.search` before the server started vs the load run at c=1",
            ms(separate.get("in_process_p50_ms")),
            ms(separate.get("http_p50_ms")),
            added(separate),
            fx(separate.get("ratio")),
        ],
        [
            "ask, separate runs: `pipeline.ask` vs the load run at c=1",
            ms(ask.get("in_process_p50_ms")),
            ms(ask.get("http_p50_ms")),
            added(ask),
            fx(ask.get("ratio")),
        ],
        [
            "ask at c=1: the client's latency minus the server's own `timings.total`, per request",
            "–",
            "–",
            "–" if ask.get("client_minus_server_p50_ms") is None else f"+{ask['client_minus_server_p50_ms']:.2f} ms",
            "–",
        ],
    ]
    out.append(table(["p50", "in process", "over HTTP", "added", "ratio"], rows) + "\n")
    out.append(
        "The alternating run is the fair reading: both sides see the machine in the same state. Runs minutes apart "
        "also measure what the neighbours did in between, and an answer's time is dominated by the model.\n"
    )
    stream = service.get("stream") or {}
    out.append("### Streaming\n")
    out.append(
        f"{stream.get('questions', 0)} asks with `stream: true`, one at a time. The client's clock runs from sending "
        "the request to the first `token` event; the server's is the answer's own `retrieve + assemble + "
        "first_token` (pipeline start to the generator's first token). The difference bounds the delay between "
        "the generator producing the first token and the client receiving it (it also holds the request's trip in "
        "and its parsing).\n"
    )
    out.append(
        table(
            ["", "median", "max"],
            [
                [
                    "client: first `token` event",
                    ms(stream.get("client_ttft_p50_ms")),
                    ms(
                        max(
                            (r["client_ttft_ms"] for r in stream.get("runs", []) if "client_ttft_ms" in r), default=None
                        )
                    ),
                ],
                ["server: retrieve + assemble + first token", ms(stream.get("server_ttft_p50_ms")), "–"],
                ["**difference**", ms(stream.get("delay_p50_ms")), ms(stream.get("delay_max_ms"))],
                ["tokens/s at the client after the first", num(stream.get("client_tokens_per_s_p50"), 1), "–"],
            ],
        )
        + "\n"
    )
    out.append("### The generator alone\n")
    out.append(
        f'{generator.get("model", "The generator")} built with `registry.build("generator", {{"type": '
        f'"transformers"}})` in the benchmark process: the first `load()` took '
        f"**{num(generator.get('load_s'), 1)} s** (torch already imported by the embedder). Prompts: the "
        "pipeline's template around a prefix of the documents, cut to about 300 and 1,500 tokens; at most "
        f"{generator.get('new_tokens', '?')} new tokens, greedy (it may stop earlier), median of "
        f"{generator.get('repeats', '?')}.\n"
    )
    rows = [
        [
            str(p.get("prompt_tokens")),
            ms(p.get("ttft_ms")),
            num(p.get("decode_tokens_per_s"), 1),
            num(p.get("tokens_per_s"), 1),
            ", ".join(str(t) for t in p.get("completion_tokens", [])),
        ]
        for p in (generator.get("prompts") or {}).values()
    ]
    out.append(
        table(["prompt tokens", "first token", "tokens/s after the first", "tokens/s overall", "tokens made"], rows)
        + "\n"
    )
    local = service.get("in_process") or {}
    stages = get(local, "ask", "stage_p50_ms") or {}
    out.append(
        f"In process, over the same collection: `col.search` p50 {ms(get(local, 'search', 'p50_ms'))}, p99 "
        f"{ms(get(local, 'search', 'p99_ms'))} ({get(local, 'search', 'n', default=0)} questions); "
        f"`pipeline.ask` p50 {ms(get(local, 'ask', 'p50_ms'))}, p99 {ms(get(local, 'ask', 'p99_ms'))} "
        f"({get(local, 'ask', 'n', default=0)} questions, {num(get(local, 'ask', 'completion_tokens_mean'), 1)} "
        "tokens on average), stage medians: " + ", ".join(f"{k} {ms(v)}" for k, v in stages.items()) + ".\n"
    )
    memory = service.get("memory") or {}
    soak = memory.get("soak") or {}
    out.append("### Memory\n")
    growth = soak.get("growth_pct")
    out.append(
        table(
            ["server", "RSS"],
            [
                ["after warm-up (embedder and generator loaded)", mib(memory.get("rss_after_warmup_bytes"))],
                [f"before {soak.get('requests', 0):,} searches at concurrency 8", mib(soak.get("rss_before_bytes"))],
                ["after them", mib(soak.get("rss_after_bytes")) + ("" if growth is None else f" ({growth:+.1f} %)")],
                ["highest sample during them", mib(soak.get("rss_max_bytes"))],
                ["at the end, after the load and ask runs", mib(memory.get("rss_end_bytes"))],
                ["peak (`VmHWM`)", mib(memory.get("peak_rss_bytes"))],
            ],
        )
        + "\n"
    )
    samples = soak.get("samples") or []
    if samples:
        out.append(
            f"RSS every {sizes.get('soak_sample_every', '?'):,} searches: "
            + ", ".join(f"{s['rss_bytes'] / 2**20:,.0f}" for s in samples)
            + f" MiB; {num(soak.get('requests_per_s'))} searches/s, {soak.get('errors', 0)} errors.\n"
        )
    return "\n".join(out)
