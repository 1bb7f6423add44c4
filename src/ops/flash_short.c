/* flash_short.c - fused attention for short sequences (at most SHORT_S keys,
 * the classifier's case: T about 18, d = 32): one task per (batch, head),
 * each its whole (L, S) score matrix row by row, with no packing into the
 * tiled kernels' 64 × 64 tiles (which on such sequences compute mostly
 * padding) and one parallel region per call. The backward recomputes each
 * probability row from lse as the tiled one does and adds each key's dK and
 * dV over the query rows in order (the AVX-512 twin a chunk of rows at a
 * time, in registers), so a task touches only its own head. Every head is
 * computed the same way whatever thread runs it: the threads change no bit.
 *
 * Two twins: plain C (the reference, and the scalar and AVX2 levels) and
 * AVX-512 (16 keys or 16 features a vector, FMA). Both take the softmax's
 * exp from the fused kernels' table of the level in use. */
#include <math.h>
#include <string.h>

#include "flash_int.h"
#include "omp_util.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define SHORT_X86 1
#endif

#define SHORT_S 64   /* keys at most */
#define SHORT_D 128  /* d_k, d_v at most (multiples of 16) */

int attn_fl_short_ok(const attn_flash_desc *d)
{
    /* bf16 products only where the bf16 kernels run (else the fp32 ones) */
    return (d->dtype == ATTN_FLASH_F32 || !attn_flash_bf16_available()) && d->s <= SHORT_S && d->d_k <= SHORT_D &&
           d->d_v <= SHORT_D && d->d_k % 16 == 0 && d->d_v % 16 == 0 &&
           d->causal == ATTN_CAUSAL_NONE && !d->bool_mask && !d->add_mask;
}

/* One head's views. */
typedef struct short_head {
    const float *q, *k, *v, *o, *dout, *km; /* km: key mask (S) or NULL */
    const float *lse;                       /* the forward's (backward) */
    float *out, *lse_out, *dq, *dk, *dv;    /* lse_out: (L) or NULL (forward) */
} short_head;

static const float *off_c(const float *p, size_t off) { return p ? p + off : NULL; }
static float *off_w(float *p, size_t off) { return p ? p + off : NULL; }

/* Head idx's views of the whole call's (base); *hd: d with, for packed
 * sequences (d->seq_off), the head's own length as l and s. */
static short_head head_at(const attn_flash_desc *d, size_t idx, const short_head *base,
                          attn_flash_desc *hd)
{
    const size_t b = idx / d->heads, n = idx % d->heads;
    size_t qo = b * d->q_bs + n * d->q_hs, ko = b * d->k_bs + n * d->k_hs;
    size_t vo = b * d->v_bs + n * d->v_hs, oo = b * d->o_bs + n * d->o_hs;
    *hd = *d;
    if (d->seq_off) { /* check_desc: 1 ≤ rows ≤ l */
        const size_t r0 = d->seq_off[b];
        hd->l = hd->s = d->seq_off[b + 1] - r0;
        qo = r0 * d->q_rs + n * d->q_hs, ko = r0 * d->k_rs + n * d->k_hs;
        vo = r0 * d->v_rs + n * d->v_hs, oo = r0 * d->o_rs + n * d->o_hs;
    }
    short_head h;
    h.q = base->q + qo, h.k = base->k + ko, h.v = base->v + vo;
    h.o = off_c(base->o, oo), h.dout = off_c(base->dout, oo), h.out = off_w(base->out, oo);
    h.km = off_c(d->key_mask, b * d->key_mask_bs);
    h.lse = off_c(base->lse, idx * d->l), h.lse_out = off_w(base->lse_out, idx * d->l);
    h.dq = off_w(base->dq, qo), h.dk = off_w(base->dk, ko), h.dv = off_w(base->dv, vo);
    return h;
}

/* xt (d, sp) = xᵀ of the S rows (rs apart), zero past S; kmask (sp): the key
 * mask, -inf past S. */
static void pack_t(float *xt, const float *x, size_t rs, size_t s, size_t sp, size_t dd)
{
    for (size_t c = 0; c < dd; c++) {
        for (size_t j = 0; j < s; j++) xt[c * sp + j] = x[j * rs + c];
        for (size_t j = s; j < sp; j++) xt[c * sp + j] = 0.0f;
    }
}
static void pack_mask(float *kmask, const float *km, size_t s, size_t sp)
{
    for (size_t j = 0; j < sp; j++) kmask[j] = j >= s ? -INFINITY : km ? km[j] : 0.0f;
}

/* ---- plain C ------------------------------------------------------------------ */

/* srow (sp) = scale·q · kt + kmask */
static void scores_c(float *srow, const float *q, const float *kt, const float *kmask, float scale,
                     size_t dk, size_t sp)
{
    for (size_t j = 0; j < sp; j++) srow[j] = 0.0f;
    for (size_t c = 0; c < dk; c++) {
        const float qc = scale * q[c];
        for (size_t j = 0; j < sp; j++) srow[j] += qc * kt[c * sp + j];
    }
    for (size_t j = 0; j < sp; j++) srow[j] += kmask[j];
}

static void fwd_head_c(const attn_flash_desc *d, const short_head *h, const fk_table *K, float *kt)
{
    const size_t s = d->s, sp = up16(s), dk = d->d_k, dv = d->d_v;
    float srow[SHORT_S], kmask[SHORT_S];
    pack_t(kt, h->k, d->k_rs, s, sp, dk);
    pack_mask(kmask, h->km, s, sp);
    for (size_t i = 0; i < d->l; i++) {
        float *o = h->out + i * d->o_rs;
        scores_c(srow, h->q + i * d->q_rs, kt, kmask, d->scale, dk, sp);
        float m = -INFINITY;
        for (size_t j = 0; j < s; j++) m = srow[j] > m ? srow[j] : m;
        if (m == -INFINITY) { /* every key masked: as the tiled kernels */
            memset(o, 0, dv * sizeof(float));
            if (h->lse_out) h->lse_out[i] = -INFINITY;
            continue;
        }
        for (size_t j = 0; j < sp; j++) srow[j] -= m;
        K->exp_n(srow, srow, sp, 1);
        float sum = 0.0f;
        for (size_t j = 0; j < s; j++) sum += srow[j];
        const float inv = 1.0f / sum;
        for (size_t c = 0; c < dv; c++) o[c] = 0.0f;
        for (size_t j = 0; j < s; j++)
            for (size_t c = 0; c < dv; c++) o[c] += srow[j] * h->v[j * d->v_rs + c];
        for (size_t c = 0; c < dv; c++) o[c] *= inv;
        if (h->lse_out) h->lse_out[i] = m + logf(sum);
    }
}

static void bwd_head_c(const attn_flash_desc *d, const short_head *h, const fk_table *K, float *kt,
                       float *vt)
{
    const size_t s = d->s, sp = up16(s), dk = d->d_k, dv = d->d_v;
    float p[SHORT_S], ds[SHORT_S], kmask[SHORT_S];
    pack_t(kt, h->k, d->k_rs, s, sp, dk);
    pack_t(vt, h->v, d->v_rs, s, sp, dv);
    pack_mask(kmask, h->km, s, sp);
    for (size_t i = 0; i < d->l; i++) {
        const float lse = h->lse[i];
        if (lse == -INFINITY) continue; /* every key masked: no gradient */
        const float *q = h->q + i * d->q_rs, *go = h->dout + i * d->o_rs, *o = h->o + i * d->o_rs;
        scores_c(p, q, kt, kmask, d->scale, dk, sp);
        for (size_t j = 0; j < sp; j++) p[j] -= lse;
        K->exp_n(p, p, sp, 1);
        float dd = 0.0f;
        for (size_t c = 0; c < dv; c++) dd += go[c] * o[c];
        for (size_t j = 0; j < sp; j++) ds[j] = 0.0f;
        for (size_t c = 0; c < dv; c++)
            for (size_t j = 0; j < sp; j++) ds[j] += go[c] * vt[c * sp + j];
        for (size_t j = 0; j < s; j++) ds[j] = d->scale * (p[j] * (ds[j] - dd));
        if (h->dq) {
            float *dq = h->dq + i * d->q_rs;
            for (size_t j = 0; j < s; j++)
                for (size_t c = 0; c < dk; c++) dq[c] += ds[j] * h->k[j * d->k_rs + c];
        }
        for (size_t j = 0; h->dk && j < s; j++)
            for (size_t c = 0; c < dk; c++) h->dk[j * d->k_rs + c] += ds[j] * q[c];
        for (size_t j = 0; h->dv && j < s; j++)
            for (size_t c = 0; c < dv; c++) h->dv[j * d->v_rs + c] += p[j] * go[c];
    }
}

/* ---- AVX-512 ------------------------------------------------------------------- */
#ifdef SHORT_X86
#define SHORT_TARGET __attribute__((target("avx512f")))
#define SHORT_INLINE SHORT_TARGET __attribute__((always_inline)) static inline
#define RB 4 /* rows at a time: RB · NV independent sums hide the FMA's latency */

/* s (rows ≤ RB, lds apart) = scale·x · xt + add, NV vectors of keys: row r
 * from x + r·ldx (d features; xt (d, 16·NV)). Each sum over the features in
 * order, as one row alone would. */
SHORT_INLINE void scores_nv(float *s, size_t lds, const float *x, size_t ldx, size_t rows,
                            const float *xt, const float *add, float scale, size_t dd,
                            const size_t NV)
{
    __m512 acc[RB][4];
    const float *xr[RB];
    for (size_t r = 0; r < RB; r++) {
        xr[r] = x + (r < rows ? r : rows - 1) * ldx; /* past rows: row rows-1 again, not stored */
        for (size_t v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    }
    for (size_t c = 0; c < dd; c++) {
        __m512 kv[4];
        for (size_t v = 0; v < NV; v++) kv[v] = _mm512_loadu_ps(xt + c * 16 * NV + 16 * v);
        for (size_t r = 0; r < RB; r++) {
            const __m512 qc = _mm512_set1_ps(scale * xr[r][c]);
            for (size_t v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(qc, kv[v], acc[r][v]);
        }
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t v = 0; v < NV; v++)
            _mm512_storeu_ps(s + r * lds + 16 * v, _mm512_add_ps(acc[r][v], _mm512_loadu_ps(add + 16 * v)));
}

SHORT_TARGET static void scores_avx512(float *s, size_t lds, const float *x, size_t ldx, size_t rows,
                                       const float *xt, const float *add, float scale, size_t dd,
                                       size_t sp)
{
    switch (sp / 16) {
    case 1: scores_nv(s, lds, x, ldx, rows, xt, add, scale, dd, 1); break;
    case 2: scores_nv(s, lds, x, ldx, rows, xt, add, scale, dd, 2); break;
    case 3: scores_nv(s, lds, x, ldx, rows, xt, add, scale, dd, 3); break;
    default: scores_nv(s, lds, x, ldx, rows, xt, add, scale, dd, 4); break;
    }
}

/* y_r (NV vectors from column c0; rows ≤ RB of them, ldy apart) += post[r] ·
 * Σ_j w_r[j] · x[j·rs + c0 ..] over j < s (w_r = w + r·ldw), in registers. */
SHORT_INLINE void rows_nv(float *y, size_t ldy, const float *w, size_t ldw, size_t rows,
                          const float *x, size_t rs, size_t s, size_t c0, const float *post,
                          const size_t NV)
{
    __m512 acc[RB][4];
    const float *wr[RB];
    for (size_t r = 0; r < RB; r++) {
        wr[r] = w + (r < rows ? r : rows - 1) * ldw; /* past rows: row rows-1 again, not stored */
        for (size_t v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    }
    for (size_t j = 0; j < s; j++) {
        __m512 xv[4];
        for (size_t v = 0; v < NV; v++) xv[v] = _mm512_loadu_ps(x + j * rs + c0 + 16 * v);
        for (size_t r = 0; r < RB; r++) {
            const __m512 wj = _mm512_set1_ps(wr[r][j]);
            for (size_t v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(wj, xv[v], acc[r][v]);
        }
    }
    for (size_t r = 0; r < rows; r++) {
        const __m512 ps = _mm512_set1_ps(post[r]);
        for (size_t v = 0; v < NV; v++) {
            float *yv = y + r * ldy + c0 + 16 * v;
            _mm512_storeu_ps(yv, _mm512_fmadd_ps(acc[r][v], ps, _mm512_loadu_ps(yv)));
        }
    }
}

/* rows_nv over n columns (a multiple of 16), 64 at a time. */
SHORT_TARGET static void rows_avx512(float *y, size_t ldy, const float *w, size_t ldw, size_t rows,
                                     const float *x, size_t rs, size_t s, size_t n,
                                     const float *post)
{
    for (size_t c0 = 0; c0 < n; c0 += 64) {
        switch ((n - c0) / 16) {
        case 1: rows_nv(y, ldy, w, ldw, rows, x, rs, s, c0, post, 1); break;
        case 2: rows_nv(y, ldy, w, ldw, rows, x, rs, s, c0, post, 2); break;
        case 3: rows_nv(y, ldy, w, ldw, rows, x, rs, s, c0, post, 3); break;
        default: rows_nv(y, ldy, w, ldw, rows, x, rs, s, c0, post, 4); break;
        }
    }
}

SHORT_TARGET static float dot_avx512(const float *a, const float *b, size_t n)
{
    __m512 acc = _mm512_setzero_ps();
    for (size_t c = 0; c < n; c += 16)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + c), _mm512_loadu_ps(b + c), acc);
    return _mm512_reduce_add_ps(acc);
}

/* x (sp) -= by, then the softmax's exp. */
SHORT_TARGET static void exp_shift(const fk_table *K, float *x, size_t sp, float by)
{
    const __m512 b = _mm512_set1_ps(by);
    for (size_t j = 0; j < sp; j += 16) _mm512_store_ps(x + j, _mm512_sub_ps(_mm512_load_ps(x + j), b));
    K->exp_n(x, x, sp, 1);
}

/* pack_t by the level's 16 × 16 register transposes: the whole 16-row blocks
 * of x straight, the last partial one through a zero-padded copy (the scalar
 * pack_t's strided loads and stores were a third of the forward head's time). */
SHORT_TARGET static void pack_t16(const fk_table *K, float *xt, const float *x, size_t rs, size_t s,
                                  size_t sp, size_t dd)
{
    const size_t full = s / 16 * 16;
    if (full) K->transpose(xt, sp, x, rs, full, dd);
    if (s == full) return;
    float tmp[16 * SHORT_D] __attribute__((aligned(64)));
    for (size_t r = 0; r < 16; r++) /* dd is a multiple of 16 */
        for (size_t c = 0; c < dd; c += 16)
            _mm512_store_ps(tmp + r * dd + c, full + r < s ? _mm512_loadu_ps(x + (full + r) * rs + c)
                                                           : _mm512_setzero_ps());
    K->transpose(xt + full, sp, tmp, dd, 16, dd);
}

SHORT_TARGET static void fwd_head_avx512(const attn_flash_desc *d, const short_head *h,
                                         const fk_table *K, float *kt)
{
    const size_t s = d->s, sp = up16(s), dk = d->d_k, dv = d->d_v;
    float sb[RB * SHORT_S] __attribute__((aligned(64))), kmask[SHORT_S], post[RB];
    pack_t16(K, kt, h->k, d->k_rs, s, sp, dk);
    pack_mask(kmask, h->km, s, sp);
    for (size_t i0 = 0; i0 < d->l; i0 += RB) {
        const size_t rows = d->l - i0 < RB ? d->l - i0 : RB;
        scores_avx512(sb, sp, h->q + i0 * d->q_rs, d->q_rs, rows, kt, kmask, d->scale, dk, sp);
        for (size_t r = 0; r < rows; r++) {
            float *srow = sb + r * sp, *o = h->out + (i0 + r) * d->o_rs;
            float m = -INFINITY;
            for (size_t j = 0; j < s; j++) m = srow[j] > m ? srow[j] : m;
            memset(o, 0, dv * sizeof(float));
            if (m == -INFINITY) { /* every key masked: as the tiled kernels */
                memset(srow, 0, sp * sizeof(float));
                post[r] = 0.0f;
                if (h->lse_out) h->lse_out[i0 + r] = -INFINITY;
                continue;
            }
            exp_shift(K, srow, sp, m);
            float sum = 0.0f;
            for (size_t j = 0; j < s; j++) sum += srow[j];
            post[r] = 1.0f / sum;
            if (h->lse_out) h->lse_out[i0 + r] = m + logf(sum);
        }
        rows_avx512(h->out + i0 * d->o_rs, d->o_rs, sb, sp, rows, h->v, d->v_rs, s, dv, post);
    }
}

/* Query rows per chunk of the backward: dK and dV are summed over a chunk's
 * rows in registers (rows_avx512 on the transposed dS and P), not added to
 * memory row by row. */
#define SB 64

SHORT_TARGET static void bwd_head_avx512(const attn_flash_desc *d, const short_head *h,
                                         const fk_table *K, float *kt, float *vt)
{
    const size_t s = d->s, sp = up16(s), dk = d->d_k, dv = d->d_v;
    float p[SB * SHORT_S] __attribute__((aligned(64))), ds[SB * SHORT_S] __attribute__((aligned(64)));
    float pt[SHORT_S * SB] __attribute__((aligned(64))), dst[SHORT_S * SB] __attribute__((aligned(64)));
    float kmask[SHORT_S], zero[SHORT_S], one[RB] = {1.0f, 1.0f, 1.0f, 1.0f};
    pack_t16(K, kt, h->k, d->k_rs, s, sp, dk);
    pack_t16(K, vt, h->v, d->v_rs, s, sp, dv);
    pack_mask(kmask, h->km, s, sp);
    memset(zero, 0, sizeof zero);
    const __m512 sc = _mm512_set1_ps(d->scale);
    for (size_t c0 = 0; c0 < d->l; c0 += SB) {
        const size_t cr = d->l - c0 < SB ? d->l - c0 : SB;
        /* dO · O of the chunk's rows first: their loads (first touches of
         * rows written long before) independent of each other, not each
         * waited for between the rows' products */
        float ddo[SB];
        for (size_t r = 0; r < cr; r++)
            ddo[r] = dot_avx512(h->dout + (c0 + r) * d->o_rs, h->o + (c0 + r) * d->o_rs, dv);
        for (size_t i0 = c0; i0 < c0 + cr; i0 += RB) {
            const size_t rows = c0 + cr - i0 < RB ? c0 + cr - i0 : RB;
            float *pb = p + (i0 - c0) * sp, *db = ds + (i0 - c0) * sp;
            scores_avx512(pb, sp, h->q + i0 * d->q_rs, d->q_rs, rows, kt, kmask, d->scale, dk, sp);
            /* dP = dO · Vᵀ */
            scores_avx512(db, sp, h->dout + i0 * d->o_rs, d->o_rs, rows, vt, zero, 1.0f, dv, sp);
            for (size_t r = 0; r < rows; r++) {
                float *pr = pb + r * sp, *dr = db + r * sp;
                const float lse = h->lse[i0 + r];
                if (lse == -INFINITY) { /* every key masked: no gradient (zero rows add nothing) */
                    memset(pr, 0, sp * sizeof(float)), memset(dr, 0, sp * sizeof(float));
                    continue;
                }
                exp_shift(K, pr, sp, lse);
                const __m512 ddv = _mm512_set1_ps(ddo[i0 + r - c0]);
                for (size_t j = 0; j < sp; j += 16) {
                    const __m512 t = _mm512_mul_ps(_mm512_load_ps(pr + j),
                                                   _mm512_sub_ps(_mm512_load_ps(dr + j), ddv));
                    _mm512_store_ps(dr + j, _mm512_mul_ps(sc, t));
                }
            }
            if (h->dq)
                rows_avx512(h->dq + i0 * d->q_rs, d->q_rs, db, sp, rows, h->k, d->k_rs, s, dk, one);
        }
        /* dK += dSᵀ · Q and dV += Pᵀ · dO over the chunk's rows: key j's sums
         * run over the rows in order, as the row-by-row updates did */
        if (h->dk) K->transpose(dst, SB, ds, sp, cr, s);
        if (h->dv) K->transpose(pt, SB, p, sp, cr, s);
        for (size_t j0 = 0; j0 < s; j0 += RB) {
            const size_t keys = s - j0 < RB ? s - j0 : RB;
            if (h->dk)
                rows_avx512(h->dk + j0 * d->k_rs, d->k_rs, dst + j0 * SB, SB, keys,
                            h->q + c0 * d->q_rs, d->q_rs, cr, dk, one);
            if (h->dv)
                rows_avx512(h->dv + j0 * d->v_rs, d->v_rs, pt + j0 * SB, SB, keys,
                            h->dout + c0 * d->o_rs, d->o_rs, cr, dv, one);
        }
    }
}
#endif

/* ---- the calls ------------------------------------------------------------------- */

static int use_avx512(void)
{
#ifdef SHORT_X86
    return attn_simd_level() == ATTN_SIMD_AVX512;
#else
    return 0;
#endif
}

/* Below this work (as par_worth counts it) one thread does the call. */
static int short_par(const attn_flash_desc *d)
{
    return (double)d->batch * (double)d->heads * (double)d->l * (double)d->s *
               (double)(d->d_k + d->d_v) >= PAR_WORK;
}

/* Every head of the call (base: its whole tensors), forward or backward. */
static void short_run(const attn_flash_desc *d, const short_head *base, int backward)
{
    const fk_table *K = attn_fk_table(attn_simd_level());
    const int wide = use_avx512();
    const size_t nh = d->batch * d->heads;
    ATTN_OMP_FOR_DYNAMIC_IF(short_par(d))
    for (size_t idx = 0; idx < nh; idx++) {
        float kt[SHORT_D * SHORT_S] __attribute__((aligned(64)));
        float vt[SHORT_D * SHORT_S] __attribute__((aligned(64)));
        attn_flash_desc hd;
        const short_head h = head_at(d, idx, base, &hd);
#ifdef SHORT_X86
        if (wide) {
            if (backward) bwd_head_avx512(&hd, &h, K, kt, vt);
            else fwd_head_avx512(&hd, &h, K, kt);
            continue;
        }
#endif
        (void)wide;
        if (backward) bwd_head_c(&hd, &h, K, kt, vt);
        else fwd_head_c(&hd, &h, K, kt);
    }
}

void attn_fl_short_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                           const attn_flash_desc *d)
{
    short_head base;
    memset(&base, 0, sizeof base);
    base.q = q, base.k = k, base.v = v, base.out = out, base.lse_out = lse;
    short_run(d, &base, 0);
}

void attn_fl_short_backward(float *d_q, float *d_k, float *d_v, const float *d_out, const float *q,
                            const float *k, const float *v, const float *out, const float *lse,
                            const attn_flash_desc *d)
{
    short_head base;
    memset(&base, 0, sizeof base);
    base.q = q, base.k = k, base.v = v, base.o = out, base.dout = d_out, base.lse = lse;
    base.dq = d_q, base.dk = d_k, base.dv = d_v;
    short_run(d, &base, 1);
}
