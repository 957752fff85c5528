"""A persistent completion cache (sqlite) so reruns and ``--resume`` pay nothing twice.

Keys hash the backend, model, the exact messages, the sampling parameters and the draw index;
values are :class:`~rewardplug_judge.backends.Completion` objects as JSON. Failed draws are never
stored. One file per folder (``judge.sqlite``), safe for several threads and processes (WAL mode).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

__all__ = ["CompletionCache", "cache_key"]

_VERSION = 1  # bump when the key or value layout changes


def cache_key(**parts: Any) -> str:
    """A stable hex digest of the keyword parts (JSON with sorted keys)."""
    text = json.dumps({"v": _VERSION, **parts}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class CompletionCache:
    """``get``/``put`` JSON values by key in ``<folder>/judge.sqlite``; picklable (reconnects lazily)."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / "judge.sqlite"
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, value TEXT)"
            )
            self._conn = conn
        return self._conn

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored value for ``key``, or None."""
        with self._lock:
            row = (
                self._connect()
                .execute("SELECT value FROM completions WHERE key = ?", (key,))
                .fetchone()
            )
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` under ``key`` (replacing an older one)."""
        text = json.dumps(value, ensure_ascii=False)
        with self._lock:
            conn = self._connect()
            conn.execute("INSERT OR REPLACE INTO completions VALUES (?, ?)", (key, text))
            conn.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._connect().execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def close(self) -> None:
        """Close the connection (it reopens on next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self._conn = None
        self._lock = threading.Lock()
