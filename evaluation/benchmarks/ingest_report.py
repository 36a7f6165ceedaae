"""The ingestion and retrieval part of the benchmark report (``ingest_bench.py``'s steps).

Its targets, its plain-text summary lines and its two Markdown sections
("Ingestion" and "Retrieval"), rendered from ``results["ingest"]``.
"""

from __future__ import annotations

from typing import Any

from formatting import Row, at_least, below, fx, get, mib, ms, num, pct, ratio, table

INGEST_ROWS = [
    ("ragkit (defaults)", "ragkit"),
    ("LangChain tutorial", "langchain"),
    ("LlamaIndex defaults", "llamaindex"),
    ("LlamaIndex, chunk_size=256", "llamaindex_fit"),
    ("raw encode fp32", "encode_fp32"),
    ("raw encode bf16", "encode_bf16"),
]
RETRIEVAL_ROWS = [
    ("ragkit dense", "ragkit", "dense"),
    ("ragkit lexical (BM25)", "ragkit", "lexical"),
    ("LangChain (FAISS)", "langchain", "dense"),
    ("LlamaIndex", "llamaindex", "dense"),
    ("LlamaIndex, chunk_size=256", "llamaindex_fit", "dense"),
]


def ceiling(results: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """The raw-encode run at the precision ragkit itself ran in (the fair ceiling), and its name."""
    ingest = results.get("ingest", {})
    precision = get(ingest, "ragkit", "embedder", "precision")
    key = f"encode_{precision}" if precision in ("fp32", "bf16") else "encode_fp32"
    return key, ingest.get(key)


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    """ragkit's ingest rate against the others and the raw encoder, and the re-ingest speed-ups."""
    ingest = results.get("ingest", {})
    docs = {name: get(ingest, name, "ingest", "documents_per_s") for name in ("ragkit", "langchain", "llamaindex")}
    ragkit_chunks = get(ingest, "ragkit", "ingest", "chunks_per_s")
    _, ceil = ceiling(results)
    first = get(ingest, "ragkit", "ingest", "seconds")
    fit = get(ingest, "llamaindex_fit", "ingest", "documents_per_s")
    return {
        "ragkit_vs_llamaindex_fit": ratio(docs["ragkit"], fit),
        "ragkit_vs_langchain": ratio(docs["ragkit"], docs["langchain"]),
        "ragkit_vs_llamaindex": ratio(docs["ragkit"], docs["llamaindex"]),
        "ragkit_vs_ceiling": ratio(ragkit_chunks, get(ceil, "chunks_per_s")),
        "ragkit_vs_encode_fp32": ratio(ragkit_chunks, get(ingest, "encode_fp32", "chunks_per_s")),
        "reingest_speedup": ratio(first, get(ingest, "ragkit", "reingest_warm", "seconds")),
        "reingest_speedup_fresh_process": ratio(first, get(ingest, "reingest", "python_api", "total_s")),
        "reingest_speedup_cli": ratio(first, get(ingest, "reingest", "cli", "seconds")),
    }


def targets(results: dict[str, Any]) -> list[Row]:
    """The ingestion and retrieval targets."""
    ingest = results.get("ingest", {})
    r = ratios(results)
    key, _ = ceiling(results)
    rows: list[Row] = [
        (
            "ingest vs raw encode",
            ">= 0.90 of the raw model's encode rate on the same chunks",
            r["ragkit_vs_ceiling"],
            fx(r["ragkit_vs_ceiling"]) + f" (ceiling: {key})",
            at_least(r["ragkit_vs_ceiling"], 0.9),
        )
    ]
    for name, framework in (("langchain", "LangChain"), ("llamaindex", "LlamaIndex")):
        value = r[f"ragkit_vs_{name}"]
        rows.append((f"ingest vs {framework}", ">= 1.3x documents/s", value, fx(value), at_least(value, 1.3)))
    rows.append(
        (
            "re-ingest unchanged folder",
            ">= 20x faster than the first ingest",
            r["reingest_speedup"],
            fx(r["reingest_speedup"]) + " (same process)",
            at_least(r["reingest_speedup"], 20),
        )
    )
    overhead = get(ingest, "ragkit", "retrieval", "search_overhead_p50_ms")
    rows.append(
        (
            "search overhead over raw FAISS",
            "< 1 ms at p50",
            overhead,
            ms(overhead),
            below(overhead, 1),
        )
    )
    ours = get(ingest, "ragkit", "retrieval", "dense", "hit@5")
    theirs = get(ingest, "langchain", "retrieval", "dense", "hit@5")
    rows.append(
        (
            "answer-hit@5, ragkit dense vs LangChain",
            ">= LangChain's",
            ratio(ours, theirs),
            f"{pct(ours)} vs {pct(theirs)}",
            None if ours is None or theirs is None else ours >= theirs,
        )
    )
    peak = get(ingest, "ragkit", "ingest", "peak_rss_bytes")
    lc_peak = get(ingest, "langchain", "ingest", "peak_rss_bytes")
    rows.append(
        (
            "peak memory while ingesting",
            "<= LangChain's",
            ratio(peak, lc_peak),
            f"{mib(peak)} vs {mib(lc_peak)}",
            None if peak is None or lc_peak is None else peak <= lc_peak,
        )
    )
    return rows


def text(results: dict[str, Any]) -> list[str]:
    """The plain-text summary: ingest rates, the ratios, answer-hit rates and search latency."""
    ingest = results.get("ingest", {})
    if not ingest:
        return []
    lines = [f"{'ingestion':<26}{'docs/s':>10}{'chunks/s':>10}{'chunks':>8}{'seconds':>9}{'peak RSS':>11}"]
    for label, key in INGEST_ROWS:
        row = ingest.get(key)
        if not row:
            continue
        data = row.get("ingest", row)
        lines.append(
            f"{label:<26}{num(data.get('documents_per_s'), 3):>10}{num(data.get('chunks_per_s')):>10}"
            f"{data.get('chunks', '–'):>8}{num(data.get('seconds'), 1):>9}{mib(data.get('peak_rss_bytes')):>11}"
        )
    r = ratios(results)
    lines.append(
        f"ratios: ragkit/LangChain {fx(r['ragkit_vs_langchain'])}, "
        f"ragkit/LlamaIndex {fx(r['ragkit_vs_llamaindex'])}"
        f" (documents/s); ragkit/raw-encode ceiling {fx(r['ragkit_vs_ceiling'])}, ragkit/raw fp32 "
        f"{fx(r['ragkit_vs_encode_fp32'])} (chunks/s); re-ingest speed-up {fx(r['reingest_speedup'])}"
    )
    lines.append("")
    lines.append(f"{'retrieval':<26}{'hit@1':>8}{'hit@5':>8}")
    for label, key, mode in RETRIEVAL_ROWS:
        scored = get(ingest, key, "retrieval", mode)
        if scored:
            lines.append(f"{label:<26}{pct(scored['hit@1']):>8}{pct(scored['hit@5']):>8}")
    rk = get(ingest, "ragkit", "retrieval") or {}
    if rk:
        lines.append(
            f"search p50: store {ms(get(rk, 'search_store', 'p50_ms'))}, raw FAISS "
            f"{ms(get(rk, 'search_raw_faiss', 'p50_ms'))}, overhead {ms(rk.get('search_overhead_p50_ms'))}; "
            f"end to end {ms(get(rk, 'search_end_to_end', 'p50_ms'))}"
        )
    lines.append("")
    return lines


def section(results: dict[str, Any]) -> str:
    """The "Ingestion" and "Retrieval" sections ("" without ingestion results)."""
    if not results.get("ingest", {}):
        return ""
    return "\n".join([_ingest_section(results, ratios(results)), _retrieval_section(results)])


def _ingest_section(results: dict[str, Any], r: dict[str, float | None]) -> str:
    ingest = results["ingest"]
    key, _ = ceiling(results)
    rk = ingest.get("ragkit") or {}
    files = get(rk, "ingest", "files") or get(ingest, "langchain", "ingest", "files")
    out = ["## Ingestion\n"]
    out.append(
        f"{files} squad-dev documents, ingested from a fresh store by each pipeline in its own process. The clock "
        "starts after imports and model loading (each model is warmed with one short text), and stops when the "
        "vectors are searchable (ragkit: also committed to disk, with the BM25 index built). Peak RSS is the "
        "process's `ru_maxrss`: imports and model included. The raw-encode rows are "
        "`SentenceTransformer.encode(texts, batch_size=32)` over ragkit's own chunk texts, nothing else, the best "
        "of its timed passes"
        + "".join(
            f"; {name.split('_')[1]} passes: "
            + ", ".join(f"{v:.1f}" for v in ingest[name]["passes_chunks_per_s"])
            + " chunks/s"
            for name in ("encode_fp32", "encode_bf16")
            if get(ingest, name, "passes_chunks_per_s")
        )
        + ".\n"
    )
    rows = []
    for label, name in INGEST_ROWS:
        row = ingest.get(name)
        if not row:
            continue
        data = row.get("ingest", row)
        if name == "ragkit":
            label += f", {get(rk, 'embedder', 'precision', default='?')}"
        elif name in ("langchain", "llamaindex", "llamaindex_fit"):
            label += ", fp32"
        if name == key:
            label += " — **the ceiling**"
        cut = data.get("truncation") or {}
        rows.append(
            [
                label,
                str(data.get("files", "–")),
                str(data.get("chunks", "–")),
                num(cut.get("tokens_mean"), 0),
                "–" if not cut else f"{cut['tokens_cut_share']:.1%}",
                num(data.get("seconds"), 1),
                num(data.get("documents_per_s"), 3),
                num(data.get("chunks_per_s")),
                mib(data.get("peak_rss_bytes")),
                mib(data.get("rss_before_ingest_bytes")),
            ]
        )
    out.append(
        table(
            [
                "pipeline",
                "files",
                "chunks",
                "tokens/chunk",
                "tokens cut",
                "seconds",
                "documents/s",
                "chunks/s",
                "peak RSS",
                "RSS before ingest",
            ],
            rows,
        )
        + "\n"
    )
    out.append(
        "*tokens cut*: the share of the chunks' tokens past the model's 256-token input limit, which the model "
        "never sees (counted with its tokenizer; LlamaIndex embeds each chunk's metadata too). The "
        "`chunk_size=256` LlamaIndex row is not a default and not in the targets: it shows LlamaIndex doing the "
        "same work as the others.\n"
    )
    out.append(
        f"Ratios: ragkit / LangChain **{fx(r['ragkit_vs_langchain'])}** and ragkit / LlamaIndex "
        f"**{fx(r['ragkit_vs_llamaindex'])}** in documents/s (the pipelines cut different numbers of chunks, so "
        f"documents/s compares the same corpus; ragkit / LlamaIndex with chunk_size=256 "
        f"{fx(r['ragkit_vs_llamaindex_fit'])}); ragkit / raw-encode ceiling ({key}) **{fx(r['ragkit_vs_ceiling'])}** "
        f"and ragkit / raw fp32 encode {fx(r['ragkit_vs_encode_fp32'])} in chunks/s.\n"
    )
    stages = get(rk, "ingest", "report", "stage_seconds")
    if stages:
        out.append(
            "ragkit's own stage times (seconds; loading and splitting overlap with embedding in a producer "
            "thread): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()) + ".\n"
        )
    out.append("### Re-ingest of the unchanged folder\n")
    re = ingest.get("reingest") or {}
    rows = [
        ["first ingest", num(get(rk, "ingest", "seconds"), 2), "1.00x"],
        ["again, same process (`col.ingest`)", num(get(rk, "reingest_warm", "seconds"), 3), fx(r["reingest_speedup"])],
    ]
    if re:
        api = re.get("python_api", {})
        rows.append(
            [
                f"again, fresh process: import {api.get('import_s', 0):.2f} + open {api.get('open_s', 0):.2f} + "
                f"ingest {api.get('ingest_s', 0):.2f}",
                num(api.get("total_s"), 2),
                fx(r["reingest_speedup_fresh_process"]),
            ]
        )
        rows.append(
            [
                "again, `ragkit ingest` CLI (whole command)",
                num(get(re, "cli", "seconds"), 2),
                fx(r["reingest_speedup_cli"]),
            ]
        )
    out.append(table(["run", "seconds", "speed-up"], rows) + "\n")
    out.append(
        "LangChain's tutorial pipeline and LlamaIndex's `VectorStoreIndex.from_documents` have no incremental "
        "mode: running them again re-embeds everything.\n"
    )
    out.append("### Defaults used\n")
    lines = []
    cfg = rk.get("config", {})
    if cfg:
        lines.append(
            f"- ragkit: `Collection.create(name)` with no config: splitter `{cfg.get('splitter')}`, "
            f"embedder `{cfg.get('embedder')}` ({get(rk, 'embedder', 'precision')} on "
            f"{get(rk, 'embedder', 'device')}, encode batch {get(rk, 'embedder', 'batch_size')}, "
            f"{cfg.get('embed_batch_size')} chunks per embed call), store `{cfg.get('store')}` "
            f"({rk.get('store_index')} index at this size), lexical `{cfg.get('lexical')}`, embedding cache "
            f"{'on' if cfg.get('embedding_cache') else 'off'}."
        )
    for name, label in (("langchain", "LangChain"), ("llamaindex", "LlamaIndex")):
        d = get(ingest, name, "defaults")
        if d:
            lines.append(f"- {label}: " + "; ".join(f"{k}: {v}" for k, v in d.items()) + ".")
    out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def _retrieval_section(results: dict[str, Any]) -> str:
    ingest = results["ingest"]
    rk = get(ingest, "ragkit", "retrieval") or {}
    n = get(rk, "dense", "questions") or get(ingest, "langchain", "retrieval", "dense", "questions")
    out = ["## Retrieval\n"]
    out.append(
        f"answer-hit@k over {n} squad-dev questions: a question counts when one of the top k chunks contains a gold "
        "answer string (case-sensitive substring, as in open-domain QA; *normalised*: lower-cased, whitespace "
        "collapsed). Queries are embedded in one batch per system.\n"
    )
    rows = []
    for label, name, mode in RETRIEVAL_ROWS:
        s = get(ingest, name, "retrieval", mode)
        if not s:
            continue
        chunks = get(ingest, name, "ingest", "chunks")
        rows.append(
            [
                label,
                pct(s["hit@1"]),
                pct(s["hit@5"]),
                pct(s["hit@1_normalised"]),
                pct(s["hit@5_normalised"]),
                str(chunks),
                num(s.get("queries_per_s"), 1),
            ]
        )
    out.append(
        table(["system", "hit@1", "hit@5", "hit@1 normalised", "hit@5 normalised", "chunks", "queries/s (batch)"], rows)
        + "\n"
    )
    out.append("### Search latency\n")
    out.append(
        "Single queries on pre-embedded vectors (embedding excluded), top 5, over the squad-dev collection; "
        "ragkit's `store.search` and the raw `store._index.search` run on the same vectors in alternating order.\n"
    )
    rows = []
    for label, entry in (
        ("ragkit `FaissStore.search`", rk.get("search_store")),
        (f"raw FAISS `{rk.get('raw_index', 'index')}.search`", rk.get("search_raw_faiss")),
        ("ragkit `col.search` end to end (embedding included)", rk.get("search_end_to_end")),
        ("LangChain `similarity_search_by_vector`", get(ingest, "langchain", "retrieval", "search_store")),
        ("LlamaIndex `retriever.retrieve` (embedding given)", get(ingest, "llamaindex", "retrieval", "search_store")),
    ):
        if entry and entry.get("n"):
            rows.append([label, ms(entry.get("p50_ms")), ms(entry.get("p99_ms")), str(entry["n"])])
    out.append(table(["search", "p50", "p99", "queries"], rows) + "\n")
    if rk.get("search_overhead_p50_ms") is not None:
        out.append(f"ragkit's overhead over the raw FAISS call at p50: **{ms(rk['search_overhead_p50_ms'])}**.\n")
    return "\n".join(out)
