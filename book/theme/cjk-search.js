'use strict';

/* global elasticlunr */

// Chinese search. mdBook's index (elasticlunr) splits text into words at
// spaces, and its query pipeline trims every character that is not an ASCII
// word character, so Chinese, which has no spaces, is never found (mdBook
// issue #1081). For a query containing CJK characters, search the section
// texts mdBook already stores in the index instead: a section matches when it
// contains every space-separated term of the query (case-insensitive
// substrings); its score counts the occurrences, in the title twice.
// Other queries go to elasticlunr unchanged.
(function cjkSearch() {
    if (typeof elasticlunr === 'undefined') {
        return;
    }
    const cjk = /[\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]/;
    const elasticlunrSearch = elasticlunr.Index.prototype.search;

    function occurrences(text, term) {
        let count = 0;
        for (let at = text.indexOf(term); at !== -1; at = text.indexOf(term, at + term.length)) {
            count++;
        }
        return count;
    }

    elasticlunr.Index.prototype.search = function search(query, config) {
        if (!cjk.test(query)) {
            return elasticlunrSearch.call(this, query, config);
        }
        const terms = query.toLowerCase().split(/\s+/).filter(term => term !== '');
        const docs = this.documentStore.docs;
        const results = [];
        for (const ref of Object.keys(docs)) {
            const doc = docs[ref];
            const title = (doc.title || '').toLowerCase();
            const body = (doc.body || '').toLowerCase();
            let score = 0;
            for (const term of terms) {
                const hits = 2 * occurrences(title, term) + occurrences(body, term);
                if (hits === 0) {
                    score = 0;
                    break;
                }
                score += hits;
            }
            if (score > 0) {
                results.push({ref, score, doc});
            }
        }
        return results.sort((a, b) => b.score - a.score);
    };
})();
