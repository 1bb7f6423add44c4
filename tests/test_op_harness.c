/* test_op_harness.c - every public op of ops.h and ops_nn.h, one table (after
 * the idea of ggml's test-backend-ops: one list of cases run through every
 * backend against a reference; not its code).
 *
 * Each op is an op_def of small adapter functions that call the library (fast
 * forward, reference twin, backward): when a signature changes, only its
 * adapter does. Each case (op_case) gives sizes (odd on purpose: vector bodies
 * and tails, single rows) and a variant (masks, scale modes, transposes...):
 *   1. the reference forward runs once, and from it, in double, a five-point
 *      finite difference of loss = Σ out · d_out for a sample of every
 *      differentiable input;
 *   2. at every SIMD level the CPU has, with 1 and with 2 threads, the fast
 *      forward must match the reference, the backward (accumulating into
 *      prefilled gradients) the finite differences, and 2 threads must give
 *      the same bits as 1 (the headers promise independence of the count).
 * Big cases cross the size above which the kernels start threads (or take a
 * blocked / tiled path); their finite differences use a strided sample.
 *
 * Tolerances (each op_def states its forward tolerance):
 *  - forward vs reference, default atol 1e-5, rtol 1e-4: the references
 *    accumulate in double, the kernels in float over at most a few hundred
 *    terms of magnitude <= ~4: ~1e-6 apart; a wrong index, mask or scale is
 *    off by ~1e-1.
 *  - backward vs finite differences, atol 2e-4, rtol 1e-3: with h = 1/32 the
 *    stencil's truncation error h^4/30 · f^(5) ≈ 3e-8 · f^(5) is negligible;
 *    the rounding of the float reference outputs (6e-8 relative) times the
 *    stencil's weights (18/12h ≈ 48), summed over the outputs a perturbation
 *    moves (tens to ~1300, of size <= ~0.5, random signs) is ~1e-5. The
 *    largest difference seen (AVX-512) is 5e-5 (linear, gradients ~1.6). A
 *    wrong gradient (a missing factor, a transposed index, a mask not
 *    applied, a lost tail element) is off by ~1e-2 or more.
 */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/ops.h"
#include "attn/ops_nn.h"

#define MAX_IN 4
#define FD_H (1.0 / 32.0)
#define BWD_ATOL 2e-4
#define BWD_RTOL 1e-3
#define FD_SAMPLES_SMALL 4096 /* effectively every element of a small case */
#define FD_SAMPLES_BIG 8

typedef struct op_case op_case;

/* One case's buffers. The harness allocates and fills in[] (uniform in
 * [-mag, mag]); an op's setup sets the sizes and any integer or mask input. */
typedef struct op_env {
    const op_case *c;
    size_t n_in;
    float *in[MAX_IN];
    size_t in_n[MAX_IN];
    unsigned diff;       /* bit i: input i is differentiable */
    size_t out_n;        /* outputs compared with the reference */
    size_t grad_out_n;   /* the leading outputs the backward differentiates */
    uint32_t *ids;       /* embedding ids, cross-entropy targets */
    uint8_t *bmask;      /* attention masks */
    float *amask, *kmask;
} op_env;

typedef struct op_def {
    const char *name;
    void (*setup)(op_env *e);
    void (*prepare)(op_env *e); /* after the fill, or NULL: special values */
    attn_status (*fwd)(op_env *e, float *out);
    attn_status (*ref)(op_env *e, float *out);
    /* Accumulates d(Σ out[:grad_out_n] · d_out)/d in[i] into g[i] for the
     * differentiable inputs (g[i] is NULL for the others). NULL: no backward. */
    attn_status (*bwd)(op_env *e, const float *d_out, float *const *g);
    int (*available)(const op_case *c); /* NULL: always */
    double f_atol, f_rtol;
} op_def;

struct op_case {
    const op_def *op;
    size_t d[6];   /* sizes; their meaning is the op's (see its setup) */
    unsigned var;  /* the op's variant bits */
    float mag;     /* magnitude of the inputs */
    int big;
};

/* ---- helpers ---------------------------------------------------------------- */
static uint64_t rng_state;
static double urand(void) /* uniform in [0, 1) */
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static float frand(float mag) { return (float)((2.0 * urand() - 1.0) * mag); }

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    assert_non_null(p);
    return p;
}

/* Dropout's p and cross-entropy's label smoothing: the variant in percent. */
static float var_fraction(const op_env *e) { return (float)e->c->var / 100.0f; }

static void add_input(op_env *e, size_t n, int diff)
{
    assert_true(e->n_in < MAX_IN);
    e->in_n[e->n_in] = n;
    if (diff) e->diff |= 1u << e->n_in;
    e->n_in++;
}

static uint32_t *make_ids(size_t n, size_t below)
{
    uint32_t *ids = xcalloc(n, sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = (uint32_t)(urand() * (double)below);
    if (n > 2) ids[n - 1] = ids[0]; /* a repeated id sums its gradients */
    return ids;
}

/* ---- matmul, matmul_nt, linear, gemm: d = {m, k, n}; linear: {rows, in, out} ------ */
static void setup_mm(op_env *e)
{
    const size_t m = e->c->d[0], k = e->c->d[1], n = e->c->d[2];
    add_input(e, m * k, 1), add_input(e, k * n, 1);
    e->out_n = e->grad_out_n = m * n;
}
#define MKN(e) (e)->c->d[0], (e)->c->d[1], (e)->c->d[2]
static attn_status mm_fwd(op_env *e, float *o) { return attn_matmul_forward(o, e->in[0], e->in[1], MKN(e), NULL); }
static attn_status mm_ref(op_env *e, float *o) { return attn_matmul_ref(o, e->in[0], e->in[1], MKN(e)); }
static attn_status mm_bwd(op_env *e, const float *dy, float *const *g)
{
    return attn_matmul_backward(g[0], g[1], dy, e->in[0], e->in[1], MKN(e));
}
static attn_status mmnt_fwd(op_env *e, float *o) { return attn_matmul_nt_forward(o, e->in[0], e->in[1], MKN(e), NULL); }
static attn_status mmnt_ref(op_env *e, float *o) { return attn_matmul_nt_ref(o, e->in[0], e->in[1], MKN(e)); }
static attn_status mmnt_bwd(op_env *e, const float *dy, float *const *g)
{
    return attn_matmul_nt_backward(g[0], g[1], dy, e->in[0], e->in[1], MKN(e));
}

enum { LIN_BIAS = 1, LIN_SET = 2 };
static void setup_linear(op_env *e)
{
    const size_t rows = e->c->d[0], in = e->c->d[1], out = e->c->d[2];
    add_input(e, rows * in, 1), add_input(e, out * in, 1);
    if (e->c->var & LIN_BIAS) add_input(e, out, 1);
    e->out_n = e->grad_out_n = rows * out;
}
static const float *lin_bias(op_env *e) { return (e->c->var & LIN_BIAS) ? e->in[2] : NULL; }
static attn_status linear_fwd(op_env *e, float *o)
{
    return attn_linear_forward(o, e->in[0], e->in[1], lin_bias(e), MKN(e));
}
/* Reference: the reference matmul and the bias added by hand. */
static attn_status linear_ref(op_env *e, float *o)
{
    attn_status st = attn_matmul_nt_ref(o, e->in[0], e->in[1], MKN(e));
    const float *b = lin_bias(e);
    for (size_t i = 0; b && !st && i < e->c->d[0]; i++)
        for (size_t j = 0; j < e->c->d[2]; j++) o[i * e->c->d[2] + j] += b[j];
    return st;
}
/* LIN_SET: attn_linear_backward_set writes d_x into NaN (test_nan_buffer:
 * every element must be written), added to the prefilled gradient after. */
static attn_status linear_bwd(op_env *e, const float *dy, float *const *g)
{
    float *db = (e->c->var & LIN_BIAS) ? g[2] : NULL, *t = test_nan_buffer(e->in_n[0]);
    if (!(e->c->var & LIN_SET))
        return free(t), attn_linear_backward(g[0], g[1], db, dy, e->in[0], e->in[1], MKN(e));
    attn_status st = attn_linear_backward_set(t, g[1], db, dy, e->in[0], e->in[1], MKN(e));
    return test_add_free(g[0], t, e->in_n[0]), st;
}

/* gemm: op(a) · op(b) (+ c0), through attn_gemm with a kernel choice, or
 * the two direct entry points. */
enum { G_TA = 1, G_TB = 2, G_ACC = 4, G_BUILTIN = 8, G_CBLAS = 16, G_DIRECT = 32 };
static void setup_gemm(op_env *e)
{
    const size_t m = e->c->d[0], k = e->c->d[1], n = e->c->d[2];
    add_input(e, m * k, 0), add_input(e, k * n, 0), add_input(e, m * n, 0);
    e->out_n = m * n;
}
static int gemm_available(const op_case *c) { return !(c->var & G_CBLAS) || attn_have_cblas(); }
static attn_status gemm_fwd(op_env *e, float *o)
{
    const unsigned v = e->c->var;
    const int ta = !!(v & G_TA), tb = !!(v & G_TB), acc = !!(v & G_ACC);
    if (v & G_DIRECT)
        return (v & G_CBLAS) ? attn_gemm_cblas(o, e->in[0], e->in[1], MKN(e), tb)
                             : attn_gemm_builtin(o, e->in[0], e->in[1], MKN(e), tb);
    if (acc) memcpy(o, e->in[2], e->out_n * sizeof *o);
    attn_gemm_kernel kern = (v & G_CBLAS) ? ATTN_GEMM_CBLAS : (v & G_BUILTIN) ? ATTN_GEMM_BUILTIN
                                                                             : ATTN_GEMM_AUTO;
    return attn_gemm(o, e->in[0], e->in[1], MKN(e), ta, tb, acc, kern);
}
/* Reference: the stored operands transposed by hand into (M, K) and (K, N). */
static attn_status gemm_ref(op_env *e, float *o)
{
    const size_t m = e->c->d[0], k = e->c->d[1], n = e->c->d[2];
    const unsigned v = e->c->var;
    float *a = xcalloc(m * k, sizeof *a), *b = xcalloc(k * n, sizeof *b);
    for (size_t i = 0; i < m; i++)
        for (size_t p = 0; p < k; p++) a[i * k + p] = (v & G_TA) ? e->in[0][p * m + i] : e->in[0][i * k + p];
    for (size_t p = 0; p < k; p++)
        for (size_t j = 0; j < n; j++) b[p * n + j] = (v & G_TB) ? e->in[1][j * k + p] : e->in[1][p * n + j];
    attn_status st = attn_matmul_ref(o, a, b, m, k, n);
    if (!(v & G_DIRECT) && (v & G_ACC))
        for (size_t i = 0; i < m * n; i++) o[i] += e->in[2][i];
    free(a), free(b);
    return st;
}

/* ---- softmax: d = {rows, cols} ------------------------------------------------- */
enum { SM_INF = 1 };
static void setup_softmax(op_env *e)
{
    add_input(e, e->c->d[0] * e->c->d[1], 1);
    e->out_n = e->grad_out_n = e->c->d[0] * e->c->d[1];
}
/* Some -inf entries and one row of nothing but -inf (zeros out, no NaN). */
static void prepare_softmax(op_env *e)
{
    if (!(e->c->var & SM_INF)) return;
    const size_t rows = e->c->d[0], cols = e->c->d[1];
    for (size_t i = 0; i < rows * cols; i += 3) e->in[0][i] = -INFINITY;
    for (size_t j = 0; j < cols; j++) e->in[0][(rows / 2) * cols + j] = -INFINITY;
}
static attn_status softmax_fwd(op_env *e, float *o) { return attn_softmax_forward(o, e->in[0], e->c->d[0], e->c->d[1], NULL); }
static attn_status softmax_ref(op_env *e, float *o) { return attn_softmax_ref(o, e->in[0], e->c->d[0], e->c->d[1]); }
static attn_status softmax_bwd(op_env *e, const float *dy, float *const *g)
{
    float *y = xcalloc(e->out_n, sizeof *y);
    attn_status st = attn_softmax_forward(y, e->in[0], e->c->d[0], e->c->d[1], NULL);
    if (!st) st = attn_softmax_backward(g[0], dy, y, e->c->d[0], e->c->d[1]);
    free(y);
    return st;
}

/* ---- attention: d = {L, S, d_k, d_v} (sdpa, sdpa_flash) ---------------------------- */
enum {
    A_NOSCALE = 1, A_CUSTOM = 2, A_TEMP = 4, A_BOOL = 8, A_ADD = 16, A_TOPLEFT = 32,
    A_BOTRIGHT = 64, A_NOWEIGHTS = 128
};
static void setup_sdpa(op_env *e)
{
    const size_t l = e->c->d[0], s = e->c->d[1], dk = e->c->d[2], dv = e->c->d[3];
    add_input(e, l * dk, 1), add_input(e, s * dk, 1), add_input(e, s * dv, 1);
    e->grad_out_n = l * dv;
    e->out_n = l * dv + ((e->c->var & A_NOWEIGHTS) ? 0 : l * s);
    e->bmask = xcalloc(l * s, 1);
    e->amask = xcalloc(l * s, sizeof(float));
    for (size_t i = 0; i < l * s; i++) {
        e->bmask[i] = urand() < 0.8;                       /* 80 % may attend */
        e->amask[i] = urand() < 0.15 ? -INFINITY : frand(1); /* and some -inf */
    }
    if (l > 2) memset(e->bmask + s, 0, s); /* row 1 attends to nothing */
}
static attn_sdpa_params sdpa_params(const op_env *e)
{
    const unsigned v = e->c->var;
    attn_sdpa_params p = attn_sdpa_defaults();
    if (v & A_NOSCALE) p.scale_mode = ATTN_SCALE_NONE;
    if (v & A_CUSTOM) p.scale_mode = ATTN_SCALE_CUSTOM, p.scale = 0.37f;
    if (v & A_TEMP) p.temperature = 1.7f;
    if (v & A_BOOL) p.bool_mask = e->bmask;
    if (v & A_ADD) p.add_mask = e->amask;
    if (v & A_TOPLEFT) p.causal = ATTN_CAUSAL_TOP_LEFT;
    if (v & A_BOTRIGHT) p.causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    return p;
}
#define QKV(e) (e)->in[0], (e)->in[1], (e)->in[2]
#define LSDD(e) (e)->c->d[0], (e)->c->d[1], (e)->c->d[2], (e)->c->d[3]
/* The weights follow the output when the case asks for them. */
static float *weights_part(op_env *e, float *o)
{
    return e->out_n > e->grad_out_n ? o + e->grad_out_n : NULL;
}
static attn_status sdpa_fwd(op_env *e, float *o)
{
    attn_sdpa_params p = sdpa_params(e);
    return attn_sdpa_forward(o, weights_part(e, o), QKV(e), LSDD(e), &p, NULL);
}
static attn_status sdpa_ref(op_env *e, float *o)
{
    attn_sdpa_params p = sdpa_params(e);
    return attn_sdpa_ref(o, weights_part(e, o), QKV(e), LSDD(e), &p, NULL);
}
static attn_status sdpa_bwd(op_env *e, const float *dy, float *const *g)
{
    attn_sdpa_params p = sdpa_params(e);
    float *o = xcalloc(e->grad_out_n, sizeof *o), *w = xcalloc(e->c->d[0] * e->c->d[1], sizeof *w);
    attn_status st = attn_sdpa_forward(o, w, QKV(e), LSDD(e), &p, NULL);
    if (!st) st = attn_sdpa_backward(g[0], g[1], g[2], dy, QKV(e), w, LSDD(e), &p);
    free(o), free(w);
    return st;
}
/* The fused kernel gives no weights. */
static void setup_sflash(op_env *e)
{
    setup_sdpa(e);
    e->out_n = e->grad_out_n;
}
static attn_status sflash_fwd(op_env *e, float *o)
{
    attn_sdpa_params p = sdpa_params(e);
    return attn_sdpa_flash_forward(o, NULL, QKV(e), LSDD(e), &p);
}
static attn_status sflash_bwd(op_env *e, const float *dy, float *const *g)
{
    attn_sdpa_params p = sdpa_params(e);
    float *o = xcalloc(e->grad_out_n, sizeof *o), *lse = xcalloc(e->c->d[0], sizeof *lse);
    attn_status st = attn_sdpa_flash_forward(o, lse, QKV(e), LSDD(e), &p);
    if (!st) st = attn_sdpa_flash_backward(g[0], g[1], g[2], dy, QKV(e), o, lse, LSDD(e), &p);
    free(o), free(lse);
    return st;
}

/* ---- flash, many heads: d = {batch, heads, L, S, d_k, d_v} --------------------------- */
enum { F_TOPLEFT = 1, F_BOTRIGHT = 2, F_KEYMASK = 4 };
#define NH(e) ((e)->c->d[0] * (e)->c->d[1])
static void setup_flash(op_env *e)
{
    const size_t *d = e->c->d, nh = d[0] * d[1];
    add_input(e, nh * d[2] * d[4], 1), add_input(e, nh * d[3] * d[4], 1);
    add_input(e, nh * d[3] * d[5], 1);
    e->out_n = e->grad_out_n = nh * d[2] * d[5];
    e->kmask = xcalloc(d[0] * d[3], sizeof(float));
    for (size_t i = 0; i < d[0] * d[3]; i++) e->kmask[i] = urand() < 0.2 ? -INFINITY : frand(1);
}
static attn_flash_desc flash_desc(const op_env *e)
{
    const size_t *d = e->c->d;
    attn_flash_desc fd = attn_flash_desc_make(d[0], d[1], d[2], d[3], d[4], d[5]);
    if (e->c->var & F_TOPLEFT) fd.causal = ATTN_CAUSAL_TOP_LEFT;
    if (e->c->var & F_BOTRIGHT) fd.causal = ATTN_CAUSAL_BOTTOM_RIGHT;
    if (e->c->var & F_KEYMASK) fd.key_mask = e->kmask, fd.key_mask_bs = d[3];
    return fd;
}
static attn_status flash_fwd(op_env *e, float *o)
{
    attn_flash_desc fd = flash_desc(e);
    return attn_flash_forward(o, NULL, QKV(e), &fd);
}
/* Reference: attn_sdpa_ref head by head, the key mask as an additive mask. */
static attn_status flash_ref(op_env *e, float *o)
{
    const size_t *d = e->c->d, L = d[2], S = d[3], dk = d[4], dv = d[5];
    attn_sdpa_params p = attn_sdpa_defaults();
    p.causal = (e->c->var & F_TOPLEFT) ? ATTN_CAUSAL_TOP_LEFT
               : (e->c->var & F_BOTRIGHT) ? ATTN_CAUSAL_BOTTOM_RIGHT : ATTN_CAUSAL_NONE;
    float *am = xcalloc(L * S, sizeof *am);
    attn_status st = ATTN_OK;
    for (size_t b = 0; b < d[0]; b++)
        for (size_t h = 0; h < d[1] && !st; h++) {
            const size_t x = b * d[1] + h;
            for (size_t i = 0; i < L; i++)
                for (size_t j = 0; j < S; j++) am[i * S + j] = e->kmask[b * S + j];
            p.add_mask = (e->c->var & F_KEYMASK) ? am : NULL;
            st = attn_sdpa_ref(o + x * L * dv, NULL, e->in[0] + x * L * dk, e->in[1] + x * S * dk,
                               e->in[2] + x * S * dv, L, S, dk, dv, &p, NULL);
        }
    free(am);
    return st;
}
static attn_status flash_bwd(op_env *e, const float *dy, float *const *g)
{
    attn_flash_desc fd = flash_desc(e);
    float *o = xcalloc(e->out_n, sizeof *o), *lse = xcalloc(NH(e) * e->c->d[2], sizeof *lse);
    attn_status st = attn_flash_forward(o, lse, QKV(e), &fd);
    if (!st) st = attn_flash_backward(g[0], g[1], g[2], dy, QKV(e), o, lse, &fd);
    free(o), free(lse);
    return st;
}

/* ---- layer norm: d = {rows, dim} ---------------------------------------------------- */
enum { LN_NOBIAS = 1, LN_NOSAVE = 2 };
#define LN_EPS 1e-5f
static void setup_layernorm(op_env *e)
{
    const size_t rows = e->c->d[0], dim = e->c->d[1];
    add_input(e, rows * dim, 1), add_input(e, dim, 1);
    if (!(e->c->var & LN_NOBIAS)) add_input(e, dim, 1);
    e->out_n = e->grad_out_n = rows * dim;
}
static const float *ln_bias(op_env *e) { return (e->c->var & LN_NOBIAS) ? NULL : e->in[2]; }
static attn_status ln_fwd(op_env *e, float *o)
{
    const size_t rows = e->c->d[0];
    float *mean = NULL, *rstd = NULL;
    if (!(e->c->var & LN_NOSAVE)) mean = xcalloc(rows, sizeof *mean), rstd = xcalloc(rows, sizeof *rstd);
    attn_status st = attn_layernorm_forward(o, mean, rstd, e->in[0], e->in[1], ln_bias(e), rows,
                                            e->c->d[1], LN_EPS, NULL);
    free(mean), free(rstd);
    return st;
}
static attn_status ln_ref(op_env *e, float *o)
{
    return attn_layernorm_ref(o, e->in[0], e->in[1], ln_bias(e), e->c->d[0], e->c->d[1], LN_EPS);
}
static attn_status ln_bwd(op_env *e, const float *dy, float *const *g)
{
    const size_t rows = e->c->d[0], dim = e->c->d[1];
    float *y = xcalloc(rows * dim, sizeof *y), *mean = xcalloc(rows, sizeof *mean);
    float *rstd = xcalloc(rows, sizeof *rstd);
    attn_status st = attn_layernorm_forward(y, mean, rstd, e->in[0], e->in[1], ln_bias(e), rows, dim, LN_EPS, NULL);
    if (!st)
        st = attn_layernorm_backward(g[0], g[1], (e->c->var & LN_NOBIAS) ? NULL : g[2], dy, e->in[0],
                                     e->in[1], mean, rstd, rows, dim);
    free(y), free(mean), free(rstd);
    return st;
}

/* ---- GELU and dropout: d = {n}; dropout's p is var / 100 ---------------------------- */
static void setup_elementwise(op_env *e)
{
    add_input(e, e->c->d[0], 1);
    e->out_n = e->grad_out_n = e->c->d[0];
}
static attn_status gelu_fwd(op_env *e, float *o) { return attn_gelu_forward(o, e->in[0], e->c->d[0], NULL); }
static attn_status gelu_ref(op_env *e, float *o) { return attn_gelu_ref(o, e->in[0], e->c->d[0]); }
static attn_status gelu_bwd(op_env *e, const float *dy, float *const *g)
{
    if (!e->c->var) return attn_gelu_backward(g[0], dy, e->in[0], e->c->d[0]);
    float *t = test_nan_buffer(e->c->d[0]); /* var 1: attn_gelu_backward_set, as LIN_SET */
    attn_status st = attn_gelu_backward_set(t, dy, e->in[0], e->c->d[0]);
    return test_add_free(g[0], t, e->c->d[0]), st;
}

#define DROP_KEY 0x5eedULL
static attn_status dropout_fwd(op_env *e, float *o)
{
    return attn_dropout_forward(o, e->in[0], e->c->d[0], var_fraction(e), DROP_KEY, NULL);
}
/* There is no reference twin: the mask is the library's hash. The reference
 * takes the mask from a forward of ones, checks that every entry is 0 or
 * exactly 1/(1-p) (float) and that about 1-p of them are kept, and applies it. */
static attn_status dropout_ref(op_env *e, float *o)
{
    const size_t n = e->c->d[0];
    const float p = var_fraction(e), keep = 1.0f / (1.0f - p);
    float *ones = xcalloc(n, sizeof *ones), *m = xcalloc(n, sizeof *m);
    for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
    attn_status st = attn_dropout_forward(m, ones, n, p, DROP_KEY, NULL);
    size_t kept = 0, bad = 0;
    for (size_t i = 0; i < n && !st; i++) {
        bad += !(m[i] == 0.0f || m[i] == keep);
        kept += m[i] != 0.0f;
        o[i] = m[i] != 0.0f ? e->in[0][i] * keep : 0.0f; /* x · (1/(1-p)) in float */
    }
    /* Binomial: 5 standard deviations (+1 for tiny n). */
    const double mean = (double)n * (1.0 - p), sd = sqrt((double)n * p * (1.0 - p));
    assert_true(bad == 0 && fabs((double)kept - mean) <= 5.0 * sd + 1.0);
    free(ones), free(m);
    return st;
}
static attn_status dropout_bwd(op_env *e, const float *dy, float *const *g)
{
    return attn_dropout_backward(g[0], dy, e->c->d[0], var_fraction(e), DROP_KEY);
}

/* ---- embedding: d = {n, dim, vocab}; var 1: accumulate into a base ------------------ */
static void setup_embedding(op_env *e)
{
    const size_t n = e->c->d[0], dim = e->c->d[1], vocab = e->c->d[2];
    add_input(e, vocab * dim, 1), add_input(e, n * dim, 0);
    e->ids = make_ids(n, vocab);
    e->out_n = e->grad_out_n = n * dim;
}
static attn_status emb_fwd(op_env *e, float *o)
{
    if (e->c->var) memcpy(o, e->in[1], e->out_n * sizeof *o);
    return attn_embedding_forward(o, e->ids, e->in[0], MKN(e), (int)e->c->var, NULL);
}
static attn_status emb_ref(op_env *e, float *o)
{
    const size_t dim = e->c->d[1];
    for (size_t i = 0; i < e->c->d[0]; i++)
        for (size_t j = 0; j < dim; j++)
            o[i * dim + j] = (e->c->var ? e->in[1][i * dim + j] : 0.0f) + e->in[0][e->ids[i] * dim + j];
    return ATTN_OK;
}
static attn_status emb_bwd(op_env *e, const float *dy, float *const *g)
{
    return attn_embedding_backward(g[0], dy, e->ids, MKN(e));
}

/* ---- cross-entropy: d = {rows, vocab}, label smoothing var / 100. Outputs: the mean
 * loss (which the backward differentiates), each row's loss, the probabilities. ------- */

static void setup_ce(op_env *e)
{
    const size_t rows = e->c->d[0], vocab = e->c->d[1];
    add_input(e, rows * vocab, 1);
    e->ids = make_ids(rows, vocab);
    e->out_n = 1 + rows + rows * vocab;
    e->grad_out_n = 1;
}
static attn_status ce_fwd(op_env *e, float *o)
{
    double loss = 0;
    const size_t rows = e->c->d[0];
    attn_status st = attn_crossentropy_forward(&loss, o + 1, o + 1 + rows, e->in[0], e->ids, rows,
                                               e->c->d[1], var_fraction(e), NULL);
    o[0] = (float)loss;
    return st;
}
/* Reference: attn_crossentropy_ref on all rows and on each, attn_softmax_ref;
 * with smoothing ε, each row's loss gains ε·(mean over classes of −log p −
 * its cross-entropy), computed here in double from the reference softmax. */
static attn_status ce_ref(op_env *e, float *o)
{
    const size_t rows = e->c->d[0], vocab = e->c->d[1];
    double loss = 0, smooth = 0;
    attn_status st = attn_crossentropy_ref(&loss, e->in[0], e->ids, rows, vocab);
    const double mean_ce = loss;
    for (size_t i = 0; i < rows && !st; i++) {
        st = attn_crossentropy_ref(&loss, e->in[0] + i * vocab, e->ids + i, 1, vocab);
        o[1 + i] = (float)loss;
    }
    float *p = o + 1 + rows;
    if (!st) st = attn_softmax_ref(p, e->in[0], rows, vocab);
    for (size_t i = 0; i < rows * vocab; i++) smooth -= log((double)p[i]) / (double)(vocab * rows);
    o[0] = (float)(mean_ce + var_fraction(e) * (smooth - mean_ce));
    return st;
}
static attn_status ce_bwd(op_env *e, const float *dy, float *const *g)
{
    const size_t rows = e->c->d[0], vocab = e->c->d[1];
    float *probs = xcalloc(rows * vocab, sizeof *probs);
    double loss;
    attn_status st = attn_crossentropy_forward(&loss, NULL, probs, e->in[0], e->ids, rows, vocab,
                                               var_fraction(e), NULL);
    if (!st)
        st = attn_crossentropy_backward(g[0], probs, e->ids, dy[0] / (float)rows, rows, vocab,
                                        var_fraction(e));
    free(probs);
    return st;
}

/* ---- the ops ----------------------------------------------------------------------- */
#define TOL_DEFAULT 1e-5, 1e-4
static const op_def OP_MATMUL = {"matmul", setup_mm, NULL, mm_fwd, mm_ref, mm_bwd, NULL, TOL_DEFAULT};
static const op_def OP_MATMUL_NT = {"matmul_nt", setup_mm, NULL, mmnt_fwd, mmnt_ref, mmnt_bwd, NULL, TOL_DEFAULT};
static const op_def OP_LINEAR = {"linear", setup_linear, NULL, linear_fwd, linear_ref, linear_bwd, NULL, TOL_DEFAULT};
static const op_def OP_GEMM = {"gemm", setup_gemm, NULL, gemm_fwd, gemm_ref, NULL, gemm_available, TOL_DEFAULT};
static const op_def OP_SOFTMAX = {"softmax", setup_softmax, prepare_softmax, softmax_fwd, softmax_ref,
                                  softmax_bwd, NULL, TOL_DEFAULT};
static const op_def OP_SDPA = {"sdpa", setup_sdpa, NULL, sdpa_fwd, sdpa_ref, sdpa_bwd, NULL, TOL_DEFAULT};
static const op_def OP_SDPA_FLASH = {"sdpa_flash", setup_sflash, NULL, sflash_fwd, sdpa_ref, sflash_bwd, NULL,
                                     TOL_DEFAULT};
static const op_def OP_FLASH = {"flash", setup_flash, NULL, flash_fwd, flash_ref, flash_bwd, NULL, TOL_DEFAULT};
static const op_def OP_LAYERNORM = {"layernorm", setup_layernorm, NULL, ln_fwd, ln_ref, ln_bwd, NULL, TOL_DEFAULT};
/* GELU: tanh in float vs double over inputs up to 4: 1e-6 relative. */
static const op_def OP_GELU = {"gelu", setup_elementwise, NULL, gelu_fwd, gelu_ref, gelu_bwd, NULL, 1e-6, 1e-5};
/* Dropout and embedding copy or scale single values: the same bits. */
static const op_def OP_DROPOUT = {"dropout", setup_elementwise, NULL, dropout_fwd, dropout_ref, dropout_bwd,
                                  NULL, 0, 0};
static const op_def OP_EMBEDDING = {"embedding", setup_embedding, NULL, emb_fwd, emb_ref, emb_bwd, NULL, 0, 0};
static const op_def OP_CE = {"crossentropy", setup_ce, NULL, ce_fwd, ce_ref, ce_bwd, NULL, TOL_DEFAULT};

/* ---- the cases ----------------------------------------------------------------------- */
#include "op_harness_cases.h"

/* ---- the harness ---------------------------------------------------------------------- */
typedef struct fd_grad { /* the sampled elements of one input, their gradients */
    size_t *idx, n;
    double *g;
} fd_grad;

static double loss_of(op_env *e, const float *d_out, float *scratch)
{
    assert_int_equal(e->c->op->ref(e, scratch), ATTN_OK);
    double s = 0;
    for (size_t j = 0; j < e->grad_out_n; j++)
        if (d_out[j] != 0.0f) s += (double)scratch[j] * (double)d_out[j];
    return s;
}

/* Five-point central differences of the reference's loss, in double. */
static void finite_differences(op_env *e, const float *d_out, fd_grad *fd)
{
    float *scratch = xcalloc(e->out_n, sizeof *scratch);
    const size_t cap = e->c->big ? FD_SAMPLES_BIG : FD_SAMPLES_SMALL;
    static const double off[4] = {-2, -1, 1, 2}, wt[4] = {1, -8, 8, -1};
    for (size_t i = 0; i < e->n_in; i++) {
        if (!(e->diff >> i & 1)) continue;
        const size_t n = e->in_n[i], cnt = n < cap ? n : cap;
        fd[i].idx = xcalloc(cnt, sizeof *fd[i].idx);
        fd[i].g = xcalloc(cnt, sizeof *fd[i].g);
        fd[i].n = cnt;
        for (size_t t = 0; t < cnt; t++) {
            const size_t at = cnt == n ? t : (t * (n - 1)) / (cnt - 1); /* first and last too */
            const float x0 = e->in[i][at];
            double acc = 0;
            for (int s = 0; s < 4; s++) {
                e->in[i][at] = (float)(x0 + off[s] * FD_H);
                acc += wt[s] * loss_of(e, d_out, scratch);
            }
            e->in[i][at] = x0;
            fd[i].idx[t] = at;
            fd[i].g[t] = isfinite(x0) ? acc / (12.0 * FD_H) : 0.0; /* -inf inputs: no gradient */
        }
    }
    free(scratch);
}

static void check_grads(op_env *e, float *const *g, const float *const *g0, const fd_grad *fd,
                        const char *what)
{
    for (size_t i = 0; i < e->n_in; i++)
        for (size_t t = 0; g[i] && t < fd[i].n; t++) {
            const size_t at = fd[i].idx[t];
            const double got = (double)g[i][at] - (double)g0[i][at], want = fd[i].g[t];
            if (!(fabs(got - want) <= BWD_ATOL + BWD_RTOL * fabs(want)))
                fail_msg("%s: d input %zu [%zu] = %.7g, finite differences %.7g", what, i, at, got, want);
        }
}

typedef struct run_out { float *out, *g[MAX_IN]; } run_out;

/* The fast forward and the backward at the current SIMD level and thread count. */
static void run_fast(op_env *e, run_out *r, const float *d_out, const float *const *g0,
                     const float *ref, const fd_grad *fd, const char *what)
{
    const op_def *op = e->c->op;
    assert_int_equal(op->fwd(e, r->out), ATTN_OK);
    if (op->f_atol == 0 && op->f_rtol == 0)
        assert_memory_equal(r->out, ref, e->out_n * sizeof *ref);
    else
        assert_close_f32(r->out, ref, e->out_n, op->f_atol, op->f_rtol, what);
    if (!op->bwd) return;
    for (size_t i = 0; i < e->n_in; i++)
        if (r->g[i]) memcpy(r->g[i], g0[i], e->in_n[i] * sizeof(float));
    assert_int_equal(op->bwd(e, d_out, r->g), ATTN_OK);
    check_grads(e, r->g, g0, fd, what);
}

static void run_alloc(run_out *r, const op_env *e)
{
    r->out = xcalloc(e->out_n, sizeof(float));
    for (size_t i = 0; i < MAX_IN; i++)
        r->g[i] = i < e->n_in && (e->diff >> i & 1) ? xcalloc(e->in_n[i], sizeof(float)) : NULL;
}

static void run_free(run_out *r)
{
    for (size_t i = 0; i < MAX_IN; i++) free(r->g[i]);
    free(r->out);
}

static void assert_same_bits(const run_out *a, const run_out *b, const op_env *e, const char *what)
{
    if (memcmp(a->out, b->out, e->out_n * sizeof(float)))
        fail_msg("%s: the forward differs between 1 and 2 threads", what);
    for (size_t i = 0; i < e->n_in; i++)
        if (a->g[i] && memcmp(a->g[i], b->g[i], e->in_n[i] * sizeof(float)))
            fail_msg("%s: d input %zu differs between 1 and 2 threads", what, i);
}

static void run_case(const op_case *c, size_t index)
{
    op_env e = {.c = c};
    rng_state = 0x9e3779b97f4a7c15ULL + index * 7919;
    c->op->setup(&e);
    for (size_t i = 0; i < e.n_in; i++) {
        e.in[i] = xcalloc(e.in_n[i], sizeof(float));
        for (size_t j = 0; j < e.in_n[i]; j++) e.in[i][j] = frand(c->mag);
    }
    if (c->op->prepare) c->op->prepare(&e);
    float *ref = xcalloc(e.out_n, sizeof *ref), *d_out = xcalloc(e.grad_out_n, sizeof *d_out);
    float *g0[MAX_IN] = {0};
    fd_grad fd[MAX_IN] = {{0}};
    for (size_t j = 0; j < e.grad_out_n; j++) d_out[j] = frand(1);
    for (size_t i = 0; i < e.n_in; i++) {
        if (!(e.diff >> i & 1)) continue;
        g0[i] = xcalloc(e.in_n[i], sizeof(float)); /* gradients accumulate onto this */
        for (size_t j = 0; j < e.in_n[i]; j++) g0[i][j] = frand(1);
    }
    const attn_simd saved = attn_simd_level();
    const int saved_threads = attn_threads();
    assert_int_equal(attn_simd_set(ATTN_SIMD_SCALAR), ATTN_OK);
    assert_int_equal(c->op->ref(&e, ref), ATTN_OK);
    if (c->op->bwd) finite_differences(&e, d_out, fd);
    run_out one, two;
    run_alloc(&one, &e), run_alloc(&two, &e);
    for (int lv = ATTN_SIMD_SCALAR; lv <= (int)attn_simd_best(); lv++) {
        if (attn_simd_set((attn_simd)lv) != ATTN_OK) continue;
        char what[160];
        const size_t *d = c->d;
        snprintf(what, sizeof what, "%s case %zu (%zu %zu %zu %zu %zu %zu var %u) at %s", c->op->name,
                 index, d[0], d[1], d[2], d[3], d[4], d[5], c->var, attn_simd_name((attn_simd)lv));
        attn_set_threads(1);
        run_fast(&e, &one, d_out, (const float *const *)g0, ref, fd, what);
        attn_set_threads(2);
        run_fast(&e, &two, d_out, (const float *const *)g0, ref, fd, what);
        assert_same_bits(&one, &two, &e, what);
    }
    attn_simd_set(saved);
    attn_set_threads(saved_threads);
    run_free(&one), run_free(&two);
    for (size_t i = 0; i < MAX_IN; i++) free(e.in[i]), free(g0[i]), free(fd[i].idx), free(fd[i].g);
    free(ref), free(d_out), free(e.ids), free(e.bmask), free(e.amask), free(e.kmask);
}

static void test_op(void **state) /* one cmocka test per op: all of its cases */
{
    const op_def *op = *state;
    size_t ran = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
        if (CASES[i].op != op || (op->available && !op->available(&CASES[i]))) continue;
        run_case(&CASES[i], i);
        ran++;
    }
    assert_true(ran > 0);
}

/* The small products' row kernel sums each output the same way on every
 * SIMD level (gemv_kern.h): a token's logits do not depend on the CPU. */
static void test_matmul_nt_levels_same_bits(void **state)
{
    (void)state;
    static const size_t shapes[][3] = {{1, 768, 77}, {1, 777, 700}, {2, 45, 9}, {1, 3, 17}};
    const attn_simd saved = attn_simd_level();
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const size_t m = shapes[s][0], k = shapes[s][1], n = shapes[s][2];
        float *a = xcalloc(m * k, sizeof *a), *b = xcalloc(n * k, sizeof *b);
        float *c0 = xcalloc(m * n, sizeof *c0), *c1 = xcalloc(m * n, sizeof *c1);
        for (size_t i = 0; i < m * k; i++) a[i] = frand(1);
        for (size_t i = 0; i < n * k; i++) b[i] = frand(1);
        assert_int_equal(attn_simd_set(ATTN_SIMD_SCALAR), ATTN_OK);
        assert_int_equal(attn_matmul_nt_forward(c0, a, b, m, k, n, NULL), ATTN_OK);
        for (int lv = ATTN_SIMD_AVX2; lv <= (int)attn_simd_best(); lv++) {
            assert_int_equal(attn_simd_set((attn_simd)lv), ATTN_OK);
            memset(c1, 0, m * n * sizeof *c1);
            assert_int_equal(attn_matmul_nt_forward(c1, a, b, m, k, n, NULL), ATTN_OK);
            if (memcmp(c0, c1, m * n * sizeof *c0))
                fail_msg("matmul_nt %zu x %zu x %zu: %s differs from scalar", m, k, n,
                         attn_simd_name((attn_simd)lv));
        }
        free(a), free(b), free(c0), free(c1);
    }
    attn_simd_set(saved);
}

#define OP_TEST(def) {(def).name, test_op, NULL, NULL, (void *)&(def)}

int main(void)
{
    const struct CMUnitTest tests[] = {
        OP_TEST(OP_MATMUL),    OP_TEST(OP_MATMUL_NT), OP_TEST(OP_LINEAR),  OP_TEST(OP_GEMM),
        OP_TEST(OP_SOFTMAX),   OP_TEST(OP_SDPA),      OP_TEST(OP_SDPA_FLASH), OP_TEST(OP_FLASH),
        OP_TEST(OP_LAYERNORM), OP_TEST(OP_GELU),      OP_TEST(OP_DROPOUT), OP_TEST(OP_EMBEDDING),
        OP_TEST(OP_CE),
        cmocka_unit_test(test_matmul_nt_levels_same_bits)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
