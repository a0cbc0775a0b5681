"""Mining settings for tests on the tiny random-weight embedder."""

from __future__ import annotations

import json

from engine.project import Project, open_project

# The tiny embedder ranks positives low, so the default window (ranks 10-50) and margin leave nothing on a
# 40-document corpus; these settings make every query get candidates.
OPEN_WINDOW = {"range_min": 0, "range_max": 20, "relative_margin": None}


def with_mining(project: Project, **settings: object) -> Project:
    """The project reopened with a `mining:` section of these settings appended to its project.yaml."""
    lines = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in settings.items())
    with (project.root / "project.yaml").open("a") as f:
        f.write(f"mining:\n{lines}")
    project.close()
    return open_project(project.root)
