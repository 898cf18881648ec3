from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bridge.slack.render import (
    MAX_TEXT,
    escape,
    fallback_text,
    reply_texts,
    split,
    split_mrkdwn,
    to_mrkdwn,
)
from tests.unit.mrkdwn_checks import ADDRESS, FENCE, LINK, balanced, code_closed, loses_nothing, unsafe

ZW = "\u200b"


# --- escape (plain text: bridge notices) ---------------------------------------------------------------


def test_escape_makes_pings_and_control_sequences_impossible() -> None:
    out = escape("a <!channel> & <@U123> @here @channel @everyone")
    assert "<" not in out and ">" not in out
    assert "&amp;" in out and "&lt;!channel&gt;" in out
    assert "@here" not in out and "@channel" not in out and "@everyone" not in out


def test_escape_does_ampersand_first_and_nothing_else() -> None:
    assert escape("&lt; \"quotes\" 'apostrophes'") == "&amp;lt; \"quotes\" 'apostrophes'"
    assert escape("@HERE @Channel") == f"@{ZW}HERE @{ZW}Channel"


# --- to_mrkdwn: each construct -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("**bold** and __bold__", "*bold* and *bold*"),
        ("*italic* and _italic_", "_italic_ and _italic_"),
        ("***both***", "_*both*_"),
        ("~~gone~~", "~gone~"),
        ("use `x = 1` here", "use `x = 1` here"),
        ("# Title\n\ntext", "*Title*\n\ntext"),
        ("## A **bold** heading", "*A bold heading*"),
        ("Setext\n===", "*Setext*"),
        ("line one  \nline two", "line one\nline two"),
        ("line one\\\nline two", "line one\nline two"),
        ("a\n\n---\n\nb", "a\n\n———\n\nb"),
        ("[docs](https://example.com/a)", "<https://example.com/a|docs>"),
        ("<https://example.com/a>", "<https://example.com/a>"),
        ("[https://example.com](https://example.com)", "<https://example.com>"),
        ("<team@example.com>", "<mailto:team@example.com|team@example.com>"),
        ("[write](mailto:team@example.com)", "<mailto:team@example.com|write>"),
        ("![a chart](https://img.example.com/c.png)", "<https://img.example.com/c.png|a chart>"),
        ("![](https://img.example.com/c.png)", "<https://img.example.com/c.png>"),
        ("[**bold** label](https://e.com)", "<https://e.com|bold label>"),
        ("> quoted\n> twice", "> quoted\n> twice"),
        ("> one\n>\n> two", "> one\n\n> two"),
        ("<div>raw</div>", "&lt;div&gt;raw&lt;/div&gt;"),
        ("a <b>b</b> c", "a &lt;b&gt;b&lt;/b&gt; c"),
    ],
)
def test_construct(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn


def test_fenced_code_drops_the_language_and_keeps_content_but_escaped() -> None:
    src = "```python\nif a < b && c > d:\n    print('&amp;')\n```"
    assert to_mrkdwn(src) == "```\nif a &lt; b &amp;&amp; c &gt; d:\n    print('&amp;amp;')\n```"


def test_indented_code_becomes_a_fence() -> None:
    assert to_mrkdwn("text\n\n    x <- 1\n      y\n") == "text\n\n```\nx &lt;- 1\n  y\n```"


def test_backtick_runs_inside_code_cannot_close_the_block() -> None:
    out = to_mrkdwn("````\n```\ninner\n```\n````")
    assert out.count(FENCE) == 2 and out.startswith("```\n") and out.endswith("\n```")
    assert f"`{ZW}`{ZW}`" in out


def test_bullets_indent_two_spaces_per_level() -> None:
    src = "- a\n- b\n  - c\n    - d\n- e"
    assert to_mrkdwn(src) == "• a\n• b\n  • c\n    • d\n• e"


def test_ordered_lists_keep_their_numbers() -> None:
    assert to_mrkdwn("3. c\n4. d\n   1. d1") == "3. c\n4. d\n  1. d1"
    assert to_mrkdwn("1) one\n2) two") == "1) one\n2) two"


def test_loose_list_items_keep_their_paragraphs_apart() -> None:
    assert to_mrkdwn("- a\n\n- b\n\n  more b") == "• a\n\n• b\n\n  more b"


def test_code_in_a_list_item_stays_at_the_line_start() -> None:
    assert to_mrkdwn("- run:\n\n  ```\n  make <all>\n  ```") == "• run:\n\n```\nmake &lt;all&gt;\n```"


def test_table_becomes_an_aligned_monospace_block() -> None:
    src = "| Name | Score | Note |\n|:--|--:|:-:|\n| alice & bob | 10 | ok |\n| 名前 | 2 | `x` |"
    assert to_mrkdwn(src) == (
        "```\n"
        "Name        | Score | Note\n"
        "------------+-------+-----\n"
        "alice &amp; bob |    10 |  ok\n"
        "名前        |     2 |  x\n"
        "```"
    )


def test_table_cells_show_links_as_label_and_address() -> None:
    out = to_mrkdwn("| a |\n|---|\n| [x](https://e.com/?q=1&r=2) |")
    assert "x (https://e.com/?q=1&amp;r=2)" in out and "<" not in out


# --- to_mrkdwn: escaping and safety ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "markdown",
    [
        "<!channel> <!here> <!everyone>",
        "<!subteam^S123> <!subteam^S0123ABCD|@oncall>",
        "<@U123> <@UFAKE0000|ghost> <#C0123ABCD|general>",
        "&lt;!channel&gt; &#60;!here&#62; &#x3C;@U1&#x3E;",
        "# <!channel>",
        "**<!here>** _<@U1>_ ~~<!everyone>~~",
        "`<!channel>`",
        "```\n<!channel> <@U123>\n```",
        "| <!here> |\n|---|\n| <@U1> |",
        "[<!channel>](https://e.com) ![<@U1>](https://e.com/i.png)",
        "[x](https://e.com/<!channel>) [y](<https://e.com/a b>)",
        "- <!here>\n  > <@U1>",
    ],
)
def test_no_control_sequence_can_be_formed(markdown: str) -> None:
    out = to_mrkdwn(markdown)
    assert unsafe(out) == []
    assert not re.search(r"<[!@#]", out)


def test_broadcast_words_get_a_zero_width_space_everywhere_but_urls() -> None:
    out = to_mrkdwn("@channel **@here** `@everyone` [@Here](https://e.com/?who=@channel)")
    assert out == f"@{ZW}channel *@{ZW}here* `@{ZW}everyone` <https://e.com/?who=@channel|@{ZW}Here>"


def test_plain_handles_are_left_alone() -> None:
    assert to_mrkdwn("ask @jane.doe or @Bob") == "ask @jane.doe or @Bob"


def test_link_url_is_escaped_and_the_label_cannot_end_it() -> None:
    out = to_mrkdwn("[a|b>c](https://e.com/?x=1&y=2)")
    assert out == "<https://e.com/?x=1&amp;y=2|a∣b&gt;c>"
    assert to_mrkdwn("[a](https://e.com/x|<!here>)") == "<https://e.com/x%7C%3C!here%3E|a>"


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("[app](slack://open?team=T1)", "app (slack://open?team=T1)"),
        ("[rel](/path/to)", "rel (/path/to)"),
        ("[ftp](ftp://files.example.com)", "ftp (ftp://files.example.com)"),
        ("[run](javascript:alert(1))", "[run](javascript:alert(1))"),
        ("<ftp://files.example.com>", "&lt;ftp://files.example.com&gt;"),
        ("[odd](mailto:<@U1>)", "odd (mailto:%3C@U1%3E)"),
        ("![x](data:image/png;base64,AAAA)", "x"),
    ],
)
def test_only_http_and_mailto_become_links(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn


def test_emphasis_is_not_nested_inside_itself_and_spans_no_line_break() -> None:
    assert to_mrkdwn("**a **b** c**") == "*a b c*"
    assert to_mrkdwn("**one  \ntwo**") == "*one*\n*two*"


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("2*3*4 = 24", "2*3*4 = 24"),
        ("ver*y* good", "ver*y* good"),
        ("word**bold**word", "word**bold**word"),
        ("~~gone~~text", "~~gone~~text"),
        ("| f |\n|---|\n| a*b*c |", "```\nf\n-----\na*b*c\n```"),
        ("[x*y*z](https://e.com)", "<https://e.com|x*y*z>"),
        ("a *b* c, (**d**), *e*.", "a _b_ c, (*d*), _e_."),
        ("这是**重要**的", "这是*重要*的"),
    ],
)
def test_emphasis_inside_a_word_keeps_its_markers(markdown: str, mrkdwn: str) -> None:
    """mrkdwn cannot emphasise inside a word: `2*3*4` became `2_3_4` (or `234` in a table cell), another text."""
    assert to_mrkdwn(markdown) == mrkdwn


def test_an_image_inside_a_link_labels_it_with_its_alt_text() -> None:
    src = "[![build](https://ci.example.com/b.svg)](https://ci.example.com/job?x=1&y=2)"
    assert to_mrkdwn(src) == "<https://ci.example.com/job?x=1&amp;y=2|build>"


def test_nesting_too_deep_to_render_is_shown_as_escaped_text_not_dropped() -> None:
    out = to_mrkdwn("> " * 3000 + "<!here> end")
    assert out.endswith("&lt;!here&gt; end") and unsafe(out) == []
    assert to_mrkdwn("> " * 30 + "x") == "> " * 30 + "x"
    assert fallback_text("- " * 3000 + "end", 10_000).endswith("end")


def test_empty_and_blank_input() -> None:
    assert to_mrkdwn("") == "" and to_mrkdwn("  \n\n ") == ""


# --- split_mrkdwn ---------------------------------------------------------------------------------------


def test_split_keeps_every_character_and_respects_the_limit() -> None:
    paragraphs = [("word " * 300).strip() for _ in range(12)]
    text = "\n\n".join(paragraphs)
    parts = split(text, 2000)
    assert all(len(p) <= 2000 for p in parts)
    assert "".join(parts).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")


def test_split_of_one_unbroken_run_cuts_hard_without_loss() -> None:
    parts = split("x" * 9000, 4000)
    assert [len(p) for p in parts] == [4000, 4000, 1000]


def test_split_prefers_paragraphs_then_lines_then_words() -> None:
    assert split_mrkdwn("aaaa bbbb\ncccc dddd\n\neeee", 22) == ["aaaa bbbb\ncccc dddd", "eeee"]
    assert split_mrkdwn("aaaa bbbb\ncccc dddd eeee", 20) == ["aaaa bbbb\ncccc dddd", "eeee"]
    assert split_mrkdwn("aaaa bbbb cccc dddd eeee", 20) == ["aaaa bbbb cccc dddd", "eeee"]


def test_split_never_cuts_an_entity() -> None:
    parts = split_mrkdwn("x" * 18 + "&amp;y", 20)
    assert parts == ["x" * 18, "&amp;y"]


def test_split_never_cuts_a_link_it_can_keep_whole() -> None:
    parts = split_mrkdwn("see <https://e.com/a|a long label here> ok", 38)
    assert parts == ["see", "<https://e.com/a|a long label here> ok"]


def test_split_closes_a_code_block_and_reopens_it_in_the_next_part() -> None:
    code = "\n".join(f"line {i} &lt;x&gt;" for i in range(40))
    text = f"intro\n\n```\n{code}\n```\n\nafter"
    parts = split_mrkdwn(text, 200)
    assert len(parts) > 2 and all(len(p) <= 200 and balanced(p) for p in parts)
    assert all(p.startswith("```\n") for p in parts[1:-1])
    assert loses_nothing(parts, text)


def test_split_closes_inline_code_and_reopens_it_so_an_address_in_it_stays_code() -> None:
    text = to_mrkdwn("`" + "a " * 30 + "ops@channel.com y`")
    parts = split_mrkdwn(text, 20)
    assert len(parts) > 2 and all(len(p) <= 20 and code_closed(p) for p in parts)
    assert all(p.startswith("`") and p.endswith("`") for p in parts)
    assert all(unsafe(p) == [] for p in parts), parts
    assert loses_nothing(parts, text)


def test_split_starts_inline_code_in_the_next_part_rather_than_at_the_end_of_this_one() -> None:
    assert split_mrkdwn("word word word `cccc ccccccccc` tail", 20) == ["word word word", "`cccc ccccccccc`", "tail"]
    assert split_mrkdwn("aaaa bbbb cccc ddd `e` f", 20) == ["aaaa bbbb cccc ddd", "`e` f"]


def test_split_ending_where_inline_code_closes_takes_its_backtick_rather_than_adding_one() -> None:
    assert split_mrkdwn("`aaaa bbbb cccc ddd` eeee", 20) == ["`aaaa bbbb cccc ddd`", "eeee"]
    assert split_mrkdwn("`aaaa bbbb cccc dddd` e", 20) == ["`aaaa bbbb cccc`", "`dddd` e"]


def test_split_does_not_leave_an_empty_block_at_either_end_of_a_part() -> None:
    text = "some text here\n\n```\n" + "y" * 100 + "\n```"
    parts = split_mrkdwn(text, 40)
    assert parts[0] == "some text here"
    assert all(p.startswith("```\ny") and p.endswith("y\n```") for p in parts[1:])
    # The block's own closing fence is taken into the part rather than closing twice.
    assert split_mrkdwn("```\n" + "a" * 20 + "\n```\n\ntail", 30) == ["```\n" + "a" * 20 + "\n```", "tail"]


def test_split_rejects_a_limit_too_small_for_a_fenced_part() -> None:
    with pytest.raises(ValueError):
        split_mrkdwn("text", 8)


# --- reply_texts and fallback_text -----------------------------------------------------------------------


def test_reply_without_custom_usernames_leads_with_the_bold_name_on_every_part() -> None:
    parts = reply_texts("bob", "para\n\n" * 2000, named_by_username=False)
    assert len(parts) > 1 and all(p.startswith("*bob*: ") and len(p) <= MAX_TEXT for p in parts)
    assert reply_texts("bob", "hi", named_by_username=True) == ["hi"]
    assert reply_texts("bob", "   ", named_by_username=True) == []


def test_reply_is_converted_from_markdown() -> None:
    assert reply_texts("bob", "**Done** <!here>", named_by_username=True) == ["*Done* &lt;!here&gt;"]
    assert reply_texts("b<o>b", "x", named_by_username=False) == ["*b&lt;o&gt;b*: x"]


def test_reply_puts_a_leading_quote_or_code_block_on_its_own_line() -> None:
    assert reply_texts("bob", "> q", named_by_username=False) == ["*bob*: \n> q"]
    assert reply_texts("bob", "```\nx\n```", named_by_username=False) == ["*bob*: \n```\nx\n```"]


def test_fallback_text_is_short_plain_and_escaped() -> None:
    src = "# Deploy **42**\n\n- [runbook](https://e.com/?a=1&b=2) for <!channel> & @here\n\n```\ncode\n```"
    assert fallback_text(src) == f"Deploy 42 runbook for &lt;!channel&gt; &amp; @{ZW}here code"
    short = fallback_text("word " * 100, 30)
    assert len(short) <= 30 and short.endswith("…")


def test_fallback_text_never_cuts_an_entity() -> None:
    out = fallback_text("a" * 7 + "&" * 20, 13)
    assert out == "aaaaaaa&amp;…"


# --- properties ---------------------------------------------------------------------------------------

FRAGMENTS = [
    *"** __ * _ ~~ ` ``` ```` | --- [ ] ( ) ![ < > & &amp; &lt; &#60; &#x3E; ! \\ word 名".split(),
    *"@channel @here @EVERYONE <!channel> <!here> <@U123> <#C1> <!subteam^S1|@x> <!date^1^{date}|d>".split(),
    *"https://e.com/?a=1&b=2 http://x.y mailto:a@b.co javascript:x <https://x.y/?q=<a>> <a@b.co>".split(),
    *"](https://e.com/a|b>) ](mailto:a@b.co) <div> <!--".split(),
    *["\n", "\n\n", "# ", "## ", "- ", "  - ", "1. ", "> ", "    ", "  \n", " ", "| a | b |\n|---|--:|\n| c | d |\n"],
]
markdown_text = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(alphabet="ab <>&*_~`[]()!|#@\n-", max_size=6)), max_size=40
).map("".join)


@settings(max_examples=400, deadline=None)
@given(markdown_text)
@example("` `` `")  # inline code holding backticks: with the wrapping ones, a run of three opened a code block
@example("x ``` ``a ``` y")
@example("a `` `foo` `` b")
# A literal backtick in text, or inside inline code, paired with the code's own (Slack pairs them from the left):
# the rest of the code, a URL holding @channel, was text.
@example("```<`https://e.com/?a=1&b=2@channel`")
@example("```<`https://e.com/?a=1&b=2@channel```")
def test_property_no_control_sequence_ping_or_bare_ampersand(markdown: str) -> None:
    out = to_mrkdwn(markdown)
    assert unsafe(out) == [], (markdown, out)
    assert balanced(out)


@settings(max_examples=300, deadline=None)
@given(markdown_text, st.integers(min_value=16, max_value=120))
@example("`" + "a " * 30 + "ops@channel.com y`", 20)  # inline code cut: the address in it must stay code
@example("><`****\n<", 16)  # a cut at a line's end is outside inline code, whatever that line's backticks
@example("<`https://e.com/?a=1&b=2@channel`", 16)  # an address in code longer than a part is cut in pieces
def test_property_split_respects_the_limit_keeps_fences_and_loses_nothing(markdown: str, limit: int) -> None:
    text = to_mrkdwn(markdown)
    parts = split_mrkdwn(text, limit)
    assert all(0 < len(p) <= limit for p in parts)
    assert all(balanced(p) for p in parts), parts
    # A link, or an address inside code, longer than a part cannot stay whole: its pieces are checked no more.
    if all(len(m.group(0)) <= limit - 4 for m in (*LINK.finditer(text), *ADDRESS.finditer(text))):
        assert all(unsafe(p) == [] for p in parts), parts
    assert all("&" not in re.sub(r"&(?:amp|lt|gt);", "", p) for p in parts)
    assert loses_nothing(parts, text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab &;`\n<>|", max_size=300), st.integers(min_value=16, max_value=80))
def test_property_split_of_any_text_respects_the_limit_and_loses_nothing(text: str, limit: int) -> None:
    parts = split_mrkdwn(text, limit)
    assert all(0 < len(p) <= limit for p in parts)
    assert loses_nothing(parts, text)


@settings(max_examples=200, deadline=None)
@given(markdown_text, st.integers(min_value=10, max_value=200))
def test_property_fallback_text_is_short_and_safe(markdown: str, limit: int) -> None:
    out = fallback_text(markdown, limit)
    assert len(out) <= limit
    assert "<" not in out and ">" not in out and unsafe(out) == []


def test_literal_markers_mrkdwn_would_pair_are_shown_as_look_alikes() -> None:
    """`\\*` is Markdown for a literal asterisk; a bare pair of them would be mrkdwn bold (mrkdwn has no escape)."""
    shown = to_mrkdwn(r"Match \*.py\* files, \_private\_ names and \~old\~ ones")
    assert not re.search(r"(?<![\w*])\*[^*\s][^*]*\*(?![\w*])", shown), shown
    assert not re.search(r"(?<![\w_])_[^_\s][^_]*_(?![\w_])", shown), shown
    assert not re.search(r"(?<![\w~])~[^~\s][^~]*~(?![\w~])", shown), shown
    assert shown == "Match ∗.py∗ files, ＿private＿ names and ∼old∼ ones"
    # Markers that cannot pair, inside words, or inside an address are left as they are.
    assert to_mrkdwn(r"2 \* 3 \* 4, snake_case_name, https://x.com/_a_/b") == (
        "2 * 3 * 4, snake_case_name, https://x.com/_a_/b"
    )


@pytest.mark.parametrize(
    "reply", ["Paging @everyone@corp.com now", "hey @here-oncall@pagerduty.com", "cc @channel.ops@corp.com"]
)
def test_a_broadcast_word_glued_to_an_email_is_defused(reply: str) -> None:
    """`escape` defuses `@everyone` in these words; the reply renderer keeps the email whole (its address span
    starts after the `@`) and the broadcast word before it stayed whole as well (found by a review, revAY)."""
    out = to_mrkdwn(reply)
    assert unsafe(out) == [], (reply, out)
