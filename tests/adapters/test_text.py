"""The splitting and reconciling every platform shares."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.text import FENCE, reconcile, split_message


def test_short_text_is_one_part() -> None:
    assert split_message("hello", 2000) == ["hello"]
    assert split_message("x" * 2000, 2000) == ["x" * 2000]
    assert split_message("  \n ", 2000) == []


def test_splits_on_lines_then_words_then_anywhere() -> None:
    lines = "".join(f"line {i:03d}\n" for i in range(30))  # 9 chars each
    parts = split_message(lines, limit=50)
    assert all(len(p) <= 50 for p in parts)
    assert all(p.endswith("\n") for p in parts)
    assert "".join(parts) == lines

    words = " ".join(f"w{i:02d}" for i in range(40))
    parts = split_message(words, limit=50)
    assert all(len(p) <= 50 for p in parts)
    assert all(p.endswith(" ") for p in parts[:-1])
    assert "".join(parts) == words

    blob = "x" * 130
    assert split_message(blob, limit=50) == ["x" * 50, "x" * 50, "x" * 30]


def test_a_cut_inside_a_code_fence_closes_and_reopens_it() -> None:
    code = "".join(f"print({i})\n" for i in range(20))
    text = f"Intro\n```python\n{code}```\nDone."
    parts = split_message(text, limit=80)
    assert len(parts) > 2
    for part in parts:
        assert len(part) <= 80
        fences = [line for line in part.splitlines() if FENCE.match(line)]
        assert len(fences) % 2 == 0, part
    assert parts[1].startswith("```python\n")
    assert parts[0].endswith("```")
    assert _content_lines(parts) == _content_lines([text])


def test_tilde_fences_and_longer_closers() -> None:
    text = "~~~\n" + "a line here\n" * 20 + "~~~~\nafter\n"
    parts = split_message(text, limit=60)
    assert all(p.count("~~~") % 2 == 0 or p.rstrip().endswith("~~~") for p in parts)
    assert parts[-1].endswith("after\n")
    assert _content_lines(parts) == _content_lines([text])


def _content_lines(parts: list[str]) -> list[str]:
    return [line for part in parts for line in part.splitlines() if not FENCE.match(line)]


_line = st.one_of(
    st.text(alphabet=st.sampled_from("abc xyz.,"), max_size=120),
    st.sampled_from(["```", "```python", "~~~", "```js"]),
)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(_line, max_size=60), limit=st.integers(min_value=40, max_value=400))
def test_split_properties(lines: list[str], limit: int) -> None:
    text = "\n".join(lines)
    parts = split_message(text, limit)
    assert all(0 < len(p) <= limit and p.strip() for p in parts)
    if not any(FENCE.match(line) for line in lines):
        assert "".join(parts).strip() == text.strip()
    # Nothing but fence lines is added and no visible text is lost.
    assert [w for p in parts for w in _words(p)] == _words(text)


def _words(text: str) -> list[str]:
    return [w for line in text.splitlines() if not FENCE.match(line) for w in line.split()]


def test_short_text_is_one_message_and_blank_is_none() -> None:
    assert split_message("hello", 100) == ["hello"]
    assert split_message("", 100) == []


def test_split_prefers_paragraphs() -> None:
    text = "a" * 50 + "\n\n" + "b" * 30 + "\n" + "c" * 30
    assert split_message(text, 80) == ["a" * 50 + "\n\n", "b" * 30 + "\n" + "c" * 30]
    # A paragraph that fits in the next message moves there whole.
    text = "a" * 40 + "\n\n" + "b" * 30 + "\n" + "c" * 30
    assert split_message(text, 80) == ["a" * 40 + "\n\n", "b" * 30 + "\n" + "c" * 30]


def test_split_reopens_code_blocks() -> None:
    code = "\n".join(f"print({i})" for i in range(30))
    chunks = split_message(f"Intro\n```python\n{code}\n```\nOutro", 120)
    assert len(chunks) > 2
    for chunk in chunks:
        assert len(chunk) <= 120
        assert chunk.count("```") % 2 == 0
    assert chunks[1].startswith("```python\n")
    body = "\n".join(chunks)
    assert all(f"print({i})" in body for i in range(30))


def test_long_lines_are_broken_at_spaces() -> None:
    chunks = split_message("word " * 100, 60)
    assert all(len(c) <= 60 for c in chunks)
    assert " ".join(chunks).split() == ["word"] * 100


@given(st.text(alphabet=st.sampled_from("ab `\n#*"), max_size=600), st.integers(40, 200))
def test_split_never_exceeds_the_limit_or_breaks_fences(text: str, limit: int) -> None:
    for chunk in split_message(text, limit):
        assert len(chunk) <= limit
        assert chunk.count("```") % 2 == 0 or text.count("```") % 2 == 1


def test_reconcile_appends_what_grew_and_replaces_what_changed() -> None:
    assert reconcile("Hello", "Hello, world") == ", world"
    assert reconcile("Hello", "Hello") == ""
    assert reconcile("", "anything") == "anything"
    assert reconcile("Hello wor", "Sorry, that failed.") is None
