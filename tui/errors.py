"""How a background job's exception reads on a screen: the engine's user errors in their own words."""

from __future__ import annotations

import sys

# (module, class) of errors that mean "this input or setting is wrong", not a bug. Only modules already
# imported are looked at: the job's own imports brought in whichever could have raised, and the TUI must not
# import the model libraries just to name an error.
COMMON = (("engine.models", "ModelNotFoundError"), ("engine.config", "ConfigError"), ("engine.project", "ProjectError"))


def job_error_text(error: BaseException | None, job: str, user_errors: tuple[tuple[str, str], ...]) -> str:
    """'The {job} cannot run: …' for a user error, else 'The {job} failed: Type: …'."""
    known = tuple(
        getattr(sys.modules[module], name) for module, name in (*user_errors, *COMMON) if module in sys.modules
    )
    if isinstance(error, known):
        return f"The {job} cannot run: {error}"
    return f"The {job} failed: {type(error).__name__}: {error}"
