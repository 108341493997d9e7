"""Keep an SQLite index on the expression FerretDB 1.24 writes by: every write O(log n).

FerretDB 1.24's SQLite backend gives each collection a table with one JSON column and a
unique index on ``_ferretdb_sjson->"_id"``, but it selects, updates and deletes by
``_ferretdb_sjson->'$._id'``: a different expression, so SQLite cannot use that index and
every ``update``, ``replace``, ``findAndModify`` and ``delete`` of one document by its
``_id`` scans the whole table (measured on this machine, 10,000 documents of ~700 bytes:
~100-400 ms per write; ~2 ms with this index; docs/decisions/0008).

This keeper adds the missing index (``<table>__id_path``, not unique: the unique index of
FerretDB stays the one that refuses duplicates) to every collection table of every
database file in FerretDB's SQLite directory, once at start and then whenever a new table
appears. FerretDB does not list it (its own metadata lists its indexes) and drops it with
the table. SQLite allows a second process to change the schema of a database in WAL mode;
FerretDB's connections wait (busy_timeout 10 s) while an index is built.

Standard library only (deploy/local/store.sh runs it with the system python3):

    python3 deploy/local/ferretdb_id_index.py DATA_DIR            # once
    python3 deploy/local/ferretdb_id_index.py DATA_DIR --watch --pid PID
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path

EXPRESSION = "_ferretdb_sjson->'$._id'"
"""The expression of FerretDB 1.24's ``metadata.IDColumn`` (its WHERE clauses)."""


def index_file(path: Path) -> int:
    """Add the index to every collection table of one database file; the number added."""
    added = 0
    with sqlite3.connect(path, timeout=10) as con:
        tables = [
            name
            for (name,) in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE '\\_ferretdb%' ESCAPE '\\'"
            )
        ]
        indexes = {
            name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        for table in tables:
            name = f"{table}__id_path"
            if name in indexes:
                continue
            columns = [row[1] for row in con.execute(f'PRAGMA table_info("{table}")')]
            if columns != ["_ferretdb_sjson"]:
                continue  # not a FerretDB collection table
            con.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ({EXPRESSION})')
            added += 1
    return added


def index_all(data_dir: Path, seen: dict[Path, int]) -> int:
    """One pass over the directory; a file is looked at again only when its schema may
    have changed (its size or the size of its write-ahead log changed)."""
    added = 0
    for path in sorted(data_dir.glob("*.sqlite")):
        wal = path.with_name(path.name + "-wal")
        try:
            stamp = path.stat().st_mtime_ns + (wal.stat().st_mtime_ns if wal.exists() else 0)
        except FileNotFoundError:
            continue  # dropped meanwhile
        if seen.get(path) == stamp:
            continue
        try:
            added += index_file(path)
        except sqlite3.Error as exc:  # busy for 10 s, or dropped meanwhile: next pass
            print(f"ferretdb_id_index: {path.name}: {exc}", file=sys.stderr)
            continue
        seen[path] = stamp
    return added


def alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) answers kill 0 too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--watch", action="store_true", help="keep going (new collections)")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--pid", type=int, help="stop when this process (FerretDB) exits")
    args = parser.parse_args()
    if sqlite3.sqlite_version_info < (3, 38):  # the -> operator of the expression
        print(f"ferretdb_id_index: SQLite {sqlite3.sqlite_version} < 3.38; nothing done")
        return
    seen: dict[Path, int] = {}
    added = index_all(args.data_dir, seen)
    if not args.watch:
        print(f"ferretdb_id_index: {added} index(es) added")
        return
    while alive(args.pid):
        time.sleep(args.interval)
        index_all(args.data_dir, seen)


if __name__ == "__main__":
    main()
