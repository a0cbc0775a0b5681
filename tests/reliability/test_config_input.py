"""Bad project.yaml and model configs: each is exit 2 with a message naming file and line, never a traceback.

Every case runs `embtune status DIR --json` (the cheapest command that loads project.yaml) on a project whose
project.yaml was replaced by the case's text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli.main import main
from engine.models.resolve import ModelNotFoundError, resolve_model
from engine.project import init_project
from tests.beir_files import write_tree

PLANTED = "embtune-yaml-tag-ran"  # a file the unsafe tags below would create if YAML ran them

# case: (project.yaml text, fragments the error must hold)
BAD_YAML = {
    "duplicate-seed": ("seed: 1\nname: x\nseed: 2\n", ["project.yaml:3", "'seed'", "line 1"]),
    "duplicate-section": (
        "training:\n  batch_size: 8\nname: x\ntraining:\n  epochs: 2\n",
        ["project.yaml:4", "'training'", "line 1"],
    ),
    "duplicate-nested": ("gate:\n  k: 5\n  k: 6\n", ["project.yaml:3", "'gate.k'", "line 2"]),
    "duplicate-quoted": ("name: a\n'name': b\n", ["project.yaml:2", "'name'", "line 1"]),
    "duplicate-in-strategy": (
        "chunking:\n  strategies:\n    p: {kind: paragraph, kind: whole}\n",
        ["project.yaml:3", "'chunking.strategies.p.kind'"],
    ),
    "python-apply-tag": (f'name: !!python/object/apply:os.system ["touch {PLANTED}"]\n', ["project.yaml:1", "tag"]),
    "python-name-tag": ("name: !!python/name:os.system\n", ["project.yaml:1", "tag"]),
    "top-level-tag": (f'--- !!python/object/apply:os.system ["touch {PLANTED}"]\n', ["project.yaml:1", "tag"]),
    "custom-tag": ("name: !secret x\n", ["project.yaml:1", "!secret"]),
    "tag-in-list": (
        f'data:\n  sources:\n    - !!python/object/apply:os.system ["touch {PLANTED}"]\n',
        ["project.yaml:3", "tag"],
    ),
    "sources-bare-name": ("data:\n  sources: [beir]\n", ["project.yaml:2", "data.sources[1]", "mapping"]),
    "sources-number-path": ("data:\n  sources:\n    - beir: 5\n", ["project.yaml:3", "data.sources[1].beir"]),
    "sources-number": ("data:\n  sources:\n    - beir: .\n    - 42\n", ["project.yaml:4", "data.sources[2]"]),
    "sources-empty-entry": ("data:\n  sources:\n    - {}\n", ["project.yaml:3", "data.sources[1]", "beir"]),
    "sources-two-kinds": ("data:\n  sources:\n    - {beir: a, pairs: b}\n", ["project.yaml:3", "only one"]),
    "sources-unknown-key": (
        "data:\n  sources:\n    - pairs: p.jsonl\n      splitt: test\n",
        ["project.yaml:4", "data.sources[1].splitt"],
    ),
    "sources-null-path": ("data:\n  sources:\n    - docs:\n", ["project.yaml:3", "data.sources[1].docs"]),
    "sources-list-option": (
        "data:\n  sources:\n    - queries: q.jsonl\n      tag: [test]\n",
        ["project.yaml:4", "data.sources[1].tag"],
    ),
    "sources-not-a-list": ("data:\n  sources: beir\n", ["project.yaml:2", "data.sources"]),
    "two-documents": ("name: a\n---\nname: b\n", ["project.yaml:2"]),
    "top-level-list": ("- name\n", ["project.yaml:1", "mapping"]),
    "list-as-key": ("? [a, b]\n: 1\n", ["project.yaml:1", "plain name"]),
    "deeply-nested": ("name: " + "[" * 5000 + "]" * 5000 + "\n", ["project.yaml", "nested"]),
    "alias-bomb": (
        "chunking:\n  strategies:\n    a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"    {n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
        ["project.yaml:3", "'chunking.strategies.a'"],
    ),
    "duplicate-after-alias": ("gate: &g {k: 5}\ngate: *g\n", ["project.yaml:2", "line 1"]),
    "sources-unknown-chunking": (
        "data:\n  sources:\n    - docs: d\n      chunking: nope\n",
        ["project.yaml:4", "data.sources[1].chunking"],
    ),
    "not-utf8": (b"name: \xff\xfe\n", ["project.yaml", "UTF-8"]),
    "control-character": ("name: a\x07b\n", ["project.yaml", "invalid YAML"]),
}


@pytest.mark.parametrize("case", sorted(BAD_YAML))
def test_bad_project_yaml_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    monkeypatch.chdir(tmp_path)
    text, fragments = BAD_YAML[case]
    init_project(tmp_path / "proj").close()
    config = tmp_path / "proj" / "project.yaml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = CliRunner().invoke(main, ["status", str(tmp_path / "proj"), "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.stdout
    message = json.loads(result.stdout)["error"]
    for fragment in fragments:
        assert fragment in message, message
    assert not (tmp_path / PLANTED).exists()


def test_valid_sources_of_every_kind_load(tmp_path: Path) -> None:
    from engine.config import load_config

    path = tmp_path / "project.yaml"
    path.write_text(
        "data:\n  sources:\n    - beir: b\n    - pairs: p.jsonl\n      split: test\n"
        "    - docs: d\n      chunking: fixed128\n    - queries: q.jsonl\n      tag: gate\n"
    )
    assert [next(iter(s)) for s in load_config(path).data.sources] == ["beir", "pairs", "docs", "queries"]


def test_import_sources_given_a_wrongly_typed_list_says_which_entry(tmp_path: Path) -> None:
    """Programmatic callers (not through project.yaml) get the same named error, not a TypeError."""
    from engine.errors import EmbtuneError
    from engine.ingest.importing import import_sources

    project = init_project(tmp_path / "proj")
    for sources in (["beir"], [{"beir": 5}], [42]):
        with pytest.raises(EmbtuneError, match=r"data\.sources\[1\]"):
            import_sources(project, tmp_path, sources)  # type: ignore[arg-type]
    project.close()


# --- a model folder named by base_model whose config cannot be read --------------------------------------------

JUNK_MODEL_CONFIGS = {
    "not-json": {"config.json": b"\x00\x01 junk"},
    "json-list": {"config.json": b"[1, 2]"},
    "truncated": {"config.json": b'{"model_type": "be'},
    "bad-modules": {"modules.json": b"{not json"},
    "not-utf8": {"config.json": b'{"model_type": "\xff"}'},
}


@pytest.mark.parametrize("case", sorted(JUNK_MODEL_CONFIGS))
def test_junk_model_config_is_a_clear_error(tmp_path: Path, case: str) -> None:
    model = write_tree(tmp_path / "model", JUNK_MODEL_CONFIGS[case])
    name = next(iter(JUNK_MODEL_CONFIGS[case]))
    with pytest.raises(ModelNotFoundError, match=name):
        resolve_model(str(model))
    init_project(tmp_path / "proj").close()
    (tmp_path / "proj" / "project.yaml").write_text(f"base_model: {model}\n")
    result = CliRunner().invoke(main, ["export", str(tmp_path / "proj"), "base", str(tmp_path / "out"), "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2
    assert str(model / name) in json.loads(result.stdout)["error"]
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "out.partial").exists()
