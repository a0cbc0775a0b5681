"""The command contract: init, import, status --json, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from tests.beir_files import beir_files, jsonl, write_tree


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_init_import_status_json(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    assert run("init", project)[0] == 0
    assert (project / "project.yaml").is_file()
    assert (project / "project.db").is_file()
    code, out, _ = run("import", project, "--beir", write_tree(tmp_path / "beir", beir_files()), "--json")
    assert code == 0
    assert json.loads(out)["added"]["pairs"] == 2
    pairs = tmp_path / "p.csv"
    pairs.write_text("query,positive\nwhat is subro,recovering what we paid from the party at fault\n")
    assert run("import", project, "--pairs", pairs, "--split", "test")[0] == 0
    code, out, _ = run("status", project, "--json")
    status = json.loads(out)
    assert code == 0
    assert {k: status[k] for k in ("documents", "chunks", "pairs", "negatives", "runs")} == {
        "documents": 3,
        "chunks": 3,
        "pairs": 3,
        "negatives": 0,
        "runs": 0,
    }
    assert status["queries"] == {"train": 2, "dev": 0, "test": 1, "gate": 0, "general": 0}


def test_bad_input_exits_non_zero_with_file_line_message(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    run("init", project)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(jsonl([{"query": "q", "positive": "p"}]) + b'{"query": "q2", "positive": ')
    code, out, err = run("import", project, "--pairs", bad, "--json")
    assert code == 2
    assert "bad.jsonl:2: invalid JSON" in err
    assert "bad.jsonl:2" in json.loads(out)["error"]
    assert json.loads(run("status", project, "--json")[1])["pairs"] == 0


def test_usage_errors(tmp_path: Path) -> None:
    assert run("status", tmp_path)[0] == 2
    assert "not an embtune project" in run("status", tmp_path)[2]
    run("init", tmp_path / "p")
    code, _, err = run("import", tmp_path / "p")
    assert code == 2
    assert "exactly one of" in err
    code, _, err = run("init", tmp_path / "p")
    assert code == 2
    assert "already holds a project.yaml" in err


def test_init_from_template_imports_its_sources(tmp_path: Path) -> None:
    template = write_tree(tmp_path / "tpl", beir_files(**{"synonyms.yaml": b"FNOL: [first notice of loss]\n"}))
    (template / "project.yaml").write_text("name: tpl\nexpansions: synonyms.yaml\ndata:\n  sources:\n    - beir: .\n")
    code, out, _ = run("init", tmp_path / "proj", "--from", template, "--json")
    assert code == 0, out
    assert json.loads(out)["documents"] == 2
    assert (tmp_path / "proj" / "synonyms.yaml").is_file()


def test_console_script_help_is_fast_to_import_and_lists_commands() -> None:
    script = Path(sys.executable).parent / "embtune"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("init", "import", "status", "open"):
        assert command in out


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["status", "--json"], "Missing argument 'DIRECTORY'"),
        (["init", "{file}", "--json"], "is a file"),
        (["train", "{dir}", "--batch-size", "many", "--json"], "'many' is not a valid integer"),
    ],
)
def test_usage_errors_print_json_too_when_json_is_asked(args: list[str], said: str, tmp_path: Path) -> None:
    """click's own argument checks run before a command's error handler: a script asking --json still gets JSON."""
    (tmp_path / "f").write_text("")
    argv = [a.format(file=tmp_path / "f", dir=tmp_path) for a in args]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2
    assert said in json.loads(result.stdout)["error"]
