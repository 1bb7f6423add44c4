/* browser.h - one headless Chromium for all of a test's pages.
 *
 * Each start of Chromium costs about 1.5 s of CPU; a test that loads several
 * pages and takes screenshots starts it once and drives it over the DevTools
 * protocol on a pipe (--remote-debugging-pipe): every page in a fresh tab,
 * its console watched. Every check fails the test with the page and what
 * went wrong. */
#ifndef ATTN_TEST_BROWSER_H
#define ATTN_TEST_BROWSER_H

#include <stddef.h>

#define BROWSER_CHROMIUM "/usr/bin/chromium"

typedef struct browser browser;

/* Starts headless Chromium; NULL when BROWSER_CHROMIUM is not installed
 * (the caller skips). Fails the test when it does not answer. */
browser *browser_start(void);

/* What to do with one page. */
typedef struct browser_page {
    const char *path;     /* a local file */
    const char *fragment; /* "#..." or NULL */
    unsigned width, height; /* the viewport (0: 1400 x 1000) */
    /* a JavaScript condition the page must reach after its load event (NULL:
     * <body> has data-ready); it is polled for up to 60 s */
    const char *until;
    const char *png; /* not NULL: a screenshot of the viewport into this file */
} browser_page;

/* Loads the page in a new tab, waits for `until`, takes the screenshot when
 * asked and returns the document's HTML as it is then (to free; the state
 * `--dump-dom` prints). Any console message, uncaught exception or error
 * entry of the browser's log fails the test (the pages log nothing). */
char *browser_load(browser *b, const browser_page *page);

/* Closes Chromium and frees b (NULL is a no-op). */
void browser_stop(browser *b);

#endif
