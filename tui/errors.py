"""How a background job's exception reads on a screen: the engine's user errors in their own words."""

from __future__ import annotations

from engine.errors import EmbtuneError


def job_error_text(error: BaseException | None, job: str) -> str:
    """'The {job} cannot run: …' for a user error (any EmbtuneError), else 'The {job} failed: Type: …'."""
    if isinstance(error, EmbtuneError):
        return f"The {job} cannot run: {error}"
    return f"The {job} failed: {type(error).__name__}: {error}"
