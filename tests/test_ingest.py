"""Ingestion end to end with the real components: loaders, splitter, packaged model, FAISS, BM25."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from ragkit import Collection, CollectionConfig
from ragkit.errors import ConfigError, ConflictError, FilterError, InputError, NotFoundError, StorageError

from .readonly import read_only_folder

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "evaluation" / "datasets" / "sample-docs"


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    shutil.copytree(SAMPLE, folder)
    return folder


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def test_first_ingest_stores_every_file_with_exact_offsets(corpus, home):
    col = Collection.create("docs", store_dir=home)
    report = col.ingest(corpus)
    assert (report.added, report.updated, report.unchanged, report.failed) == (5, 0, 0, [])
    assert report.chunks_written == col.store.count() > 20
    sources = col.store.sources()
    assert set(sources) == {p.name for p in corpus.iterdir()}  # relative to the folder ingested
    # chunks of plain-text formats are exact slices of the file's text
    md = (corpus / "packet-switching.md").resolve()
    text = md.read_text(encoding="utf-8")
    chunks = [c for batch in col.store.iter_chunks() for c in batch if c.source == md.name]
    assert chunks and all(text[c.start : c.end] == c.text for c in chunks)
    assert all(c.metadata["uri"] == (corpus / md.name).absolute().as_uri() for c in chunks)
    assert all(c.metadata["file_type"] == "md" for c in chunks)
    # PDF chunks carry their page
    pdf_chunks = [c for batch in col.store.iter_chunks() for c in batch if c.source.endswith(".pdf")]
    assert {c.metadata["page"] for c in pdf_chunks} <= {1, 2} and pdf_chunks


def test_search_finds_the_answer_dense_and_lexical(corpus, home):
    col = Collection.create("docs", store_dir=home)
    col.ingest(corpus)
    dense = col.search("Where was Super Bowl 50 played?", top_k=3)
    assert any("Levi's Stadium" in h.chunk.text for h in dense)
    assert all(h.origin == "dense" for h in dense) and dense[0].score >= dense[-1].score
    lexical = col.search("bubonic plague Yersinia pestis", top_k=3, mode="lexical")
    assert lexical and lexical[0].origin == "lexical" and lexical[0].chunk.source.endswith("black-death.txt")
    filtered = col.search("plague packets", top_k=5, mode="lexical", filters='file_type == "md"')
    assert filtered and all(h.chunk.metadata["file_type"] == "md" for h in filtered)


def test_reingest_of_unchanged_folder_embeds_nothing(corpus, home):
    col = Collection.create("docs", store_dir=home)
    first = col.ingest(corpus)
    ids_before = {c.id for batch in col.store.iter_chunks() for c in batch}
    again = col.ingest(corpus)
    assert (again.added, again.updated, again.unchanged, again.chunks_written) == (0, 0, 5, 0)
    assert {c.id for batch in col.store.iter_chunks() for c in batch} == ids_before
    # a touched but unchanged file is recognised by its content hash
    os.utime(corpus / "black-death.txt", (time.time() + 10, time.time() + 10))
    touched = col.ingest(corpus)
    assert touched.unchanged == 5 and touched.chunks_written == 0
    assert first.chunks_written == len(ids_before)


def test_a_fresh_process_reingests_an_unchanged_folder_without_loading_the_model(corpus, home):
    with Collection.create("docs", store_dir=home) as col:
        col.ingest(corpus)
    code = textwrap.dedent(
        f"""
        import json, sys
        from ragkit import Collection
        with Collection.open("docs", store_dir={str(home)!r}) as col:
            report = col.ingest({str(corpus)!r})
            hits = col.search("Black Death", top_k=1, mode="lexical")
            print(json.dumps({{
                "unchanged": report.unchanged,
                "lexical_hit": hits[0].chunk.source.rsplit("/", 1)[-1],
                "loaded": sorted(m for m in ("torch", "sentence_transformers") if m in sys.modules),
            }}))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    result = yaml.safe_load(done.stdout.strip().splitlines()[-1])
    # nothing to embed and a keyword search: the embedding model (and torch) stay unloaded
    assert result == {"unchanged": 5, "lexical_hit": "black-death.txt", "loaded": []}


def test_changed_file_replaces_only_its_chunks_and_sync_deletes_removed_files(corpus, home):
    col = Collection.create("docs", store_dir=home)
    col.ingest(corpus)
    total_before = col.store.count()
    txt = corpus / "black-death.txt"
    txt.write_text(txt.read_text(encoding="utf-8") + "\n\nZyxwv quokka marmalade is the new term of art.\n")
    report = col.ingest(corpus)
    assert (report.added, report.updated, report.unchanged) == (0, 1, 4)
    # the edited file's chunks are rewritten, but only text the model has not seen is embedded
    edited = [c for b in col.store.iter_chunks() for c in b if c.source == txt.name]
    assert report.chunks_written == len(edited)
    assert 0 < report.chunks_embedded < 5
    assert col.search("quokka marmalade", top_k=1, mode="lexical")[0].chunk.source.endswith("black-death.txt")
    assert col.store.count() >= total_before
    (corpus / "amazon-rainforest.md").unlink()
    kept = col.ingest(corpus)
    assert kept.deleted == 0 and any(s.endswith("amazon-rainforest.md") for s in col.store.sources())
    synced = col.ingest(corpus, sync=True)
    assert synced.deleted == 1 and synced.chunks_deleted > 0
    assert not any(s.endswith("amazon-rainforest.md") for s in col.store.sources())
    assert not col.search("Amazon rainforest", top_k=5, filters='file_name == "amazon-rainforest.md"')


def test_bad_files_are_reported_and_the_rest_lands(corpus, home):
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7\n this is not really a pdf \x00\x01")
    (corpus / "empty.md").write_text("")
    (corpus / "binary.txt").write_bytes(bytes(range(256)) * 50)
    (corpus / "tool.exe").write_bytes(b"MZ\x90\x00")
    col = Collection.create("docs", store_dir=home)
    report = col.ingest(corpus)
    assert report.added == 5
    failed = {Path(f.source).name: f.reason for f in report.failed}
    assert set(failed) == {"broken.pdf", "empty.md", "binary.txt"}
    assert "empty" in failed["empty.md"] and "binary" in failed["binary.txt"]
    assert {Path(s.source).name for s in report.skipped} == {"tool.exe"}
    assert "unsupported" in report.skipped[0].reason


def test_a_file_that_turns_corrupt_keeps_its_stored_chunks(corpus, home):
    col = Collection.create("docs", store_dir=home)
    col.ingest(corpus)
    pdf = corpus / "super-bowl-50.pdf"
    before = [c.id for batch in col.store.iter_chunks() for c in batch if c.source == pdf.name]
    pdf.write_bytes(b"%PDF-1.4 truncated")
    report = col.ingest(corpus)
    assert [Path(f.source).name for f in report.failed] == ["super-bowl-50.pdf"]
    after = [c.id for batch in col.store.iter_chunks() for c in batch if c.source == pdf.name]
    assert after == before and before


def test_ids_are_stable_across_collections(corpus, home):
    one = Collection.create("one", store_dir=home)
    two = Collection.create("two", store_dir=home)
    one.ingest(corpus)
    two.ingest(corpus)
    ids = [{c.id for batch in col.store.iter_chunks() for c in batch} for col in (one, two)]
    assert ids[0] == ids[1]


def test_collection_config_is_stored_and_mismatches_are_refused(corpus, home):
    config = CollectionConfig.parse({"splitter": {"type": "recursive", "chunk_size": 500, "chunk_overlap": 50}})
    col = Collection.create("docs", config=config, store_dir=home)
    col.ingest(corpus)
    col.close()
    reopened = Collection.open("docs", store_dir=home)
    assert reopened.config.splitter["chunk_size"] == 500
    assert reopened.embedding["dimension"] == 384
    with pytest.raises(ConflictError, match=r"different configuration \(splitter: stored"):
        Collection.open_or_create("docs", CollectionConfig(), store_dir=home)
    with pytest.raises(ConflictError, match="already exists"):
        Collection.create("docs", store_dir=home)
    # the stored vectors are 384-d; pretend the collection was made by a 768-d model
    config_file = home / "collections" / "docs" / "collection.yaml"
    data = yaml.safe_load(config_file.read_text())
    data["embedding"]["dimension"] = 768
    config_file.write_text(yaml.safe_dump(data))
    tampered = Collection.open("docs", store_dir=home)
    # the fingerprint matches, so the model is not loaded to compare lengths: the store refuses instead
    with pytest.raises(ConflictError, match="holds 384-dimensional vectors, but the embedder makes 768-dimensional"):
        tampered.search("anything")
    data["embedding"]["dimension"] = 384
    data["config"]["embedder"]["normalize"] = False
    config_file.write_text(yaml.safe_dump(data))
    with pytest.raises(ConflictError, match="was embedded with"):
        Collection.open("docs", store_dir=home).search("anything")


def test_clear_errors_for_bad_requests(corpus, home):
    with pytest.raises(NotFoundError, match=r"collection 'nope' does not exist .*existing: none"):
        Collection.open("nope", store_dir=home)
    with pytest.raises(InputError, match="collection name '../x' is not valid"):
        Collection.create("../x", store_dir=home)
    with pytest.raises(ConfigError, match="splitter"):
        Collection.create("bad", config={"splitter": {"type": "recursive", "chunk_size": -1}}, store_dir=home)
    assert Collection.names(home) == []  # a bad config leaves nothing behind
    col = Collection.create("docs", store_dir=home)
    col.ingest(corpus)
    with pytest.raises(FilterError, match="'pagee' does not exist in collection 'docs'; known fields: .*page"):
        col.search("x", filters="pagee > 1")
    with pytest.raises(InputError, match="does not exist"):
        col.ingest(corpus / "missing-folder")
    with pytest.raises(InputError, match="top_k must be at least 1"):
        col.search("x", top_k=0)


def test_read_only_store_folder_searches_but_refuses_ingest(corpus, home):
    col = Collection.create("docs", store_dir=home)
    col.ingest(corpus)
    stored = col.store.count()
    col.close()
    (corpus / "new.md").write_text("# New\n\nA new file that cannot be stored.\n")
    with read_only_folder(home):
        reader = Collection.open("docs", store_dir=home)
        assert reader.search("Super Bowl", top_k=1)
        with pytest.raises(StorageError, match="not writable|read-only"):
            reader.ingest(corpus)
        reader.close()
    assert Collection.open("docs", store_dir=home).store.count() == stored


INTERRUPTED = textwrap.dedent(
    """
    import sys
    from ragkit import Collection
    col = Collection.open_or_create("docs", {"embed_batch_size": 4}, store_dir=sys.argv[1])
    def progress(stage, done, total):
        if stage == "files":
            print("files", done, flush=True)
    col.ingest(sys.argv[2], progress=progress)
    print("finished", flush=True)
    """
)


@pytest.mark.slow
def test_an_ingest_killed_halfway_leaves_a_readable_collection_and_a_rerun_completes(tmp_path, home):
    folder = tmp_path / "many"
    folder.mkdir()
    paragraphs = (SAMPLE / "black-death.txt").read_text(encoding="utf-8").split("\n\n")
    for i, paragraph in enumerate(paragraphs * 2):
        (folder / f"part-{i:03}.txt").write_text(f"Part {i}.\n\n{paragraph}\n", encoding="utf-8")
    total = len(list(folder.iterdir()))
    script = tmp_path / "ingest.py"
    script.write_text(INTERRUPTED)
    child = subprocess.Popen([sys.executable, str(script), str(home), str(folder)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("files") and int(line.split()[1]) >= total // 3:
            child.send_signal(signal.SIGKILL)
            break
    child.wait()
    assert child.returncode == -signal.SIGKILL
    survivor = Collection.open("docs", store_dir=home)
    committed = survivor.store.sources()
    assert 0 < len(committed) < total
    assert survivor.search("Part", top_k=3)  # opens and searches after the crash
    survivor.close()
    rerun = Collection.open("docs", store_dir=home)
    report = rerun.ingest(folder)
    assert report.unchanged == len(committed) and report.added == total - len(committed)
    assert len(rerun.store.sources()) == total
    fresh = Collection.create("fresh", store_dir=home)
    fresh.ingest(folder)
    assert rerun.store.count() == fresh.store.count()


def test_the_milvus_recipe_gives_the_same_results_as_faiss(corpus, home):
    from ragkit.recipes import load_collection_config

    on_faiss = Collection.create("local", config=load_collection_config("default"), store_dir=home)
    on_milvus = Collection.create("lite", config=load_collection_config("milvus"), store_dir=home)
    for col in (on_faiss, on_milvus):
        report = col.ingest(corpus)
        assert report.added == 5 and not report.failed
    assert on_faiss.store.count() == on_milvus.store.count()
    queries = ["Where was Super Bowl 50 played?", "What causes the plague?", "What is packet switching?"]
    for flt in (None, 'file_type in ["md", "txt"] and not (page > 1)'):
        local = [[h.chunk.id for h in hits] for hits in on_faiss.search_many(queries, top_k=4, filters=flt)]
        lite = [[h.chunk.id for h in hits] for hits in on_milvus.search_many(queries, top_k=4, filters=flt)]
        assert local == lite
    on_milvus.close()
    Collection.delete("lite", store_dir=home)
    assert Collection.names(home) == ["local"]
