"""Prompt templates: exact rendering, hashing, truncation per PROTOCOL §4."""

import hashlib

import pytest

from recbench.errors import ConfigError, ModelError
from recbench.prompts import HISTORY_SHOWN, PromptBuilder, Template, list_templates, templates_root


def words(text: str) -> int:
    return len(text.split())


def test_default_template_renders_the_protocol_prompt_exactly():
    tpl = Template.load("generative")
    b = PromptBuilder(tpl, "movie", words, budget=10_000)
    [req] = b.user_prompts(["Heat (1995)", "Alien (1979)"], ["Toy Story (1995)"])
    assert req.text == (
        'You are a recommender. Please respond "YES" or "NO" to represent whether this user is interested in this item.\n'
        "User behavior sequence:\n"
        "(1) Heat (1995)\n"
        "(2) Alien (1979)\n"
        "Candidate item: Toy Story (1995)\n"
        "Answer (Yes/No):"
    )
    # the shared prefix ends at a line break, the suffix starts with the candidate line
    assert req.prefix.endswith("(2) Alien (1979)\n")
    assert req.suffix.startswith("Candidate item: ")


def test_template_id_and_sha256_come_from_the_file():
    tpl = Template.load("generative", "default")
    raw = (templates_root() / "generative" / "default.txt").read_bytes()
    assert tpl.id == "default"
    assert tpl.sha256 == hashlib.sha256(raw).hexdigest()
    assert {"default", "domain"} <= set(list_templates("generative"))


def test_domain_template_uses_the_item_noun():
    b = PromptBuilder(Template.load("generative", "domain"), "news article", words, 10_000)
    [req] = b.user_prompts(["A"], ["B"])
    assert "interested in this news article." in req.text
    assert "Candidate news article: B" in req.text


def test_user_template_file_and_literal_braces(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("Sets {{a}}:\n{history}\nItem {candidate}?\nAnswer (Yes/No):\n")
    tpl = Template.load("generative", str(path))
    assert tpl.id == "mine"
    [req] = PromptBuilder(tpl, "item", words, 1000).user_prompts(["x {y}"], ["c"])
    assert req.text == "Sets {a}:\n(1) x {y}\nItem c?\nAnswer (Yes/No):"


def test_bad_templates_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'default'"):
        Template.load("generative", "defualt")
    bad = tmp_path / "bad.txt"
    bad.write_text("no placeholders here")
    with pytest.raises(ConfigError, match="history"):
        Template.load("generative", str(bad))
    with pytest.raises(ConfigError, match="unknown scheme"):
        Template.load("generativ")


def test_shows_last_twenty_items_oldest_first():
    hist = [f"item{i}" for i in range(30)]
    b = PromptBuilder(Template.load("generative"), "item", words, 10_000)
    [req] = b.user_prompts(hist, ["c"])
    assert "(1) item10\n" in req.text and f"({HISTORY_SHOWN}) item29\n" in req.text
    assert "item9\n" not in req.text
    assert b.stats.users_history_cut == 0  # showing 20 of 30 is the protocol, not truncation


def test_truncation_drops_oldest_items_first_and_counts():
    hist = [f"item{i}" for i in range(20)]
    b = PromptBuilder(Template.load("generative"), "item", words, budget=50)
    reqs = b.user_prompts(hist, ["cand one", "cand two"])
    for r in reqs:
        assert words(r.text) <= 50
        assert "item19" in r.text  # the most recent survives
    assert "(1) item0\n" not in reqs[0].text
    assert b.stats.users_history_cut == 1 and b.stats.history_items_dropped > 0
    assert reqs[0].prefix == reqs[1].prefix  # still one shared prefix


def test_truncation_shortens_long_texts_when_one_item_does_not_fit():
    long = " ".join(["word"] * 200)
    b = PromptBuilder(Template.load("generative"), "item", words, budget=60)
    [req] = b.user_prompts(["old", long], ["cand"])
    assert words(req.text) <= 60
    assert "…" in req.text
    assert b.stats.users_text_shortened == 1


def test_context_too_small_for_one_item_is_a_clear_error():
    b = PromptBuilder(Template.load("generative"), "item", words, budget=10)
    with pytest.raises(ModelError, match="too small"):
        b.user_prompts(["a b c"], ["c"])


def test_discriminative_texts():
    b = PromptBuilder(Template.load("discriminative"), "item", words, 1000)
    assert b.user_text(["A", "B"]) == "User behavior sequence:\n(1) A\n(2) B"
    assert b.item_text("Heat") == "Candidate item: Heat"
