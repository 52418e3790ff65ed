#!/usr/bin/env python3
"""mdBook preprocessor (book.toml: [preprocessor.lang]).

Puts a link to the same page in the other language at the top of every
en/NAME.md and zh/NAME.md page, and wraps each Chinese page in
<div lang="zh-CN"> so CJK text renders with Chinese glyph forms (theme/head.hbs
sets the document's lang too). Plain Python 3, so `mdbook serve book` works
without building anything first.
"""

import json
import sys

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


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "supports":
        sys.exit(0 if sys.argv[2:] == ["html"] else 1)
    _context, book = json.load(sys.stdin)
    pages = [c for c in chapters(book["items"]) if c.get("path")]
    paths = {c["path"] for c in pages}
    for chapter in pages:
        path = chapter["path"]
        content = language_link(path, paths) + chapter["content"]
        if path.startswith("zh/"):
            content = f'<div lang="zh-CN">\n\n{content}\n\n</div>\n'
        chapter["content"] = content
    json.dump(book, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
