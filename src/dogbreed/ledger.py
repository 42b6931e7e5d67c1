"""What the tool created, where: the one record later commands consult.

SQLite in WAL mode: every change is a transaction, so a crash or kill at any moment
leaves either the old or the new state, and several CLI processes can use it at once.

One writer per row: the workflows record what the backends return (jobs, models,
endpoints, datasets, reports); backends only read. Two documented exceptions: a local
endpoint server marks its own row "gone" when it stops (serving/main.py), and the local
tuning engine writes its trial rows as the trials run (backends/local_tuning/).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dogbreed.errors import DogbreedError

KINDS = ("dataset", "training-job", "tuning-job", "trial", "model", "endpoint", "report", "transform-job")
LIVE_STATES = ("creating", "running", "in-service", "created", "stopping")
GONE_STATES = ("deleted", "gone")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    backend TEXT NOT NULL,
    uri TEXT,
    state TEXT NOT NULL,
    parent TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    expires_at TEXT,
    meta TEXT NOT NULL DEFAULT '{}',
    seq INTEGER NOT NULL,
    PRIMARY KEY (kind, backend, name)
);
CREATE INDEX IF NOT EXISTS resources_latest ON resources (kind, seq);
"""


def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat() if moment else None


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    backend: str
    uri: str | None
    state: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    parent: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.state not in GONE_STATES

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "backend": self.backend,
            "uri": self.uri,
            "state": self.state,
            "parent": self.parent,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "expires_at": _iso(self.expires_at),
            "meta": self.meta,
        }


class LedgerError(DogbreedError):
    """The ledger file cannot be used: damaged, of another shape, locked, or not writable."""


def _damaged(path: Path, detail: str) -> LedgerError:
    return LedgerError(
        f"the ledger {path} is damaged ({detail}); move it aside (mv {path} {path}.damaged, and its -wal and -shm "
        "files if any) and run again: a new ledger starts empty, while jobs, models and datasets stay in the "
        "workspace (give them by path: --model, --dataset), and local endpoints still running stop at their TTL"
    )


def _ledger_error(path: Path, exc: sqlite3.DatabaseError) -> LedgerError:
    """One line for what SQLite says about the file. Only what is wrong with the file itself
    counts as damage; a lock held too long or a workspace we may not write says so instead."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return LedgerError(f"the ledger {path} stayed locked by another process ({text}); run the command again")
    if any(word in text for word in ("readonly", "unable to open", "disk I/O", "full", "permission")):
        return LedgerError(
            f"cannot use the ledger {path} ({text}); check that the workspace is writable and has space "
            "(and that `ulimit -f` allows the file to grow)"
        )
    return _damaged(path, text)


def _row(row: sqlite3.Row, path: Path) -> Resource:
    """A Resource from a row; a row that no writer of ours could have made is damage."""
    try:
        meta = json.loads(row["meta"])
        if not isinstance(meta, dict):
            raise TypeError(f"meta is {type(meta).__name__}, not an object")
        return _resource(row, meta)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        where = f"{row['kind']} {row['name']!r}" if "kind" in row.keys() and "name" in row.keys() else "a row"
        raise _damaged(path, f"{where}: {exc}") from exc


def _resource(row: sqlite3.Row, meta: dict[str, Any]) -> Resource:
    return Resource(
        kind=row["kind"],
        name=row["name"],
        backend=row["backend"],
        uri=row["uri"],
        state=row["state"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        expires_at=datetime.fromisoformat(row["expires_at"]) if row["expires_at"] else None,
        parent=row["parent"],
        meta=meta,
    )


class Ledger:
    """A small transactional store of Resources, one file in the workspace."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A fresh connection per operation: cheap, and safe across forks and threads.
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.DatabaseError as exc:
            raise _ledger_error(self.path, exc) from exc
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            yield db
        except sqlite3.DatabaseError as exc:
            raise _ledger_error(self.path, exc) from exc
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def record(
        self,
        kind: str,
        name: str,
        backend: str,
        *,
        uri: str | None = None,
        state: str = "created",
        parent: str | None = None,
        expires_at: datetime | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Resource:
        """Create or replace a resource; it becomes the latest of its kind."""
        if kind not in KINDS:
            raise ValueError(f"unknown resource kind {kind!r}")
        stamp = _iso(now())
        with self._transaction() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM resources").fetchone()[0]
            old = db.execute(
                "SELECT created_at, state FROM resources WHERE kind=? AND backend=? AND name=?", (kind, backend, name)
            ).fetchone()
            # Recorded again while it lives (a resumed job, a replaced endpoint's new server):
            # the same resource, same age. After it was deleted, the name starts a new one.
            born = old["created_at"] if old and old["state"] not in GONE_STATES else stamp
            db.execute(
                "INSERT OR REPLACE INTO resources VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    kind,
                    name,
                    backend,
                    uri,
                    state,
                    parent,
                    born,
                    stamp,
                    _iso(expires_at),
                    json.dumps(meta or {}, sort_keys=True, default=str),
                    seq,
                ),
            )
        found = self.get(kind, name, backend)
        assert found is not None
        return found

    def update(self, kind: str, name: str, backend: str, **changes: Any) -> Resource:
        """Change some fields; `meta` is merged key by key."""
        with self._transaction() as db:
            row = db.execute("SELECT * FROM resources WHERE kind=? AND backend=? AND name=?", (kind, backend, name)).fetchone()
            if row is None:
                raise KeyError(f"{kind} {name!r} ({backend}) is not in the ledger")
            values = {"updated_at": _iso(now())}
            for key, value in changes.items():
                if key == "meta":
                    value = json.dumps({**json.loads(row["meta"]), **value}, sort_keys=True, default=str)
                elif key == "expires_at":
                    value = _iso(value)
                elif key not in ("uri", "state", "parent"):
                    raise ValueError(f"cannot update {key!r}")
                values[key] = value
            assignments = ", ".join(f"{key}=?" for key in values)
            db.execute(
                f"UPDATE resources SET {assignments} WHERE kind=? AND backend=? AND name=?",
                (*values.values(), kind, backend, name),
            )
        found = self.get(kind, name, backend)
        assert found is not None
        return found

    def get(self, kind: str, name: str, backend: str | None = None) -> Resource | None:
        query = "SELECT * FROM resources WHERE kind=? AND name=?"
        args: list[Any] = [kind, name]
        if backend:
            query += " AND backend=?"
            args.append(backend)
        with self._connect() as db:
            row = db.execute(query + " ORDER BY seq DESC LIMIT 1", args).fetchone()
        return _row(row, self.path) if row else None

    def list(
        self,
        kind: str | None = None,
        *,
        backend: str | None = None,
        states: Iterable[str] | None = None,
        parent: str | None = None,
    ) -> list[Resource]:
        """Resources, oldest first."""
        clauses, args = [], []
        for column, value in (("kind", kind), ("backend", backend), ("parent", parent)):
            if value is not None:
                clauses.append(f"{column}=?")
                args.append(value)
        if states is not None:
            states = list(states)
            clauses.append(f"state IN ({','.join('?' * len(states))})")
            args += states
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._connect() as db:
            rows = db.execute(f"SELECT * FROM resources {where} ORDER BY seq", args).fetchall()
        return [_row(row, self.path) for row in rows]

    def latest(self, kind: str, *, backend: str | None = None, states: Iterable[str] | None = None) -> Resource | None:
        found = self.list(kind, backend=backend, states=states)
        return found[-1] if found else None
