"""Test doubles shipped with the package: tiny random models that need no download.

Built from configs with a tokenizer trained on the spot, they load through the same code
paths as real models (a local folder), so tests exercise loading, label tokens, batching and
prefix reuse in seconds. Their scores are meaningless; use the packaged SmolLM2/MiniLM for
numbers that mean something.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

CORPUS = [
    "You are a recommender. Please respond \"YES\" or \"NO\" to represent whether this user is interested in this item.",
    "User behavior sequence:", "Candidate item:", "Answer (Yes/No):", "Yes", "No", " Yes", " No", "YES", "NO",
    "The Shining (1980) horror movie", "Master of Puppets (Metallica) heavy metal album",
    "The Hobbit (J. R. R. Tolkien) fantasy book", "Civilization strategy game", "news article movie book game",
    "(1) (2) (3) (4) (5) (6) (7) (8) (9) (10) (11) (12) (13) (14) (15) (16) (17) (18) (19) (20)",
    "query: passage: the a of and to in is for on with",
]


def build_tokenizer(folder: Path, extra_texts: Iterable[str] = (), vocab_size: int = 600, bert: bool = False):
    """A byte-level BPE (or WordPiece for BERT-style) tokenizer trained on a small corpus."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(CORPUS) + list(extra_texts)
    if bert:
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
        tok.decoder = decoders.WordPiece()
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                       sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)
    else:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        specials = ["<|endoftext|>", "<|pad|>"]
        tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                       pad_token="<|pad|>", model_max_length=512)
        fast.chat_template = (
            "{% for m in messages %}<|endoftext|>{{ m['role'] }}\n{{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}<|endoftext|>assistant\n{% endif %}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(folder))
    return fast


def build_tiny_model(folder: Path, arch: str = "llama", seed: int = 0, max_positions: int = 512,
                     extra_texts: Iterable[str] = ()) -> Path:
    """Save a tiny random model (llama | opt | bert) with its tokenizer into `folder`."""
    import torch
    import transformers as tf

    folder = Path(folder)
    tok = build_tokenizer(folder, extra_texts, bert=(arch == "bert"))
    torch.manual_seed(seed)
    vocab = len(tok)
    if arch == "llama":
        cfg = tf.LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        model = tf.LlamaForCausalLM(cfg)
    elif arch == "opt":
        cfg = tf.OPTConfig(vocab_size=vocab, hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                           max_position_embeddings=max_positions, word_embed_proj_dim=32,
                           bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        model = tf.OPTForCausalLM(cfg)
    elif arch == "bert":
        cfg = tf.BertConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=max_positions, pad_token_id=tok.pad_token_id)
        model = tf.BertForMaskedLM(cfg)
    else:
        raise ValueError(f"unknown tiny architecture {arch!r}")
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


def tiny_model_spec(folder: Path, kind: Optional[str] = None):
    from .models import resolve_model, replace

    spec = resolve_model(str(folder))
    return replace(spec, kind=kind) if kind else spec
