/* flash_short.c - fused attention for short sequences (at most SHORT_S keys,
 * the classifier's case: T about 18, d = 32): one task per (batch, head),
 * each its whole (L, S) score matrix row by row, with no packing into the
 * tiled kernels' 64 × 64 tiles (which on such sequences compute mostly
 * padding) and one parallel region per call. The backward recomputes each
 * probability row from lse as the tiled one does and adds dK and dV row by
 * row, so a task touches only its own head. Every head is computed the same
 * way whatever thread runs it: the threads change no bit.
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

/* Head idx's views of the whole call's (base). */
static short_head head_at(const attn_flash_desc *d, size_t idx, const short_head *base)
{
    const size_t b = idx / d->heads, n = idx % d->heads;
    const size_t qo = b * d->q_bs + n * d->q_hs, ko = b * d->k_bs + n * d->k_hs;
    const size_t vo = b * d->v_bs + n * d->v_hs, oo = b * d->o_bs + n * d->o_hs;
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

/* srow (sp) = scale·q · kt + kmask, sp / 16 vectors (at most 4). */
SHORT_TARGET static void scores_avx512(float *srow, const float *q, const float *kt,
                                       const float *kmask, float scale, size_t dk, size_t sp)
{
    const size_t nv = sp / 16;
    __m512 acc[SHORT_S / 16];
    for (size_t v = 0; v < nv; v++) acc[v] = _mm512_setzero_ps();
    for (size_t c = 0; c < dk; c++) {
        const __m512 qc = _mm512_set1_ps(scale * q[c]);
        for (size_t v = 0; v < nv; v++)
            acc[v] = _mm512_fmadd_ps(qc, _mm512_loadu_ps(kt + c * sp + 16 * v), acc[v]);
    }
    for (size_t v = 0; v < nv; v++)
        _mm512_storeu_ps(srow + 16 * v, _mm512_add_ps(acc[v], _mm512_loadu_ps(kmask + 16 * v)));
}

/* y (n, a multiple of 16) += Σ_j w[j] · x[j·rs ..] over j < s, held in registers. */
SHORT_TARGET static void rows_avx512(float *y, const float *w, const float *x, size_t rs, size_t s,
                                     size_t n, float post)
{
    for (size_t c0 = 0; c0 < n; c0 += 64) {
        const size_t nv = (n - c0) / 16 < 4 ? (n - c0) / 16 : 4;
        __m512 acc[4];
        for (size_t v = 0; v < nv; v++) acc[v] = _mm512_setzero_ps();
        for (size_t j = 0; j < s; j++) {
            const __m512 wj = _mm512_set1_ps(w[j]);
            for (size_t v = 0; v < nv; v++)
                acc[v] = _mm512_fmadd_ps(wj, _mm512_loadu_ps(x + j * rs + c0 + 16 * v), acc[v]);
        }
        const __m512 ps = _mm512_set1_ps(post);
        for (size_t v = 0; v < nv; v++) {
            float *yv = y + c0 + 16 * v;
            _mm512_storeu_ps(yv, _mm512_fmadd_ps(acc[v], ps, _mm512_loadu_ps(yv)));
        }
    }
}

/* y[j·rs ..] += w[j] · x (n, a multiple of 16) for j < s. */
SHORT_TARGET static void outer_avx512(float *y, size_t rs, const float *w, const float *x, size_t s,
                                      size_t n)
{
    for (size_t j = 0; j < s; j++) {
        const __m512 wj = _mm512_set1_ps(w[j]);
        float *yj = y + j * rs;
        for (size_t c = 0; c < n; c += 16)
            _mm512_storeu_ps(yj + c, _mm512_fmadd_ps(wj, _mm512_loadu_ps(x + c),
                                                     _mm512_loadu_ps(yj + c)));
    }
}

SHORT_TARGET static float dot_avx512(const float *a, const float *b, size_t n)
{
    __m512 acc = _mm512_setzero_ps();
    for (size_t c = 0; c < n; c += 16)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + c), _mm512_loadu_ps(b + c), acc);
    return _mm512_reduce_add_ps(acc);
}

SHORT_TARGET static void fwd_head_avx512(const attn_flash_desc *d, const short_head *h,
                                         const fk_table *K, float *kt)
{
    const size_t s = d->s, sp = up16(s), dk = d->d_k, dv = d->d_v;
    float srow[SHORT_S] __attribute__((aligned(64))), kmask[SHORT_S];
    pack_t(kt, h->k, d->k_rs, s, sp, dk);
    pack_mask(kmask, h->km, s, sp);
    for (size_t i = 0; i < d->l; i++) {
        float *o = h->out + i * d->o_rs;
        scores_avx512(srow, h->q + i * d->q_rs, kt, kmask, d->scale, dk, sp);
        float m = -INFINITY;
        for (size_t j = 0; j < s; j++) m = srow[j] > m ? srow[j] : m;
        if (m == -INFINITY) {
            memset(o, 0, dv * sizeof(float));
            if (h->lse_out) h->lse_out[i] = -INFINITY;
            continue;
        }
        const __m512 mv = _mm512_set1_ps(m);
        for (size_t j = 0; j < sp; j += 16)
            _mm512_store_ps(srow + j, _mm512_sub_ps(_mm512_load_ps(srow + j), mv));
        K->exp_n(srow, srow, sp, 1);
        float sum = 0.0f;
        for (size_t j = 0; j < s; j++) sum += srow[j];
        memset(o, 0, dv * sizeof(float));
        rows_avx512(o, srow, h->v, d->v_rs, s, dv, 1.0f / sum);
        if (h->lse_out) h->lse_out[i] = m + logf(sum);
    }
}

SHORT_TARGET static void bwd_head_avx512(const attn_flash_desc *d, const short_head *h,
                                         const fk_table *K, float *kt, float *vt)
{
    const size_t s = d->s, sp = up16(s), dk = d->d_k, dv = d->d_v;
    float p[SHORT_S] __attribute__((aligned(64))), ds[SHORT_S] __attribute__((aligned(64)));
    float kmask[SHORT_S], zero[SHORT_S];
    pack_t(kt, h->k, d->k_rs, s, sp, dk);
    pack_t(vt, h->v, d->v_rs, s, sp, dv);
    pack_mask(kmask, h->km, s, sp);
    memset(zero, 0, sizeof zero);
    for (size_t i = 0; i < d->l; i++) {
        const float lse = h->lse[i];
        if (lse == -INFINITY) continue;
        const float *q = h->q + i * d->q_rs, *go = h->dout + i * d->o_rs, *o = h->o + i * d->o_rs;
        scores_avx512(p, q, kt, kmask, d->scale, dk, sp);
        const __m512 lv = _mm512_set1_ps(lse);
        for (size_t j = 0; j < sp; j += 16)
            _mm512_store_ps(p + j, _mm512_sub_ps(_mm512_load_ps(p + j), lv));
        K->exp_n(p, p, sp, 1);
        const __m512 ddv = _mm512_set1_ps(dot_avx512(go, o, dv)), sc = _mm512_set1_ps(d->scale);
        scores_avx512(ds, go, vt, zero, 1.0f, dv, sp); /* dP = dO · Vᵀ */
        for (size_t j = 0; j < sp; j += 16) {
            const __m512 t = _mm512_mul_ps(_mm512_load_ps(p + j),
                                           _mm512_sub_ps(_mm512_load_ps(ds + j), ddv));
            _mm512_store_ps(ds + j, _mm512_mul_ps(sc, t));
        }
        if (h->dq) rows_avx512(h->dq + i * d->q_rs, ds, h->k, d->k_rs, s, dk, 1.0f);
        if (h->dk) outer_avx512(h->dk, d->k_rs, ds, q, s, dk);
        if (h->dv) outer_avx512(h->dv, d->v_rs, p, go, s, dv);
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
        const short_head h = head_at(d, idx, base);
#ifdef SHORT_X86
        if (wide) {
            if (backward) bwd_head_avx512(d, &h, K, kt, vt);
            else fwd_head_avx512(d, &h, K, kt);
            continue;
        }
#endif
        (void)wide;
        if (backward) bwd_head_c(d, &h, K, kt, vt);
        else fwd_head_c(d, &h, K, kt);
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
