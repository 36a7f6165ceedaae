"""The vector-store part of the benchmark report (``store_bench.py``'s steps).

Its targets (FAISS memory, latency and recall at scale), its plain-text
summary lines and its Markdown section ("Vector stores at scale"), rendered
from ``results["store"]``.
"""

from __future__ import annotations

from typing import Any

from formatting import Row, at_least, at_most, below, get, mib, ms, num, pct, table

STORES = ("faiss", "milvus")


def targets(results: dict[str, Any]) -> list[Row]:
    """The FAISS store's targets at the size that was run."""
    faiss = get(results, "store", "faiss", "search") or {}
    n = faiss.get("n")
    scale = f" at {n:,} vectors" if n else ""
    extra = get(faiss, "memory", "resident_overhead_bytes_per_vector")
    p50 = get(faiss, "search", "none", "latency", "p50_ms")
    recall = get(faiss, "search", "none", "recall@10")
    return [
        (
            "FAISS store memory" + scale,
            "<= 2 KiB resident per vector beyond the vector",
            extra,
            "–" if extra is None else f"{extra:,.0f} B",
            at_most(extra, 2048),
        ),
        ("FAISS approximate search p50" + scale, "< 10 ms", p50, ms(p50), below(p50, 10)),
        ("FAISS recall@10 vs exact" + scale, ">= 0.95", recall, pct(recall), at_least(recall, 0.95)),
    ]


def text(results: dict[str, Any]) -> list[str]:
    """The plain-text summary: insert rate, latency and recall per filter, memory and disk per vector."""
    store = results.get("store", {})
    lines: list[str] = []
    for name in STORES:
        ins, srch = get(store, name, "insert"), get(store, name, "search")
        if not ins:
            continue
        lines.append(f"store {name}: {ins['n']:,} vectors, insert {num(ins['insert_vectors_per_s'])}/s")
        if srch:
            for flt, entry in srch.get("search", {}).items():
                if "error" in entry:
                    lines.append(f"  filter {flt:<10} FAILED: {entry['error']}")
                    continue
                lines.append(
                    f"  filter {flt:<10} p50 {ms(entry['latency'].get('p50_ms')):>11} p99 "
                    f"{ms(entry['latency'].get('p99_ms')):>11} recall@10 {pct(entry['recall@10'])} "
                    f"({entry['queries']} queries)"
                )
            mem = srch.get("memory", {})
            lines.append(
                f"  resident overhead {num(mem.get('resident_overhead_bytes_per_vector'), 0)} B/vector, "
                f"disk {num(srch.get('disk_bytes_per_vector'), 0)} B/vector"
            )
    return lines


def section(results: dict[str, Any]) -> str:
    """The "Vector stores at scale" section ("" without store results)."""
    store = results.get("store")
    if not store:
        return ""
    truth = store.get("truth") or {}
    out = ["## Vector stores at scale\n"]
    filters = truth.get("filters", {})
    described = "; ".join(
        f"{name}: `{f['expression']}` ({f['share'] * 100:.1f} %)" for name, f in filters.items() if f["expression"]
    )
    out.append(
        f"{truth.get('n', 0):,} synthetic 384-d unit vectors (a seeded mixture of 2,000 Gaussian clusters) with "
        "metadata `category` (20 values), `year` (2000-2024) and `lang` (5 values, en 50 %), inserted through each "
        "store's `upsert` in batches of 10,000 chunks, then flushed. Queries: held-out points drawn the same way, "
        f"one at a time, top 10; filters: {described}. Recall@10 is against exact brute-force search (FAISS flat) "
        "over the same vectors and filter. Resident memory: RSS after opening the store in a fresh process and "
        "running the unfiltered queries, minus RSS before opening, per vector, minus the 1,536 bytes of the float32 "
        "vector itself. Filtered searches stop after a time budget; the query counts are given.\n"
    )
    header = ["", *(name for name in STORES if get(store, name, "insert"))]
    if len(header) == 1:
        return "\n".join(out)
    names = header[1:]

    def row(label: str, fn: Any) -> list[str]:
        cells = []
        for name in names:
            try:
                cells.append(fn(store[name]))
            except (KeyError, TypeError, AttributeError):
                cells.append("–")
        return [label, *cells]

    def search(entry: dict[str, Any], flt: str) -> dict[str, Any]:
        return entry["search"]["search"][flt]

    rows = [
        row(
            "store class and options",
            lambda s: f"{s['insert']['index']['class']} {s['insert']['options'] or '(defaults)'}",
        ),
        row("index", lambda s: _index_text(s["insert"]["index"])),
        row("vectors", lambda s: f"{s['insert']['n']:,}"),
        row("insert rate (upsert)", lambda s: f"{s['insert']['insert_vectors_per_s']:,.0f} vectors/s"),
        row(
            "insert rate incl. flush and close",
            lambda s: f"{s['insert']['insert_vectors_per_s_with_flush']:,.0f} vectors/s",
        ),
        row("open (fresh process)", lambda s: f"{s['search']['open_s']:.1f} s"),
    ]
    for flt in ("none", "selective", "broad"):
        label = "no filter" if flt == "none" else f"filter {flt}"
        rows.append(row(f"search p50 / p99, {label}", lambda s, f=flt: _latency_cell(search(s, f))))
        rows.append(row(f"recall@10, {label}", lambda s, f=flt: pct(search(s, f).get("recall@10"))))
    rows.append(
        row(
            "raw FAISS index search p50 / p99, no filter",
            lambda s: (
                f"{ms(search(s, 'none')['raw_index_latency']['p50_ms'])} / "
                f"{ms(search(s, 'none')['raw_index_latency']['p99_ms'])}"
            ),
        )
    )
    rows.append(
        row(
            "resident memory per vector beyond the vector",
            lambda s: f"{s['search']['memory']['resident_overhead_bytes_per_vector']:,.0f} B",
        )
    )
    rows.append(
        row(
            "… after the filtered searches too",
            lambda s: f"{s['search']['memory']['resident_overhead_after_filters_bytes_per_vector']:,.0f} B",
        )
    )
    rows.append(row("disk per vector", lambda s: f"{s['search']['disk_bytes_per_vector']:,.0f} B"))
    rows.append(row("peak RSS while inserting", lambda s: mib(s["insert"]["peak_rss_bytes"])))
    out.append(table(header, rows) + "\n")
    return "\n".join(out)


def _latency_cell(entry: dict[str, Any]) -> str:
    if "error" in entry:
        return f"fails: `{entry['error'][:160]}`"
    latency = entry["latency"]
    return f"{ms(latency['p50_ms'])} / {ms(latency['p99_ms'])} ({entry['queries']} q)"


def _index_text(info: dict[str, Any]) -> str:
    if "faiss_index" not in info:
        return str(info.get("kind") or info.get("stats", {}).get("index", "see options"))
    parts = [f"{info.get('kind')} ({info['faiss_index']}"]
    if "nlist" in info:
        parts.append(f", nlist {info['nlist']}, nprobe {info.get('nprobe')}")
    return "".join(parts) + ")"
