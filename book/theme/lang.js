'use strict';

// The sidebar lists both languages on every page: give its Chinese entries
// lang="zh-CN" so they render with Chinese glyph forms on English pages too.
(function markChineseSidebarEntries() {
    const han = /[\u3400-\u4dbf\u4e00-\u9fff]/;
    for (const entry of document.querySelectorAll('#mdbook-sidebar a, #mdbook-sidebar .part-title')) {
        const href = entry.getAttribute('href') || '';
        if (href.startsWith('zh/') || href.includes('/zh/') || han.test(entry.textContent)) {
            entry.lang = 'zh-CN';
        }
    }
})();
