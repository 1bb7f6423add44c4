/* attn/explain.h - renderers: traces as terminal tables and JSON.
 *
 * Renderers read traces (attn/trace.h) and never recompute the math: every
 * number they show was recorded by an op. They write to a stream the caller
 * gives them and report write failures as ATTN_E_IO.
 */
#ifndef ATTN_EXPLAIN_H
#define ATTN_EXPLAIN_H

#include <stddef.h>
#include <stdio.h>
#include "attn/status.h"
#include "attn/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct attn_text_opts {
    int color;     /* 1: ANSI 256-colour shading of matrix cells */
    int precision; /* digits after the decimal point (0..9); 3 by default */
} attn_text_opts;

/* One 2-D trace entry as a table with row and column labels.
 * `title` is printed above it (may be NULL). */
attn_status attn_text_matrix(FILE *f, const attn_trace *trace, const char *name,
                             const char *title, const attn_text_opts *opts);

/* Every step of a self-attention trace (attn_self_attention): embeddings,
 * scores, scaled scores, the mask when one was applied, attention, output. */
attn_status attn_text_walkthrough(FILE *f, const attn_trace *trace, const attn_text_opts *opts);

/* One token across several traces: its input vector and its output in each,
 * with the dominant dimension of every row. `captions[i]` names traces[i]
 * (e.g. the sentence). Fails with ATTN_E_NOTFOUND if a trace lacks the token. */
attn_status attn_text_token_comparison(FILE *f, const char *token,
                                       const attn_trace *const *traces,
                                       const char *const *captions, size_t n,
                                       const attn_text_opts *opts);

/* The dimension with the largest value of row `row` of a 2-D entry, written
 * as its name, or "a = b" when the top two are equal. Returns 0 if absent. */
int attn_dominant_dimension(const attn_trace *trace, const char *entry, size_t row, char *buf,
                            size_t bufsize);

/* Every step of a multi-head trace (attn_mha_self_attention): the
 * embeddings; per head Q, K, V, scores, scaled scores, the mask when one was
 * applied, attention and the head's output; the concatenation; the output. */
attn_status attn_text_mha_walkthrough(FILE *f, const attn_trace *trace, size_t num_heads,
                                      const attn_text_opts *opts);

/* ---- JSON ---------------------------------------------------------------
 * A walkthrough as JSON: {"text", "tokens", "embeddings", "scores", "scaled",
 * "attention", "output"} per trace. */

/* {"dims": [...], "sentences": [ walkthrough, ... ]}  (attn demo --json) */
attn_status attn_json_walkthroughs(FILE *f, const attn_trace *const *traces,
                                   const char *const *texts, size_t n);

/* {"dims": [...], walkthrough keys...} for one trace (attn explain --json).
 * With `compare` (may be NULL): a "compare" key holding the second
 * walkthrough and "shared_tokens": [{"token", "output", "compare_output"}]. */
attn_status attn_json_walkthrough(FILE *f, const attn_trace *trace, const char *text,
                                  const attn_trace *compare, const char *compare_text);

/* {"dims", "text", "tokens", "embeddings", "heads": [{"q", "k", "v", "scores",
 * "scaled", "attention", "output"}, ...], "concat", "output"} for a
 * multi-head trace (attn explain --weights --json). */
attn_status attn_json_mha_walkthrough(FILE *f, const attn_trace *trace, const char *text,
                                      size_t num_heads);

/* s with every control character (C0, DEL, C1) written as \xNN, for a
 * terminal; at most n - 1 bytes and a NUL into buf. Returns the full length
 * (as snprintf). The tables escape their labels this way. */
size_t attn_text_escape(char *buf, size_t n, const char *s);

/* ATTN_E_FORMAT, naming `what`, if an "output" entry of t (or "<x>.output")
 * holds a NaN or an infinity: finite inputs whose attention overflowed
 * float32 (cells of 3e38, a temperature of 1e-45). */
attn_status attn_trace_check_output(const attn_trace *t, const char *what);

#ifdef __cplusplus
}
#endif
#endif
