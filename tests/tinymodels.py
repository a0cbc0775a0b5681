"""Tiny real models built locally for tests: no downloads, about a second each, deterministic.

A 2-layer BERT (hidden 64) with random but seeded weights and a WordPiece vocabulary drawn from a small
built-in English corpus (insurance words and general words). The vectors mean nothing; the pipeline is real.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
HIDDEN = 64
MAX_LENGTH = 256
SEED = 0

# fmt: off
_SUBJECTS = [
    "the claim", "my policy", "the adjuster", "the insurer", "your premium", "the deductible", "our broker",
    "the policyholder", "the underwriter", "a neighbour", "the old car", "my house", "the small shop",
    "a teacher",
]
_VERBS = [
    "covers", "excludes", "was filed for", "needs a review of", "pays for", "delays", "denies", "approves",
    "mentions", "describes", "ignores", "reports",
]
_OBJECTS = [
    "roof damage", "a stolen bicycle", "medical bills", "flood repairs", "the broken window", "travel costs",
    "a kitchen fire", "liability", "storm damage", "lost luggage", "a cracked windscreen", "water leaks",
    "the garden fence", "dental care", "a rental car", "the summer holiday",
]
_TAILS = [
    "", " last week", " after the storm", " within thirty days", " according to the contract",
    " in the city centre", " before the renewal date", " without any receipt", " on a rainy morning",
]
# fmt: on
_GENERAL = [
    "Cats sleep most of the day and hunt at night.",
    "The train to the coast leaves every hour from platform two.",
    "Fresh bread tastes best with butter and a little salt.",
    "She read three books about mountains, rivers and forests.",
    "Children played football in the park until sunset.",
    "Please send the signed form and a copy of your identity card.",
    "Embedding models map text to vectors so similar texts end up close together.",
    "What is the maximum payout for theft from a locked vehicle?",
    "How do I file a claim for hail damage to my roof?",
    "Is a pre-existing condition covered by the travel policy?",
]


def corpus() -> list[str]:
    """A few hundred varied English sentences, always the same ones in the same order."""
    rows = itertools.product(_SUBJECTS, _VERBS, _OBJECTS)
    # Every 5th combination keeps the corpus small yet varied; tails rotate through the rows.
    picked = [f"{s} {v} {o}{_TAILS[i % len(_TAILS)]}." for i, (s, v, o) in enumerate(rows) if i % 5 == 0]
    return [s[0].upper() + s[1:] for s in picked] + _GENERAL


def build_tokenizer(texts: list[str] | None = None) -> Any:
    """A BERT-style WordPiece tokenizer (lowercasing) whose vocabulary is learned from ``texts``.

    The vocabulary is every whole word plus every character (and its ``##`` continuation), in sorted order.
    ``tokenizers``' WordPieceTrainer breaks count ties in hash order, so its vocabulary changes from run to
    run; this one is the same on every machine, and still splits unseen words into known pieces.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = {w for t in (texts or corpus()) for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(t))}
    chars = {c for w in words for c in w}
    vocab = [*SPECIALS, *sorted(words | chars | {f"##{c}" for c in chars})]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=MAX_LENGTH,
    )


def _bert_config(vocab_size: int, **extra: Any) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=MAX_LENGTH,
        **extra,
    )


def build_tiny_embedder(dest: Path) -> Path:
    """Save a SentenceTransformer (BERT → mean pooling → normalize, 64-d) in ``dest``; return ``dest``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertModel

    dest = Path(dest)
    tokenizer = build_tokenizer()
    with tempfile.TemporaryDirectory() as bert_dir:
        tokenizer.save_pretrained(bert_dir)
        torch.manual_seed(SEED)
        BertModel(_bert_config(len(tokenizer))).save_pretrained(bert_dir)
        modules = [Transformer(bert_dir, max_seq_length=MAX_LENGTH), Pooling(HIDDEN, "mean"), Normalize()]
        SentenceTransformer(modules=modules, device="cpu").save(str(dest))
    return dest


def build_tiny_cross_encoder(dest: Path) -> Path:
    """Save a BERT with a one-logit head (a CrossEncoder scoring (query, passage) pairs) in ``dest``."""
    import torch
    from transformers import BertForSequenceClassification

    dest = Path(dest)
    tokenizer = build_tokenizer()
    torch.manual_seed(SEED)
    BertForSequenceClassification(_bert_config(len(tokenizer), num_labels=1)).save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def perturbed_model(base: Path, dest: Path) -> Path:
    """The tiny embedder with perturbed weights: a different model (fingerprint, vectors), as training makes."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(base), device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    model.save(str(dest))
    return dest


# --- the guide's other families: XLM-RoBERTa (bge-m3, multilingual-e5) and a Qwen3 decoder (Qwen3-Embedding) ----

XLMR_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # XLM-RoBERTa's ids 0-3; <mask> comes last, as in the real one
QWEN_EOS = "<|endoftext|>"  # Qwen3-Embedding appends it and pools the last token (its hidden state is the vector)
QWEN_QUERY_PROMPT = "Instruct: Given a question about insurance, retrieve passages that answer it\nQuery: "


def _words(texts: list[str]) -> list[str]:
    from tokenizers import normalizers, pre_tokenizers

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    return sorted({w for t in texts for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(t))})


def build_unigram_tokenizer(texts: list[str] | None = None) -> Any:
    """A SentencePiece-style Unigram tokenizer (Metaspace "▁", <s> … </s>) like XLM-RoBERTa's, with a fixed
    vocabulary (whole words ▁-prefixed, then every character): deterministic, unlike a trained one."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = _words(texts or [*corpus(), QWEN_QUERY_PROMPT])
    chars = sorted({c for w in words for c in w})
    # Unigram scores are log-probabilities: whole words are likelier than spelling them out.
    pieces = [(f"▁{w}", -1.0 - 0.01 * len(w)) for w in words] + [(p, -8.0) for c in chars for p in (c, f"▁{c}")]
    vocab = [(s, 0.0) for s in XLMR_SPECIALS] + sorted(set(pieces)) + [("▁", -9.0), ("<mask>", 0.0)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=XLMR_SPECIALS.index("<unk>"), byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    ids = {s: i for i, (s, _) in enumerate(vocab)}
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        mask_token="<mask>",
        model_max_length=MAX_LENGTH,
    )


def build_tiny_xlmr_embedder(dest: Path) -> Path:
    """A bge-m3-shaped SentenceTransformer: XLM-RoBERTa (2 layers, 64-d, Unigram vocabulary) → CLS pooling →
    normalize, no prompts (bge-m3 needs none). Saved in ``dest``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import XLMRobertaConfig, XLMRobertaModel

    dest = Path(dest)
    tokenizer = build_unigram_tokenizer()
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=MAX_LENGTH + 2,  # positions start after the padding index, as in XLM-R
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with tempfile.TemporaryDirectory() as xlmr_dir:
        tokenizer.save_pretrained(xlmr_dir)
        torch.manual_seed(SEED)
        XLMRobertaModel(config).save_pretrained(xlmr_dir)
        modules = [Transformer(xlmr_dir, max_seq_length=MAX_LENGTH), Pooling(HIDDEN, "cls"), Normalize()]
        SentenceTransformer(modules=modules, device="cpu").save(str(dest))
    return dest


def build_qwen_tokenizer(texts: list[str] | None = None) -> Any:
    """The WordPiece vocabulary above with Qwen3-Embedding's conventions: <|endoftext|> appended to every text
    (and used as padding), padding on the left so the last position is always a real token."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = set(_words(texts or [*corpus(), QWEN_QUERY_PROMPT]))
    chars = {c for w in words for c in w}
    vocab = [QWEN_EOS, "<|im_start|>", "<|im_end|>", "[UNK]", *sorted(words | chars | {f"##{c}" for c in chars})]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A {QWEN_EOS}", pair=f"$A {QWEN_EOS} $B {QWEN_EOS}", special_tokens=[(QWEN_EOS, 0)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=QWEN_EOS,
        pad_token=QWEN_EOS,
        unk_token="[UNK]",
        padding_side="left",
        model_max_length=MAX_LENGTH,
    )


def build_tiny_qwen3_embedder(dest: Path, prompts: dict[str, str] | None = None) -> Path:
    """A Qwen3-Embedding-shaped SentenceTransformer: a 2-layer Qwen3 decoder (64-d) → last-token pooling →
    normalize, left padding, EOS appended, and the real model's prompt layout (an instruction on queries, none on
    documents) in config_sentence_transformers.json. Name ``dest`` like the real one to test the prompt warning."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import Qwen3Config, Qwen3Model

    dest = Path(dest)
    tokenizer = build_qwen_tokenizer()
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=MAX_LENGTH,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    with tempfile.TemporaryDirectory() as qwen_dir:
        tokenizer.save_pretrained(qwen_dir)
        torch.manual_seed(SEED)
        Qwen3Model(config).save_pretrained(qwen_dir)
        modules = [Transformer(qwen_dir, max_seq_length=MAX_LENGTH), Pooling(HIDDEN, "lasttoken"), Normalize()]
        chosen = {"query": QWEN_QUERY_PROMPT, "document": ""} if prompts is None else prompts
        SentenceTransformer(modules=modules, device="cpu", prompts=chosen).save(str(dest))
    return dest
