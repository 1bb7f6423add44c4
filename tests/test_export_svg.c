/* test_export_svg.c - one labelled SVG heatmap per matrix: the files, that
 * each is well-formed XML (always by a small checker here; also by xmllint or
 * Python's minidom when the machine has one), labels escaped, the legend,
 * large matrices kept small, and all-or-nothing output directories. */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attn/attn.h"
#include "attn/export.h"

/* ---- helpers ---------------------------------------------------------------- */

static char *slurp_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    for (size_t got; s && (got = fread(s + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            char *g = realloc(s, cap *= 2);
            if (!g) free(s);
            s = g;
        }
    }
    fclose(f);
    if (s) s[n] = '\0';
    if (len) *len = n;
    return s;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static size_t count_of(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Valid UTF-8 throughout (no overlongs, no surrogates). */
static int utf8_ok(const unsigned char *s)
{
    while (*s) {
        if (*s < 0x80) {
            s++;
            continue;
        }
        int n = (*s & 0xE0) == 0xC0 ? 1 : (*s & 0xF0) == 0xE0 ? 2 : (*s & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || (*s & 0xFE) == 0xC0 || *s > 0xF4) return 0;
        unsigned int cp = *s & (0x3Fu >> n);
        for (int i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i] & 0x3Fu);
        }
        if ((cp >= 0xD800 && cp <= 0xDFFF) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000))
            return 0;
        s += n + 1;
    }
    return 1;
}

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == ':' || c == '.';
}

/* "&...;" at p is one of XML's five entities or a character reference. */
static size_t entity_len(const char *p)
{
    static const char *const ok[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (size_t i = 0; i < 5; i++)
        if (strncmp(p, ok[i], strlen(ok[i])) == 0) return strlen(ok[i]);
    if (p[1] == '#') {
        size_t i = 2;
        int hex = p[2] == 'x';
        if (hex) i++;
        size_t start = i;
        while (hex ? strchr("0123456789abcdefABCDEF", p[i]) && p[i] : (p[i] >= '0' && p[i] <= '9')) i++;
        if (i > start && p[i] == ';') return i + 1;
    }
    return 0;
}

/* A small well-formedness check: one root element, tags nested and closed,
 * attributes quoted, '<' never in text or values, every '&' an entity.
 * Returns NULL or what is wrong (static buffer). */
static const char *xml_problem(const char *s)
{
    static char why[200];
    enum { DEPTH = 64 };
    const char *stack[DEPTH];
    size_t len[DEPTH], depth = 0, roots = 0;
    const char *p = s;
    if (!utf8_ok((const unsigned char *)s)) return "not UTF-8";
    while (*p) {
        if (*p == '&') {
            size_t n = entity_len(p);
            if (!n) return snprintf(why, sizeof why, "bad entity at byte %zu", (size_t)(p - s)), why;
            p += n;
            continue;
        }
        if (*p != '<') {
            if (!depth && !strchr(" \t\r\n", *p))
                return snprintf(why, sizeof why, "text outside the root at %zu", (size_t)(p - s)), why;
            p++;
            continue;
        }
        if (strncmp(p, "<?", 2) == 0) {
            const char *e = strstr(p, "?>");
            if (!e) return "unterminated <?";
            p = e + 2;
            continue;
        }
        if (strncmp(p, "<!--", 4) == 0) {
            const char *e = strstr(p, "-->");
            if (!e) return "unterminated comment";
            p = e + 3;
            continue;
        }
        if (p[1] == '/') {
            const char *n = p + 2, *e = n;
            while (name_char(*e)) e++;
            if (!depth || (size_t)(e - n) != len[depth - 1] || strncmp(n, stack[depth - 1], len[depth - 1]) ||
                *e != '>')
                return snprintf(why, sizeof why, "mismatched end tag at byte %zu", (size_t)(p - s)), why;
            depth--;
            p = e + 1;
            continue;
        }
        const char *n = p + 1, *e = n;
        while (name_char(*e)) e++;
        if (e == n) return snprintf(why, sizeof why, "bad '<' at byte %zu", (size_t)(p - s)), why;
        const char *q = e;
        for (;;) { /* attributes */
            while (*q == ' ' || *q == '\n' || *q == '\t') q++;
            if (*q == '>' || (q[0] == '/' && q[1] == '>')) break;
            const char *a = q;
            while (name_char(*q)) q++;
            if (q == a || *q != '=' || (q[1] != '"' && q[1] != '\''))
                return snprintf(why, sizeof why, "bad attribute at byte %zu", (size_t)(q - s)), why;
            char quote = q[1];
            q += 2;
            while (*q && *q != quote) {
                if (*q == '<') return snprintf(why, sizeof why, "'<' in a value at %zu", (size_t)(q - s)), why;
                if (*q == '&') {
                    size_t k = entity_len(q);
                    if (!k) return snprintf(why, sizeof why, "bad entity in a value at %zu", (size_t)(q - s)), why;
                    q += k;
                } else {
                    q++;
                }
            }
            if (!*q) return "unterminated attribute value";
            q++;
        }
        if (!depth) roots++;
        if (*q == '/') {
            p = q + 2;
            continue;
        }
        if (depth == DEPTH) return "too deep";
        stack[depth] = n, len[depth] = (size_t)(e - n), depth++;
        p = q + 1;
    }
    if (depth) return "unclosed elements at the end";
    if (roots != 1) return "not exactly one root element";
    return NULL;
}

/* The external XML parser this machine has: xmllint (libxml2-utils), else
 * Python's minidom; NULL (the small checker alone) when neither. */
static const char *xml_tool(void)
{
    static int probed;
    static const char *tool;
    if (!probed) {
        probed = 1;
        run_result r = run_cmd("command -v xmllint");
        if (r.status == 0) tool = "xmllint --noout";
        run_result_free(&r);
        if (!tool) {
            r = run_cmd("python3 -c 'import xml.dom.minidom'");
            if (r.status == 0)
                tool = "python3 -c 'import xml.dom.minidom,sys; xml.dom.minidom.parse(sys.argv[1])'";
            run_result_free(&r);
        }
        if (!tool) print_message("neither xmllint nor python3: only the built-in XML check runs\n");
    }
    return tool;
}

/* Reads an SVG, checks it is well-formed by both checkers; returns its text. */
static char *read_svg(const char *path, size_t *size)
{
    char *s = slurp_all(path, size);
    if (!s) fail_msg("missing %s", path);
    const char *why = xml_problem(s);
    if (why) fail_msg("%s: not well-formed: %s", path, why);
    if (strncmp(s, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg ", 44) != 0)
        fail_msg("%s: does not start with the XML declaration and <svg", path);
    if (!strstr(s, "xmlns=\"http://www.w3.org/2000/svg\"") || !strstr(s, " viewBox=\"0 0 ") ||
        !strstr(s, " width=\"") || !strstr(s, " height=\""))
        fail_msg("%s: no namespace, viewBox, width or height", path);
    const char *tool = xml_tool();
    if (tool) {
        run_result r = run_cmd("%s '%s'", tool, path);
        if (r.status != 0) fail_msg("%s rejects %s: %s", tool, path, r.err);
        run_result_free(&r);
    }
    return s;
}

/* The file stem the exporters promise: "<entry>" with '.' as '-', and
 * "s<i>-" in front for two sequences. */
static void stem_of(char *buf, size_t n, const attn_doc *doc, size_t s, const char *entry)
{
    size_t k = doc->n > 1 ? (size_t)snprintf(buf, n, "s%zu-", s + 1) : 0;
    for (const char *p = entry; *p && k + 1 < n; p++) buf[k++] = *p == '.' ? '-' : *p;
    buf[k] = '\0';
}

static size_t files_in(const char *dir)
{
    run_result r = run_cmd("ls -A '%s'", dir);
    size_t n = r.status == 0 ? count_lines(r.out) : 0;
    run_result_free(&r);
    return n;
}

/* Every 2-D entry has its well-formed file, with a legend and one tooltip
 * rect per cell (when small); nothing else is in the directory. */
static void check_all_files(const attn_doc *doc, const char *dir)
{
    size_t expected = 0;
    for (size_t s = 0; s < doc->n; s++)
        for (size_t i = 0; i < attn_trace_count(doc->traces[s]); i++) {
            attn_trace_entry e;
            assert_int_equal(attn_trace_entry_at(doc->traces[s], i, &e), ATTN_OK);
            if (e.tensor->ndim != 2) continue;
            char stem[300], path[900];
            stem_of(stem, sizeof stem, doc, s, e.name);
            snprintf(path, sizeof path, "%s/%s.svg", dir, stem);
            char *svg = read_svg(path, NULL);
            if (!strstr(svg, "class=\"legend\"") || !strstr(svg, "<linearGradient id=\"legend-") ||
                !strstr(svg, "fill=\"url(#legend-"))
                fail_msg("%s: no colour legend", path);
            size_t cells = e.tensor->shape[0] * e.tensor->shape[1];
            if (cells <= 4096 && count_of(svg, "</title></rect>") != cells)
                fail_msg("%s: %zu cell tooltips for %zu cells", path, count_of(svg, "</title></rect>"), cells);
            free(svg);
            expected++;
        }
    assert_int_equal(files_in(dir), expected);
}

/* A value as the tooltips print it. */
static void tooltip_value(char *buf, size_t n, float v)
{
    if (isinf(v)) {
        snprintf(buf, n, v < 0 ? "−∞" : "∞");
        return;
    }
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%.6g", (double)v);
    if (strcmp(tmp, "-0") == 0) snprintf(tmp, sizeof tmp, "0");
    snprintf(buf, n, "%s%s", tmp[0] == '-' ? "−" : "", tmp + (tmp[0] == '-'));
}

static void test_svg_demo(void **state)
{
    (void)state;
    demo_doc d;
    build_demo(&d);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/svg-demo", test_tmpdir());
    assert_false(exists(dir));
    assert_int_equal(attn_export_svg(&d.doc, dir), ATTN_OK); /* creates the directory */
    check_all_files(&d.doc, dir);

    char path[700], want[600];
    snprintf(path, sizeof path, "%s/s1-attention.svg", dir);
    char *svg = read_svg(path, NULL);
    /* The title: the sentence and the step. */
    snprintf(want, sizeof want, "<title>%s — attention</title>", d.texts[0]);
    if (!strstr(svg, want)) fail_msg("no '%s' in %s", want, path);
    /* Every token labels a row and a column. */
    for (size_t i = 0; i < d.x[0].n_tokens; i++) {
        snprintf(want, sizeof want, ">%s</text>", d.x[0].tokens[i]);
        if (count_of(svg, want) < 2) fail_msg("token '%s' is not a row and a column label", d.x[0].tokens[i]);
    }
    /* Each cell: a tooltip with the labels and the value, and the value in the cell. */
    const attn_tensor *a = attn_trace_get(d.t[0], "attention");
    const size_t n = a->shape[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            char v[64];
            tooltip_value(v, sizeof v, a->data[i * n + j]);
            snprintf(want, sizeof want, "<title>%s × %s = %s</title>", d.x[0].tokens[i], d.x[0].tokens[j], v);
            if (!strstr(svg, want)) fail_msg("no tooltip '%s'", want);
            snprintf(want, sizeof want, ">%.3f</text>", (double)a->data[i * n + j]);
            if (!strstr(svg, want)) fail_msg("no cell value '%s'", want);
        }
    /* Attention is non-negative: white to blue, no red, and ticks at its range. */
    assert_non_null(strstr(svg, "stop-color=\"#ffffff\""));
    assert_null(strstr(svg, "fill=\"#ff0000\""));
    assert_null(strstr(svg, "rotate(")); /* short tokens: level column labels */
    free(svg);

    /* Exporting again replaces the files (no leftovers, same count). */
    assert_int_equal(attn_export_svg(&d.doc, dir), ATTN_OK);
    check_all_files(&d.doc, dir);
    release_demo(&d);
}

/* ---- a multi-head layer on tokens that XML must escape ---------------------------- */

static void test_svg_layer_escapes_labels(void **state)
{
    (void)state;
    static const char *const tokens[] = {"a<b", "x&y", "\"q\"", "it's", "p>q", "naïve"};
    static const char *const dims[] = {"d<0>", "d&1", "d2", "d3"};
    float data[6 * 4];
    for (int i = 0; i < 24; i++) data[i] = (float)sin(1.7 * i + 0.3) * 1.5f;
    attn_embeddings x;
    assert_int_equal(attn_embeddings_from_arrays(&x, 6, tokens, 4, dims, data), ATTN_OK);
    attn_mha_config cfg = attn_mha_default_config(4, 2);
    attn_mha *mha = NULL;
    assert_int_equal(attn_mha_create(&mha, &cfg), ATTN_OK);
    assert_int_equal(attn_mha_init(mha, 7), ATTN_OK);
    attn_trace *t = NULL;
    assert_int_equal(attn_trace_create(&t), ATTN_OK);
    attn_sdpa_params p = attn_sdpa_defaults();
    p.causal = ATTN_CAUSAL_TOP_LEFT;
    assert_int_equal(attn_mha_self_attention(NULL, mha, &x, &p, t), ATTN_OK);
    const char *caption = "tokens <&> \"quoted\"";
    const attn_trace *traces[1] = {t};
    attn_doc doc = {"layer & co", 1, traces, &caption, 2};

    char dir[512];
    snprintf(dir, sizeof dir, "%s/svg-layer", test_tmpdir());
    assert_int_equal(attn_export_svg(&doc, dir), ATTN_OK);
    check_all_files(&doc, dir);

    char path[700], want[300];
    snprintf(path, sizeof path, "%s/head0-attention.svg", dir);
    char *svg = read_svg(path, NULL);
    static const char *const escaped[] = {"a&lt;b", "x&amp;y", "&quot;q&quot;", "it&apos;s", "p&gt;q", "naïve"};
    for (size_t i = 0; i < 6; i++) {
        snprintf(want, sizeof want, ">%s</text>", escaped[i]);
        if (count_of(svg, want) < 2) fail_msg("label '%s' not escaped as '%s' on both axes", tokens[i], escaped[i]);
    }
    assert_null(strstr(svg, "a<b"));
    assert_null(strstr(svg, "x&y"));
    assert_non_null(strstr(svg, "<title>tokens &lt;&amp;&gt; &quot;quoted&quot; — head0.attention</title>"));
    assert_non_null(strstr(svg, "<title>x&amp;y × a&lt;b = ")); /* a cell's tooltip */
    assert_non_null(strstr(svg, "Head 1 of 2"));
    free(svg);

    /* The causal mask: -inf cells grey, printed "−∞", and a legend swatch. */
    snprintf(path, sizeof path, "%s/head0-mask.svg", dir);
    svg = read_svg(path, NULL);
    assert_int_equal(count_of(svg, ">−∞</text>"), 15); /* above the diagonal of 6 x 6 */
    assert_non_null(strstr(svg, "= −∞ (masked)</title>"));
    assert_non_null(strstr(svg, "fill=\"#bcbcbc\""));
    assert_non_null(strstr(svg, ">−∞ masked</text>"));
    free(svg);

    /* A matrix with both signs uses the diverging scale: a 0 tick, red cells. */
    const attn_tensor *q = attn_trace_get(t, "head0.q");
    float lo = 0, hi = 0;
    for (size_t i = 0; i < q->numel; i++) lo = fminf(lo, q->data[i]), hi = fmaxf(hi, q->data[i]);
    assert_true(lo < 0 && hi > 0);
    snprintf(path, sizeof path, "%s/head0-q.svg", dir);
    svg = read_svg(path, NULL);
    assert_non_null(strstr(svg, ">0</text>"));
    assert_non_null(strstr(svg, "fill=\"#ff")); /* red channel full: a negative cell */
    snprintf(want, sizeof want, ">−%.3f</text>", -(double)lo); /* typographic minus */
    if (!strstr(svg, want)) fail_msg("no '%s' in %s", want, path);
    free(svg);

    attn_trace_free(t);
    attn_mha_free(mha);
    attn_embeddings_free(&x);
}

/* ---- 512 x 512: still valid, still a reasonable size ------------------------------- */

/* Cells drawn as one path per colour ("M x y h w v h h-w z" per run): the
 * runs tile an n x n square exactly (areas add up to the bounding box). */
static void check_paths_cover_grid(const char *svg, size_t n)
{
    double area = 0, x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
    size_t runs = 0;
    for (const char *p = svg; (p = strstr(p, "<path fill=\"#"));) {
        p = strstr(p, " d=\"");
        assert_non_null(p);
        p += 4;
        while (*p != '"') {
            while (*p == '\n') p++;
            /* strtod, not sscanf: glibc's sscanf measures the whole rest of the file each call */
            char *e;
            const char *start = p;
            double v[5];
            static const char lead[5] = {'M', ' ', 'h', 'v', 'h'};
            for (int q = 0; q < 5; q++) {
                if (*p != lead[q]) fail_msg("bad path data at '%.40s'", start);
                p += q == 4 ? 2 : 1; /* "h-" */
                v[q] = strtod(p, &e);
                if (e == p) fail_msg("bad path data at '%.40s'", start);
                p = e;
            }
            if (*p++ != 'z' || v[2] != v[4]) fail_msg("bad path data at '%.40s'", start);
            double x = v[0], y = v[1], w = v[2], h = v[3];
            area += w * h, runs++;
            x0 = fmin(x0, x), y0 = fmin(y0, y), x1 = fmax(x1, x + w), y1 = fmax(y1, y + h);
        }
    }
    assert_true(runs >= n); /* at least one run per row */
    assert_true(fabs((x1 - x0) - (y1 - y0)) < 1e-9);
    assert_true(fabs(area - (x1 - x0) * (y1 - y0)) < 1e-6 * area);
    double cell = (x1 - x0) / (double)n;
    print_message("%zu runs of %.0f px cells for %zu cells\n", runs, cell, n * n);
}

static void test_svg_large_matrix(void **state)
{
    (void)state;
    enum { N = 512, D = 8 };
    char *names = malloc(N * 8);
    const char **tokens = malloc(N * sizeof *tokens);
    float *data = malloc(N * D * sizeof *data);
    assert_non_null(names);
    assert_non_null(tokens);
    assert_non_null(data);
    static const char *const dims[D] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    for (int i = 0; i < N; i++) {
        snprintf(names + i * 8, 8, "t%d", i);
        tokens[i] = names + i * 8;
        for (int k = 0; k < D; k++) data[i * D + k] = (float)sin(0.37 * i * (k + 1) + k);
    }
    attn_embeddings x;
    assert_int_equal(attn_embeddings_from_arrays(&x, N, tokens, D, dims, data), ATTN_OK);
    attn_trace *t = NULL;
    assert_int_equal(attn_trace_create(&t), ATTN_OK);
    assert_int_equal(attn_self_attention(NULL, &x, NULL, t), ATTN_OK);
    const char *caption = "512 tokens";
    const attn_trace *traces[1] = {t};
    attn_doc doc = {NULL, 1, traces, &caption, 0};
    char dir[512];
    snprintf(dir, sizeof dir, "%s/svg-large", test_tmpdir());
    assert_int_equal(attn_export_svg(&doc, dir), ATTN_OK);
    check_all_files(&doc, dir);
    static const char *const big[] = {"scores", "attention"};
    for (size_t b = 0; b < 2; b++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s.svg", dir, big[b]);
        size_t size = 0;
        char *svg = read_svg(path, &size);
        print_message("%s.svg: 512 x 512, %.1f MB\n", big[b], (double)size / 1e6);
        assert_true(size < 30u * 1000 * 1000);
        assert_non_null(strstr(svg, ">t0</text>"));
        assert_non_null(strstr(svg, ">t511</text>"));
        assert_int_equal(count_of(svg, ">t511</text>"), 2); /* a row and a column */
        assert_null(strstr(svg, "</title></rect>"));        /* no per-cell text at this size */
        check_paths_cover_grid(svg, N);
        assert_int_equal(count_of(svg, "transform=\"rotate(-90 "), N); /* narrow columns */
        free(svg);
    }
    attn_trace_free(t);
    attn_embeddings_free(&x);
    free(data);
    free(tokens);
    free(names);
}

/* ---- all or nothing -------------------------------------------------------------------- */

static void test_svg_failures_leave_nothing(void **state)
{
    (void)state;
    demo_doc d;
    build_demo(&d);
    char dir[512];

    /* No document, or not a walkthrough. */
    snprintf(dir, sizeof dir, "%s/svg-none", test_tmpdir());
    assert_int_equal(attn_export_svg(NULL, dir), ATTN_E_INVALID);
    assert_false(exists(dir));

    /* A missing parent directory: ATTN_E_IO naming it, nothing created. */
    snprintf(dir, sizeof dir, "%s/no-such/svg", test_tmpdir());
    assert_int_equal(attn_export_svg(&d.doc, dir), ATTN_E_IO);
    assert_non_null(strstr(attn_last_error(), "does not exist"));
    snprintf(dir, sizeof dir, "%s/no-such", test_tmpdir());
    assert_false(exists(dir));

    /* A failure midway in an existing directory (a target name taken by a
     * directory) removes the files this call wrote, and only those. */
    snprintf(dir, sizeof dir, "%s/svg-half", test_tmpdir());
    assert_int_equal(mkdir(dir, 0777), 0);
    char blocker[700];
    snprintf(blocker, sizeof blocker, "%s/s2-scores.svg", dir);
    assert_int_equal(mkdir(blocker, 0777), 0);
    write_tmp("svg-half/mine.txt", "not the exporter's\n");
    assert_int_equal(attn_export_svg(&d.doc, dir), ATTN_E_IO);
    run_result r = run_cmd("ls -A '%s'", dir);
    assert_string_equal(r.out, "mine.txt\ns2-scores.svg\n");
    run_result_free(&r);

    /* A failure midway in a directory the call created: it goes too. Here
     * the last matrix's file name is longer than a file name may be. */
    attn_trace *t = NULL;
    assert_int_equal(attn_trace_create(&t), ATTN_OK);
    const attn_tensor *x = attn_trace_get(d.t[0], "embeddings");
    const attn_tensor *o = attn_trace_get(d.t[0], "output");
    assert_int_equal(attn_trace_record(t, NULL, "embeddings", x->data, 2, x->shape, "token", "dim"), ATTN_OK);
    assert_int_equal(attn_trace_record(t, NULL, "output", o->data, 2, o->shape, "query", "dim"), ATTN_OK);
    char longname[300];
    memset(longname, 'n', 280);
    longname[280] = '\0';
    assert_int_equal(attn_trace_record(t, NULL, longname, o->data, 2, o->shape, "query", "dim"), ATTN_OK);
    const attn_trace *traces[1] = {t};
    const char *caption = "long";
    attn_doc doc = {NULL, 1, traces, &caption, 0};
    snprintf(dir, sizeof dir, "%s/svg-new", test_tmpdir());
    assert_int_equal(attn_export_svg(&doc, dir), ATTN_E_IO);
    assert_false(exists(dir));
    attn_trace_free(t);
    release_demo(&d);
}

/* The README's picture: the demo's sentence-1 attention as a PNG, when
 * ATTN_SVG_PNG_OUT names where to put it and a converter exists. Not a check;
 * a convenience for whoever updates docs/images. */
static void test_svg_readme_picture(void **state)
{
    (void)state;
    const char *out = getenv("ATTN_SVG_PNG_OUT");
    if (!out || !*out) {
        skip();
        return;
    }
    demo_doc d;
    build_demo(&d);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/svg-picture", test_tmpdir());
    assert_int_equal(attn_export_svg(&d.doc, dir), ATTN_OK);
    char path[700];
    snprintf(path, sizeof path, "%s/s1-attention.svg", dir);
    char *svg = read_svg(path, NULL);
    unsigned w = 0, h = 0;
    const char *p = strstr(svg, " width=\"");
    assert_non_null(p);
    assert_int_equal(sscanf(p, " width=\"%u\" height=\"%u\"", &w, &h), 2);
    free(svg);
    run_result r = run_cmd("command -v rsvg-convert >/dev/null && rsvg-convert -z 2 -o '%s' '%s' || "
                           "/usr/bin/chromium --headless --no-sandbox --disable-gpu --hide-scrollbars "
                           "--force-device-scale-factor=2 --window-size=%u,%u --screenshot='%s' 'file://%s'",
                           out, path, w, h, out, path);
    if (r.status != 0 || !exists(out)) print_message("no converter made %s: %s\n", out, r.err);
    run_result_free(&r);
    release_demo(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svg_demo),
        cmocka_unit_test(test_svg_layer_escapes_labels),
        cmocka_unit_test(test_svg_large_matrix),
        cmocka_unit_test(test_svg_failures_leave_nothing),
        cmocka_unit_test(test_svg_readme_picture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
