"""runner.io.errors.one_line: the one way an exception's text is put on one line of a message."""

from runner.io.errors import one_line


def test_line_breaks_and_runs_of_spaces_become_single_spaces():
    assert one_line(ValueError("bad value\n  at line 3\tcolumn 2")) == "bad value at line 3 column 2"


def test_a_long_text_is_cut_at_a_word_within_the_width():
    text = "word " * 100
    cut = one_line(text, 40)
    assert len(text) > 40
    assert len(cut) <= 40 and cut.endswith("...")
    assert cut == "word " * 6 + "word..."


def test_a_text_without_spaces_is_cut_mid_word():
    cut = one_line("x" * 100, 20)
    assert cut == "x" * 17 + "..."


def test_no_width_keeps_the_whole_text_and_none_is_empty():
    assert one_line("a " * 500, None) == ("a " * 500).strip()
    assert one_line(None) == ""
    assert one_line("short", 300) == "short"
