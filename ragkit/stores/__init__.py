"""Vector stores built into the core (FAISS + SQLite). Milvus comes with ``ragkit-milvus``."""
