"""The one place that decides which prompt goes before a query and before a document.

Instruction and asymmetric models (multilingual-e5-*-instruct, Qwen3-Embedding, e5, bge with a query instruction)
are trained with a prefix on queries (and sometimes on passages); encoding without it loses much of their quality.
The prompts come from project.yaml's `prompts: {query, document, task}` first, then from the model's own
`config_sentence_transformers.json` (`prompts`, `default_prompt_name`). Every path (gate, mining, training,
evaluation, indexing, search, export) asks `resolve_prompts`, so they cannot disagree; the encoding fingerprint
mixes the prompts in, so a prompt change never reuses vectors encoded under another prompt.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Role = Literal["query", "document"]
ST_CONFIG = "config_sentence_transformers.json"
CONFIG_KEYS = ("query", "document", "task")
# Qwen3-Embedding's and multilingual-e5-instruct's query format: the task in one line, then the query.
INSTRUCT = "Instruct: {task}\nQuery: "

# Model names whose cards say queries need a prompt (instruction or prefix); a match with no query prompt warns.
_NEEDS_PROMPT = re.compile(
    r"(e5[-_].*instruct|qwen3[-_]?embedding|gte[-_]qwen|instruct[-_]?embed|(^|[/_-])e5[-_])", re.I
)


class PromptWarning(UserWarning):
    """A model whose card asks for query prompts is used without one."""


@dataclass(frozen=True)
class Prompts:
    query: str = ""
    document: str = ""
    # where they came from: "project", "model", "project+model" or "none" (shown by plan and export)
    source: str = "none"

    def for_role(self, role: Role) -> str:
        return self.query if role == "query" else self.document

    def as_dict(self) -> dict[str, str]:
        """What a saved model carries in config_sentence_transformers.json's `prompts`."""
        return {"query": self.query, "document": self.document}

    def training(self, columns: list[str]) -> dict[str, str]:
        """sentence-transformers' `prompts` training argument: column -> prompt (the anchor is the query)."""
        out = {c: self.query if c == "anchor" else self.document for c in columns}
        return {c: p for c, p in out.items() if p}

    def fingerprint(self, model_fingerprint: str) -> str:
        """The model's fingerprint when no prompt applies (old caches stay valid), else one mixed with them."""
        if not (self.query or self.document):
            return model_fingerprint
        mixed = f"{model_fingerprint}\0{self.query}\0{self.document}".encode()
        return hashlib.sha256(mixed).hexdigest()[:16]


def model_prompts(path: Path) -> tuple[dict[str, str], str | None]:
    """A saved SentenceTransformer's own prompts and default prompt name (empty when it has none)."""
    file = Path(path) / ST_CONFIG
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, None
    prompts = config.get("prompts") if isinstance(config, dict) else None
    clean = {str(k): str(v) for k, v in prompts.items() if isinstance(v, str)} if isinstance(prompts, dict) else {}
    default = config.get("default_prompt_name") if isinstance(config, dict) else None
    return clean, default if isinstance(default, str) and default in clean else None


def resolve_prompts(configured: Mapping[str, str] | None, model_path: Path | None) -> Prompts:
    """project.yaml's prompts (query > task > the model's), else the model's `query`/`document` prompts, else its
    default prompt (as sentence-transformers' encode_query/encode_document would pick them)."""
    configured = dict(configured or {})
    own, default = model_prompts(model_path) if model_path is not None else ({}, None)
    query, from_project_q = _pick(configured, own, default, "query")
    if "query" not in configured and configured.get("task"):
        query, from_project_q = INSTRUCT.format(task=configured["task"].strip()), True
    document, from_project_d = _pick(configured, own, default, "document")
    used = {("project" if p else "model") for p, text in ((from_project_q, query), (from_project_d, document)) if text}
    source = "+".join(sorted(used, reverse=True)) if used else "none"
    return Prompts(query, document, source)


def _pick(configured: dict[str, str], own: dict[str, str], default: str | None, role: str) -> tuple[str, bool]:
    if role in configured:
        return configured[role], True
    if role in own:
        return own[role], False
    return (own[default], False) if default else ("", False)


def prompt_warning(spec: str, model_path: Path | None, prompts: Prompts) -> str | None:
    """A line for a model whose card requires query prompts when none is configured, else None."""
    if prompts.query:
        return None
    names = [spec, *([model_path.name] if model_path is not None else []), *_declared_names(model_path)]
    if not any(_NEEDS_PROMPT.search(n) for n in names):
        return None
    return (
        f"model {spec!r} expects an instruction or prefix on queries but none is configured: set project.yaml "
        "`prompts: {task: <one line describing the search>}` (Instruct/Query format) or `prompts: {query: ...}`; "
        "without it its retrieval quality drops"
    )


def _declared_names(model_path: Path | None) -> list[str]:
    """The names a model folder declares for itself (`_name_or_path` of its config), for local copies."""
    if model_path is None:
        return []
    try:
        config = json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    name = config.get("_name_or_path") if isinstance(config, dict) else None
    return [name] if isinstance(name, str) else []


def warn_if_missing(spec: str, model_path: Path | None, prompts: Prompts) -> None:
    message = prompt_warning(spec, model_path, prompts)
    if message:
        warnings.warn(message, PromptWarning, stacklevel=3)


def apply_to_model(model: Any, prompts: Prompts) -> None:
    """Make a loaded SentenceTransformer carry the resolved prompts, so what it saves (a run's model, an export)
    encodes the same way in any sentence-transformers code: `encode_query` / `encode_document` pick them up."""
    merged = {**dict(getattr(model, "prompts", None) or {}), **prompts.as_dict()}
    model.prompts = {k: v for k, v in merged.items() if v or k in ("query", "document")}
    if getattr(model, "default_prompt_name", None) not in model.prompts:
        model.default_prompt_name = None
