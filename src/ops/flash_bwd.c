/* flash_bwd.c - the backward of fused attention (the method: flash.c). */
#include "flash_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    if (p->bf16) { /* flash_bwd_bf16.c, in either mode */
        plan_backward_bf16(p);
        return;
    }
    p->head_floats = up16(bwd_head_floats(p, p->per_head)); /* heads start 64-byte aligned */
    if (p->per_head) {
        p->group = 0;
        p->thread_floats = p->head_floats + p->l * p->dkp + bwd_tile_floats(p, 1);
    } else {
        p->group = pick_group(p, p->nkb + p->nqt);
        p->thread_floats = bwd_tile_floats(p, 0);
    }
}


size_t attn_flash_backward_workspace(const attn_flash_desc *d)
{
    if (!d) return 0;
    plan p;
    plan_backward(&p, d);
    return (ws_floats(&p) * sizeof(float) + 63) & ~(size_t)63;
}




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
    pack_kt(hb->kt + kb * p->dk * BC, in_f32(kh), d->k_rs, p, kb, p->dk);
    if (hb->kr)
        pack_rows(hb->kr + kb * BC * p->dkp, in_f32(kh), d->k_rs, p->dk, p->dkp, kb * BC, BC, p->s, 1.0f);
    pack_kt(hb->vt + kb * p->dv * BC, in_f32(vh), d->v_rs, p, kb, p->dv);
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
            pack_rows(tl->qs, in_f32(a->q + hc.b * d->q_bs + hc.h * d->q_hs), d->q_rs, p->dk, p->dkp, i0,
                      rows, p->l, d->scale);
        *qs = tl->qs;
    }
    if (p->dv == p->dvp) *dO = doh + i0 * d->o_rs, *ldo = d->o_rs;
    else if (hb->dO) *dO = hb->dO + i0 * p->dvp, *ldo = p->dvp;
    else {
        pack_rows(tl->dO, in_f32(doh), d->o_rs, p->dv, p->dvp, i0, rows, p->l, 1.0f);
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
        pack_rows(hb->qs + i0 * p->dkp, in_f32(qh), d->q_rs, p->dk, p->dkp, i0, rows, p->l, d->scale);
        if (hb->dO)
            pack_rows(hb->dO + i0 * p->dvp, in_f32(doh), d->o_rs, p->dv, p->dvp, i0, rows, p->l, 1.0f);
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

/* The rows after those of a query tile (qs, dO, dqacc: the tile's, or NULL)
 * that the next pair reads: the head's packed scale·Q, dO in place when its
 * rows are contiguous, the dQ accumulator. */
static void bwd_prefetch_tile(const bwd_args *a, const bwd_head *hb, const float *qs,
                              const float *dO, size_t ldo, const float *dqacc)
{
    const plan *p = a->p;
    if (hb->qs) a->K->prefetch(qs + BR * p->dkp, BR * p->dkp * sizeof(float));
    if (ldo == p->dvp) a->K->prefetch(dO + BR * ldo, BR * p->dvp * sizeof(float));
    if (dqacc) a->K->prefetch(dqacc + BR * p->dkp, BR * p->dkp * sizeof(float));
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
        if (qt + 1 < p->nqt) /* the next tile's rows, from L3 at long N: ahead of use */
            bwd_prefetch_tile(a, hb, qs, dO, ldo, dqacc ? dqacc + i0 * p->dkp : NULL);
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
            pack_rows(tl->kr, in_f32(kh), d->k_rs, p->dk, p->dkp, j0, valid, p->s, 1.0f);
            kr = tl->kr, ldk = p->dkp;
        }
        a->K->gemm(dqt, p->dkp, tl->dst, BC, 1, kr, ldk, rows, p->dkp, valid, NULL, 1);
    }
    bwd_add_dq(a, idx, i0, rows, dqt);
}

/* The backward on fp32 inputs (in16 NULL) or bf16 ones (in16 = {q, k, v};
 * q, k, v NULL; only with the bf16 kernels). */
static attn_status backward_run(float *d_q, float *d_k, float *d_v, const float *d_out,
                                const float *q, const float *k, const float *v,
                                const uint16_t *const *in16, const float *out, const float *lse,
                                const attn_flash_desc *d)
{
    plan p;
    plan_backward(&p, d);
    /* The caller's workspace when it is big enough (64-byte aligned: it
     * comes from an arena or attn_workspace), else one of our own. */
    const int own = !d->workspace || d->workspace_bytes < ws_floats(&p) * sizeof(float);
    float *ws = own ? ws_alloc(&p) : d->workspace;
    if (!ws)
        return attn_error(ATTN_E_NOMEM, "flash attention backward: cannot allocate %zu bytes",
                          ws_floats(&p) * sizeof(float));
    bwd_args a = {d,   &p,  attn_fk_table(attn_simd_level()), q, k, v, out, d_out, lse, d_q, d_k,
                  d_v, NULL, NULL, NULL};
    if (in16) a.q16 = in16[0], a.k16 = in16[1], a.v16 = in16[2];

    if (p.bf16) {
        backward_bf16(&a, ws);
    } else if (p.per_head) {
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
    if (own) free(ws);
    return ATTN_OK;
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
    return backward_run(d_q, d_k, d_v, d_out, q, k, v, NULL, out, lse, d);
}

attn_status attn_flash_backward_bf16(float *d_q, float *d_k, float *d_v, const float *d_out,
                                     const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                     const float *out, const float *lse, const attn_flash_desc *d)
{
    attn_status st = check_desc("flash attention backward (bf16 inputs)", d);
    if (st) return st;
    if (!d_out || !q || !k || !v || !out || !lse)
        return attn_error(ATTN_E_INVALID, "flash attention backward (bf16 inputs): NULL buffer");
    if (!d_q && !d_k && !d_v) return ATTN_OK;
    attn_flash_desc d16 = *d;
    d16.dtype = ATTN_FLASH_BF16;
    if (attn_flash_bf16_available()) {
        const uint16_t *in16[3] = {q, k, v};
        return backward_run(d_q, d_k, d_v, d_out, NULL, NULL, NULL, in16, out, lse, &d16);
    }
    float *qf, *kf, *vf;
    widen_qkv(d, q, k, v, &qf, &kf, &vf);
    if (!qf)
        return attn_error(ATTN_E_NOMEM, "flash attention backward (bf16 inputs): cannot widen inputs");
    st = backward_run(d_q, d_k, d_v, d_out, qf, kf, vf, NULL, out, lse, &d16);
    free(qf), free(kf), free(vf);
    return st;
}
