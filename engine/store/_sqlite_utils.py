"""sqlite-utils, imported without pandas.

sqlite_utils.db imports pandas when it is installed (datasets pulls it in) only to map pd.Timestamp column
types, which embtune never inserts. That import alone costs ~0.4 s on every `embtune` start, so pandas is
hidden while sqlite-utils loads and restored right after for code that needs it (training via datasets).
"""

from __future__ import annotations

import sys

_had_pandas = "pandas" in sys.modules
if not _had_pandas:
    sys.modules["pandas"] = None  # type: ignore[assignment]  # makes `import pandas` raise ImportError
try:
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations
finally:
    if not _had_pandas:
        del sys.modules["pandas"]

__all__ = ["Database", "Migrations"]
