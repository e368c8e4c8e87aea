"""Tiny local models for the SFT tests: a byte-level BPE tokenizer trained on the demo
catalog and the prompt templates, a 2-layer random Llama (generative), a 2-layer random
BERT (discriminative) and a sentence-transformers folder around a WordPiece BERT
(recbench.testing). Built once per session in a temporary folder; no network."""

from __future__ import annotations

from pathlib import Path

import pytest

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]


def _corpus():
    from recbench.prompts import templates_root
    from recbench.scenarios.demo import item_text, read_catalog

    texts = [item_text(r) for r in read_catalog()]
    for path in templates_root().rglob("*.txt"):
        texts.append(path.read_text(encoding="utf-8"))
    texts += ["Answer (Yes/No): Yes", "Answer (Yes/No): No"] * 50
    texts += [f"({i}) " for i in range(1, 30)]
    return texts


def build_tokenizer(folder: Path, vocab_size: int = 3000):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", model_max_length=512)
    fast.save_pretrained(folder)
    return fast


def build_tiny_llama(folder: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(folder, safe_serialization=True)
    return folder


def build_tiny_bert(folder: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                     num_hidden_layers=layers, num_attention_heads=4, max_position_embeddings=512,
                     pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    BertModel(cfg).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> str:
    return str(build_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "tiny-llama"))


@pytest.fixture(scope="session")
def other_llama(tmp_path_factory) -> str:
    """Another tiny Llama with a different width: an adapter of one does not fit the other."""
    return str(build_tiny_llama(tmp_path_factory.mktemp("other-llama") / "other-llama", hidden=48))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    return str(build_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "tiny-bert"))



def build_tiny_st(folder: Path) -> Path:
    """A sentence-transformers folder around a tiny WordPiece BERT ([CLS] ... [SEP]) with what
    encode() does beyond a plain encoder: a default prompt (config_sentence_transformers.json)
    that mean pooling leaves out, max_seq_length 48, a Dense head (32 -> 16) and Normalize."""
    import torch
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
    except ImportError:  # older sentence-transformers
        from sentence_transformers.models import Dense, Normalize, Pooling, Transformer
    from recbench.testing import build_tiny_model

    bert = build_tiny_model(folder.parent / (folder.name + "-bert"), arch="bert")
    torch.manual_seed(0)
    st = SentenceTransformer(modules=[Transformer(str(bert), max_seq_length=48),
                                      Pooling(32, pooling_mode="mean", include_prompt=False), Dense(32, 16),
                                      Normalize()], prompts={"query": "query: "}, default_prompt_name="query",
                             device="cpu")
    st.save(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_st(tmp_path_factory) -> str:
    pytest.importorskip("sentence_transformers")
    return str(build_tiny_st(tmp_path_factory.mktemp("tiny-st") / "tiny-st"))
