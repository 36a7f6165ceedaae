"""Train a cross-encoder on squad-dev and measure it on articles it never saw.

Train on questions of the first 24 of the 48 articles (sorted file names),
measure on questions of the other 24: hit@1 / hit@5 / MRR of the dense +
BM25 RRF top-20 candidates, in retrieval order and reranked.

    HF_HUB_OFFLINE=1 .venv/bin/python evaluation/benchmarks/rerank_train_bench.py \
        --max-minutes 10 --train-sample 2000 --eval-sample 200 --out /tmp/ragkit-reranker-squad

Prints one JSON object (and writes it to ``<out>/bench.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SQUAD = Path("/work/shared/datasets/squad-dev")


def main() -> None:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", type=Path, default=SQUAD)
    parser.add_argument("--store-dir", type=Path, default=Path("/tmp/ragkit-rerank-bench-store"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/ragkit-reranker-squad"))
    parser.add_argument("--train-sample", type=int, default=2000)
    parser.add_argument("--eval-sample", type=int, default=200)
    parser.add_argument("--max-minutes", type=float, default=10.0)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--held-out", type=float, default=0.05, help="share of the training articles' questions kept out (scored too)"
    )
    args = parser.parse_args()

    from ragkit_sentence_transformers.rerank_training import (
        rerank_figures,
        retrieve_candidates,
        train_cross_encoder,
    )
    from ragkit_sentence_transformers.reranker import CrossEncoderReranker

    from ragkit import Collection
    from ragkit.evaluation.questions import draw_sample, load_questions

    articles = sorted((args.squad / "documents").glob("*.md"))
    train_articles = {p.name for p in articles[: len(articles) // 2]}
    # gold sources relative to the folder the collection ingests, as its chunks' sources are (not to args.squad:
    # "documents/X.md" would match no chunk, and chunks in a gold paragraph would be taken for negatives)
    questions = load_questions(args.squad / "questions.jsonl", args.squad / "documents", "squad-dev")
    train_qs = [q for q in questions if Path(q.metadata["document"]).name in train_articles]
    eval_qs = [q for q in questions if Path(q.metadata["document"]).name not in train_articles]
    train_qs = draw_sample(train_qs, args.train_sample, args.seed)
    eval_qs = draw_sample(eval_qs, args.eval_sample, args.seed)

    def progress(stage: str, done: int, total: int) -> None:
        if done == total or (stage == "train" and done % 25 == 0):
            print(f"  {stage} {done}/{total} at {time.perf_counter() - began:.0f} s", flush=True)

    began = time.perf_counter()
    with Collection.open_or_create("squad-dev", store_dir=args.store_dir) as docs:
        ingest = docs.ingest([args.squad / "documents"])
        ingest_s = time.perf_counter() - began
        print(f"ingest: {docs.store.count()} chunks, {ingest_s:.0f} s ({ingest.summary()})", flush=True)
        started = time.perf_counter()
        report = train_cross_encoder(
            docs,
            train_qs,
            args.out,
            held_out=args.held_out,
            candidates=args.candidates,
            max_steps=args.max_steps,
            max_minutes=args.max_minutes,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            max_length=args.max_length,
            seed=args.seed,
            device="auto",
            progress=progress,
        )
        train_total_s = time.perf_counter() - started
        print(report.summary(), flush=True)

        started = time.perf_counter()
        labelled = retrieve_candidates(docs, eval_qs, args.candidates)
        retrieve_s = time.perf_counter() - started
        stage = CrossEncoderReranker(model=str(args.out), max_length=args.max_length, batch_size=64)
        stage.score_pairs([("warm", "up")])
        started = time.perf_counter()
        before, after = rerank_figures(stage.score_pairs, labelled)
        score_s = time.perf_counter() - started
    pairs = sum(len(item.hits) for item in labelled)
    result = {
        "train_articles": len(train_articles),
        "eval_articles": len(articles) - len(train_articles),
        "train": report.to_dict(),
        "train_total_seconds": round(train_total_s, 1),
        "eval_questions": len(eval_qs),
        "eval_candidates": args.candidates,
        "eval_before": before.__dict__,
        "eval_after": after.__dict__,
        "eval_retrieve_seconds": round(retrieve_s, 1),
        "eval_score_seconds": round(score_s, 1),
        "eval_pairs": pairs,
        "eval_ms_per_question": round(1000 * score_s / max(1, len(eval_qs)), 1),
        "device": stage.device,
    }
    (args.out / "bench.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
