"""The project store: the only package that writes SQL."""

from engine.store.db import DB_NAME, memory_db, open_db, write

__all__ = ["DB_NAME", "memory_db", "open_db", "write"]
