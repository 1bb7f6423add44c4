/* flash.c - fused ("flash") attention, forward and backward, O(N) memory.
 *
 * Forward, per (batch, head): K is packed once into blocks of FK_BC keys,
 * transposed (d_k, FK_BC); V is read in place (packed into rows padded to a
 * multiple of 16 when d_v is not one). Each
 * task is one tile of BR queries: for every key block it may see,
 *   S = (scale·Q_tile) · K_blockᵀ        (BR, FK_BC), in L1
 *   masks → S; online softmax: m, l, alpha = exp(m_old − m_new), S ← exp(S − m)
 *   O_tile = alpha ∘ O_tile + S · V_block
 * and at the end out = O_tile / l, lse = m + log l. Causal tiles beyond the
 * diagonal are never visited (the key loop stops there).
 *
 * Backward, from out and lse: D_i = rowsum(dO ∘ O); for a pair (query tile,
 * key block) P = exp(S − lse), dS = P ∘ (dO·Vᵀ − D), then
 *   dV += Pᵀ·dO,  dK += dSᵀ·(scale·Q),  dQ += scale·dS·K.
 * With four or more (batch, head) problems each task is one head, walking key
 * blocks in order and keeping dQ for the head in its own scratch. With fewer,
 * tasks are key blocks (dK, dV) and then query tiles (dQ, recomputing P and
 * dS): nothing is shared between tasks, so the results are the same bits for
 * any number of threads. The decomposition depends on the shapes only, and
 * both add the same products in the same order (the same bits either way).
 * The split mode keeps only Kᵀ, Vᵀ and D per head (a long single head is
 * what it is for): a task packs the query tile it uses (scale·Q) into its
 * thread's scratch. Both modes read K rows and dO in place when d_k, d_v need
 * no padding (the same values as a packed copy, so the same bits).
 *
 * Tasks run under OpenMP; each writes only its own rows of the outputs. */
#include "attn/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flash_kern.h"
#include "op_check.h"

#ifdef ATTN_HAVE_OPENMP
#include <omp.h>
#endif

#define BR 64          /* queries per tile */
#define BC FK_BC       /* keys per block */
#define PACK_BUDGET ((size_t)24 << 20) /* bytes of packed heads held at once */
#define GROUP_TASKS 8  /* tasks per thread that make a group of heads big enough */

static size_t up16(size_t x) { return (x + 15) & ~(size_t)15; }
static size_t cdiv(size_t a, size_t b) { return (a + b - 1) / b; }
static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

static int thread_num(void)
{
#ifdef ATTN_HAVE_OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

attn_flash_desc attn_flash_desc_make(size_t batch, size_t heads, size_t l, size_t s, size_t d_k,
                                     size_t d_v)
{
    attn_flash_desc d;
    memset(&d, 0, sizeof d);
    d.batch = batch, d.heads = heads, d.l = l, d.s = s, d.d_k = d_k, d.d_v = d_v;
    d.q_rs = d_k, d.q_hs = l * d_k, d.q_bs = heads * l * d_k;
    d.k_rs = d_k, d.k_hs = s * d_k, d.k_bs = heads * s * d_k;
    d.v_rs = d_v, d.v_hs = s * d_v, d.v_bs = heads * s * d_v;
    d.o_rs = d_v, d.o_hs = l * d_v, d.o_bs = heads * l * d_v;
    d.scale = d_k ? (float)(1.0 / sqrt((double)d_k)) : 1.0f;
    d.causal = ATTN_CAUSAL_NONE;
    return d;
}

/* ---- plan ------------------------------------------------------------------ */

typedef struct plan {
    size_t l, s, dk, dv, dkp, dvp;
    size_t nkb, spad, nqt, nh;
    size_t head_floats;   /* packed data of one head */
    size_t thread_floats; /* scratch of one thread */
    size_t group;         /* heads packed at once (shared packing) */
    int threads;
    int per_head;         /* backward: one task per head */
    long long off;        /* causal: key j allowed iff j <= i + off */
} plan;

/* Threads only for problems worth a parallel region: a token's attention
 * during generation is a few thousand multiply-adds, less than waking a
 * thread costs. The tasks are the same either way. */
#define PAR_WORK ((double)(1 << 18))
static int par_worth(const plan *p)
{
    return (double)p->nh * (double)p->l * (double)p->s * (double)(p->dk + p->dv) >= PAR_WORK;
}

static void plan_common(plan *p, const attn_flash_desc *d)
{
    memset(p, 0, sizeof *p);
    p->l = d->l, p->s = d->s, p->dk = d->d_k, p->dv = d->d_v;
    p->dkp = up16(d->d_k), p->dvp = up16(d->d_v);
    p->nkb = cdiv(d->s, BC), p->spad = p->nkb * BC;
    p->nqt = cdiv(d->l, BR);
    p->nh = d->batch * d->heads;
    p->threads = attn_threads();
    if (p->threads < 1) p->threads = 1;
    p->off = d->causal == ATTN_CAUSAL_BOTTOM_RIGHT ? (long long)d->s - (long long)d->l : 0;
}

/* Heads packed at once: enough for GROUP_TASKS tasks per thread, no more.
 * Every byte of workspace is fresh memory each call (page faults: 10-20 % of
 * a forward at N = 4096 on a VM when a whole 24 MB budget was packed), and
 * fewer heads at once keep their K, V in the caches. */
static size_t pick_group(const plan *p, size_t tasks_per_head)
{
    size_t g = cdiv((size_t)GROUP_TASKS * (size_t)p->threads, tasks_per_head ? tasks_per_head : 1);
    g = min_sz(g, PACK_BUDGET / (p->head_floats * sizeof(float) + 1));
    if (g < 1) g = 1;
    return min_sz(g, p->nh);
}

static void plan_forward(plan *p, const attn_flash_desc *d)
{
    plan_common(p, d);
    /* Kt (nkb, d_k, BC) | V (spad, dvp), V read in place when d_v needs no padding */
    p->head_floats = p->nkb * p->dk * BC + (p->dv == p->dvp ? 0 : p->spad * p->dvp);
    /* Qs (BR, d_k) | S (BR, BC) | O (BR, dvp) | m (BR) | l (BR, FK_LANES) | alpha (BR) */
    p->thread_floats = BR * (p->dk + BC + p->dvp + 2 + FK_LANES);
    p->group = pick_group(p, p->nqt);
}

/* Backward head buffer: Kt (nkb, d_k, BC) | Vt (nkb, d_v, BC) | D (L), then,
 * per-head mode only, Qs (L, dkp) | Kr (spad, dkp) unless d_k = dkp | dO
 * (L, dvp) unless d_v = dvp. */
static size_t bwd_head_floats(const plan *p, int per_head)
{
    size_t f = p->nkb * p->dk * BC + p->nkb * p->dv * BC + p->l;
    if (per_head) {
        f += p->l * p->dkp;
        if (p->dk != p->dkp) f += p->spad * p->dkp;
        if (p->dv != p->dvp) f += p->l * p->dvp;
    }
    return f;
}

/* Thread tiles: P, dS (BR, BC) | dK, dV blocks (BC, dkp / dvp) | dQ tile (BR, dkp)
 * | one row of O and 16 results (dvp + 32) | split mode: a Qs, a dO tile
 * (BR, dkp / dvp) and a K block (BC, dkp) (the last two unused when d_k, d_v
 * need no padding; kept for simpler offsets: 32 KB at d = 64). */
static size_t bwd_tile_floats(const plan *p, int per_head)
{
    size_t f = 2 * BR * BC + BC * (p->dkp + p->dvp) + BR * p->dkp + p->dvp + 32;
    if (!per_head) f += BR * (p->dkp + p->dvp) + BC * p->dkp;
    return f;
}

static void plan_backward(plan *p, const attn_flash_desc *d)
{
    plan_common(p, d);
    p->per_head = p->nh >= 4;
    p->head_floats = up16(bwd_head_floats(p, p->per_head)); /* heads start 64-byte aligned */
    if (p->per_head) {
        p->group = 0;
        p->thread_floats = p->head_floats + p->l * p->dkp + bwd_tile_floats(p, 1);
    } else {
        p->group = pick_group(p, p->nkb + p->nqt);
        p->thread_floats = bwd_tile_floats(p, 0);
    }
}

static size_t ws_floats(const plan *p)
{
    return p->group * p->head_floats + (size_t)p->threads * p->thread_floats;
}

static float *ws_alloc(const plan *p)
{
    size_t bytes = ws_floats(p) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

size_t attn_flash_forward_workspace(const attn_flash_desc *d)
{
    if (!d) return 0;
    plan p;
    plan_forward(&p, d);
    return (ws_floats(&p) * sizeof(float) + 63) & ~(size_t)63;
}

size_t attn_flash_backward_workspace(const attn_flash_desc *d)
{
    if (!d) return 0;
    plan p;
    plan_backward(&p, d);
    return (ws_floats(&p) * sizeof(float) + 63) & ~(size_t)63;
}

/* ---- checks ------------------------------------------------------------------ */

static attn_status check_desc(const char *op, const attn_flash_desc *d)
{
    if (!d) return attn_error(ATTN_E_INVALID, "%s: NULL descriptor", op);
    if (!d->batch || !d->heads || !d->l || !d->s || !d->d_k || !d->d_v)
        return attn_error(ATTN_E_INVALID,
                          "%s: sizes must be > 0, got batch=%zu heads=%zu L=%zu S=%zu d_k=%zu "
                          "d_v=%zu",
                          op, d->batch, d->heads, d->l, d->s, d->d_k, d->d_v);
    if (!isfinite(d->scale))
        return attn_error(ATTN_E_INVALID, "%s: scale must be finite, got %g", op, (double)d->scale);
    if (d->causal != ATTN_CAUSAL_NONE && d->causal != ATTN_CAUSAL_TOP_LEFT &&
        d->causal != ATTN_CAUSAL_BOTTOM_RIGHT)
        return attn_error(ATTN_E_INVALID, "%s: unknown causal alignment %d", op, (int)d->causal);
    const size_t lim = (size_t)1 << 40; /* keeps every product below far from overflow */
    size_t tmp;
    attn_status st = ATTN_OK;
    if (d->batch > lim || d->heads > lim || d->l > lim || d->s > lim || d->d_k > lim ||
        d->d_v > lim)
        return attn_error(ATTN_E_NOMEM, "%s: sizes too large", op);
    if (!st) st = attn_mul_sizes(op, d->batch, d->heads, &tmp);
    if (!st) st = attn_mul_sizes(op, d->l, d->s, &tmp);
    if (!st) st = attn_mul_sizes(op, up16(d->s) + BC, up16(d->d_k) + up16(d->d_v), &tmp);
    if (!st) st = attn_mul_sizes(op, up16(d->l) + BR, up16(d->d_k) + up16(d->d_v), &tmp);
    return st;
}

/* ---- masks ---------------------------------------------------------------------- */

typedef struct head_ctx {
    size_t b, h;
    const uint8_t *bm; /* (L, S) */
    const float *am;   /* (L, S) */
    const float *km;   /* (S) */
} head_ctx;

static head_ctx head_of(const attn_flash_desc *d, size_t idx)
{
    head_ctx c;
    c.b = idx / d->heads, c.h = idx % d->heads;
    c.bm = d->bool_mask ? d->bool_mask + c.b * d->bool_mask_bs + c.h * d->bool_mask_hs : NULL;
    c.am = d->add_mask ? d->add_mask + c.b * d->add_mask_bs + c.h * d->add_mask_hs : NULL;
    c.km = d->key_mask ? d->key_mask + c.b * d->key_mask_bs : NULL;
    return c;
}

/* Masks on a (rows, BC) score tile for queries i0.., keys j0.. (valid of them). */
static void apply_masks(const fk_table *K, const attn_flash_desc *d, const plan *p,
                        const head_ctx *hc, float *st, size_t rows, size_t i0, size_t j0,
                        size_t valid)
{
    const size_t S = d->s;
    const int full = valid == BC;
    /* Nothing to do for a whole block without masks below the causal diagonal
     * (the common case: skip the per-row checks). */
    if (full && !hc->am && !hc->km && !hc->bm &&
        (d->causal == ATTN_CAUSAL_NONE || (long long)(j0 + BC - 1) <= (long long)i0 + p->off))
        return;
    for (size_t r = 0; r < rows; r++) {
        float *row = st + r * BC;
        const size_t i = i0 + r;
        if (hc->am) {
            const float *src = hc->am + i * S + j0;
            if (full) K->add_row(row, src);
            else
                for (size_t c = 0; c < valid; c++) row[c] += src[c];
        }
        if (hc->km) {
            const float *src = hc->km + j0;
            if (full) K->add_row(row, src);
            else
                for (size_t c = 0; c < valid; c++) row[c] += src[c];
        }
        if (hc->bm) {
            const uint8_t *src = hc->bm + i * S + j0;
            if (full) K->bool_row(row, src);
            else
                for (size_t c = 0; c < valid; c++)
                    if (!src[c]) row[c] = -INFINITY;
        }
        size_t lim = valid; /* columns c < lim may be attended */
        if (d->causal != ATTN_CAUSAL_NONE) {
            long long cl = (long long)i + p->off - (long long)j0 + 1;
            if (cl < (long long)lim) lim = cl < 0 ? 0 : (size_t)cl;
        }
        for (size_t c = lim; c < BC; c++) row[c] = -INFINITY;
    }
}

/* Key blocks a query tile [i0, i0 + rows) may see: [0, end). */
static size_t key_blocks_for(const attn_flash_desc *d, const plan *p, size_t i0, size_t rows)
{
    long long last = (long long)d->s - 1;
    if (d->causal != ATTN_CAUSAL_NONE) {
        long long lim = (long long)(i0 + rows - 1) + p->off;
        if (lim < last) last = lim;
    }
    return last < 0 ? 0 : (size_t)(last / BC) + 1;
}

/* First query tile that may see key block kb (nqt if none). */
static size_t first_tile_for(const attn_flash_desc *d, const plan *p, size_t kb)
{
    if (d->causal == ATTN_CAUSAL_NONE) return 0;
    long long i = (long long)(kb * BC) - p->off; /* first query row seeing key j0 */
    if (i <= 0) return 0;
    if ((size_t)i >= d->l) return p->nqt;
    return (size_t)i / BR;
}

/* ---- packing ------------------------------------------------------------------------ */

/* Block kb of K transposed: kt[p·BC + c] = k[j0 + c][p] (0 past S). */
static void pack_kt(float *kt, const float *kh, size_t rs, const plan *p, size_t kb, size_t dk)
{
    const size_t j0 = kb * BC;
    for (size_t c = 0; c < BC; c++) {
        const size_t j = j0 + c;
        if (j < p->s) {
            const float *src = kh + j * rs;
            for (size_t q = 0; q < dk; q++) kt[q * BC + c] = src[q];
        } else {
            for (size_t q = 0; q < dk; q++) kt[q * BC + c] = 0.0f;
        }
    }
}

/* Rows j0.. j0+BC of a (S, d) tensor into (BC, dpad), zero padded. */
static void pack_rows(float *dst, const float *src, size_t rs, size_t d, size_t dpad, size_t row0,
                      size_t nrows, size_t total, float scale)
{
    for (size_t r = 0; r < nrows; r++) {
        float *o = dst + r * dpad;
        const size_t j = row0 + r;
        if (j < total) {
            const float *x = src + j * rs;
            if (scale == 1.0f) memcpy(o, x, d * sizeof(float));
            else
                for (size_t c = 0; c < d; c++) o[c] = scale * x[c];
            for (size_t c = d; c < dpad; c++) o[c] = 0.0f;
        } else {
            memset(o, 0, dpad * sizeof(float));
        }
    }
}

/* ---- forward ------------------------------------------------------------------------- */

typedef struct fwd_args {
    const attn_flash_desc *d;
    const plan *p;
    const fk_table *K;
    const float *q, *k, *v;
    float *out, *lse;
} fwd_args;

/* vp: V rows (ldv apart), packed or in place. */
static void fwd_tile(const fwd_args *a, size_t idx, const float *kt, const float *vp, size_t ldv,
                     size_t qt, float *ws)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const fk_table *K = a->K;
    const head_ctx hc = head_of(d, idx);
    const size_t i0 = qt * BR, rows = min_sz(BR, d->l - i0), dk = p->dk, dvp = p->dvp;
    float *qs = ws, *st = qs + BR * dk, *ot = st + BR * BC, *m = ot + BR * dvp, *l = m + BR;
    float *al = l + BR * FK_LANES;

    const float *qh = a->q + hc.b * d->q_bs + hc.h * d->q_hs;
    for (size_t r = 0; r < rows; r++) {
        const float *x = qh + (i0 + r) * d->q_rs;
        for (size_t c = 0; c < dk; c++) qs[r * dk + c] = d->scale * x[c];
        m[r] = -INFINITY;
    }
    memset(l, 0, rows * FK_LANES * sizeof(float));
    memset(ot, 0, rows * dvp * sizeof(float));

    const size_t kb_end = key_blocks_for(d, p, i0, rows);
    for (size_t kb = 0; kb < kb_end; kb++) {
        const size_t j0 = kb * BC, valid = min_sz(BC, d->s - j0);
        K->gemm(st, BC, qs, dk, 1, kt + kb * dk * BC, BC, rows, BC, dk, NULL, 0);
        apply_masks(K, d, p, &hc, st, rows, i0, j0, valid);
        K->softmax_online(st, rows, m, l, al);
        K->gemm(ot, dvp, st, BC, 1, vp + j0 * ldv, ldv, rows, dvp, valid, al, 1);
    }

    float *oh = a->out + hc.b * d->o_bs + hc.h * d->o_hs;
    float *lh = a->lse ? a->lse + idx * d->l : NULL;
    for (size_t r = 0; r < rows; r++) {
        float *o = oh + (i0 + r) * d->o_rs;
        float sum = 0.0f; /* the lanes in a fixed order */
        for (size_t c = 0; c < FK_LANES; c++) sum += l[r * FK_LANES + c];
        if (sum > 0.0f) {
            const float inv = 1.0f / sum;
            for (size_t c = 0; c < d->d_v; c++) o[c] = ot[r * dvp + c] * inv;
            if (lh) lh[i0 + r] = m[r] + logf(sum);
        } else {
            memset(o, 0, d->d_v * sizeof(float));
            if (lh) lh[i0 + r] = -INFINITY;
        }
    }
}

attn_status attn_flash_forward(float *out, float *lse, const float *q, const float *k,
                               const float *v, const attn_flash_desc *d)
{
    attn_status st = check_desc("flash attention", d);
    if (st) return st;
    if (!out || !q || !k || !v) return attn_error(ATTN_E_INVALID, "flash attention: NULL buffer");
    plan p;
    plan_forward(&p, d);
    float *ws = ws_alloc(&p);
    if (!ws)
        return attn_error(ATTN_E_NOMEM, "flash attention: cannot allocate %zu bytes",
                          ws_floats(&p) * sizeof(float));
    fwd_args a = {d, &p, attn_fk_table(attn_simd_level()), q, k, v, out, lse};
    const size_t kt_floats = p.nkb * p.dk * BC;
    const int v_in_place = p.dv == p.dvp; /* the same values as a packed copy: the same bits */

    for (size_t g0 = 0; g0 < p.nh; g0 += p.group) {
        const size_t gn = min_sz(p.group, p.nh - g0);
        const size_t npack = gn * p.nkb, ntask = gn * p.nqt;
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel if (par_worth(&p))
#endif
        {
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
            for (size_t t = 0; t < npack; t++) {
                const size_t g = t / p.nkb, kb = t % p.nkb;
                const head_ctx hc = head_of(d, g0 + g);
                float *hb = ws + g * p.head_floats;
                pack_kt(hb + kb * p.dk * BC, k + hc.b * d->k_bs + hc.h * d->k_hs, d->k_rs, &p, kb,
                        p.dk);
                if (!v_in_place)
                    pack_rows(hb + kt_floats + kb * BC * p.dvp,
                              v + hc.b * d->v_bs + hc.h * d->v_hs, d->v_rs, p.dv, p.dvp, kb * BC,
                              BC, p.s, 1.0f);
            }
            float *tws = ws + p.group * p.head_floats + (size_t)thread_num() * p.thread_floats;
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (size_t t = 0; t < ntask; t++) {
                /* Head by head (its K and V stay in cache), later query
                 * tiles first: under causality they are the longest. */
                const size_t g = t / p.nqt, qt = p.nqt - 1 - t % p.nqt;
                const float *hb = ws + g * p.head_floats;
                const head_ctx hc = head_of(d, g0 + g);
                if (v_in_place)
                    fwd_tile(&a, g0 + g, hb, v + hc.b * d->v_bs + hc.h * d->v_hs, d->v_rs, qt, tws);
                else
                    fwd_tile(&a, g0 + g, hb, hb + kt_floats, p.dvp, qt, tws);
            }
        }
    }
    free(ws);
    return ATTN_OK;
}

/* ---- backward ------------------------------------------------------------------------ */

typedef struct bwd_args {
    const attn_flash_desc *d;
    const plan *p;
    const fk_table *K;
    const float *q, *k, *v, *out, *dout, *lse;
    float *dq, *dk, *dv;
} bwd_args;

typedef struct bwd_head {
    float *kt, *vt, *dd; /* Kᵀ, Vᵀ blocks and D */
    float *qs, *kr, *dO; /* per-head mode: scale·Q, padded K rows, dO of the whole head; NULL
                          * in split mode (kr, dO: also when in place) */
} bwd_head;

static bwd_head bwd_head_at(const plan *p, float *hb)
{
    bwd_head h;
    h.kt = hb;
    h.vt = h.kt + p->nkb * p->dk * BC;
    h.dd = h.vt + p->nkb * p->dv * BC;
    h.kr = h.qs = h.dO = NULL;
    if (p->per_head) {
        float *f = h.dd + p->l;
        h.qs = f, f += p->l * p->dkp;
        if (p->dk != p->dkp) h.kr = f, f += p->spad * p->dkp;
        if (p->dv != p->dvp) h.dO = f;
    }
    return h;
}

/* A thread's tiles (bwd_tile_floats). */
typedef struct bwd_tiles {
    float *pt, *dst, *dkb, *dvb, *dqt, *orow, *res;
    float *qs, *dO, *kr; /* split mode: packed query tile and K block; else NULL */
} bwd_tiles;

static bwd_tiles bwd_tiles_at(const plan *p, float *t)
{
    bwd_tiles b;
    b.pt = t;
    b.dst = b.pt + BR * BC;
    b.dkb = b.dst + BR * BC;
    b.dvb = b.dkb + BC * p->dkp;
    b.dqt = b.dvb + BC * p->dvp;
    b.orow = b.dqt + BR * p->dkp;
    b.res = b.orow + p->dvp + 16;
    b.qs = b.dO = b.kr = NULL;
    if (!p->per_head) {
        b.qs = b.res + 16;
        b.dO = b.qs + BR * p->dkp;
        b.kr = b.dO + BR * p->dvp;
    }
    return b;
}

static void bwd_pack_keys(const bwd_args *a, const bwd_head *hb, size_t idx, size_t kb)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const head_ctx hc = head_of(d, idx);
    const float *kh = a->k + hc.b * d->k_bs + hc.h * d->k_hs;
    const float *vh = a->v + hc.b * d->v_bs + hc.h * d->v_hs;
    pack_kt(hb->kt + kb * p->dk * BC, kh, d->k_rs, p, kb, p->dk);
    if (hb->kr)
        pack_rows(hb->kr + kb * BC * p->dkp, kh, d->k_rs, p->dk, p->dkp, kb * BC, BC, p->s, 1.0f);
    pack_kt(hb->vt + kb * p->dv * BC, vh, d->v_rs, p, kb, p->dv);
}

/* scale·Q (rows, dkp) and dO (rows, ldo apart, dvp wide) of query tile qt:
 * in the head buffer (per-head mode), packed into the thread's tiles, or (dO
 * when d_v = dvp) in place. */
static void bwd_query_side(const bwd_args *a, const bwd_head *hb, const bwd_tiles *tl, size_t idx,
                           size_t qt, int want_q, const float **qs, const float **dO, size_t *ldo)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const head_ctx hc = head_of(d, idx);
    const size_t i0 = qt * BR, rows = min_sz(BR, d->l - i0);
    const float *doh = a->dout + hc.b * d->o_bs + hc.h * d->o_hs;
    if (hb->qs) *qs = hb->qs + i0 * p->dkp;
    else {
        if (want_q)
            pack_rows(tl->qs, a->q + hc.b * d->q_bs + hc.h * d->q_hs, d->q_rs, p->dk, p->dkp, i0,
                      rows, p->l, d->scale);
        *qs = tl->qs;
    }
    if (p->dv == p->dvp) *dO = doh + i0 * d->o_rs, *ldo = d->o_rs;
    else if (hb->dO) *dO = hb->dO + i0 * p->dvp, *ldo = p->dvp;
    else {
        pack_rows(tl->dO, doh, d->o_rs, p->dv, p->dvp, i0, rows, p->l, 1.0f);
        *dO = tl->dO, *ldo = p->dvp;
    }
}

/* D_i = dO_i · O_i through the same kernel (same rounding) as dP = dO·Vᵀ, so
 * that a row whose softmax is one-hot gets dS = 0 exactly, as it should.
 * Per-head mode: also packs the tile's scale·Q and dO into the head buffer. */
static void bwd_pack_queries(const bwd_args *a, const bwd_head *hb, const bwd_tiles *tl,
                             size_t idx, size_t qt)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const head_ctx hc = head_of(d, idx);
    const size_t i0 = qt * BR, rows = min_sz(BR, d->l - i0);
    const float *oh = a->out + hc.b * d->o_bs + hc.h * d->o_hs;
    if (hb->qs) {
        const float *qh = a->q + hc.b * d->q_bs + hc.h * d->q_hs;
        const float *doh = a->dout + hc.b * d->o_bs + hc.h * d->o_hs;
        pack_rows(hb->qs + i0 * p->dkp, qh, d->q_rs, p->dk, p->dkp, i0, rows, p->l, d->scale);
        if (hb->dO)
            pack_rows(hb->dO + i0 * p->dvp, doh, d->o_rs, p->dv, p->dvp, i0, rows, p->l, 1.0f);
    }
    const float *qs, *dO;
    size_t ldo;
    bwd_query_side(a, hb, tl, idx, qt, 0, &qs, &dO, &ldo);
    float *orow = tl->orow, *res = tl->res;
    memset(orow + p->dv, 0, (p->dvp + 16 - p->dv) * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        memcpy(orow, oh + (i0 + r) * d->o_rs, p->dv * sizeof(float));
        /* res[c] = Σ_t dO[i][t] · orow[t + c]: column 0 is the dot product. */
        a->K->gemm(res, 16, dO + r * ldo, ldo, 1, orow, 1, 1, 16, p->dv, NULL, 0);
        hb->dd[i0 + r] = res[0];
    }
}

/* P and dS of (query tile qt, key block kb) into the thread's tiles, from the
 * tile's scale·Q (rows, dkp) and dO (rows, ldo apart). */
static void bwd_pair(const bwd_args *a, const bwd_head *hb, const head_ctx *hc, const float *lse,
                     const float *qs, const float *dO, size_t ldo, size_t qt, size_t kb,
                     const bwd_tiles *tl)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const fk_table *K = a->K;
    const size_t i0 = qt * BR, rows = min_sz(BR, d->l - i0);
    const size_t j0 = kb * BC, valid = min_sz(BC, d->s - j0);
    K->gemm(tl->pt, BC, qs, p->dkp, 1, hb->kt + kb * p->dk * BC, BC, rows, BC, p->dk, NULL, 0);
    apply_masks(K, d, p, hc, tl->pt, rows, i0, j0, valid);
    K->probs(tl->pt, rows, lse + i0);
    K->gemm(tl->dst, BC, dO, ldo, 1, hb->vt + kb * p->dv * BC, BC, rows, BC, p->dv, NULL, 0);
    K->dsoft(tl->dst, tl->pt, rows, hb->dd + i0);
}

/* dK, dV of key block kb (and, with dqacc (L, dkp), dQ += dS·K unscaled). */
static void bwd_key_block(const bwd_args *a, const bwd_head *hb, const bwd_tiles *tl, size_t idx,
                          size_t kb, float *dqacc)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const fk_table *K = a->K;
    const head_ctx hc = head_of(d, idx);
    const float *lse = a->lse + idx * d->l;
    const float *kh = a->k + hc.b * d->k_bs + hc.h * d->k_hs;
    float *pt = tl->pt, *dst = tl->dst, *dkb = tl->dkb, *dvb = tl->dvb;
    const size_t j0 = kb * BC, valid = min_sz(BC, d->s - j0);
    const int want_k = a->dk != NULL, want_v = a->dv != NULL;
    memset(dkb, 0, BC * p->dkp * sizeof(float));
    memset(dvb, 0, BC * p->dvp * sizeof(float));
    for (size_t qt = first_tile_for(d, p, kb); qt < p->nqt; qt++) {
        const size_t i0 = qt * BR, rows = min_sz(BR, d->l - i0);
        const float *qs, *dO;
        size_t ldo;
        bwd_query_side(a, hb, tl, idx, qt, 1, &qs, &dO, &ldo);
        bwd_pair(a, hb, &hc, lse, qs, dO, ldo, qt, kb, tl);
        if (want_v) K->gemm(dvb, p->dvp, pt, 1, BC, dO, ldo, BC, p->dvp, rows, NULL, 1);
        if (want_k) K->gemm(dkb, p->dkp, dst, 1, BC, qs, p->dkp, BC, p->dkp, rows, NULL, 1);
        if (dqacc) {
            const float *kr = hb->kr ? hb->kr + j0 * p->dkp : kh + j0 * d->k_rs;
            K->gemm(dqacc + i0 * p->dkp, p->dkp, dst, BC, 1, kr, hb->kr ? p->dkp : d->k_rs, rows,
                    p->dkp, valid, NULL, 1);
        }
    }
    for (size_t r = 0; r < valid; r++) {
        if (want_k) {
            float *o = a->dk + hc.b * d->k_bs + hc.h * d->k_hs + (j0 + r) * d->k_rs;
            for (size_t c = 0; c < p->dk; c++) o[c] += dkb[r * p->dkp + c];
        }
        if (want_v) {
            float *o = a->dv + hc.b * d->v_bs + hc.h * d->v_hs + (j0 + r) * d->v_rs;
            for (size_t c = 0; c < p->dv; c++) o[c] += dvb[r * p->dvp + c];
        }
    }
}

/* dq rows i0.. += scale · acc (rows, dkp). */
static void bwd_add_dq(const bwd_args *a, size_t idx, size_t i0, size_t rows, const float *acc)
{
    const attn_flash_desc *d = a->d;
    const head_ctx hc = head_of(d, idx);
    for (size_t r = 0; r < rows; r++) {
        float *o = a->dq + hc.b * d->q_bs + hc.h * d->q_hs + (i0 + r) * d->q_rs;
        for (size_t c = 0; c < d->d_k; c++) o[c] += d->scale * acc[r * a->p->dkp + c];
    }
}

/* Split mode: dQ of query tile qt, recomputing P and dS over the key blocks it
 * sees. K rows are read in place when d_k is a multiple of 16 (the same
 * values as a packed copy: the same bits), else packed block by block. */
static void bwd_query_tile(const bwd_args *a, const bwd_head *hb, const bwd_tiles *tl, size_t idx,
                           size_t qt)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const head_ctx hc = head_of(d, idx);
    const float *lse = a->lse + idx * d->l;
    const float *kh = a->k + hc.b * d->k_bs + hc.h * d->k_hs;
    float *dqt = tl->dqt;
    const size_t i0 = qt * BR, rows = min_sz(BR, d->l - i0);
    const float *qs, *dO;
    size_t ldo;
    bwd_query_side(a, hb, tl, idx, qt, 1, &qs, &dO, &ldo);
    memset(dqt, 0, BR * p->dkp * sizeof(float));
    const size_t kb_end = key_blocks_for(d, p, i0, rows);
    for (size_t kb = 0; kb < kb_end; kb++) {
        const size_t j0 = kb * BC, valid = min_sz(BC, d->s - j0);
        bwd_pair(a, hb, &hc, lse, qs, dO, ldo, qt, kb, tl);
        const float *kr = kh + j0 * d->k_rs;
        size_t ldk = d->k_rs;
        if (p->dk != p->dkp) {
            pack_rows(tl->kr, kh, d->k_rs, p->dk, p->dkp, j0, valid, p->s, 1.0f);
            kr = tl->kr, ldk = p->dkp;
        }
        a->K->gemm(dqt, p->dkp, tl->dst, BC, 1, kr, ldk, rows, p->dkp, valid, NULL, 1);
    }
    bwd_add_dq(a, idx, i0, rows, dqt);
}

attn_status attn_flash_backward(float *d_q, float *d_k, float *d_v, const float *d_out,
                                const float *q, const float *k, const float *v,
                                const float *out, const float *lse, const attn_flash_desc *d)
{
    attn_status st = check_desc("flash attention backward", d);
    if (st) return st;
    if (!d_out || !q || !k || !v || !out || !lse)
        return attn_error(ATTN_E_INVALID, "flash attention backward: NULL buffer");
    if (!d_q && !d_k && !d_v) return ATTN_OK;
    plan p;
    plan_backward(&p, d);
    float *ws = ws_alloc(&p);
    if (!ws)
        return attn_error(ATTN_E_NOMEM, "flash attention backward: cannot allocate %zu bytes",
                          ws_floats(&p) * sizeof(float));
    bwd_args a = {d, &p, attn_fk_table(attn_simd_level()), q, k, v, out, d_out, lse, d_q, d_k,
                  d_v};

    if (p.per_head) {
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (par_worth(&p))
#endif
        for (size_t idx = 0; idx < p.nh; idx++) {
            float *tws = ws + (size_t)thread_num() * p.thread_floats;
            bwd_head hb = bwd_head_at(&p, tws);
            float *dqacc = tws + p.head_floats;
            const bwd_tiles tl = bwd_tiles_at(&p, dqacc + p.l * p.dkp);
            for (size_t kb = 0; kb < p.nkb; kb++) bwd_pack_keys(&a, &hb, idx, kb);
            for (size_t qt = 0; qt < p.nqt; qt++) bwd_pack_queries(&a, &hb, &tl, idx, qt);
            if (d_q) memset(dqacc, 0, p.l * p.dkp * sizeof(float));
            for (size_t kb = 0; kb < p.nkb; kb++)
                bwd_key_block(&a, &hb, &tl, idx, kb, d_q ? dqacc : NULL);
            if (d_q) bwd_add_dq(&a, idx, 0, p.l, dqacc);
        }
    } else {
        for (size_t g0 = 0; g0 < p.nh; g0 += p.group) {
            const size_t gn = min_sz(p.group, p.nh - g0);
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel if (par_worth(&p))
#endif
            {
                const bwd_tiles tl = bwd_tiles_at(
                    &p, ws + p.group * p.head_floats + (size_t)thread_num() * p.thread_floats);
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
                for (size_t t = 0; t < gn * p.nkb; t++) {
                    bwd_head hb = bwd_head_at(&p, ws + (t / p.nkb) * p.head_floats);
                    bwd_pack_keys(&a, &hb, g0 + t / p.nkb, t % p.nkb);
                }
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
                for (size_t t = 0; t < gn * p.nqt; t++) {
                    bwd_head hb = bwd_head_at(&p, ws + (t / p.nqt) * p.head_floats);
                    bwd_pack_queries(&a, &hb, &tl, g0 + t / p.nqt, t % p.nqt);
                }
                if (d_k || d_v) {
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
                    for (size_t t = 0; t < gn * p.nkb; t++) {
                        const size_t g = t % gn, kb = t / gn;
                        bwd_head hb = bwd_head_at(&p, ws + g * p.head_floats);
                        bwd_key_block(&a, &hb, &tl, g0 + g, kb, NULL);
                    }
                }
                if (d_q) {
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
                    for (size_t t = 0; t < gn * p.nqt; t++) {
                        const size_t g = t % gn, qt = p.nqt - 1 - t / gn;
                        bwd_head hb = bwd_head_at(&p, ws + g * p.head_floats);
                        bwd_query_tile(&a, &hb, &tl, g0 + g, qt);
                    }
                }
            }
        }
    }
    free(ws);
    return ATTN_OK;
}
