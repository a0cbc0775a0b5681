"""`embtune export DIR RUN DEST`: a trained model as a folder SentenceTransformer(DEST) loads, with a model card.

The card is written here, offline, from the store: the run's data lineage (its config and result) and the
evaluation figures recorded for it. The folder is assembled under DEST.partial and renamed into place, so DEST
is either complete or absent. Export deletes only what it created: DEST.partial when it holds export's marker.

The exported config carries the prompts every embtune path used (engine.models.prompts), so `encode_query` /
`encode_document` in any sentence-transformers code encode as embtune did. A LoRA run (its folder holds only the
adapter) is merged into full weights by default (`--adapter merge`: one folder, no peft needed to load it) or
shipped as the adapter (`--adapter keep`: megabytes, naming the base model it needs).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.errors import EmbtuneError
from engine.models.adapters import is_adapter_dir, set_adapter_base
from engine.models.prompts import ST_CONFIG, Prompts
from engine.models.refs import ModelRef, resolve_ref
from engine.project import Project
from engine.store import indexes

CARD = "README.md"
ADAPTER_MODES = ("merge", "keep")
# Written first into DEST.partial: how a later export tells its own leftover from a user's folder of that name.
MARKER = ".embtune-export"


class ExportError(EmbtuneError):
    """The export cannot be written (DEST not empty, no such model)."""


def export_model(project: Project, ref: str, dest: Path, adapter: str = "merge") -> dict[str, Any]:
    from engine.models.resolve import model_fingerprint, resolve_model

    if adapter not in ADAPTER_MODES:
        raise ExportError(f"--adapter must be one of {', '.join(ADAPTER_MODES)}, got {adapter!r}")
    dest = Path(dest).expanduser().resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ExportError(f"{dest} exists and is not empty: choose a new folder (nothing was overwritten)")
    model = resolve_ref(project, ref)
    source = resolve_model(model.spec, project.root).path
    if dest.is_relative_to(source):
        raise ExportError(f"{dest} is inside the model folder {source} it would copy: choose a folder outside it")
    partial = _fresh_partial(dest)
    try:
        _assemble(project, model, source, partial, adapter)
        (partial / MARKER).unlink()  # last: a folder holding the marker is always an unfinished export
        if dest.exists():
            dest.rmdir()  # empty, checked above
        partial.rename(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # ours: it was created with the marker in it
        raise
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    return {
        "dest": str(dest),
        "model": model.name,
        "run_id": model.run_id,
        "fingerprint": model_fingerprint(dest),
        "files": files,
        "card": str(dest / CARD),
        "prompts": _exported_prompts(dest),
        "adapter": is_adapter_dir(dest),
    }


def card_preview(project: Project, ref: str) -> dict[str, Any]:
    """The model card export would write for `ref`, writing nothing (the TUI's export dialog shows it first)."""
    from engine.models.prompts import resolve_prompts
    from engine.models.resolve import resolve_model

    model = resolve_ref(project, ref)
    source = resolve_model(model.spec, project.root).path
    prompts = resolve_prompts(project.config.prompts, source)
    run = indexes.run_record(project.db, model.run_id) if model.run_id is not None else None
    card = model_card(project, model.name, run, _evaluations(project, model.name), prompts, is_adapter_dir(source))
    return {"model": model.name, "source": str(source), "card": card}


def _fresh_partial(dest: Path) -> Path:
    """DEST.partial, created empty with export's marker in it. A leftover holding the marker is a killed export
    of ours and is replaced; anything else at that path belongs to the user and is never deleted."""
    partial = dest.with_name(dest.name + ".partial")
    if partial.is_symlink() or partial.exists():
        if partial.is_symlink() or not (partial / MARKER).is_file():
            raise ExportError(
                f"{partial} exists and was not left by an export: move or remove it (nothing was deleted)"
            )
        shutil.rmtree(partial)
    try:
        partial.mkdir(parents=True)
    except OSError as e:
        raise ExportError(f"cannot create {partial}: {e.strerror}") from e
    (partial / MARKER).write_text("an unfinished `embtune export`; the next export to this folder replaces it\n")
    return partial


def _assemble(project: Project, model: ModelRef, source: Path, partial: Path, adapter: str) -> None:
    from engine.models.prompts import resolve_prompts

    prompts = resolve_prompts(project.config.prompts, source)
    if is_adapter_dir(source) and adapter == "merge":
        _save_merged(project, source, partial)
    else:
        shutil.copytree(
            source,
            partial,
            dirs_exist_ok=True,  # the folder exists already, holding the marker
            ignore=shutil.ignore_patterns(".*", "checkpoint-*", "optimizer.pt", "scheduler.pt", "rng_state*.pth"),
        )
        if is_adapter_dir(partial):
            _point_adapter_at_base(project, partial)
        _ensure_safetensors(partial)
    _write_prompts(partial, prompts)
    run = indexes.run_record(project.db, model.run_id) if model.run_id is not None else None
    card = model_card(project, model.name, run, _evaluations(project, model.name), prompts, is_adapter_dir(partial))
    (partial / CARD).write_text(card, encoding="utf-8")


def _save_merged(project: Project, source: Path, partial: Path) -> None:
    """The adapter folded into the base weights: a plain sentence-transformers folder."""
    model = load_merged(source, trust_remote_code=project.config.trust_remote_code)
    model.save(str(partial), safe_serialization=True)


def _point_adapter_at_base(project: Project, folder: Path) -> None:
    """An adapter trained here names its base by local path; an exported one names the base as project.yaml
    does when that is a hub id (the path means nothing on another machine)."""
    from engine.models.resolve import is_hub_id

    base = project.config.base_model
    if is_hub_id(base) and not (project.root / base).exists():
        set_adapter_base(folder, base)


def _write_prompts(folder: Path, prompts: Prompts) -> None:
    """config_sentence_transformers.json carries the prompts the project encoded with."""
    file = folder / ST_CONFIG
    config = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
    merged = {**(config.get("prompts") or {}), **prompts.as_dict()}
    config["prompts"] = merged
    if config.get("default_prompt_name") not in merged:
        config["default_prompt_name"] = None
    file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _exported_prompts(folder: Path) -> dict[str, str]:
    from engine.models.prompts import model_prompts

    return model_prompts(folder)[0]


def _ensure_safetensors(folder: Path) -> None:
    """Weights saved as pickled .bin (older trainers) are re-saved as safetensors: safe and fast to load."""
    if any(folder.rglob("*.safetensors")) or not any(folder.rglob("pytorch_model.bin")):
        return
    from engine.models.resolve import load_embedder

    model = load_embedder(str(folder), device="cpu")
    for old in folder.rglob("pytorch_model.bin"):
        old.unlink()
    model.save(str(folder), safe_serialization=True)


def _evaluations(project: Project, name: str) -> list[dict[str, Any]]:
    """Finished evaluations that measured this model: (run id, split, metrics of this model and the base)."""
    from engine.store import evals

    out = []
    for run_id, finished, result in evals.eval_results(project.db):
        models = result.get("models") or {}
        if name in models:
            out.append(
                {
                    "run_id": run_id,
                    "finished_at": finished,
                    "split": result.get("split"),
                    "n_queries": result.get("n_queries"),
                    "models": {k: models[k] for k in (name, "base") if k in models},
                }
            )
    return out


def model_card(
    project: Project,
    name: str,
    run: dict[str, Any] | None,
    evaluations: list[dict[str, Any]],
    prompts: Prompts | None = None,
    adapter: bool = False,
) -> str:
    config = project.config
    prompts = prompts or Prompts()
    lines = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: sentence-similarity",
        "tags: [sentence-transformers, embtune]",
        "---",
        "",
        f"# {config.name}: {name}",
        "",
        f"Fine-tuned from `{config.base_model}` with embtune on the project `{config.name}`; exported "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        'model = SentenceTransformer("path/to/this/folder")',
        'queries = model.encode_query(["..."])  # applies the query prompt below',
        'passages = model.encode_document(["..."])  # applies the document prompt',
        "```",
        "",
    ]
    lines += _prompt_lines(prompts, adapter, config.base_model)
    lines += _lineage(run)
    lines += _evaluation_lines(name, evaluations)
    return "\n".join(lines) + "\n"


def _prompt_lines(prompts: Prompts, adapter: bool, base: str) -> list[str]:
    lines = ["## Prompts", ""]
    if prompts.query or prompts.document:
        lines += [
            "Trained, evaluated and indexed with these prompts (also in config_sentence_transformers.json):",
            "",
            f"- query: `{json.dumps(prompts.query)}`",
            f"- document: `{json.dumps(prompts.document)}`",
            "",
        ]
    else:
        lines += ["None: queries and documents are encoded as they are.", ""]
    if adapter:
        lines += [
            "## Adapter",
            "",
            f"This folder holds a LoRA adapter (peft), not full weights: loading it needs the base model `{base}` "
            "and the `peft` package.",
            "",
        ]
    return lines


def _lineage(run: dict[str, Any] | None) -> list[str]:
    if run is None:
        return ["## Data lineage", "", "Not a training run of this project: no lineage recorded.", ""]
    lines = [
        "## Data lineage",
        "",
        f"- run {run['id']} ({run['kind']}, {run['status']}), created {run['created_at']}, finished "
        f"{run['finished_at']}" + (f", resumed from run {run['parent_id']}" if run["parent_id"] else ""),
    ]
    lines += [
        "",
        "Training configuration and data, as recorded by the run:",
        "",
        "```json",
        json.dumps(run["config"], indent=2, sort_keys=True, default=str),
        "```",
        "",
        "Result:",
        "",
        "```json",
        json.dumps(run["result"], indent=2, sort_keys=True, default=str),
        "```",
        "",
    ]
    return lines


def _evaluation_lines(name: str, evaluations: list[dict[str, Any]]) -> list[str]:
    lines = ["## Evaluation", ""]
    if not evaluations:
        return [*lines, f"No evaluation of {name} recorded yet (`embtune eval`).", ""]
    for ev in evaluations:
        lines += [
            f"Evaluation run {ev['run_id']} on the {ev['split']} split ({ev['n_queries']} queries), "
            f"{ev['finished_at']}:",
            "",
        ]
        keys = [
            k
            for k in next(iter(ev["models"].values()))
            if isinstance(next(iter(ev["models"].values()))[k], (int, float)) and "@" in k
        ]
        lines.append("| model | " + " | ".join(keys) + " |")
        lines.append("|---" * (len(keys) + 1) + "|")
        for model, figures in ev["models"].items():
            cells = [f"{figures[k]:.4f}" if isinstance(figures.get(k), (int, float)) else "" for k in keys]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        verdict = ev["models"].get(name, {}).get("verdict")
        lines += ["", f"Verdict: {verdict}" if verdict else "", ""]
    return lines


def load_merged(folder: Path, device: str = "cpu", trust_remote_code: bool = False) -> Any:
    """A LoRA run folder as one plain SentenceTransformer: its modules and prompts, with the transformer rebuilt
    from the base weights (adapter_config.json's base) plus the adapter, merged. (Loading the folder directly lets
    transformers inject the adapter, whose merged save keeps peft's key prefix; peft's own merge does not.)"""
    from peft import PeftModel
    from transformers import AutoModel

    from engine.models.adapters import ADAPTER_CONFIG, AdapterError, _transformer, adapter_base
    from engine.models.resolve import load_embedder

    model = load_embedder(str(folder), device=device, trust_remote_code=trust_remote_code)
    base = adapter_base(folder)
    if base is None:
        raise AdapterError(f"{folder / ADAPTER_CONFIG}: names no base model (base_model_name_or_path)")
    plain = AutoModel.from_pretrained(base, local_files_only=True, trust_remote_code=trust_remote_code)
    module = _transformer(model)
    module.model = PeftModel.from_pretrained(plain, str(folder)).merge_and_unload().to(model.device)
    return model
