"""Prompt filling is exact for any item text, and truncation costs a few token counts."""

import random

import pytest

from recbench.errors import ModelError
from recbench.prompts import PromptBuilder, Template, shorten


def words(text: str) -> int:
    return len(text.split())


class Counter:
    """A token counter (words) that records how often and on how much text it ran."""

    def __init__(self):
        self.calls = 0
        self.chars = 0

    def __call__(self, text: str) -> int:
        self.calls += 1
        self.chars += len(text)
        return words(text)


# -- exact filling ---------------------------------------------------------------------------


@pytest.mark.parametrize("title", [
    "A\x00B\x01C\x02D\x03E",  # the old sentinels
    "{candidate} {history} {item_noun}",  # placeholders inside data stay text
    "{{x}} }} {{ { }",  # braces of every kind
    "\\1 \\g<0> $1",  # regex replacement syntax
])
def test_item_text_reaches_the_prompt_verbatim(title):
    b = PromptBuilder(Template.load("generative"), "movie", words, budget=10_000)
    [req] = b.user_prompts([title, "Heat"], [title])
    assert f"(1) {title}\n(2) Heat\n" in req.prefix
    assert req.suffix.startswith(f"Candidate item: {title}\n")
    d = PromptBuilder(Template.load("discriminative"), "movie", words, budget=10_000)
    assert d.user_text([title]) == f"User behavior sequence:\n(1) {title}"
    assert d.item_text(title) == f"Candidate item: {title}"


def test_item_noun_with_braces_and_escaped_placeholders(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("Literal {{candidate}} and {{history}} about {item_noun}:\n{history}\nC: {candidate}\n")
    tpl = Template.load("generative", str(path))
    [req] = PromptBuilder(tpl, "{weird} noun", words, 1000).user_prompts(["h"], ["c"])
    assert req.text == "Literal {candidate} and {history} about {weird} noun:\n(1) h\nC: c"


# -- truncation: same results as the step-by-step protocol, far fewer counts -------------------


def reference_prompts(tpl, noun, count, budget, history, candidates):
    """The step-by-step algorithm of PROTOCOL §4 (recbench 0.x): drop the oldest item one at
    a time, then shorten the one left one step at a time; candidates likewise."""
    b = PromptBuilder(tpl, noun, count, budget)
    half, suffixes, longest, shortened_steps = budget // 2, [], 0, 0
    for cand in candidates:
        suffix = b._suffix(cand)
        n = count(suffix)
        while n > half:
            shorter = shorten(cand)
            if shorter == cand:
                break
            cand = shorter
            suffix = b._suffix(cand)
            n = count(suffix)
            shortened_steps += 1
        suffixes.append(suffix)
        longest = max(longest, n)
    limit = budget - longest - b.margin
    hist = list(history[-b.shown:])
    dropped, shortened = 0, False
    head = b._head(hist)
    while count(head) > limit:
        if len(hist) > 1:
            hist.pop(0)
            dropped += 1
        else:
            cut_text = shorten(hist[0]) if hist else None
            if cut_text is None or cut_text == hist[0]:
                raise ModelError("too small")
            hist[0] = cut_text
            shortened = True
        head = b._head(hist)
    return [head + s for s in suffixes], (dropped, shortened, shortened_steps)


def test_truncation_matches_the_step_by_step_algorithm():
    rng = random.Random(7)
    tpl = Template.load("generative")
    vocab = ["alpha", "beta", "gamma", "delta", "x", "longword" * 3]
    checked = 0
    for _ in range(300):
        history = [" ".join(rng.choice(vocab) for _ in range(rng.choice([1, 2, 5, 20, 120])))
                   for _ in range(rng.randint(0, 25))]
        cands = [" ".join(rng.choice(vocab) for _ in range(rng.choice([1, 3, 40, 200]))) for _ in range(rng.randint(1, 3))]
        budget = rng.choice([40, 60, 90, 150, 400])
        try:
            want, (dropped, shortened, steps) = reference_prompts(tpl, "item", words, budget, history, cands)
        except ModelError:
            with pytest.raises(ModelError):
                PromptBuilder(tpl, "item", words, budget).user_prompts(history, cands)
            continue
        b = PromptBuilder(tpl, "item", words, budget)
        got = b.user_prompts(history, cands)
        assert [r.text for r in got] == want
        assert b.stats.history_items_dropped == dropped
        assert b.stats.users_text_shortened == int(shortened)
        assert b.stats.candidates_shortened == steps
        checked += 1
    assert checked > 150


@pytest.mark.parametrize("where", ["newest", "oldest", "candidate"])
def test_a_20000_character_title_costs_a_bounded_number_of_counts(where):
    title = " ".join(["w"] * 10_000)  # 20,000 characters, 10,000 "tokens"
    history = [f"item {i}" for i in range(19)]
    history = history + [title] if where == "newest" else [title] + history if where == "oldest" else history + ["x"]
    cands = [title if where == "candidate" else "cand"]
    count = Counter()
    b = PromptBuilder(Template.load("generative"), "item", count, budget=200)
    [req] = b.user_prompts(history, cands)
    assert words(req.text) <= 200
    # the step-by-step way needed ~40 counts here, most of them over the whole 20,000 characters
    assert count.calls <= 25
    assert count.chars <= 3 * len(title)
    ref = Counter()
    want, _ = reference_prompts(Template.load("generative"), "item", ref, 200, history, cands)
    assert [req.text] == want
    if where != "oldest":  # (dropping the oldest item was already one step)
        assert ref.chars > 2 * count.chars  # what the old way cost


def test_discriminative_long_texts_are_shortened_with_few_counts():
    title = "word " * 5000
    count = Counter()
    b = PromptBuilder(Template.load("discriminative"), "item", count, budget=100)
    assert words(b.user_text(["a", title])) <= 100
    assert words(b.item_text(title)) <= 50
    assert count.calls <= 25 and count.chars <= 4 * len(title)
