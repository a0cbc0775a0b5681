"""project.yaml validation: defaults, unknown keys, wrong types, ranges — each naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import ConfigError, ProjectConfig, dump_config, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "project.yaml"
    path.write_text(text)
    return path


def test_defaults_follow_the_guide(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "name: demo\n"))
    assert config.name == "demo"
    assert (config.gate.k, config.gate.stop_recall, config.gate.finetune_recall) == (5, 0.80, 0.70)
    assert (config.gate.min_pairs, config.gate.reliable_pairs, config.gate.rerank_top_n) == (1000, 5000, 50)
    assert config.base_model == "all-MiniLM-L6-v2"
    assert config.reranker is None
    assert config.training.loss == "mnrl"


def test_dumped_defaults_load_back_equal(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, dump_config(ProjectConfig()))) == ProjectConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nbase_modle: foo\n", r"project\.yaml:2: unknown key 'base_modle'"),
        ("gate:\n  k: 5\n  stop_recal: 0.8\n", r"project\.yaml:3: unknown key 'gate\.stop_recal'"),
        ("gate:\n  k: five\n", r"project\.yaml:2: 'gate\.k' must be an integer, got 'five'"),
        ("gate:\n  stop_recall: high\n", r"project\.yaml:2: 'gate\.stop_recall' must be a number, got 'high'"),
        ("trust_remote_code: maybe\n", r"project\.yaml:1: 'trust_remote_code' must be true or false"),
        ("gate: 3\n", r"project\.yaml:1: 'gate' must be a mapping of keys"),
        ("gate:\n  stop_recall: 1.5\n", r"project\.yaml:2: 'gate\.stop_recall' must be between 0 and 1"),
        ("gate:\n  finetune_recall: 0.9\n", r"'gate\.finetune_recall' \(0\.9\) must not exceed gate\.stop_recall"),
        ("training:\n  loss: triplet\n", r"project\.yaml:2: 'training\.loss' must be one of mnrl"),
        ("training:\n  hardness: -1\n", r"project\.yaml:2: 'training\.hardness' must be a number from 0"),
        ("chunking:\n  default: nope\n", r"project\.yaml:2: 'chunking\.default' names no strategy"),
        (
            "chunking:\n  strategies:\n    bad: {kind: fixed_tokens, size: 10, overlap: 10}\n",
            r"project\.yaml:3: 'chunking\.strategies\.bad' is invalid: .*overlap",
        ),
        ("name: [unclosed\n", r"project\.yaml:2: invalid YAML"),
    ],
)
def test_bad_config_names_file_line_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_null_reranker_and_int_for_float(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "reranker: null\ngate:\n  stop_recall: 1\n  finetune_recall: 0\n"))
    assert config.reranker is None
    assert config.gate.stop_recall == 1.0
