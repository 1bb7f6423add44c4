/* html_page.h - the CSS and JavaScript of the HTML export (internal).
 *
 * The stylesheet and script live in src/explain/html (page.css and the
 * page_N_*.js parts, concatenated in order); CMake turns them into these
 * arrays at build time (cmake/embed_text.cmake). The script reads the JSON in
 * #attn-data, draws every matrix on <canvas>, and recomputes attention in the
 * page only when a toggle leaves the library's settings. Plain ES2017, no
 * external resources. Each array ends with a NUL not counted in its _len.
 */
#ifndef ATTN_HTML_PAGE_H
#define ATTN_HTML_PAGE_H

#include <stddef.h>

extern const unsigned char attn_html_page_css[];
extern const size_t attn_html_page_css_len;
extern const unsigned char attn_html_page_js[];
extern const size_t attn_html_page_js_len;

/* The model page (attn explain --model --html): model.css, model.js. */
extern const unsigned char attn_html_model_css[];
extern const size_t attn_html_model_css_len;
extern const unsigned char attn_html_model_js[];
extern const size_t attn_html_model_js_len;

#endif
