/* export_xlsx.c - a workbook of live formulas: the article's spreadsheet.
 *
 * The embeddings (sheet "Inputs") and a layer's weights (sheet "Weights") are
 * the only numbers typed in; every other cell is a formula that refers to the
 * block before it, so editing one embedding recomputes the whole walkthrough.
 * Each formula also carries the library's value as its cached result, for
 * viewers that do not recalculate.
 *
 * Layout. Every block is a labelled matrix: a title cell "<Key>: <what>", a
 * header row of column labels below it, then one labelled row per query,
 * key, token or dimension; data cell (i, j) of a block whose title is at
 * (r, c) is at (r + 2 + i, c + 1 + j). Blocks sit side by side in bands
 * separated by a blank row; a blank column separates blocks in a band.
 *   Inputs         "S<s> embeddings" per sequence (constants)
 *   Weights        multi-head only: "W_Q head<h>", "W_K ..", "W_V ..",
 *                  "b_Q ..", "b_K ..", "b_V ..", "W_O", "b_O" (constants)
 *   S<s>           plain walkthrough of sequence s; or per head "S<s> head<h>"
 *                  (with "Q", "K", "V" first) and "S<s> output" ("Concat",
 *                  "Output"). The attention blocks: "Parameters", "Scores",
 *                  "Scaled", ["Allowed", ["Mask bias"], "Masked"], "Row max",
 *                  "Exp", "Row sum", "Attention", "V transposed", "Output".
 *   Compare        two sequences: the shared tokens' input and output rows.
 * Only SUMPRODUCT, SUM, EXP, MAX, SQRT, IF and references are used, which
 * Excel, LibreOffice Calc and Gnumeric all evaluate.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export_util.h"
#include "export_xlsx.h"

#define XLSX_MAX_TOKENS 64
#define XLSX_MAX_HEADS 32
#define XLSX_MAX_FORMULAS 200000
#define XLSX_MAX_CONSTANTS 200000

/* ---- one attention: scores to output ---------------------------------------- */

typedef struct attn_in {
    const attn_trace *t;
    const char *prefix;   /* "head0" or NULL */
    const block *q, *k;   /* rows: queries, keys; the same width d_k */
    const block *v;       /* rows: keys; columns: value dims */
    const mat *vm;        /* V's numbers, for cached results */
} attn_in;

/* The traced matrices and scalars of one attention (see attention_blocks). */
typedef struct attn_mats {
    mat sc, sd, mk, att, out;
    double scale, temp;
    size_t L, S, dk, dv;
    int masked, has_bias;
} attn_mats;

/* The parts of attention_blocks read the matrices under the names they had
 * when it was one function. */
#define ATTN_MATS_LOCALS(M)                                                         \
    const size_t L = (M)->L, S = (M)->S;                                            \
    const mat sc = (M)->sc, sd = (M)->sd, mk = (M)->mk, att = (M)->att, out = (M)->out; \
    const int masked = (M)->masked, has_bias = (M)->has_bias;                       \
    (void)L, (void)S, (void)sc, (void)sd, (void)mk, (void)att, (void)out, (void)masked, (void)has_bias

/* Parameters (the scale as =1/SQRT(d) when it is that, and the temperature),
 * Scores and Scaled, in a new band; returns the Scaled block. */
static block scaled_blocks(sheet *s, const attn_in *a, const attn_mats *M)
{
    xl *x = s->x;
    ATTN_MATS_LOCALS(M);
    const size_t dk = M->dk;
    const double scale = M->scale, temp = M->temp;
    xl_next_band(s);
    static const char *const prm[] = {"scale", "temperature"}, *const val[] = {"value"};
    block p = xl_place(s, "Parameters: scale = 1/√d", 2, 1, prm, 2, val, 1);
    if ((float)(1.0 / sqrt((double)dk)) == (float)scale) {
        xl_fclear(x);
        xl_fcat(x, "=1/SQRT(%zu)", dk);
        xl_formula(s, p.r + 2, p.c + 1, scale, NULL);
    } else {
        xl_num(s, p.r + 2, p.c + 1, scale, x->input);
    }
    xl_num(s, p.r + 3, p.c + 1, temp, x->input);

    block bsc = xl_place_mat(s, "Scores: query · key (SUMPRODUCT)", &sc);
    block bsd = xl_place_mat(s, temp != 1.0 ? "Scaled: score × scale ÷ temperature"
                                         : "Scaled: score × scale", &sd);
    for (size_t i = 0; i < L; i++)
        for (size_t j = 0; j < S; j++) {
            xl_fclear(x);
            xl_fcat(x, "=SUMPRODUCT(");
            xl_frow(x, s, a->q, i);
            xl_fcat(x, ",");
            xl_frow(x, s, a->k, j);
            xl_fcat(x, ")");
            xl_formula(s, bsc.r + 2 + i, bsc.c + 1 + j, xl_at(&sc, i, j), NULL);
            xl_fclear(x);
            xl_fcat(x, "=");
            xl_fref(x, s, &bsc, i, j, 0);
            xl_fcat(x, "*");
            xl_fref(x, s, &p, 0, 0, 1);
            if (temp != 1.0) {
                xl_fcat(x, "/");
                xl_fref(x, s, &p, 1, 0, 1);
            }
            xl_formula(s, bsd.r + 2 + i, bsd.c + 1 + j, xl_at(&sd, i, j), NULL);
        }
    xl_colour(&bsc, 3);
    xl_colour(&bsd, 3);

    return bsd;
}

/* The mask: constants "Allowed" (and "Mask bias"), then "Masked" by IF, in a
 * new band; *bal gets the Allowed block. Returns what the softmax reads (the
 * Masked block, or Scaled when nothing is masked). */
static block mask_blocks(sheet *s, const attn_mats *M, const block *bsd_in, block *bal_out)
{
    xl *x = s->x;
    ATTN_MATS_LOCALS(M);
    const block bsd = *bsd_in, none = {s, 0, 0, 0, 0};
    block bal = none, bmb = none, bm = bsd; /* bm: what the softmax reads */
    if (masked) {
        xl_next_band(s);
        bal = xl_place_mat(s, "Allowed: 1 = may attend, 0 = masked", &mk);
        for (size_t i = 0; i < L; i++)
            for (size_t j = 0; j < S; j++)
                xl_num(s, bal.r + 2 + i, bal.c + 1 + j, isinf(mk.t->data[i * S + j]) ? 0 : 1,
                       x->flag);
        xl_colour(&bal, 0);
        if (has_bias) {
            bmb = xl_place_mat(s, "Mask bias: added where allowed", &mk);
            for (size_t i = 0; i < L; i++)
                for (size_t j = 0; j < S; j++) {
                    float m = mk.t->data[i * S + j];
                    xl_num(s, bmb.r + 2 + i, bmb.c + 1 + j, isinf(m) ? 0 : (double)m, x->input);
                }
            xl_colour(&bmb, 3);
        }
        bm = xl_place_mat(s, "Masked: -inf where not allowed", &mk);
        for (size_t i = 0; i < L; i++)
            for (size_t j = 0; j < S; j++) {
                float m = mk.t->data[i * S + j];
                xl_fclear(x);
                xl_fcat(x, "=IF(");
                xl_fref(x, s, &bal, i, j, 0);
                xl_fcat(x, "=1,");
                xl_fref(x, s, &bsd, i, j, 0);
                if (has_bias) {
                    xl_fcat(x, "+");
                    xl_fref(x, s, &bmb, i, j, 0);
                }
                xl_fcat(x, ",\"-inf\")");
                xl_formula(s, bm.r + 2 + i, bm.c + 1 + j, xl_at(&sd, i, j) + (isinf(m) ? 0 : m),
                            isinf(m) ? "-inf" : NULL);
            }
        xl_colour(&bm, 3);
    }

    *bal_out = bal;
    return bm;
}

/* The softmax, max-subtracted: Row max, Exp, Row sum, Attention, in a new
 * band, reading bm (and bal when masked); returns the Attention block. */
static block softmax_blocks(sheet *s, const attn_mats *M, const block *bm_in, const block *bal_in)
{
    xl *x = s->x;
    ATTN_MATS_LOCALS(M);
    const block bm = *bm_in, bal = *bal_in;
    static const char *const mx[] = {"max"}, *const sm[] = {"sum"};
    xl_next_band(s);
    block brm = xl_place(s, "Row max: MAX", L, 1, sc.rl, sc.nrl, mx, 1);
    block bex = xl_place_mat(s, masked ? "Exp: EXP(score − row max), 0 where masked"
                                    : "Exp: EXP(score − row max)", &att);
    block brs = xl_place(s, "Row sum: SUM", L, 1, sc.rl, sc.nrl, sm, 1);
    block bat = xl_place_mat(s, masked ? "Attention: Exp ÷ row sum (0 if 0)"
                                    : "Attention: Exp ÷ row sum", &att);
    for (size_t i = 0; i < L && !x->st; i++) {
        double mxv = -HUGE_VAL, amax = 0;
        for (size_t j = 0; j < S; j++) {
            int allowed = !masked || !isinf(mk.t->data[i * S + j]);
            double v = xl_at(&sd, i, j) + (masked && allowed ? xl_at(&mk, i, j) : 0);
            if (allowed && v > mxv) mxv = v;
            if (xl_at(&att, i, j) > amax) amax = xl_at(&att, i, j);
        }
        if (mxv == -HUGE_VAL) mxv = 0; /* MAX of a row of text is 0 */
        /* Exp and Row sum are read off the traced attention, not recomputed:
         * the row's largest weight is EXP(0) / sum, so the sum is its
         * reciprocal and each Exp is a weight over it (a row that attends to
         * nothing has weights, Exp and sum 0). */
        const double sum = amax > 0 ? 1.0 / amax : 0;
        xl_fclear(x);
        xl_fcat(x, "=MAX(");
        xl_frow(x, s, &bm, i);
        xl_fcat(x, ")");
        xl_formula(s, brm.r + 2 + i, brm.c + 1, mxv, NULL);
        for (size_t j = 0; j < S; j++) {
            double e = amax > 0 ? xl_at(&att, i, j) / amax : 0;
            xl_fclear(x);
            if (masked) {
                xl_fcat(x, "=IF(");
                xl_fref(x, s, &bal, i, j, 0);
                xl_fcat(x, "=1,EXP(");
            } else {
                xl_fcat(x, "=EXP(");
            }
            xl_fref(x, s, &bm, i, j, 0);
            xl_fcat(x, "-");
            xl_fref(x, s, &brm, i, 0, 0);
            xl_fcat(x, masked ? "),0)" : ")");
            xl_formula(s, bex.r + 2 + i, bex.c + 1 + j, e, NULL);
        }
        xl_fclear(x);
        xl_fcat(x, "=SUM(");
        xl_frow(x, s, &bex, i);
        xl_fcat(x, ")");
        xl_formula(s, brs.r + 2 + i, brs.c + 1, sum, NULL);
        for (size_t j = 0; j < S; j++) {
            xl_fclear(x);
            if (masked) {
                xl_fcat(x, "=IF(");
                xl_fref(x, s, &brs, i, 0, 0);
                xl_fcat(x, "=0,0,");
            } else {
                xl_fcat(x, "=");
            }
            xl_fref(x, s, &bex, i, j, 0);
            xl_fcat(x, "/");
            xl_fref(x, s, &brs, i, 0, 0);
            if (masked) xl_fcat(x, ")");
            xl_formula(s, bat.r + 2 + i, bat.c + 1 + j, xl_at(&att, i, j), NULL);
        }
    }
    xl_colour(&bex, 0);
    xl_colour(&bat, 0);

    return bat;
}

/* Output = SUMPRODUCT(attention row, V column), V's columns made rows, in a
 * new band; returns the Output block. */
static block output_blocks(sheet *s, const attn_in *a, const attn_mats *M, const block *bat_in)
{
    xl *x = s->x;
    ATTN_MATS_LOCALS(M);
    const size_t dv = M->dv;
    const block bat = *bat_in;
    xl_next_band(s);
    block bvt = xl_place(s, "V transposed: values as columns", dv, S, a->vm->cl,
                      a->vm->ncl, a->vm->rl, a->vm->nrl);
    for (size_t c = 0; c < dv; c++)
        for (size_t j = 0; j < S; j++) {
            xl_fclear(x);
            xl_fcat(x, "=");
            xl_fref(x, s, a->v, j, c, 0);
            xl_formula(s, bvt.r + 2 + c, bvt.c + 1 + j, xl_at(a->vm, j, c), NULL);
        }
    xl_colour(&bvt, 3);
    block bo = xl_place_mat(s, "Output: attention · V (SUMPRODUCT)", &out);
    for (size_t i = 0; i < L; i++)
        for (size_t c = 0; c < dv; c++) {
            xl_fclear(x);
            xl_fcat(x, "=SUMPRODUCT(");
            xl_frow(x, s, &bat, i);
            xl_fcat(x, ",");
            xl_frow(x, s, &bvt, c);
            xl_fcat(x, ")");
            xl_formula(s, bo.r + 2 + i, bo.c + 1 + c, xl_at(&out, i, c), NULL);
        }
    xl_colour(&bo, 3);
    return bo;
}

/* Scores .. Output in s's bands, starting a new band; returns the Output block. */
static block attention_blocks(sheet *s, const attn_in *a)
{
    xl *x = s->x;
    block none = {s, 0, 0, 0, 0};
    attn_mats M = {0};
    const size_t L = M.L = a->q->rows, S = M.S = a->k->rows;
    const size_t dv = M.dv = a->v->cols;
    M.dk = a->q->cols;
    xl_get_mat(x, a->t, a->prefix, "scores", L, S, 1, &M.sc);
    xl_get_mat(x, a->t, a->prefix, "scaled", L, S, 1, &M.sd);
    xl_get_mat(x, a->t, a->prefix, "mask", L, S, 0, &M.mk);
    xl_get_mat(x, a->t, a->prefix, "attention", L, S, 1, &M.att);
    xl_get_mat(x, a->t, a->prefix, "output", L, dv, 1, &M.out);
    M.scale = xl_get_scalar(x, a->t, a->prefix, "scale");
    M.temp = xl_get_scalar(x, a->t, a->prefix, "temperature");
    if (x->st) return none;
    M.masked = M.mk.t != NULL;
    for (size_t i = 0; M.masked && i < L * S; i++) {
        float m = M.mk.t->data[i];
        if (isnan(m) || m == INFINITY) {
            xl_fail(x, ATTN_E_INVALID,
                    "the mask holds %g: only finite values and -inf are supported", (double)m);
            return none;
        }
        if (isfinite(m) && m != 0.0f) M.has_bias = 1;
    }
    block bsd = scaled_blocks(s, a, &M), bal = none;
    block bm = mask_blocks(s, &M, &bsd, &bal);
    block bat = softmax_blocks(s, &M, &bm, &bal);
    return output_blocks(s, a, &M, &bat);
}

/* ---- sequences ---------------------------------------------------------------- */

static void seq_note(char *buf, size_t n, const attn_doc *doc, size_t s, const char *what)
{
    const char *cap = doc->captions && doc->captions[s] ? doc->captions[s] : "";
    size_t len = strlen(cap);
    if (len > 300) /* cut a long caption at a character boundary */
        for (len = 300; len && ((unsigned char)cap[len] & 0xC0) == 0x80; len--) continue;
    snprintf(buf, n, "Sequence %zu%s%.*s%s%s. %s", s + 1, *cap ? ": “" : "", (int)len, cap,
             len < strlen(cap) ? "…" : "", *cap ? "”" : "", what);
}

/* The plain walkthrough, Q = K = V = the embeddings block e. */
static block plain_sheet(xl *x, sheet *s, const attn_doc *doc, size_t si, const block *e,
                         const mat *em)
{
    char name[32], note[1024];
    snprintf(name, sizeof name, "S%zu", si + 1);
    seq_note(note, sizeof note, doc, si,
             "Self-attention with Q = K = V = the embeddings (sheet Inputs); every number here is "
             "a formula. Scores = SUMPRODUCT of two embedding rows; Scaled = score × scale "
             "(1/√d); Exp = EXP(scaled − row max); Attention = Exp ÷ row sum (each row sums to "
             "1); Output = SUMPRODUCT of an attention row with a column of V. Edit an embedding "
             "on Inputs and everything here recomputes.");
    xl_sheet_open(x, s, name, note);
    attn_in a = {doc->traces[si], NULL, e, e, e, em};
    return attention_blocks(s, &a);
}

/* Weights of the layer (from the first trace): per head W_Q, W_K, W_V and
 * biases, then W_O and b_O. wb: 6 blocks per head, then W_O, b_O. */
static void weights_sheet(xl *x, sheet *s, const attn_trace *t, size_t H, size_t E, block *wb,
                          int *bias_in, int *bias_out)
{
    xl_sheet_open(x, s, "Weights",
               "Weights: the layer's parameters as each head sees them (constants, like the "
               "embeddings). Head h projects an embedding x to q = W_Q·x + b_Q, k = W_K·x + b_K, "
               "v = W_V·x + b_V (one SUMPRODUCT per row of W); the output is "
               "W_O·concat(heads) + b_O.");
    static const char *const names[] = {"w_q", "w_k", "w_v", "b_q", "b_k", "b_v"};
    static const char *const titles[] = {"W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V"};
    static const char *const bias_row[] = {"bias"};
    *bias_in = *bias_out = 0;
    for (size_t h = 0; h < H && !x->st; h++) {
        char pre[32], title[96];
        snprintf(pre, sizeof pre, "head%zu", h);
        mat m[6];
        for (int k = 0; k < 6; k++)
            xl_get_mat(x, t, pre, names[k], k < 3 ? 0 : 1, k < 3 ? E : 0, k < 3, &m[k]);
        if (x->st) return;
        if (h == 0) *bias_in = m[3].t != NULL;
        const int odd_bias = m[3].t && (m[3].cols != m[0].rows || m[4].cols != m[0].rows ||
                                        m[5].cols != m[2].rows);
        if ((m[3].t != NULL) != *bias_in || !m[4].t != !m[3].t || !m[5].t != !m[3].t ||
            m[1].rows != m[0].rows || odd_bias) {
            xl_fail(x, ATTN_E_INVALID, "the weights of head %zu do not fit together", h);
            return;
        }
        for (int k = 0; k < 6; k++) {
            if (k == 0 || k == 3) xl_next_band(s);
            if (!m[k].t) continue;
            snprintf(title, sizeof title, "%s head%zu: %s", titles[k], h,
                     k < 3 ? "weights" : "bias");
            if (k >= 3) m[k].rl = bias_row, m[k].nrl = 1;
            wb[6 * h + k] = xl_constants(s, title, &m[k]);
        }
    }
    mat wo, bo;
    xl_get_mat(x, t, NULL, "w_o", 0, 0, 1, &wo);
    xl_get_mat(x, t, NULL, "b_o", 1, wo.rows, 0, &bo);
    if (x->st) return;
    xl_next_band(s);
    wb[6 * H] = xl_constants(s, "W_O: output weights", &wo);
    if ((*bias_out = bo.t != NULL)) {
        xl_next_band(s);
        bo.rl = bias_row, bo.nrl = 1;
        wb[6 * H + 1] = xl_constants(s, "b_O: output bias", &bo);
    }
}

/* One head of sequence si: Q, K, V from the embeddings and weights, then the
 * attention. Returns the head's Output block. */
static block head_sheet(xl *x, sheet *s, const attn_doc *doc, size_t si, size_t h,
                        const block *e, const block *wb, int bias_in)
{
    block none = {s, 0, 0, 0, 0};
    const attn_trace *t = doc->traces[si];
    const size_t T = e->rows;
    char name[32], pre[32], note[1024];
    snprintf(name, sizeof name, "S%zu head%zu", si + 1, h);
    snprintf(pre, sizeof pre, "head%zu", h);
    seq_note(note, sizeof note, doc, si,
             "One head of the multi-head layer. Q, K, V = the embeddings (sheet Inputs) times "
             "this head's W_Q, W_K, W_V (sheet Weights) plus biases, one SUMPRODUCT per cell; "
             "then Scores = Q·Kᵀ, Scaled = score × 1/√d_k, Exp, Attention = Exp ÷ row sum and "
             "Output = Attention·V, all formulas.");
    xl_sheet_open(x, s, name, note);
    mat qm, km, vm;
    xl_get_mat(x, t, pre, "q", T, wb[0].rows, 1, &qm);
    xl_get_mat(x, t, pre, "k", 0, wb[0].rows, 1, &km);
    xl_get_mat(x, t, pre, "v", km.rows, wb[2].rows, 1, &vm);
    if (x->st) return none;
    if (km.rows < T) {
        xl_fail(x, ATTN_E_INVALID, "head %zu has %zu keys for %zu tokens", h, km.rows, T);
        return none;
    }
    static const char *const titles[] = {"Q: embeddings × W_Qᵀ + b_Q", "K: embeddings × W_Kᵀ + b_K",
                                         "V: embeddings × W_Vᵀ + b_V"};
    const mat *ms[3] = {&qm, &km, &vm};
    block pb[3];
    xl_next_band(s);
    for (int k = 0; k < 3; k++) {
        const mat *m = ms[k];
        pb[k] = xl_place_mat(s, titles[k], m);
        for (size_t i = 0; i < m->rows; i++) {
            if (k == 2 && i < m->nrl && m->rl && m->rl[i] && !strcmp(m->rl[i], "<bias_k>"))
                xl_str(s, pb[k].r + 2 + i, pb[k].c, "<bias_v>", x->label);
            for (size_t j = 0; j < m->cols; j++) {
                size_t r = pb[k].r + 2 + i, c = pb[k].c + 1 + j;
                if (i >= T) { /* a position the layer adds: learned bias_k/v or zeros */
                    xl_num(s, r, c, xl_at(m, i, j), x->input);
                    continue;
                }
                xl_fclear(x);
                xl_fcat(x, "=SUMPRODUCT(");
                xl_frow(x, s, e, i);
                xl_fcat(x, ",");
                xl_frow(x, s, &wb[k], j);
                xl_fcat(x, ")");
                if (bias_in) {
                    xl_fcat(x, "+");
                    xl_fref(x, s, &wb[3 + k], 0, j, 0);
                }
                xl_formula(s, r, c, xl_at(m, i, j), NULL);
            }
        }
        xl_colour(&pb[k], 3);
    }
    attn_in a = {t, pre, &pb[0], &pb[1], &pb[2], &vm};
    return attention_blocks(s, &a);
}

/* Concat of the head outputs, then Output = concat · W_Oᵀ + b_O. */
static block output_sheet(xl *x, sheet *s, const attn_doc *doc, size_t si, size_t H,
                          const block *heads, const block *wo, const block *bo)
{
    block none = {s, 0, 0, 0, 0};
    const attn_trace *t = doc->traces[si];
    const size_t T = heads[0].rows, dv = heads[0].cols;
    char name[32], note[1024];
    snprintf(name, sizeof name, "S%zu output", si + 1);
    seq_note(note, sizeof note, doc, si,
             "The layer's output: Concat = the heads' outputs side by side (references to the "
             "head sheets); Output = SUMPRODUCT of a Concat row with a row of W_O, plus b_O "
             "(sheet Weights).");
    xl_sheet_open(x, s, name, note);
    mat cm, om;
    xl_get_mat(x, t, NULL, "concat", T, H * dv, 1, &cm);
    xl_get_mat(x, t, NULL, "output", T, wo->rows, 1, &om);
    if (x->st) return none;
    if (wo->cols != H * dv) {
        xl_fail(x, ATTN_E_INVALID, "W_O has %zu columns for %zu concatenated values", wo->cols,
                H * dv);
        return none;
    }
    xl_next_band(s);
    block bc = xl_place_mat(s, "Concat: the heads' outputs side by side", &cm);
    for (size_t i = 0; i < T; i++)
        for (size_t j = 0; j < H * dv; j++) {
            xl_fclear(x);
            xl_fcat(x, "=");
            xl_fref(x, s, &heads[j / dv], i, j % dv, 0);
            xl_formula(s, bc.r + 2 + i, bc.c + 1 + j, xl_at(&cm, i, j), NULL);
        }
    xl_colour(&bc, 3);
    block bo2 = xl_place_mat(s, "Output: Concat × W_Oᵀ + b_O", &om);
    for (size_t i = 0; i < T; i++)
        for (size_t o = 0; o < om.cols; o++) {
            xl_fclear(x);
            xl_fcat(x, "=SUMPRODUCT(");
            xl_frow(x, s, &bc, i);
            xl_fcat(x, ",");
            xl_frow(x, s, wo, o);
            xl_fcat(x, ")");
            if (bo) {
                xl_fcat(x, "+");
                xl_fref(x, s, bo, 0, o, 0);
            }
            xl_formula(s, bo2.r + 2 + i, bo2.c + 1 + o, xl_at(&om, i, o), NULL);
        }
    xl_colour(&bo2, 3);
    return bo2;
}

/* Rows of the tokens both sequences hold, side by side: inputs, outputs and
 * the outputs' difference. */
static void compare_sheet(xl *x, sheet *s, const block *e, const mat *em, const block *o,
                          const mat *om)
{
    xl_sheet_open(x, s, "Compare",
               "Compare: the tokens that occur in both sequences. Their input rows (references to "
               "Inputs) and their output rows (references to each sequence's Output), and the "
               "outputs' difference S2 − S1: what attention to a different context changed.");
    xl_next_band(s);
    if (e[0].cols != e[1].cols || o[0].cols != o[1].cols) {
        xl_str(s, s->row, 0, "The two sequences have different widths: nothing to compare.", NULL);
        return;
    }
    /* Shared tokens: each first occurrence in S1 that S2 also holds. */
    size_t n = 0, pairs[XLSX_MAX_TOKENS][2];
    for (size_t i = 0; em[0].rl && i < em[0].rows && i < em[0].nrl && n < XLSX_MAX_TOKENS; i++) {
        int seen = 0;
        for (size_t k = 0; k < i; k++) seen |= !strcmp(em[0].rl[k], em[0].rl[i]);
        for (size_t j = 0; !seen && em[1].rl && j < em[1].rows && j < em[1].nrl; j++)
            if (!strcmp(em[0].rl[i], em[1].rl[j])) {
                pairs[n][0] = i, pairs[n][1] = j, n++;
                break;
            }
    }
    if (!n) {
        xl_str(s, s->row, 0, "No token occurs in both sequences.", NULL);
        return;
    }
    /* Row labels "<token> (S1)", "(S2)", "(S2 − S1)"; the inputs use the first two. */
    char (*lab)[160] = malloc(3 * n * sizeof *lab);
    const char **lo = malloc(3 * n * sizeof *lo), **li = malloc(2 * n * sizeof *li);
    if (!lab || !lo || !li) {
        free(lab), free(lo), free(li);
        xl_fail(x, ATTN_E_NOMEM, "out of memory");
        return;
    }
    static const char *const tag[] = {"S1", "S2", "S2 − S1"};
    for (size_t k = 0; k < 3 * n; k++) {
        snprintf(lab[k], sizeof lab[k], "%.120s (%s)", em[0].rl[pairs[k / 3][0]], tag[k % 3]);
        lo[k] = lab[k];
        if (k % 3 < 2) li[2 * (k / 3) + k % 3] = lab[k];
    }
    block bi = xl_place(s, "Inputs: each token's embedding in both", 2 * n, e[0].cols, li, 2 * n,
                        em[0].cl, em[0].ncl);
    xl_next_band(s);
    block bo = xl_place(s, "Outputs: one input, two meanings", 3 * n, o[0].cols, lo, 3 * n,
                        om[0].cl, om[0].ncl);
    for (size_t k = 0; k < n; k++)
        for (size_t q = 0; q < 3; q++) {
            for (size_t j = 0; q < 2 && j < e[0].cols; j++) {
                xl_fclear(x);
                xl_fcat(x, "=");
                xl_fref(x, s, &e[q], pairs[k][q], j, 0);
                xl_formula(s, bi.r + 2 + 2 * k + q, bi.c + 1 + j, xl_at(&em[q], pairs[k][q], j),
                           NULL);
            }
            for (size_t j = 0; j < o[0].cols; j++) {
                xl_fclear(x);
                xl_fcat(x, "=");
                xl_fref(x, s, &o[q < 2 ? q : 1], pairs[k][q < 2 ? q : 1], j, 0);
                double v = xl_at(&om[q < 2 ? q : 1], pairs[k][q < 2 ? q : 1], j);
                if (q == 2) {
                    xl_fcat(x, "-");
                    xl_fref(x, s, &o[0], pairs[k][0], j, 0);
                    v -= xl_at(&om[0], pairs[k][0], j);
                }
                xl_formula(s, bo.r + 2 + 3 * k + q, bo.c + 1 + j, v, NULL);
            }
        }
    xl_colour(&bi, 3);
    xl_colour(&bo, 3);
    free(lab), free(lo), free(li);
}

/* ---- the workbook ------------------------------------------------------------- */

/* Every trace of a multi-head document was made by the same layer. */
static void same_weights(xl *x, const attn_doc *doc, size_t H)
{
    static const char *const names[] = {"w_q", "w_k", "w_v", "b_q", "b_k", "b_v"};
    char full[64];
    for (size_t s = 1; s < doc->n && !x->st; s++)
        for (size_t k = 0; k < 6 * H + 2; k++) {
            if (k < 6 * H) snprintf(full, sizeof full, "head%zu.%s", k / 6, names[k % 6]);
            else snprintf(full, sizeof full, "%s", k == 6 * H ? "w_o" : "b_o");
            const attn_tensor *a = attn_trace_get(doc->traces[0], full);
            const attn_tensor *b = attn_trace_get(doc->traces[s], full);
            if (!a && !b) continue;
            if (!a || !b || a->numel != b->numel ||
                memcmp(a->data, b->data, a->numel * sizeof(float)) != 0) {
                xl_fail(x, ATTN_E_INVALID, "sequences 1 and %zu were made by different layers "
                     "('%s' differs): one workbook shows one layer", s + 1, full);
                return;
            }
        }
}

static void build(xl *x, const attn_doc *doc)
{
    const size_t n = doc->n, H = doc->num_heads;
    x->st = ATTN_OK, x->formulas = x->constants = 0;
    sheet *sh = calloc(3 + n * (H + 1), sizeof *sh);
    block *wb = calloc(6 * H + 2, sizeof *wb), *heads = calloc(H ? H : 1, sizeof *heads);
    if (!sh || !wb || !heads) {
        xl_fail(x, ATTN_E_NOMEM, "out of memory");
        goto done;
    }
    mat em[2], om[2];
    block e[2], o[2];
    size_t k = 0;
    sheet *in = &sh[k++];
    xl_sheet_open(x, in, "Inputs",
               "Inputs: the embeddings, one row per token and one column per named dimension. "
               "They are the only numbers typed in (with a layer's weights, sheet Weights); every "
               "other cell of the workbook is a formula, so editing one here recomputes every "
               "sheet.");
    for (size_t s = 0; s < n && !x->st; s++) {
        char title[64];
        xl_get_mat(x, doc->traces[s], NULL, "embeddings", 0, 0, 1, &em[s]);
        if (x->st) break;
        xl_next_band(in);
        snprintf(title, sizeof title, "S%zu embeddings: one row per token", s + 1);
        e[s] = xl_constants(in, title, &em[s]);
    }
    int bias_in = 0, bias_out = 0;
    if (H && !x->st) {
        same_weights(x, doc, H);
        weights_sheet(x, &sh[k++], doc->traces[0], H, em[0].cols, wb, &bias_in, &bias_out);
    }
    for (size_t s = 0; s < n && !x->st; s++) {
        if (!H) {
            o[s] = plain_sheet(x, &sh[k++], doc, s, &e[s], &em[s]);
        } else {
            for (size_t h = 0; h < H && !x->st; h++)
                heads[h] = head_sheet(x, &sh[k++], doc, s, h, &e[s], wb + 6 * h, bias_in);
            if (!x->st)
                o[s] = output_sheet(x, &sh[k++], doc, s, H, heads, &wb[6 * H],
                                    bias_out ? &wb[6 * H + 1] : NULL);
        }
        xl_get_mat(x, doc->traces[s], NULL, "output", em[s].rows, o[s].cols, 1, &om[s]);
    }
    if (n == 2 && !x->st) compare_sheet(x, &sh[k++], e, em, o, om);
    for (size_t i = 0; i < k; i++) xl_sheet_finish(&sh[i]);
done:
    free(sh), free(wb), free(heads);
}

attn_status attn_export_xlsx(const attn_doc *doc, const char *path)
{
    attn_status st = attn_export_check_file(path);
    if (!st) st = export_check_doc(doc);
    if (st) return st;
    if (doc->num_heads > XLSX_MAX_HEADS)
        return attn_error(ATTN_E_INVALID, "export xlsx: %zu heads; a live workbook holds at most "
                          "%d (one sheet per head and sequence)", doc->num_heads, XLSX_MAX_HEADS);
    for (size_t s = 0; s < doc->n; s++) {
        const attn_tensor *e = attn_trace_get(doc->traces[s], "embeddings");
        if (e->ndim != 2 || e->shape[0] > XLSX_MAX_TOKENS)
            return attn_error(ATTN_E_INVALID, "export xlsx: sequence %zu has %zu tokens; a live "
                              "workbook holds at most %d per sequence", s + 1,
                              e->ndim == 2 ? e->shape[0] : e->numel, XLSX_MAX_TOKENS);
    }
    /* A dry run sizes the workbook (and checks every entry) before any file. */
    xl x;
    memset(&x, 0, sizeof x);
    build(&x, doc);
    if (x.st) return x.st;
    if (x.formulas > XLSX_MAX_FORMULAS || x.constants > XLSX_MAX_CONSTANTS)
        return attn_error(ATTN_E_INVALID, "export xlsx: the workbook would hold %zu formulas and "
                          "%zu constants; a live workbook is limited to %d of each (use fewer "
                          "tokens, dimensions or heads)", x.formulas, x.constants,
                          XLSX_MAX_FORMULAS);

    attn_atomic_file af;
    if ((st = attn_atomic_open(&af, path))) return st;
    /* libxlsxwriter writes the temporary file by name (same inode, truncated);
     * commit then syncs it through af.f and renames it into place. */
    if (!(x.wb = workbook_new(af.tmp_path))) {
        attn_atomic_abort(&af);
        return attn_error(ATTN_E_NOMEM, "export xlsx: %s: cannot start a workbook", path);
    }
    xl_formats(&x);
    char title[256];
    snprintf(title, sizeof title, "%s", doc->title ? doc->title : "attn");
    lxw_doc_properties props;
    memset(&props, 0, sizeof props);
    props.title = title;
    if (!x.st) xl_check(&x, workbook_set_properties(x.wb, &props));
    if (!x.st) build(&x, doc);
    if (x.st) {
        lxw_workbook_free(x.wb);
        attn_atomic_abort(&af);
        return x.st;
    }
    lxw_error e = workbook_close(x.wb);
    if (e != LXW_NO_ERROR) {
        attn_atomic_abort(&af);
        return attn_error(e == LXW_ERROR_MEMORY_MALLOC_FAILED ? ATTN_E_NOMEM : ATTN_E_IO,
                          "export xlsx: %s: %s", path, lxw_strerror(e));
    }
    return attn_atomic_commit(&af);
}
