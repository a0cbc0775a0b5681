"""The one base of every error a user can cause and fix: bad input, a missing model, an impossible request.

The CLI turns an EmbtuneError into its message and exit status 2 (`{"error": …}` on stdout with --json); the TUI
shows it in the screen's notice line. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EmbtuneError(Exception):
    """A problem the user can fix; its message says what and where (file, line, field where there is one)."""
