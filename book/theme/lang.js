'use strict';

// The two languages are two books in one: keep the reader in the one they chose.
(function keepTheLanguage() {
    const language = href => {
        const path = new URL(href, document.baseURI).pathname;
        return path.includes('/zh/') ? 'zh' : path.includes('/en/') ? 'en' : '';
    };
    const here = language(location.href);

    // The sidebar lists both languages on every page: give its Chinese entries
    // lang="zh-CN" so they render with Chinese glyph forms on English pages too.
    const han = /[\u3400-\u4dbf\u4e00-\u9fff]/;
    for (const entry of document.querySelectorAll('#mdbook-sidebar a, #mdbook-sidebar .part-title')) {
        const href = entry.getAttribute('href') || '';
        if (href.startsWith('zh/') || href.includes('/zh/') || han.test(entry.textContent)) {
            entry.lang = 'zh-CN';
        }
    }

    // mdBook's previous/next links run through the whole book, so "Next" on
    // the last English page would open the first Chinese one (and the arrow
    // keys follow these links too). Drop a link that changes language.
    if (here !== '') {
        for (const link of document.querySelectorAll('a.nav-chapters, a.mobile-nav-chapters')) {
            const there = language(link.href);
            if (there !== '' && there !== here) {
                link.remove();
            }
        }
    }

    // The language link goes to the same section of the other page: both
    // languages give their headings the same ids (the book check enforces it).
    const languageLink = document.querySelector('.lang-switch a.lang-link');
    if (languageLink) {
        const page = languageLink.getAttribute('href').split('#')[0];
        const follow = () => {
            languageLink.setAttribute('href', page + location.hash);
        };
        follow();
        window.addEventListener('hashchange', follow);
    }
})();
