/* adamw.c - AdamW as torch.optim.AdamW (and lazy, row-sparse updates as
 * torch.optim.SparseAdam for embedding tables), global-norm clipping, the
 * learning-rate schedule and batch sampling. */
/* Each product and sum rounded on its own (GCC's ISO C mode does not
 * contract them into FMAs; clang is told so): the SIMD updates below promise
 * the plain loop's bits. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/cpu.h"
#include "attn/train.h"

/* Elements per chunk of the dense update, and the total from which the
 * threads share the chunks. */
#define CHUNK 4096
#define PAR_MIN 65536

/* One chunk of a dense parameter: its elements [at, at + len). */
typedef struct adam_chunk {
    size_t param, at, len;
} adam_chunk;

struct attn_adamw {
    attn_adamw_config c;
    const attn_param_ref *p;
    size_t n, steps;
    float **m, **v;
    float *store;
    uint32_t **rows; /* per parameter: NULL (dense) or its touched rows */
    size_t *n_rows;
    adam_chunk *chunks; /* every parameter cut in chunks, in order: one parallel loop */
    size_t n_chunks, total;
};

attn_status attn_adamw_create(attn_adamw **out, const attn_param_ref *params, size_t n,
                              const attn_adamw_config *c)
{
    if (!out || !params || !c || !n) return attn_error(ATTN_E_INVALID, "attn_adamw_create: bad argument");
    *out = NULL;
    if (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1) || !(c->eps > 0) ||
        !(c->weight_decay >= 0))
        return attn_error(ATTN_E_INVALID,
                          "AdamW: betas must be in [0, 1), eps > 0 and weight decay >= 0");
    size_t total = 0, n_chunks = 0;
    for (size_t i = 0; i < n; i++) total += params[i].numel, n_chunks += (params[i].numel + CHUNK - 1) / CHUNK;
    attn_adamw *o = calloc(1, sizeof *o);
    if (o) {
        o->m = calloc(n, sizeof *o->m), o->v = calloc(n, sizeof *o->v);
        o->rows = calloc(n, sizeof *o->rows), o->n_rows = calloc(n, sizeof *o->n_rows);
        o->store = calloc(2 * total, sizeof(float)); /* one allocation for both moments */
        o->chunks = calloc(n_chunks ? n_chunks : 1, sizeof *o->chunks);
    }
    if (!o || !o->m || !o->v || !o->rows || !o->n_rows || !o->store || !o->chunks) {
        attn_adamw_free(o);
        return attn_error(ATTN_E_NOMEM, "cannot allocate AdamW moments for %zu parameters", total);
    }
    o->c = *c, o->p = params, o->n = n;
    float *at = o->store;
    for (size_t i = 0; i < n; i++) o->m[i] = at, at += params[i].numel;
    for (size_t i = 0; i < n; i++) o->v[i] = at, at += params[i].numel;
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < params[i].numel; a += CHUNK) {
            adam_chunk *ch = &o->chunks[o->n_chunks++];
            ch->param = i, ch->at = a, ch->len = params[i].numel - a < CHUNK ? params[i].numel - a : CHUNK;
        }
    o->total = total;
    *out = o;
    return ATTN_OK;
}

void attn_adamw_free(attn_adamw *o)
{
    if (!o) return;
    if (o->rows)
        for (size_t i = 0; i < o->n; i++) free(o->rows[i]);
    free(o->rows), free(o->n_rows);
    free(o->m), free(o->v), free(o->store), free(o->chunks), free(o);
}

size_t attn_adamw_steps(const attn_adamw *o) { return o ? o->steps : 0; }
void attn_adamw_set_steps(attn_adamw *o, size_t steps)
{
    if (o) o->steps = steps;
}
void attn_adamw_moments(attn_adamw *o, size_t i, float **m, float **v)
{
    *m = o->m[i], *v = o->v[i];
}

attn_status attn_adamw_set_rows(attn_adamw *o, size_t i, const uint32_t *rows, size_t n_rows)
{
    if (!o || i >= o->n) return attn_error(ATTN_E_INVALID, "attn_adamw_set_rows: bad argument");
    const attn_param_ref *p = &o->p[i];
    if (!rows) {
        free(o->rows[i]);
        o->rows[i] = NULL, o->n_rows[i] = 0;
        return ATTN_OK;
    }
    if (p->ndim != 2)
        return attn_error(ATTN_E_INVALID, "AdamW: %s is not a matrix, it cannot be row-sparse", p->name);
    if (n_rows > p->shape[0])
        return attn_error(ATTN_E_INVALID, "AdamW: %zu rows given for %s of %zu rows", n_rows, p->name,
                          p->shape[0]);
    for (size_t r = 0; r < n_rows; r++)
        if (rows[r] >= p->shape[0] || (r && rows[r] <= rows[r - 1]))
            return attn_error(ATTN_E_INVALID,
                              "AdamW: the rows of %s must be distinct, ascending and below %zu",
                              p->name, p->shape[0]);
    if (!o->rows[i] && !(o->rows[i] = malloc((p->shape[0] ? p->shape[0] : 1) * sizeof **o->rows)))
        return attn_error(ATTN_E_NOMEM, "cannot allocate AdamW's row list for %s", p->name);
    if (n_rows) memcpy(o->rows[i], rows, n_rows * sizeof *rows);
    o->n_rows[i] = n_rows;
    return ATTN_OK;
}

/* The AdamW update of n elements; the same expression for dense and sparse
 * steps, so a sparse step over every row equals the dense one bit for bit.
 * The reference: plain C, which the compiler leaves scalar (sqrtf may set
 * errno, so it does not vectorise the loop). */
static void update_c(float *restrict w, float *restrict m, float *restrict v,
                     const float *restrict g, size_t n, float decay, float b1, float b2,
                     float eps, float step_size, float bc2_sqrt)
{
    for (size_t j = 0; j < n; j++) {
        w[j] *= decay;
        m[j] = b1 * m[j] + (1.0f - b1) * g[j];
        v[j] = b2 * v[j] + (1.0f - b2) * g[j] * g[j];
        const float denom = sqrtf(v[j]) / bc2_sqrt + eps;
        w[j] -= step_size * (m[j] / denom);
    }
}

/* The same operations in the same order on 8 or 16 lanes (no contraction
 * into FMAs: each product and sum rounded as in update_c), so every SIMD
 * level gives update_c's bits, about five times faster. */
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define ADAM_SIMD_BODY(V, P)                                                                    \
    const V vd = P##_set1_ps(decay), vb1 = P##_set1_ps(b1), vc1 = P##_set1_ps(1.0f - b1);      \
    const V vb2 = P##_set1_ps(b2), vc2 = P##_set1_ps(1.0f - b2), veps = P##_set1_ps(eps);      \
    const V vss = P##_set1_ps(step_size), vbc = P##_set1_ps(bc2_sqrt);                         \
    const size_t L = sizeof(V) / sizeof(float);                                                \
    size_t j = 0;                                                                              \
    for (; j + L <= n; j += L) {                                                               \
        const V gj = P##_loadu_ps(g + j);                                                      \
        const V wj = P##_mul_ps(P##_loadu_ps(w + j), vd);                                      \
        const V mj = P##_add_ps(P##_mul_ps(vb1, P##_loadu_ps(m + j)), P##_mul_ps(vc1, gj));   \
        const V vj = P##_add_ps(P##_mul_ps(vb2, P##_loadu_ps(v + j)),                          \
                                P##_mul_ps(P##_mul_ps(vc2, gj), gj));                          \
        const V den = P##_add_ps(P##_div_ps(P##_sqrt_ps(vj), vbc), veps);                      \
        P##_storeu_ps(m + j, mj);                                                              \
        P##_storeu_ps(v + j, vj);                                                              \
        P##_storeu_ps(w + j, P##_sub_ps(wj, P##_mul_ps(vss, P##_div_ps(mj, den))));           \
    }                                                                                          \
    update_c(w + j, m + j, v + j, g + j, n - j, decay, b1, b2, eps, step_size, bc2_sqrt)

__attribute__((target("avx512f"))) static void
update_avx512(float *restrict w, float *restrict m, float *restrict v, const float *restrict g,
              size_t n, float decay, float b1, float b2, float eps, float step_size, float bc2_sqrt)
{
    ADAM_SIMD_BODY(__m512, _mm512);
}

__attribute__((target("avx2"))) static void
update_avx2(float *restrict w, float *restrict m, float *restrict v, const float *restrict g,
            size_t n, float decay, float b1, float b2, float eps, float step_size, float bc2_sqrt)
{
    ADAM_SIMD_BODY(__m256, _mm256);
}
#undef ADAM_SIMD_BODY
#endif

typedef void (*update_fn)(float *restrict, float *restrict, float *restrict, const float *restrict,
                          size_t, float, float, float, float, float, float);

static update_fn update_kernel(void)
{
#if defined(__GNUC__) && defined(__x86_64__)
    const attn_simd level = attn_simd_level();
    if (level >= ATTN_SIMD_AVX512) return update_avx512;
    if (level >= ATTN_SIMD_AVX2) return update_avx2;
#endif
    return update_c;
}

attn_status attn_adamw_step(attn_adamw *o, float lr)
{
    if (!o) return attn_error(ATTN_E_INVALID, "attn_adamw_step: NULL");
    o->steps++;
    const float b1 = o->c.beta1, b2 = o->c.beta2, eps = o->c.eps;
    const double bc1 = 1.0 - pow((double)b1, (double)o->steps);
    const double bc2 = 1.0 - pow((double)b2, (double)o->steps);
    const float step_size = (float)((double)lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float decay_on = 1.0f - lr * o->c.weight_decay;
    const update_fn update = update_kernel();
    /* The dense parameters: all their chunks in one parallel loop (one
     * region a step instead of one per tensor); elementwise, so the split
     * changes no bit. Handed out as threads come free: the lazy parameters'
     * chunks are skipped, and a static split gave a classifier's whole dense
     * update to the thread that did not get its embedding's chunks. */
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 8) if (o->total >= PAR_MIN)
#endif
    for (size_t q = 0; q < o->n_chunks; q++) {
        const adam_chunk *ch = &o->chunks[q];
        const attn_param_ref *p = &o->p[ch->param];
        if (o->rows[ch->param]) continue; /* lazy: below */
        const size_t at = ch->at;
        update(p->data + at, o->m[ch->param] + at, o->v[ch->param] + at, p->grad + at, ch->len,
               p->decay ? decay_on : 1.0f, b1, b2, eps, step_size, bc2_sqrt);
    }
    for (size_t i = 0; i < o->n; i++) {
        if (!o->rows[i]) continue;
        const attn_param_ref *p = &o->p[i];
        float *w = p->data, *m = o->m[i], *v = o->v[i];
        const float *g = p->grad;
        const float decay = p->decay ? decay_on : 1.0f;
        const uint32_t *rows = o->rows[i]; /* only the touched rows */
        const size_t cols = p->shape[1], nr = o->n_rows[i];
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel for schedule(static) if (nr * cols >= PAR_MIN)
#endif
        for (size_t r = 0; r < nr; r++) {
            const size_t at = (size_t)rows[r] * cols;
            update(w + at, m + at, v + at, g + at, cols, decay, b1, b2, eps, step_size, bc2_sqrt);
        }
    }
    return ATTN_OK;
}

/* Partial sums of the squares: SQ_LANES independent sums (element j of a
 * run into lane j mod SQ_LANES), folded pairwise at the end. Fixed lanes, so
 * the bits do not depend on the SIMD level or the threads; a single running
 * sum waited 4 cycles an element for the add before it. Each square of a
 * float is exact in double, so a fused multiply-add changes no bit. */
#define SQ_LANES 32

/* acc[(at + j) mod SQ_LANES] += g[j]², j < n; at moves past them (so rows
 * given one by one land in the lanes of the whole tensor's run). */
static void squares_into(double *acc, const float *g, size_t n, size_t *at)
{
    size_t j = 0, l = *at % SQ_LANES;
    for (; j < n && l; j++, l = (l + 1) % SQ_LANES) acc[l] += (double)g[j] * g[j];
    for (; j + SQ_LANES <= n; j += SQ_LANES)
        for (size_t i = 0; i < SQ_LANES; i++) acc[i] += (double)g[j + i] * g[j + i];
    for (size_t i = 0; j + i < n; i++) acc[i] += (double)g[j + i] * g[j + i];
    *at += n;
}

/* Sum of squares of one parameter's gradient (rows: NULL or its touched rows). */
static double sum_squares(const attn_param_ref *p, const uint32_t *rows, size_t n_rows)
{
    double acc[SQ_LANES] = {0};
    size_t at = 0;
    if (!rows) {
        squares_into(acc, p->grad, p->numel, &at);
    } else {
        const size_t cols = p->shape[1];
        for (size_t r = 0; r < n_rows; r++) squares_into(acc, p->grad + (size_t)rows[r] * cols, cols, &at);
    }
    for (size_t w = SQ_LANES / 2; w; w /= 2)
        for (size_t l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

/* Tensors per group of the norm's partial sums (on the stack). */
#define CLIP_GROUP 256

static size_t clip_work(const attn_param_ref *p, uint32_t *const *rows, const size_t *n_rows, size_t i)
{
    return rows && rows[i] ? n_rows[i] * p[i].shape[1] : p[i].numel;
}

/* Each tensor's sum of squares alone (in order, in double), the tensors in
 * parallel, then added in the tensors' order: the same bits as one loop,
 * whatever the threads. */
static double clip(const attn_param_ref *params, size_t n, uint32_t *const *rows,
                   const size_t *n_rows, float max_norm)
{
    double total = 0.0;
    size_t work = 0;
    for (size_t i = 0; i < n; i++) work += clip_work(params, rows, n_rows, i);
    for (size_t i0 = 0; i0 < n; i0 += CLIP_GROUP) {
        const size_t cnt = n - i0 < CLIP_GROUP ? n - i0 : CLIP_GROUP;
        double part[CLIP_GROUP];
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (work >= PAR_MIN)
#endif
        for (size_t k = 0; k < cnt; k++) {
            const size_t i = i0 + k;
            part[k] = sum_squares(&params[i], rows ? rows[i] : NULL, rows ? n_rows[i] : 0);
        }
        for (size_t k = 0; k < cnt; k++) total += part[k];
    }
    const double norm = sqrt(total);
    if (max_norm > 0.0f) {
        const double coef = (double)max_norm / (norm + 1e-6);
        if (coef < 1.0) {
            const float cf = (float)coef;
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (work >= PAR_MIN)
#endif
            for (size_t i = 0; i < n; i++) {
                const attn_param_ref *p = &params[i];
                if (rows && rows[i]) {
                    const size_t cols = p->shape[1];
                    for (size_t r = 0; r < n_rows[i]; r++)
                        for (size_t j = 0; j < cols; j++) p->grad[(size_t)rows[i][r] * cols + j] *= cf;
                } else {
                    for (size_t j = 0; j < p->numel; j++) p->grad[j] *= cf;
                }
            }
        }
    }
    return norm;
}

double attn_clip_grad_norm(const attn_param_ref *params, size_t n, float max_norm)
{
    return clip(params, n, NULL, NULL, max_norm);
}

double attn_adamw_clip_grad_norm(attn_adamw *o, float max_norm)
{
    return o ? clip(o->p, o->n, o->rows, o->n_rows, max_norm) : 0.0;
}

attn_train_config attn_train_defaults(void)
{
    attn_train_config t;
    memset(&t, 0, sizeof t);
    t.batch = 12, t.iters = 2000, t.warmup = 100, t.decay_iters = 0, t.accum = 1;
    t.eval_every = 250, t.eval_iters = 20, t.checkpoint_every = 0;
    t.lr = 1e-3f, t.min_lr = 1e-4f, t.beta1 = 0.9f, t.beta2 = 0.99f, t.eps = 1e-8f;
    t.weight_decay = 0.1f, t.grad_clip = 1.0f, t.val_fraction = 0.1f, t.seed = 1337;
    return t;
}

attn_gpt_config attn_gpt_defaults(void)
{
    attn_gpt_config m = {0, 64, 4, 4, 128, 0};
    return m;
}

attn_status attn_train_config_check(const attn_train_config *t)
{
    if (!t->batch) return attn_error(ATTN_E_INVALID, "batch must be at least 1, got 0");
    if (!t->iters) return attn_error(ATTN_E_INVALID, "iters must be at least 1, got 0");
    if (!t->accum) return attn_error(ATTN_E_INVALID, "accum must be at least 1, got 0");
    if (t->batch > ((size_t)1 << 20) || t->accum > ((size_t)1 << 20))
        return attn_error(ATTN_E_INVALID, "batch and accum must be at most 2^20");
    if (!(t->lr > 0) || !isfinite(t->lr))
        return attn_error(ATTN_E_INVALID, "lr must be a finite number > 0, got %g", (double)t->lr);
    if (!(t->min_lr >= 0) || t->min_lr > t->lr)
        return attn_error(ATTN_E_INVALID, "min_lr must be in [0, lr], got %g", (double)t->min_lr);
    if (!(t->beta1 >= 0 && t->beta1 < 1) || !(t->beta2 >= 0 && t->beta2 < 1))
        return attn_error(ATTN_E_INVALID, "beta1 and beta2 must be in [0, 1)");
    if (!(t->eps > 0)) return attn_error(ATTN_E_INVALID, "eps must be > 0");
    if (!(t->weight_decay >= 0) || !isfinite(t->weight_decay))
        return attn_error(ATTN_E_INVALID, "weight_decay must be >= 0");
    if (!(t->grad_clip >= 0) || !isfinite(t->grad_clip))
        return attn_error(ATTN_E_INVALID, "grad_clip must be >= 0 (0: off)");
    if (!(t->val_fraction > 0 && t->val_fraction < 1))
        return attn_error(ATTN_E_INVALID, "val_fraction must be in (0, 1), got %g",
                          (double)t->val_fraction);
    return ATTN_OK;
}

double attn_lr_at(const attn_train_config *t, size_t it)
{
    const double lr = t->lr, min_lr = t->min_lr;
    const size_t decay = t->decay_iters ? t->decay_iters : t->iters;
    if (it < t->warmup) return lr * (double)(it + 1) / (double)(t->warmup + 1);
    if (it > decay) return min_lr;
    if (decay <= t->warmup) return min_lr;
    const double ratio = (double)(it - t->warmup) / (double)(decay - t->warmup);
    const double coeff = 0.5 * (1.0 + cos(3.14159265358979323846 * ratio));
    return min_lr + coeff * (lr - min_lr);
}

attn_status attn_sample_batch(uint32_t *x, uint32_t *y, const uint32_t *tokens, size_t n,
                              size_t batch, size_t seq, attn_rng *rng)
{
    if (!x || !y || !tokens || !rng) return attn_error(ATTN_E_INVALID, "attn_sample_batch: NULL");
    if (n <= seq)
        return attn_error(ATTN_E_INVALID, "%zu tokens are too few for a context of %zu", n, seq);
    for (size_t b = 0; b < batch; b++) {
        const size_t at = attn_rng_below(rng, n - seq);
        memcpy(x + b * seq, tokens + at, seq * sizeof *x);
        memcpy(y + b * seq, tokens + at + 1, seq * sizeof *y);
    }
    return ATTN_OK;
}
