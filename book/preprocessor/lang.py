#!/usr/bin/env python3
"""mdBook preprocessor (book.toml: [preprocessor.lang]).

Puts a link to the same page in the other language at the top of every
en/NAME.md and zh/NAME.md page, wraps each Chinese page in <div lang="zh-CN">
so CJK text renders with Chinese glyph forms (theme/head.hbs sets the
document's lang too), and joins a line ending in a CJK character to the next
line when that starts with one: a browser renders the line break as a space,
and Chinese has none between words. Plain Python 3, so `mdbook serve book`
works without building anything first.
"""

import json
import re
import sys

# Han, kana, hangul, CJK punctuation and full-width forms: the characters
# between which a line break must not become a space.
CJK = "\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
# Inline markup that may close after the last character or open before the
# first: emphasis, strikethrough, a link's brackets and its target.
CLOSERS = r"(?:\*{1,2}|_{1,2}|~~|\]\([^()\s]*\))*"
OPENERS = r"(?:\*{1,2}|_{1,2}|~~|\[)*"
ENDS_IN_CJK = re.compile(f"[{CJK}]{CLOSERS}$")
# The next line's block-quote markers and indentation, then a CJK character.
CONTINUES_IN_CJK = re.compile(f"^([ \t]*(?:>[ \t]*)*)({OPENERS}[{CJK}].*)$")
FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")

# language directory -> (other directory, its BCP 47 tag, link text)
OTHER = {
    "en": ("zh", "zh-CN", "中文"),
    "zh": ("en", "en", "English"),
}


def chapters(items):
    for item in items:
        if isinstance(item, dict) and "Chapter" in item:
            chapter = item["Chapter"]
            yield chapter
            yield from chapters(chapter["sub_items"])


def language_link(path, paths):
    """The other-language link for a page path such as en/setup.md, or ''."""
    lang, _, name = path.partition("/")
    if lang not in OTHER or "/" in name:
        return ""
    other, tag, text = OTHER[lang]
    if f"{other}/{name}" not in paths:
        return ""
    href = f"../{other}/{name[: -len('.md')]}.html"
    return (
        f'<p class="lang-switch"><a class="lang-link" href="{href}" '
        f'hreflang="{tag}" lang="{tag}">{text}</a></p>\n\n'
    )


def join_cjk_lines(markdown):
    """Join lines split between two CJK characters, outside fenced code.

    A line continues the previous one only inside the same paragraph: the
    same number of `>` markers, and it starts with a CJK character, which no
    Markdown block marker is.
    """
    out = []
    fence = None
    for line in markdown.split("\n"):
        opening = FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = None
            out.append(line)
            continue
        if opening:
            fence = opening.group(1)
            out.append(line)
            continue
        continued = CONTINUES_IN_CJK.match(line)
        if (
            continued
            and out
            and ENDS_IN_CJK.search(out[-1])
            and continued.group(1).count(">") == quote_depth(out[-1])
        ):
            out[-1] += continued.group(2)
            continue
        out.append(line)
    return "\n".join(out)


def quote_depth(line):
    return re.match(r"^[ \t]*((?:>[ \t]*)*)", line).group(1).count(">")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "supports":
        sys.exit(0 if sys.argv[2:] == ["html"] else 1)
    _context, book = json.load(sys.stdin)
    pages = [c for c in chapters(book["items"]) if c.get("path")]
    paths = {c["path"] for c in pages}
    for chapter in pages:
        path = chapter["path"]
        content = language_link(path, paths) + join_cjk_lines(chapter["content"])
        if path.startswith("zh/"):
            content = f'<div lang="zh-CN">\n\n{content}\n\n</div>\n'
        chapter["content"] = content
    json.dump(book, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
