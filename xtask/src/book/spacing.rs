//! Chinese text in the built HTML has no stray spaces: a space (or a line
//! break, which a browser renders as one) between two CJK characters is a
//! gap in the middle of a sentence. preprocessor/lang.py joins the source
//! lines that would cause one; this finds any that is left, outside code.

use scraper::{ElementRef, Html, Node, Selector};

/// Code and scripts: their text is not prose.
const SKIPPED: [&str; 5] = ["pre", "code", "script", "style", "svg"];

/// Elements that end a line of text: a space next to their tags is not rendered.
const BLOCKS: [&str; 30] = [
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "ul",
    "ol",
    "div",
    "table",
    "thead",
    "tbody",
    "tr",
    "td",
    "th",
    "blockquote",
    "br",
    "hr",
    "dl",
    "dt",
    "dd",
    "aside",
    "section",
    "figure",
    "figcaption",
    "main",
    "details",
    "summary",
];

pub fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{2e80}'..='\u{2fdf}'
        | '\u{3000}'..='\u{303f}'
        | '\u{3040}'..='\u{30ff}'
        | '\u{3100}'..='\u{31ff}'
        | '\u{3400}'..='\u{4dbf}'
        | '\u{4e00}'..='\u{9fff}'
        | '\u{ac00}'..='\u{d7af}'
        | '\u{f900}'..='\u{faff}'
        | '\u{ff00}'..='\u{ffef}')
}

/// Each CJK-space-CJK sequence in the page's <main>, with a few characters
/// around it, as the reader would see it (the space shown as `␣`).
pub fn stray_spaces(html: &str) -> Vec<String> {
    let main = match (html.find("<main>"), html.rfind("</main>")) {
        (Some(start), Some(end)) if start < end => &html[start..end],
        _ => html,
    };
    let text: Vec<char> = visible_text(main).chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if !is_cjk(text[i]) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < text.len() && text[j].is_whitespace() && text[j] != '\u{3000}' {
            j += 1;
        }
        if j > i + 1 && j < text.len() && is_cjk(text[j]) {
            found.push(
                text[i.saturating_sub(8)..(j + 8).min(text.len())]
                    .iter()
                    .filter(|c| **c != BLOCK_END)
                    .map(|c| if c.is_whitespace() { '␣' } else { *c })
                    .collect(),
            );
        }
        i = j.max(i + 1);
    }
    found
}

/// Where a block ends, in the text: a character neither CJK nor a space.
const BLOCK_END: char = '\u{1}';

/// The text of `html`'s <main> (or of the whole page): code as `·`, the
/// edges of block elements as BLOCK_END.
fn visible_text(html: &str) -> String {
    let document = Html::parse_document(html);
    let main = Selector::parse("main").expect("a valid selector");
    let root = document
        .select(&main)
        .next()
        .unwrap_or_else(|| document.root_element());
    let mut out = String::with_capacity(html.len() / 2);
    collect(root, &mut out);
    out
}

fn collect(element: ElementRef<'_>, out: &mut String) {
    for child in element.children() {
        match child.value() {
            Node::Text(text) => out.push_str(text),
            Node::Element(_) => {
                let Some(child) = ElementRef::wrap(child) else {
                    continue;
                };
                let name = child.value().name();
                if SKIPPED.contains(&name) {
                    out.push('·');
                } else if BLOCKS.contains(&name) {
                    out.push(BLOCK_END);
                    collect(child, out);
                    out.push(BLOCK_END);
                } else {
                    collect(child, out);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_line_break_between_chinese_characters() {
        let html = "<main><p>内核\n函数</p></main>";
        assert_eq!(stray_spaces(html), ["内核␣函数"]);
        assert_eq!(stray_spaces("<p>你遇到的错\n误。</p>"), ["你遇到的错␣误。"]);
        assert_eq!(
            stray_spaces("<p>内核 <strong>函数</strong></p>"),
            ["内核␣函数"]
        );
    }

    #[test]
    fn ignores_code_blocks_and_latin_words() {
        let html = "<p>内核 <code>unlink</code> 函数</p><pre><code>中 文</code></pre>\
                    <p>kprobe 挂在 do_unlinkat 上</p><script>'中 文'</script>";
        assert!(stray_spaces(html).is_empty(), "{:?}", stray_spaces(html));
    }

    #[test]
    fn a_space_at_a_block_boundary_renders_as_nothing() {
        let html = "<h2>标题</h2>\n<p>正文</p>\n<ul>\n<li>一</li>\n<li>二</li></ul>";
        assert!(stray_spaces(html).is_empty(), "{:?}", stray_spaces(html));
    }
}
