/* flash.c - fused ("flash") attention, forward and backward, O(N) memory.
 *
 * Forward, per (batch, head): K is packed once into blocks of FK_BC keys,
 * transposed (d_k, FK_BC); V is read in place (packed into rows padded to a
 * multiple of 16 when d_v is not one). Each
 * task is one tile of BR queries: for every key block it may see,
 *   S = (scale·log2e·Q_tile) · K_blockᵀ  (BR, FK_BC), in L1: scores in log2
 *   units, so that the softmax's exp is an exp2 without a multiply
 *   masks → S (additive ones times log2e); online softmax: m, l,
 *   alpha = 2^(m_old − m_new), S ← 2^(S − m)
 *   O_tile = alpha ∘ O_tile + S · V_block
 * and at the end out = O_tile / l, lse = m·ln2 + log l (natural units, as
 * the backward reads it). Causal tiles beyond the
 * diagonal are never visited (the key loop stops there).
 *
 * Backward, from out and lse: D_i = rowsum(dO ∘ O); for a pair (query tile,
 * key block) P = exp(S − lse), dS = P ∘ (dP − D) with dP = dO·Vᵀ, then
 *   dV += Pᵀ·dO,  dK += dSᵀ·(scale·Q),  dQ += scale·dS·K
 * (five products, as FlashAttention-2). Key blocks are walked in groups of
 * eight (four with a task per head), each group sweeping the query tiles
 * (dK, dV of the group in the thread's tiles, each query tile's rows read
 * once for the group). dQ is
 * summed per chunk of key blocks and the chunks added to d_q in order
 * (flash_bwd.c: chunks depend on the shape only). With four or more (batch,
 * head) problems each task is one head, its chunks in turn. With fewer, tasks
 * are (chunk, head) pairs, each into a partial dQ of its thread, added to d_q
 * in task order: the same sums in the same order, so the same bits in both
 * modes and for any number of threads. The split mode keeps scale·Q and D
 * per head (and dO when d_v needs padding) and packs key blocks in the
 * thread's tiles; 24 MB at N = 32768, d = 64 on two threads. Both modes read
 * K rows and dO in place when d_k, d_v need no padding (the same values as a
 * packed copy, so the same bits).
 *
 * Tasks run under OpenMP; each writes only its own rows of the outputs. */
#include "flash_int.h"
#include "flash_exp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "op_check.h"

/* Queries per forward tile: FWD_BR_WIDE without causality in fp32 (each
 * tile reads the head's K and V, 2 MB at N = 4096, d = 64, more than a
 * core's L2: 128 rows read them half as often, the forward 1.5-2.5 % faster
 * at N = 4096 than with 64), else FWD_BR (causal tiles waste the part of
 * their diagonal blocks above it, which grows with the height: 128 rows were
 * 1-1.5 % slower there; bf16 unmeasured). */
#define FWD_BR BR
#define FWD_BR_WIDE 128

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

int attn_flash_packs(size_t len, size_t d_k, size_t d_v)
{
    const attn_flash_desc d = attn_flash_desc_make(1, 1, len, len, d_k, d_v);
    return len > 0 && attn_fl_short_ok(&d);
}

/* ---- plan ------------------------------------------------------------------ */

void plan_common(plan *p, const attn_flash_desc *d)
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
    p->bf16 = d->dtype == ATTN_FLASH_BF16 ? attn_fk_bf16() : NULL;
    p->fk = attn_fk_table(attn_simd_level());
    p->dkw = ((d->d_k + 31) & ~(size_t)31) / 2;
    p->kpw = (d->d_k + 1) / 2 * BC;
    p->vpw = BC / 2 * p->dvp;
}

/* Packing scratch of the bf16 kernels: a K block transposed (d_k, BC), a V
 * block (BC, dvp) or one row of Q (dkw·2). */
size_t bf16_tmp_floats(const plan *p)
{
    size_t t = p->dk * BC;
    if (BC * p->dvp > t) t = BC * p->dvp;
    return t > 2 * p->dkw ? t : 2 * p->dkw;
}

/* Heads packed at once: enough for GROUP_TASKS tasks per thread, no more.
 * Every byte of workspace is fresh memory each call (page faults: 10-20 % of
 * a forward at N = 4096 on a VM when a whole 24 MB budget was packed), and
 * fewer heads at once keep their K, V in the caches. */
size_t pick_group(const plan *p, size_t tasks_per_head)
{
    size_t g = cdiv((size_t)GROUP_TASKS * (size_t)p->threads, tasks_per_head ? tasks_per_head : 1);
    g = min_sz(g, PACK_BUDGET / (p->head_floats * sizeof(float) + 1));
    if (g < 1) g = 1;
    return min_sz(g, p->nh);
}

static void plan_forward(plan *p, const attn_flash_desc *d)
{
    plan_common(p, d);
    p->fbr = FWD_BR;
    const size_t wide_tasks = cdiv(d->l, FWD_BR_WIDE) * p->nh; /* enough to share */
    if (!p->bf16 && d->causal == ATTN_CAUSAL_NONE &&
        wide_tasks >= (size_t)GROUP_TASKS * (size_t)p->threads)
        p->fbr = FWD_BR_WIDE;
    p->nqt = cdiv(d->l, p->fbr);
    if (p->bf16) {
        /* Kp (nkb, kpw) | Vp (nkb, vpw) words */
        p->head_floats = p->nkb * (p->kpw + p->vpw);
        /* Qw (fbr, dkw) | S (fbr, BC) | O (fbr, dvp) | m | l | alpha | Pw (fbr, BC/2) | tmp */
        p->thread_floats = p->fbr * (p->dkw + BC + p->dvp + 2 + FK_LANES + BC / 2) + bf16_tmp_floats(p);
    } else {
        /* Kt (nkb, d_k, BC) | V (spad, dvp), V read in place when d_v needs no padding */
        p->head_floats = p->nkb * p->dk * BC + (p->dv == p->dvp ? 0 : p->spad * p->dvp);
        /* Qs (fbr, d_k) | S (fbr, BC) | O (fbr, dvp) | m (fbr) | l (fbr, FK_LANES) | alpha (fbr) */
        p->thread_floats = p->fbr * (p->dk + BC + p->dvp + 2 + FK_LANES);
    }
    p->group = pick_group(p, p->nqt);
}

size_t ws_floats(const plan *p)
{
    return p->group * p->head_floats + (size_t)p->threads * p->thread_floats + p->extra_floats;
}

/* From this size the scratch goes on huge pages: at N = 32768 the backward's
 * 26 MB cost some 6,500 page faults a call with 4 KiB pages (its first
 * chunk of key blocks ran 30 ms slower than the others, 2 % of the call),
 * and its sweeps stream 8 MB arrays that miss the TLB every 4 KiB. */
#define WS_HUGE ((size_t)4 << 20)

float *ws_alloc(const plan *p)
{
    return attn_alloc_aligned(ws_floats(p) * sizeof(float), WS_HUGE);
}

size_t attn_flash_forward_workspace(const attn_flash_desc *d)
{
    if (!d) return 0;
    plan p;
    plan_forward(&p, d);
    return (ws_floats(&p) * sizeof(float) + 63) & ~(size_t)63;
}

/* ---- checks ------------------------------------------------------------------ */

attn_status check_desc(const char *op, const attn_flash_desc *d)
{
    if (!d) return attn_error(ATTN_E_INVALID, "%s: NULL descriptor", op);
    if (!d->batch || !d->heads || !d->l || !d->s || !d->d_k || !d->d_v)
        return attn_error(ATTN_E_INVALID,
                          "%s: sizes must be > 0, got batch=%zu heads=%zu L=%zu S=%zu d_k=%zu "
                          "d_v=%zu",
                          op, d->batch, d->heads, d->l, d->s, d->d_k, d->d_v);
    if (!isfinite(d->scale))
        return attn_error(ATTN_E_INVALID, "%s: scale must be finite, got %g", op, (double)d->scale);
    if (d->dtype != ATTN_FLASH_F32 && d->dtype != ATTN_FLASH_BF16)
        return attn_error(ATTN_E_INVALID, "%s: unknown dtype %d", op, (int)d->dtype);
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
    if (!st) st = attn_mul_sizes(op, up16(d->l) + FWD_BR_WIDE, up16(d->d_k) + up16(d->d_v), &tmp);
    if (st || !d->seq_off) return st;
    if (d->l != d->s || !attn_fl_short_ok(d) || d->key_mask)
        return attn_error(ATTN_E_INVALID,
                          "%s: packed sequences need self-attention on at most 64 keys (L = S), "
                          "fp32 products, no masks and no causal mask; got L=%zu S=%zu",
                          op, d->l, d->s);
    for (size_t b = 0; b < d->batch; b++)
        if (d->seq_off[b + 1] <= d->seq_off[b] || d->seq_off[b + 1] - d->seq_off[b] > d->l)
            return attn_error(ATTN_E_INVALID,
                              "%s: packed sequence %zu spans rows %zu to %zu, expected 1 to %zu rows",
                              op, b, d->seq_off[b], d->seq_off[b + 1], d->l);
    return ATTN_OK;
}

/* ---- masks ---------------------------------------------------------------------- */

/* Whether masks change a (rows, BC) score tile for queries i0.., keys j0..
 * (valid of them): not for a whole block without masks below the causal
 * diagonal (the common case: no per-row checks). */
int masks_apply(const attn_flash_desc *d, const plan *p, const head_ctx *hc, size_t i0, size_t j0,
                size_t valid)
{
    return valid != BC || hc->am || hc->km || hc->bm ||
           (d->causal != ATTN_CAUSAL_NONE && (long long)(j0 + BC - 1) > (long long)i0 + p->off);
}

/* Masks on a (rows, BC) score tile for queries i0.., keys j0.. (valid of
 * them) whose scores are in units of 1 / unit: additive masks scaled by unit
 * (the forward's log2 units: log2e; the backward's: 1, the same bits as an
 * addition). */
void apply_masks(const fk_table *K, const attn_flash_desc *d, const plan *p, const head_ctx *hc,
                 float *st, size_t rows, size_t i0, size_t j0, size_t valid, float unit)
{
    const size_t S = d->s;
    const int full = valid == BC;
    if (!masks_apply(d, p, hc, i0, j0, valid)) return;
    for (size_t r = 0; r < rows; r++) {
        float *row = st + r * BC;
        const size_t i = i0 + r;
        if (hc->am) {
            const float *src = hc->am + i * S + j0;
            if (full) K->add_row(row, src, unit);
            else
                for (size_t c = 0; c < valid; c++) row[c] += unit * src[c];
        }
        if (hc->km) {
            const float *src = hc->km + j0;
            if (full) K->add_row(row, src, unit);
            else
                for (size_t c = 0; c < valid; c++) row[c] += unit * src[c];
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
size_t key_blocks_for(const attn_flash_desc *d, const plan *p, size_t i0, size_t rows)
{
    long long last = (long long)d->s - 1;
    if (d->causal != ATTN_CAUSAL_NONE) {
        long long lim = (long long)(i0 + rows - 1) + p->off;
        if (lim < last) last = lim;
    }
    return last < 0 ? 0 : (size_t)(last / BC) + 1;
}

/* First query tile that may see key block kb (nqt if none). */
size_t first_tile_for(const attn_flash_desc *d, const plan *p, size_t kb)
{
    if (d->causal == ATTN_CAUSAL_NONE) return 0;
    long long i = (long long)(kb * BC) - p->off; /* first query row seeing key j0 */
    if (i <= 0) return 0;
    if ((size_t)i >= d->l) return p->nqt;
    return (size_t)i / BR;
}

/* ---- packing ------------------------------------------------------------------------ */

/* Block kb of K transposed: kt[p·BC + c] = k[j0 + c][p] (0 past S). */
void pack_kt(float *kt, in_view kh, size_t rs, const plan *p, size_t kb, size_t dk)
{
    const size_t j0 = kb * BC, valid = min_sz(BC, p->s - j0);
    if (kh.f) {
        p->fk->transpose(kt, BC, kh.f + j0 * rs, rs, valid, dk);
    } else {
        for (size_t c = 0; c < valid; c++) {
            const in_view src = in_off(kh, (j0 + c) * rs);
            for (size_t q = 0; q < dk; q++) kt[q * BC + c] = in_get(src, q);
        }
    }
    if (valid < BC)
        for (size_t q = 0; q < dk; q++) memset(kt + q * BC + valid, 0, (BC - valid) * sizeof(float));
}

/* Rows j0.. j0+BC of a (S, d) tensor into (BC, dpad), zero padded. */
void pack_rows(float *dst, in_view src, size_t rs, size_t d, size_t dpad, size_t row0,
               size_t nrows, size_t total, float scale)
{
    for (size_t r = 0; r < nrows; r++) {
        float *o = dst + r * dpad;
        const size_t j = row0 + r;
        if (j < total) {
            const in_view x = in_off(src, j * rs);
            if (scale == 1.0f && x.f) memcpy(o, x.f, d * sizeof(float));
            else
                for (size_t c = 0; c < d; c++) o[c] = scale * in_get(x, c);
            for (size_t c = d; c < dpad; c++) o[c] = 0.0f;
        } else {
            memset(o, 0, dpad * sizeof(float));
        }
    }
}

float *widen_input(const uint16_t *x, size_t batch, size_t bs, size_t heads, size_t hs,
                   size_t rows, size_t rs, size_t d)
{
    const size_t n = (batch - 1) * bs + (heads - 1) * hs + (rows - 1) * rs + d;
    float *w = malloc(n * sizeof(float));
    if (!w) return NULL;
    const in_view v = {NULL, x};
    for (size_t i = 0; i < n; i++) w[i] = in_get(v, i);
    return w;
}

/* dq rows i0.. += scale · acc (rows, dkp): both backwards end with it. */
void bwd_add_dq(const bwd_args *a, size_t idx, size_t i0, size_t rows, const float *acc)
{
    const attn_flash_desc *d = a->d;
    const head_ctx hc = head_of(d, idx);
    for (size_t r = 0; r < rows; r++) {
        float *o = a->dq + hc.b * d->q_bs + hc.h * d->q_hs + (i0 + r) * d->q_rs;
        for (size_t c = 0; c < d->d_k; c++) o[c] += d->scale * acc[r * a->p->dkp + c];
    }
}

/* ---- forward ------------------------------------------------------------------------- */

typedef struct fwd_args {
    const attn_flash_desc *d;
    const plan *p;
    const fk_table *K;
    const float *q, *k, *v;
    float *out, *lse;
    const uint16_t *q16, *k16, *v16; /* bf16 inputs (then q, k, v are NULL) */
} fwd_args;

/* A row's running max (log2 units) beyond which its lse takes the max in
 * natural units recomputed (fwd_exact_max): m·ln2 is off from the score the
 * backward recomputes by some ulp of m (at most about 2e-5 below this),
 * which matters where one score dominates a row whose scores are large:
 * exp(s − lse) should be exactly 1 there, as it was with natural units. */
#define FWD_M_EXACT 64.0f

/* The scores of the tile's rows ix (nx of them) for key block kb in natural
 * units into st (nx, BC), as the backward computes them before its masks
 * (kb = 0 comes first). */
typedef void (*fwd_scores_fn)(const void *ctx, const size_t *ix, size_t nx, size_t kb, float *st);

/* The tile's m (rows, log2 units) into natural units: m·ln2, or for rows
 * beyond FWD_M_EXACT the largest of their scores over the key blocks
 * [0, kb_end) as the backward computes them (scores, then the masks: the
 * same bits). ix (rows) scratch. */
static void fwd_natural_m(const fwd_args *a, const head_ctx *hc, size_t i0, size_t rows, float *m,
                          size_t kb_end, float *st, size_t *ix, fwd_scores_fn scores,
                          const void *ctx)
{
    size_t nx = 0;
    for (size_t r = 0; r < rows; r++) {
        if (m[r] == -INFINITY) continue;
        if (!(fabsf(m[r]) > FWD_M_EXACT)) {
            m[r] *= FK_LN2;
            continue;
        }
        ix[nx++] = r;
        m[r] = -INFINITY;
    }
    for (size_t kb = 0; nx && kb < kb_end; kb++) {
        const size_t j0 = kb * BC, valid = min_sz(BC, a->d->s - j0);
        scores(ctx, ix, nx, kb, st);
        for (size_t x = 0; x < nx; x++) {
            float *srow = st + x * BC, *mr = m + ix[x];
            apply_masks(a->K, a->d, a->p, hc, srow, 1, i0 + ix[x], j0, valid, 1.0f);
            for (size_t c = 0; c < valid; c++) *mr = srow[c] > *mr ? srow[c] : *mr;
        }
    }
}

/* out rows i0.. = O / l, lse = m + log l (m in natural units), from a
 * tile's accumulators. */
static void fwd_finish(const fwd_args *a, size_t idx, size_t i0, size_t rows, const float *ot,
                       const float *m, const float *l)
{
    const attn_flash_desc *d = a->d;
    const head_ctx hc = head_of(d, idx);
    const size_t dvp = a->p->dvp;
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

/* fwd_natural_m's scores in fp32: the rows' scale·Q into q (nx, dk) on the
 * first block, then the backward's product with the packed K block. */
typedef struct fwd_f32_ctx {
    float *q;
    const float *qh; /* the tile's first row of Q, rows qrs apart */
    size_t qrs;
    float scale;
    const float *kt;
    size_t dk;
    const fk_table *K;
} fwd_f32_ctx;

static void fwd_f32_scores(const void *ctx, const size_t *ix, size_t nx, size_t kb, float *st)
{
    const fwd_f32_ctx *c = ctx;
    if (kb == 0)
        for (size_t x = 0; x < nx; x++)
            for (size_t t = 0; t < c->dk; t++)
                c->q[x * c->dk + t] = c->scale * c->qh[ix[x] * c->qrs + t];
    c->K->gemm(st, BC, c->q, c->dk, 1, c->kt + kb * c->dk * BC, BC, nx, BC, c->dk, NULL, 0);
}

/* vp: V rows (ldv apart), packed or in place. */
static void fwd_tile(const fwd_args *a, size_t idx, const float *kt, const float *vp, size_t ldv,
                     size_t qt, float *ws)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const fk_table *K = a->K;
    const head_ctx hc = head_of(d, idx);
    const size_t br = p->fbr, i0 = qt * br, rows = min_sz(br, d->l - i0), dk = p->dk, dvp = p->dvp;
    float *qs = ws, *st = qs + br * dk, *ot = st + br * BC, *m = ot + br * dvp, *l = m + br;
    float *al = l + br * FK_LANES;

    const float *qh = a->q + hc.b * d->q_bs + hc.h * d->q_hs;
    const float qscale = d->scale * FK_LOG2E; /* scores in log2 units */
    for (size_t r = 0; r < rows; r++) {
        const float *x = qh + (i0 + r) * d->q_rs;
        for (size_t c = 0; c < dk; c++) qs[r * dk + c] = qscale * x[c];
        m[r] = -INFINITY;
    }
    memset(l, 0, rows * FK_LANES * sizeof(float));
    memset(ot, 0, rows * dvp * sizeof(float));

    const size_t kb_end = key_blocks_for(d, p, i0, rows);
    /* the next K block, and V's when its rows are contiguous */
    const size_t kt_bytes = dk * BC * sizeof(float), v_bytes = BC * ldv * sizeof(float);
    const size_t pf_bytes = ldv == dvp ? min_sz(kt_bytes, v_bytes) : kt_bytes;
    for (size_t kb = 0; kb < kb_end; kb++) {
        const size_t j0 = kb * BC, valid = min_sz(BC, d->s - j0);
        const float *ktb = kt + kb * dk * BC;
        if (masks_apply(d, p, &hc, i0, j0, valid)) {
            K->gemm(st, BC, qs, dk, 1, ktb, BC, rows, BC, dk, NULL, 0);
            apply_masks(K, d, p, &hc, st, rows, i0, j0, valid, FK_LOG2E);
            K->softmax_online(st, rows, m, l, al);
        } else {
            const int more = kb + 1 < kb_end;
            K->qk_softmax(st, qs, dk, ktb, rows, m, l, al, more ? ktb + dk * BC : NULL,
                          more && ldv == dvp ? vp + (j0 + BC) * ldv : NULL, pf_bytes);
        }
        K->gemm(ot, dvp, st, BC, 1, vp + j0 * ldv, ldv, rows, dvp, valid, al, 1);
    }
    /* natural scale·Q, as the backward's, into the rows of qs */
    const fwd_f32_ctx cx = {qs, qh + i0 * d->q_rs, d->q_rs, d->scale, kt, dk, K};
    size_t ix[FWD_BR_WIDE];
    fwd_natural_m(a, &hc, i0, rows, m, kb_end, st, ix, fwd_f32_scores, &cx);
    fwd_finish(a, idx, i0, rows, ot, m, l);
}

/* bf16: K block kb paired along d (kpw words), V block paired along keys
 * (vpw words), through tmp (bf16_tmp_floats). */
void pack_bf16_block(const plan *p, uint32_t *kp, uint32_t *vp, in_view kh, size_t krs, in_view vh,
                     size_t vrs, size_t kb, float *tmp)
{
    pack_kt(tmp, kh, krs, p, kb, p->dk);
    p->bf16->cvt_pairs(kp, BC, tmp, BC, p->dk, BC);
    pack_rows(tmp, vh, vrs, p->dv, p->dvp, kb * BC, BC, p->s, 1.0f);
    p->bf16->cvt_pairs(vp, p->dvp, tmp, p->dvp, BC, p->dvp);
}

/* rows of scale·Q from row i0 on as bf16 (rows, dkw words), through tmp. */
void pack_bf16_q(const plan *p, uint32_t *qw, in_view qh, size_t qrs, float scale, size_t i0,
                 size_t rows, float *tmp)
{
    memset(tmp + p->dk, 0, (2 * p->dkw - p->dk) * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        const in_view x = in_off(qh, (i0 + r) * qrs);
        for (size_t c = 0; c < p->dk; c++) tmp[c] = scale * in_get(x, c);
        p->bf16->cvt_rows(qw + r * p->dkw, p->dkw, tmp, 0, 1, 2 * p->dkw);
    }
}

/* fwd_natural_m's scores in bf16: the rows' scale·Q as the backward packs
 * it into qw (nx, dkw words) on the first block, then its product. */
typedef struct fwd_bf16_ctx {
    const plan *p;
    uint32_t *qw;
    in_view qh; /* the head's Q, rows qrs apart */
    size_t qrs;
    float scale;
    size_t i0;
    const uint32_t *kp;
    float *tmp;
} fwd_bf16_ctx;

static void fwd_bf16_scores(const void *ctx, const size_t *ix, size_t nx, size_t kb, float *st)
{
    const fwd_bf16_ctx *c = ctx;
    const plan *p = c->p;
    if (kb == 0)
        for (size_t x = 0; x < nx; x++)
            pack_bf16_q(p, c->qw + x * p->dkw, c->qh, c->qrs, c->scale, c->i0 + ix[x], 1, c->tmp);
    p->bf16->gemm(st, BC, c->qw, p->dkw, c->kp + kb * p->kpw, BC, nx, BC, (p->dk + 1) / 2, NULL, 0);
}

/* The tile of fwd_tile with bf16 products (flash_bf16.h): S = Qw·Kp, and
 * O += P·Vp with P rounded to bf16 (its fp32 sums feed l). */
static void fwd_tile_bf16(const fwd_args *a, size_t idx, const uint32_t *kp, const uint32_t *vp,
                          size_t qt, float *ws)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const fk_bf16 *B = p->bf16;
    const head_ctx hc = head_of(d, idx);
    const size_t br = p->fbr, i0 = qt * br, rows = min_sz(br, d->l - i0), dvp = p->dvp;
    uint32_t *qw = (uint32_t *)ws;
    float *st = ws + br * p->dkw, *ot = st + br * BC, *m = ot + br * dvp, *l = m + br;
    float *al = l + br * FK_LANES;
    uint32_t *pw = (uint32_t *)(al + br);
    float *tmp = (float *)(pw + br * BC / 2);

    /* scale·Q as the backward rounds it; the scores times log2e after the
     * products (log2 units) */
    pack_bf16_q(p, qw, in_of(a->q, a->q16, hc.b * d->q_bs + hc.h * d->q_hs), d->q_rs, d->scale, i0,
                rows, tmp);
    for (size_t r = 0; r < rows; r++) m[r] = -INFINITY;
    memset(l, 0, rows * FK_LANES * sizeof(float));
    memset(ot, 0, rows * dvp * sizeof(float));

    const size_t kb_end = key_blocks_for(d, p, i0, rows);
    for (size_t kb = 0; kb < kb_end; kb++) {
        const size_t j0 = kb * BC, valid = min_sz(BC, d->s - j0);
        if (masks_apply(d, p, &hc, i0, j0, valid)) {
            B->gemm(st, BC, qw, p->dkw, kp + kb * p->kpw, BC, rows, BC, (p->dk + 1) / 2, NULL, 0);
            for (size_t x = 0; x < rows * BC; x++) st[x] *= FK_LOG2E;
            apply_masks(a->K, d, p, &hc, st, rows, i0, j0, valid, FK_LOG2E);
            a->K->softmax_online(st, rows, m, l, al);
            B->cvt_rows(pw, BC / 2, st, BC, rows, BC);
        } else {
            B->qk_softmax(pw, qw, p->dkw, kp + kb * p->kpw, (p->dk + 1) / 2, rows, m, l, al, st);
        }
        B->gemm(ot, dvp, pw, BC / 2, vp + kb * p->vpw, dvp, rows, dvp, BC / 2, al, 1);
    }
    const fwd_bf16_ctx cx = {p, qw, in_of(a->q, a->q16, hc.b * d->q_bs + hc.h * d->q_hs),
                             d->q_rs, d->scale, i0, kp, tmp};
    size_t ix[FWD_BR_WIDE];
    fwd_natural_m(a, &hc, i0, rows, m, kb_end, st, ix, fwd_bf16_scores, &cx);
    fwd_finish(a, idx, i0, rows, ot, m, l);
}

/* The forward on fp32 inputs (q16, k16, v16 NULL) or on bf16 ones (q, k, v
 * NULL; only with the bf16 kernels). */
static attn_status forward_run(float *out, float *lse, const float *q, const float *k,
                               const float *v, const uint16_t *q16, const uint16_t *k16,
                               const uint16_t *v16, const attn_flash_desc *d)
{
    if (q && attn_fl_short_ok(d)) { /* fp32 products on a short sequence */
        attn_fl_short_forward(out, lse, q, k, v, d);
        return ATTN_OK;
    }
    plan p;
    plan_forward(&p, d);
    /* The caller's workspace when it is big enough (64-byte aligned: it
     * comes from an arena), else one of our own. */
    const int own = !d->workspace || d->workspace_bytes < ws_floats(&p) * sizeof(float);
    float *ws = own ? ws_alloc(&p) : d->workspace;
    if (!ws)
        return attn_error(ATTN_E_NOMEM, "flash attention: cannot allocate %zu bytes",
                          ws_floats(&p) * sizeof(float));
    fwd_args a = {d, &p, attn_fk_table(attn_simd_level()), q, k, v, out, lse, q16, k16, v16};
    const size_t kt_floats = p.nkb * p.dk * BC;
    const int v_in_place = p.dv == p.dvp; /* the same values as a packed copy: the same bits */

    for (size_t g0 = 0; g0 < p.nh; g0 += p.group) {
        const size_t gn = min_sz(p.group, p.nh - g0);
        const size_t npack = gn * p.nkb, ntask = gn * p.nqt;
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel if (par_worth(&p))
#endif
        {
            float *tws = ws + p.group * p.head_floats + (size_t)thread_num() * p.thread_floats;
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
            for (size_t t = 0; t < npack; t++) {
                const size_t g = t / p.nkb, kb = t % p.nkb;
                const head_ctx hc = head_of(d, g0 + g);
                float *hb = ws + g * p.head_floats;
                if (p.bf16) {
                    uint32_t *kp = (uint32_t *)hb;
                    pack_bf16_block(&p, kp + kb * p.kpw, kp + p.nkb * p.kpw + kb * p.vpw,
                                    in_of(k, k16, hc.b * d->k_bs + hc.h * d->k_hs), d->k_rs,
                                    in_of(v, v16, hc.b * d->v_bs + hc.h * d->v_hs), d->v_rs, kb,
                                    tws + p.thread_floats - bf16_tmp_floats(&p));
                    continue;
                }
                pack_kt(hb + kb * p.dk * BC, in_f32(k + hc.b * d->k_bs + hc.h * d->k_hs), d->k_rs,
                        &p, kb, p.dk);
                if (!v_in_place)
                    pack_rows(hb + kt_floats + kb * BC * p.dvp,
                              in_f32(v + hc.b * d->v_bs + hc.h * d->v_hs), d->v_rs, p.dv, p.dvp,
                              kb * BC, BC, p.s, 1.0f);
            }
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (size_t t = 0; t < ntask; t++) {
                /* Head by head (its K and V stay in cache), later query
                 * tiles first: under causality they are the longest. */
                const size_t g = t / p.nqt, qt = p.nqt - 1 - t % p.nqt;
                const float *hb = ws + g * p.head_floats;
                const head_ctx hc = head_of(d, g0 + g);
                if (p.bf16) {
                    const uint32_t *kp = (const uint32_t *)hb;
                    fwd_tile_bf16(&a, g0 + g, kp, kp + p.nkb * p.kpw, qt, tws);
                } else if (v_in_place)
                    fwd_tile(&a, g0 + g, hb, v + hc.b * d->v_bs + hc.h * d->v_hs, d->v_rs, qt, tws);
                else
                    fwd_tile(&a, g0 + g, hb, hb + kt_floats, p.dvp, qt, tws);
            }
        }
    }
    if (own) free(ws);
    return ATTN_OK;
}

attn_status attn_flash_forward(float *out, float *lse, const float *q, const float *k,
                               const float *v, const attn_flash_desc *d)
{
    attn_status st = check_desc("flash attention", d);
    if (st) return st;
    if (!out || !q || !k || !v) return attn_error(ATTN_E_INVALID, "flash attention: NULL buffer");
    return forward_run(out, lse, q, k, v, NULL, NULL, NULL, d);
}

/* Q, K, V (bf16) widened to fp32 with their strides, for the fp32 kernels
 * where the bf16 ones are unavailable; all NULL if out of memory. */
void widen_qkv(const attn_flash_desc *d, const uint16_t *q, const uint16_t *k, const uint16_t *v,
               float **qf, float **kf, float **vf)
{
    *qf = widen_input(q, d->batch, d->q_bs, d->heads, d->q_hs, d->l, d->q_rs, d->d_k);
    *kf = widen_input(k, d->batch, d->k_bs, d->heads, d->k_hs, d->s, d->k_rs, d->d_k);
    *vf = widen_input(v, d->batch, d->v_bs, d->heads, d->v_hs, d->s, d->v_rs, d->d_v);
    if (!*qf || !*kf || !*vf) {
        free(*qf), free(*kf), free(*vf);
        *qf = *kf = *vf = NULL;
    }
}

attn_status attn_flash_forward_bf16(float *out, float *lse, const uint16_t *q, const uint16_t *k,
                                    const uint16_t *v, const attn_flash_desc *d)
{
    attn_status st = check_desc("flash attention (bf16 inputs)", d);
    if (st) return st;
    if (d->seq_off)
        return attn_error(ATTN_E_INVALID, "flash attention (bf16 inputs): packed sequences take fp32 inputs");
    if (!out || !q || !k || !v)
        return attn_error(ATTN_E_INVALID, "flash attention (bf16 inputs): NULL buffer");
    attn_flash_desc d16 = *d;
    d16.dtype = ATTN_FLASH_BF16;
    if (attn_flash_bf16_available()) return forward_run(out, lse, NULL, NULL, NULL, q, k, v, &d16);
    float *qf, *kf, *vf;
    widen_qkv(d, q, k, v, &qf, &kf, &vf);
    if (!qf) return attn_error(ATTN_E_NOMEM, "flash attention (bf16 inputs): cannot widen inputs");
    st = forward_run(out, lse, qf, kf, vf, NULL, NULL, NULL, &d16);
    free(qf), free(kf), free(vf);
    return st;
}

/* ---- backward ------------------------------------------------------------------------ */
