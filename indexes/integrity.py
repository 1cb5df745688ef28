"""Damage is detected, never served: file checks against recorded checksums, typed read errors.

Every immutable folder (a vector segment, a BM25 state) has a {file: sha256, bytes} table in the
doc store, written in the commit that made it live. A reader checks sizes on every load and the
SHA-256 once per process per file version (path, size, mtime, inode); a mismatch, or a file that
cannot be parsed, is `IndexCorrupt` naming the file and the repair command.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

from mmrag.errors import IndexCorrupt
from mmrag.indexes.layout import sha256_file

T = TypeVar("T")

_VERIFIED: set[tuple[str, int, int, int]] = set()
_LOCK = threading.Lock()


def repair_hint(root: Path) -> str:
    return f"repair it with: mmrag index --index {root} --repair"


def reindex_hint(root: Path) -> str:
    return (f"the doc store cannot be repaired in place: move {root} aside and index the documents again "
            f"with: mmrag index PATH... --index {root}")


def _key(path: Path, st: os.stat_result) -> tuple[str, int, int, int]:
    return (str(path), st.st_size, st.st_mtime_ns, st.st_ino)


def check_file(path: Path, expected: dict, root: Path, *, full: bool = True) -> None:
    """Raise `IndexCorrupt` unless ``path`` has the recorded size (and SHA-256, once per version)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise IndexCorrupt(f"{path} is missing; {repair_hint(root)}") from None
    if st.st_size != int(expected["bytes"]):
        raise IndexCorrupt(f"{path} has {st.st_size} bytes, the index recorded {expected['bytes']}; "
                           f"{repair_hint(root)}")
    if not full:
        return
    key = _key(path, st)
    with _LOCK:
        if key in _VERIFIED:
            return
    if sha256_file(path) != expected["sha256"]:
        raise IndexCorrupt(f"{path} fails its checksum (its bytes changed after it was written); "
                           f"{repair_hint(root)}")
    with _LOCK:
        _VERIFIED.add(key)


def check_folder(folder: Path, checksums: dict, root: Path, *, full: bool = True) -> None:
    """Check every file an immutable folder was recorded with."""
    if not folder.is_dir():
        raise IndexCorrupt(f"{folder} is missing; {repair_hint(root)}")
    for name, info in sorted(checksums.items()):
        check_file(folder / name, info, root, full=full)


def forget_verified() -> None:
    """Drop the per-process cache (tests; `mmrag verify` always hashes)."""
    with _LOCK:
        _VERIFIED.clear()


def load_checked(what: Path, root: Path, load: Callable[[], T]) -> T:
    """Run a loader; any parse failure of the files becomes `IndexCorrupt` naming them."""
    try:
        return load()
    except IndexCorrupt:
        raise
    except FileNotFoundError as e:
        raise IndexCorrupt(f"{e.filename or what} is missing; {repair_hint(root)}") from None
    except MemoryError:
        raise
    except Exception as e:  # numpy, FAISS, bm25s, json: a damaged file fails in many ways
        raise IndexCorrupt(f"{what} cannot be read ({type(e).__name__}: {e}); {repair_hint(root)}") from None


# --- SQLite ---------------------------------------------------------------------------------
def is_corruption(e: BaseException) -> bool:
    """A SQLite error that means a damaged or foreign file, not a busy database or a bad query."""
    if not isinstance(e, sqlite3.DatabaseError) or isinstance(e, sqlite3.IntegrityError):
        return False
    name = getattr(e, "sqlite_errorname", "") or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_IOERR_SHORT_READ")):
        return True
    msg = str(e).lower()
    return ("malformed" in msg or "not a database" in msg or "no such table" in msg
            or "no such column" in msg)


def _translate(con: Any, e: sqlite3.DatabaseError) -> BaseException:
    if not is_corruption(e):
        return e
    path = Path(getattr(con, "mmrag_path", "docstore.sqlite"))
    return IndexCorrupt(f"{path} is damaged ({e}); {reindex_hint(path.parent)}")


def _checked(method: Callable) -> Callable:
    """Wrap a cursor method so that SQLite's corruption errors become `IndexCorrupt`."""

    @functools.wraps(method)
    def wrapper(self: sqlite3.Cursor, *args: Any) -> Any:
        try:
            return method(self, *args)
        except sqlite3.DatabaseError as e:
            raise _translate(self.connection, e) from None

    return wrapper


class CheckedCursor(sqlite3.Cursor):
    """A cursor whose corruption errors are `IndexCorrupt`."""

    execute = _checked(sqlite3.Cursor.execute)
    executemany = _checked(sqlite3.Cursor.executemany)
    executescript = _checked(sqlite3.Cursor.executescript)
    fetchone = _checked(sqlite3.Cursor.fetchone)
    fetchmany = _checked(sqlite3.Cursor.fetchmany)
    fetchall = _checked(sqlite3.Cursor.fetchall)
    __next__ = _checked(sqlite3.Cursor.__next__)


class CheckedConnection(sqlite3.Connection):
    """`sqlite3.connect(..., factory=CheckedConnection)`: every statement goes through CheckedCursor."""

    mmrag_path = "docstore.sqlite"

    def cursor(self, factory: Any = CheckedCursor) -> Any:
        return super().cursor(factory)

    def execute(self, sql: str, params: Any = ()) -> CheckedCursor:
        return self.cursor().execute(sql, params)

    def executemany(self, sql: str, params: Any) -> CheckedCursor:
        return self.cursor().executemany(sql, params)

    def executescript(self, script: str) -> CheckedCursor:
        return self.cursor().executescript(script)


def connect_checked(target: str, path: Path, **kwargs: Any) -> CheckedConnection:
    try:
        con = sqlite3.connect(target, factory=CheckedConnection, **kwargs)
    except sqlite3.DatabaseError as e:
        raise IndexCorrupt(f"{path} cannot be opened ({e}); {reindex_hint(path.parent)}") from None
    con.mmrag_path = str(path)
    return con


# --- the doc store file and the manifest ------------------------------------------------------
def _writer_active(root: Path) -> bool:
    """True while some process holds the index's write lock (its files are then in flux)."""
    from mmrag.indexes.layout import LOCK

    return lock_held(root / LOCK)


def lock_held(path: Path) -> bool:
    """True while another open file (this process's or another's) holds a flock on ``path``."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _stored_commit(db: Path) -> int | None:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute("SELECT value FROM meta WHERE key='commit'").fetchone()
        finally:
            con.close()
        return int(row[0]) if row else 0
    except (sqlite3.Error, ValueError):
        return None


def check_docstore(root: Path, recorded: dict | None, *, writer: bool = False) -> None:
    """Compare docstore.sqlite with the checksum its last commit recorded, when that is meaningful.

    The writer checkpoints the WAL into the main file after each commit and records the file's
    SHA-256 in manifest.json. While a WAL is non-empty, or a writer is at work, the main file is
    legitimately newer than that record, so the check waits for a quiet moment (the next open).
    """
    from mmrag.indexes.layout import DOCSTORE

    if not recorded:
        return
    db = root / DOCSTORE
    wal = db.with_name(db.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return
    try:
        check_file(db, recorded, root)
        return
    except IndexCorrupt as damage:
        if not writer and _writer_active(root):
            return
        stored = _stored_commit(db)
        if stored is not None and stored != int(recorded.get("commit", -1)):
            return  # a writer committed after this record and died before rewriting the manifest
        raise IndexCorrupt(f"{db} does not match the checksum its last commit recorded ({damage}); "
                           f"{reindex_hint(root)}") from None


def docstore_record(root: Path, con: sqlite3.Connection, commit: int) -> dict | None:
    """Checkpoint the WAL and fingerprint the doc store; None when readers keep the WAL busy."""
    from mmrag.indexes.layout import DOCSTORE

    busy, _, _ = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    db = root / DOCSTORE
    wal = db.with_name(db.name + "-wal")
    if busy or (wal.exists() and wal.stat().st_size > 0):
        return None
    return {"sha256": sha256_file(db), "bytes": db.stat().st_size, "commit": int(commit)}


def compare_manifest(root: Path, manifest: dict, commit: int, segments: list[dict],
                     sparse: dict[str, tuple[str | None, dict | None]]) -> None:
    """The manifest of the live commit must name the checksums the doc store holds."""
    if int(manifest.get("commit", -1)) != int(commit):
        return  # written after the commit; a writer rewrites it when it opens
    listed = {s["name"]: s.get("checksums") for s in manifest.get("segments", [])}
    for s in segments:
        if s["name"] in listed and listed[s["name"]] != s["checksums"]:
            raise IndexCorrupt(f"{root / 'manifest.json'} disagrees with the doc store about the checksums of "
                               f"segment {s['name']}; {repair_hint(root)}")
    m_sparse = manifest.get("sparse", {})
    for key, (folder, checksums) in sparse.items():
        folder_key = "folder" if key == "checksums" else "pages_folder"
        if checksums is not None and m_sparse.get(folder_key) == folder and key in m_sparse \
                and m_sparse[key] != checksums:
            raise IndexCorrupt(f"{root / 'manifest.json'} disagrees with the doc store about the checksums of "
                               f"bm25/{folder}; {repair_hint(root)}")
