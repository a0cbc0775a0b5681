"""Paths: nothing a template, a config or a command writes lands outside the project or the named destination.

`init --from` is all-or-nothing (built beside the target, renamed into place); `export` and `export-pairs` never
delete or overwrite a file they did not create. Every bad case must exit 2 with a message, never a traceback,
and leave nothing half-written.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.project import init_project
from tests.beir_files import beir_files, jsonl, write_tree
from tests.projects import register_model


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    traceback: bool  # an exception other than the CLI's own exit escaped: a bug, whatever the exit code


def embtune(*args: object) -> Outcome:
    result = CliRunner().invoke(main, [str(a) for a in args])
    escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
    return Outcome(result.exit_code, result.stdout, result.stderr, escaped)


def assert_clear_error(result: Outcome, *fragments: str) -> None:
    assert not result.traceback, result.err
    assert result.code == 2, (result.out, result.err)
    # Every case runs with --json: stdout is one {"error": …}, except click's own argument checks (a file where
    # a folder must be), which run before any command and print their usage message on stderr.
    message = json.loads(result.out)["error"] if result.out else result.err
    for fragment in fragments:
        assert fragment in message, message


def tree(root: Path, skip: str = "proj/project.db") -> dict[str, bytes | None]:
    """Every path under root with its bytes (None for folders): a snapshot to compare before and after. The
    project's database files are skipped: opening a project to read it rightly touches its WAL files."""
    return {
        p.relative_to(root).as_posix(): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
        if not p.relative_to(root).as_posix().startswith(skip)
    }


def template(tmp: Path, yaml_text: str, **files: bytes) -> Path:
    folder = write_tree(tmp / "tpl", beir_files(**files))
    (folder / "project.yaml").write_text(yaml_text)
    return folder


# --- init --from: paths a template names ---------------------------------------------------------------------

ESCAPING_EXPANSIONS = {
    "parent": "../x.txt",
    "two-up-planted": "../../planted.txt",
    "normalises-outside": "sub/../../x.txt",
    "absolute": "{planted}",
    "home": "~/embtune-never-written.txt",
}


@pytest.mark.parametrize("case", sorted(ESCAPING_EXPANSIONS))
def test_init_from_refuses_an_expansions_path_outside_the_project(tmp_path: Path, case: str) -> None:
    planted = tmp_path / "planted.txt"
    name = ESCAPING_EXPANSIONS[case].format(planted=planted)
    tpl = template(tmp_path / "src" / "deep", f"name: t\nexpansions: {name}\ndata:\n  sources:\n    - beir: .\n")
    (tpl / "sub").mkdir()
    target = tmp_path / "a" / "b" / "proj"
    target.parent.mkdir(parents=True)
    if not name.startswith("~"):
        # A file at the named path on both sides (the template's and the user's), so only the path rule can
        # stop the copy: before the fix, the user's file was overwritten with the template's.
        for side, text in ((tpl, "template's\n"), (target, "the user's file\n")):
            file = Path(os.path.normpath(side / name))
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text)
    before = tree(tmp_path)
    result = embtune("init", target, "--from", tpl, "--json")
    assert_clear_error(result, "project.yaml:2", "expansions")
    assert not target.exists()
    assert tree(tmp_path) == before  # nothing written anywhere, no temporary folder left beside the target


def test_init_from_copies_an_expansions_file_inside_the_template(tmp_path: Path) -> None:
    tpl = template(
        tmp_path,
        "name: t\nexpansions: lists/syn.yaml\ndata:\n  sources:\n    - beir: .\n",
        **{"lists/syn.yaml": b"FNOL: [first notice of loss]\n"},
    )
    result = embtune("init", tmp_path / "proj", "--from", tpl, "--json")
    assert result.code == 0, result.err
    assert (tmp_path / "proj" / "lists" / "syn.yaml").read_bytes() == b"FNOL: [first notice of loss]\n"


# --- init --from: all or nothing -----------------------------------------------------------------------------

FAILING_TEMPLATES = {  # case: (project.yaml, what the message names)
    "bad-second-source": ("name: t\ndata:\n  sources:\n    - beir: .\n    - pairs: bad.jsonl\n", "bad.jsonl:2"),
    "missing-source": ("name: t\ndata:\n  sources:\n    - beir: .\n    - docs: nowhere\n", "nowhere"),
    "source-typed-wrong": ("name: t\ndata:\n  sources:\n    - beir: .\n    - [pairs]\n", "project.yaml:5"),
    "bad-config": ("name: t\ngate:\n  k: five\n", "project.yaml:3"),
    "missing-expansions": ("name: t\nexpansions: none.yaml\n", "project.yaml:2"),
    "expansions-a-folder": ("name: t\nexpansions: qrels\n", "project.yaml:2"),
    "expansions-replaces-db": ("name: t\nexpansions: project.db\n", "project.yaml:2"),
    "duplicate-key": ("name: t\nname: u\n", "project.yaml:2"),
}


@pytest.mark.parametrize("case", sorted(FAILING_TEMPLATES))
def test_a_failed_init_from_leaves_nothing_and_can_be_redone(tmp_path: Path, case: str) -> None:
    bad = jsonl([{"query": "q", "positive": "p"}]) + b'{"query": "q2", "positive": '
    text, fragment = FAILING_TEMPLATES[case]
    tpl = template(tmp_path, text, **{"bad.jsonl": bad})
    target = tmp_path / "new" / "proj"  # its parent is created by init, so must go again on failure
    before = tree(tmp_path)
    assert_clear_error(embtune("init", target, "--from", tpl, "--json"), fragment)
    assert tree(tmp_path) == before
    (tpl / "project.yaml").write_text("name: t\ndata:\n  sources:\n    - beir: .\n")
    result = embtune("init", target, "--from", tpl, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["documents"] == 2


def test_init_from_builds_beside_the_target_and_the_project_works_after_the_rename(tmp_path: Path) -> None:
    tpl = template(tmp_path, "name: t\ndata:\n  sources:\n    - beir: .\n")
    target = tmp_path / "proj"
    result = embtune("init", target, "--from", tpl, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["project"] == str(target.resolve())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj", "tpl"]  # no temporary folder left
    pairs = tmp_path / "p.csv"
    pairs.write_text("query,positive\nwhat is subro,recovering what we paid from the party at fault\n")
    assert embtune("import", target, "--pairs", pairs, "--split", "test").code == 0  # the store still writes
    status = json.loads(embtune("status", target, "--json").out)
    assert (status["documents"], status["pairs"]) == (3, 3)


def test_init_removes_what_a_killed_init_of_the_same_folder_left_and_spares_a_live_one(tmp_path: Path) -> None:
    """kill -9 during `init --from` leaves its staging folder beside the target (nothing can clean up); the next
    init of that folder removes it once its process is gone, and never a live init's."""
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tmp_path / f".proj.embtune-init-{gone.pid}-abc123"
    live = tmp_path / f".proj.embtune-init-{os.getpid()}-def456"
    for folder in (dead, live):
        (folder / "lancedb").mkdir(parents=True)
        (folder / "project.db").write_bytes(b"half-built")
    tpl = template(tmp_path, "name: t\ndata:\n  sources:\n    - beir: .\n")
    result = embtune("init", tmp_path / "proj", "--from", tpl, "--json")
    assert result.code == 0, result.err
    assert not dead.exists()
    assert live.is_dir()


def test_init_from_into_an_existing_empty_folder(tmp_path: Path) -> None:
    tpl = template(tmp_path, "name: t\ndata:\n  sources:\n    - beir: .\n")
    (tmp_path / "proj").mkdir()
    assert embtune("init", tmp_path / "proj", "--from", tpl).code == 0
    assert (tmp_path / "proj" / "project.yaml").is_file()


BAD_TARGETS = ("existing-project", "non-empty-folder", "a-file")


@pytest.mark.parametrize("case", BAD_TARGETS)
def test_init_refuses_a_target_it_would_have_to_overwrite(tmp_path: Path, case: str) -> None:
    tpl = template(tmp_path, "name: t\ndata:\n  sources:\n    - beir: .\n")
    target = tmp_path / "proj"
    if case == "existing-project":
        init_project(target).close()
    elif case == "non-empty-folder":
        write_tree(target, {"notes.txt": b"mine\n"})
    else:
        target.write_text("a file\n")
    before = tree(tmp_path)
    assert_clear_error(embtune("init", target, "--from", tpl, "--json"), str(target))
    assert tree(tmp_path) == before


def test_init_without_template_into_a_file_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "proj").write_text("a file\n")
    assert_clear_error(embtune("init", tmp_path / "proj", "--json"), "proj")
    assert (tmp_path / "proj").read_text() == "a file\n"


def test_template_without_project_yaml(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    assert_clear_error(embtune("init", tmp_path / "proj", "--from", tmp_path / "tpl", "--json"), "project.yaml")
    assert not (tmp_path / "proj").exists()


# --- export: never delete what export did not create ---------------------------------------------------------


@pytest.fixture
def finished_run(tmp_path: Path) -> tuple[Path, int]:
    """A project with one finished training run whose model folder is a minimal (safetensors) model."""
    model = write_tree(tmp_path / "model", {"config.json": b'{"model_type": "bert"}', "model.safetensors": b"w"})
    project = init_project(tmp_path / "proj")
    run_id = register_model(project, model)
    project.close()
    return tmp_path / "proj", run_id


def _user_partial_dir(out: Path) -> None:
    write_tree(out.with_name(out.name + ".partial"), {"important.txt": b"notes\n"})


def _user_partial_file(out: Path) -> None:
    out.with_name(out.name + ".partial").write_text("notes\n")


def _user_partial_symlink(out: Path) -> None:
    write_tree(out.parent / "elsewhere", {"important.txt": b"notes\n"})
    out.with_name(out.name + ".partial").symlink_to(out.parent / "elsewhere")


def _dest_not_empty(out: Path) -> None:
    write_tree(out, {"important.txt": b"notes\n"})


def _dest_a_file(out: Path) -> None:
    out.write_text("notes\n")


def _nothing(out: Path) -> None:
    """No obstacle: the case's run reference itself is wrong."""


BLOCKED_EXPORTS = {
    "user-partial-folder": (_user_partial_dir, ".partial"),
    "user-partial-file": (_user_partial_file, ".partial"),
    "user-partial-symlink": (_user_partial_symlink, ".partial"),
    "dest-not-empty": (_dest_not_empty, "not empty"),
    "dest-a-file": (_dest_a_file, "not empty"),
    "no-such-run": (_nothing, "run 99"),
}


@pytest.mark.parametrize("case", sorted(BLOCKED_EXPORTS))
def test_export_never_deletes_what_it_did_not_create(tmp_path: Path, finished_run: tuple[Path, int], case: str) -> None:
    root, run_id = finished_run
    out = tmp_path / "out"
    setup, fragment = BLOCKED_EXPORTS[case]
    setup(out)
    before = tree(tmp_path)
    ref = 99 if case == "no-such-run" else run_id
    assert_clear_error(embtune("export", root, ref, out, "--json"), fragment)
    assert tree(tmp_path) == before


def test_export_replaces_its_own_leftover_partial(tmp_path: Path, finished_run: tuple[Path, int]) -> None:
    root, run_id = finished_run
    out = tmp_path / "out"
    result = embtune("export", root, run_id, out, "--json")
    assert result.code == 0, result.err
    assert ".embtune" not in " ".join(json.loads(result.out)["files"])  # the marker does not ship
    out.rename(tmp_path / "out.partial")  # what a killed export leaves: a folder holding export's marker…
    assert not (tmp_path / "out.partial" / ".embtune-export").exists()  # …which a finished export no longer has
    (tmp_path / "out.partial" / ".embtune-export").write_text("")
    result = embtune("export", root, run_id, out, "--json")
    assert result.code == 0, result.err
    assert not (tmp_path / "out.partial").exists()
    files = ["README.md", "config.json", "config_sentence_transformers.json", "model.safetensors"]  # + prompts
    assert sorted(json.loads(result.out)["files"]) == files


def test_export_into_the_model_folder_itself_is_refused(tmp_path: Path, finished_run: tuple[Path, int]) -> None:
    root, run_id = finished_run
    model = root / "models" / f"run-{run_id}"
    before = tree(tmp_path)
    assert_clear_error(embtune("export", root, run_id, model / "copy", "--json"), "inside")
    assert tree(tmp_path) == before


# --- export-pairs: a user's FILE.partial is not ours to clobber -----------------------------------------------


def test_export_pairs_leaves_a_users_partial_file_alone(tmp_path: Path) -> None:
    project = init_project(tmp_path / "proj")
    project.close()
    (tmp_path / "pairs.jsonl.partial").write_text("notes\n")
    result = embtune("export-pairs", tmp_path / "proj", "--format", "st", "--out", tmp_path / "pairs.jsonl", "--json")
    assert result.code == 0, result.err
    assert (tmp_path / "pairs.jsonl.partial").read_text() == "notes\n"
    assert (tmp_path / "pairs.jsonl").is_file()
    assert sorted(os.listdir(tmp_path)) == ["pairs.jsonl", "pairs.jsonl.partial", "proj"]
