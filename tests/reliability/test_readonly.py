"""A read-only project (issue 14, defect 4): read commands work, write commands exit 2 naming the folder.

Before: every command, even `status`, crashed on `PRAGMA journal_mode = WAL` ("attempt to write a readonly
database"); `index` with a read-only lancedb/ gave a LanceError traceback.

Tests and CI run as root, which `chmod -R a-w` does not stop. So a real read-only folder is made the way root cannot
write past either: a read-only bind mount in a private mount namespace (`unshare -m`), the command running inside
it; as another user, plain `chmod -R a-w`. Where neither is possible the test skips. The in-process tests make
the store's writability check answer False instead, which is what both of those make it do.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import engine.store.db as store_db
from engine.cli.main import main
from engine.project import ProjectError, init_project, open_project
from engine.store import runs
from engine.store.db import DB_NAME
from tests.projects import make_project

ROOT = Path(__file__).resolve().parents[2]
CLI = "import sys; from engine.cli.main import main; sys.exit(main())"
MOUNT_RO = 'mount --bind "$READONLY" "$READONLY" && mount -o remount,bind,ro "$READONLY" && exec "$@"'


@functools.cache
def _mount_works() -> bool:
    """Can this process mount a folder read-only for a child (root, with unshare and mount allowed)?"""
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        check = f'touch "{tmp}/x" 2>/dev/null; test ! -e "{tmp}/x"'
        probe = subprocess.run(
            ["unshare", "-m", "sh", "-c", MOUNT_RO, "sh", "sh", "-c", check],
            env={**os.environ, "READONLY": tmp},
            capture_output=True,
        )
        return probe.returncode == 0


def run_read_only(folder: Path, *args: Any) -> subprocess.CompletedProcess[str]:
    """`embtune ARGS` in a subprocess that cannot write `folder` (nor anything under it)."""
    command = [sys.executable, "-c", CLI, *map(str, args)]
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", str(folder)], check=True)
        try:
            return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        finally:
            subprocess.run(["chmod", "-R", "u+w", str(folder)], check=True)
    if not _mount_works():
        pytest.skip("running as root, which chmod does not stop, and no read-only bind mount is possible (unshare -m)")
    env = {**os.environ, "READONLY": str(folder)}
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", MOUNT_RO, "sh", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli(*args: Any) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """A project with a few pairs and one finished run, closed."""
    project = init_project(tmp_path / "p")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"query": f"q {i}", "positive": f"passage {i}"}) + "\n" for i in range(5)))
    from engine.ingest import importing

    importing.import_pairs(project, pairs)
    runs.create_run(project.db, "gate", {})
    project.close()
    return project.root


@pytest.fixture
def not_writable(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a read-only folder makes the store see, for in-process tests (root would pass os.access)."""
    monkeypatch.setattr(store_db, "writable", lambda path: False)


def test_status_runs_and_index_list_work_on_a_read_only_folder(small: Path) -> None:
    for args in (("status", small, "--json"), ("runs", small, "--json"), ("index", "list", small)):
        done = run_read_only(small, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert json.loads(run_read_only(small, "status", small, "--json").stdout)["pairs"] == 5


def test_write_commands_exit_2_naming_the_read_only_folder(small: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "more.jsonl"
    pairs.write_text(json.dumps({"query": "new", "positive": "new passage"}) + "\n")
    done = run_read_only(small, "import", small, "--pairs", pairs, "--json")
    assert done.returncode == 2, done.stderr
    assert json.loads(done.stdout) == {"error": f"project folder is read-only: {small}"}
    assert "Traceback" not in done.stderr


def test_a_read_only_folder_with_uncheckpointed_wal_still_shows_the_latest_rows(small: Path) -> None:
    """A writer that has not checkpointed (or died) leaves rows only in project.db-wal: they must be read."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('PRAGMA wal_autocheckpoint = 0'); c.execute(\"INSERT INTO runs (kind) VALUES ('gate')\"); "
            "print('ok', flush=True); time.sleep(60)",
            str(small / DB_NAME),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ok"
        done = run_read_only(small, "status", small, "--json")
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["runs"] == 2


def test_read_and_write_commands_in_process(small: Path, tmp_path: Path, not_writable: None) -> None:
    code, out, err = cli("status", small, "--json")
    assert code == 0, err
    assert json.loads(out)["pairs"] == 5
    assert cli("runs", small)[0] == 0
    code, out, err = cli("import", small, "--pairs", tmp_path / "pairs.jsonl", "--json")
    assert code == 2
    assert json.loads(out) == {"error": f"project folder is read-only: {small}"}
    assert json.loads(cli("status", small, "--json")[1])["pairs"] == 5


def test_an_older_schema_read_only_says_it_needs_an_upgrade(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = open_project(small)
    project.db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm004_review'")
    project.close()
    monkeypatch.setattr(store_db, "writable", lambda path: False)
    with pytest.raises(ProjectError, match="schema upgrade \\(m004_review\\)"):
        open_project(small)


def test_index_with_a_read_only_lancedb_is_a_clear_error(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = make_project(tmp_path, tiny_embedder_path, n_docs=8, n_gate=2, train_per_doc=1)
    root = project.root
    project.close()
    done = run_read_only(root / "lancedb", "index", root, "--wait", "--json")
    assert done.returncode == 2, done.stderr
    assert json.loads(done.stdout) == {"error": f"project folder is read-only: {root / 'lancedb'}"}


def test_search_works_on_a_read_only_project(tmp_path: Path, tiny_embedder_path: Path) -> None:
    project = make_project(tmp_path, tiny_embedder_path, n_docs=8, n_gate=2, train_per_doc=1)
    root = project.root
    project.close()
    code, _, err = cli("index", root, "--wait")
    assert code == 0, err
    done = run_read_only(root, "search", root, "subrogation", "--json")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    done = run_read_only(root, "index", "list", root, "--json")
    assert done.returncode == 0, done.stderr


async def test_the_tui_opens_a_read_only_project_and_says_so(small: Path, not_writable: None) -> None:
    from tui.app import EmbtuneApp

    app = EmbtuneApp(small)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        notice = app.screen.query_one("#read-only")
        assert f"read-only project: {small}" in str(notice.render())


def test_a_writable_project_is_not_read_only(small: Path) -> None:
    project = open_project(small)
    try:
        assert project.read_only is False
        assert stat.S_IMODE(os.stat(small).st_mode) & stat.S_IWUSR
    finally:
        project.close()


def test_eval_of_cached_results_works_on_a_read_only_project(tmp_path: Path, tiny_embedder_path: Path) -> None:
    """Evaluated once while writable (vectors cached), the same evaluation runs read-only: same figures, no run."""
    from tests.evalmodels import make_eval_project

    project = make_eval_project(tmp_path, tiny_embedder_path)
    root = project.root
    project.close()
    code, out, err = cli("eval", root, "--models", "base", "--json")
    assert code == 0, err
    writable = json.loads(out)
    done = run_read_only(root, "eval", root, "--models", "base", "--json")
    assert done.returncode == 0, done.stderr
    read_only = json.loads(done.stdout)
    assert read_only["run_id"] is None  # nothing stored
    assert read_only["models"]["base"]["ndcg@10"] == writable["models"]["base"]["ndcg@10"]
