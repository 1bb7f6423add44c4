/* flash_bwd_bf16.c - the backward of fused attention with bf16 products
 * (flash_bf16.h), one task per (batch, head) problem as the fp32 per-head
 * mode (flash_bwd.c): the same recomputation, with every product's operands
 * packed so that its reduction index runs in pairs:
 *   S   = Qs·Kᵀ        Qs rows (L, dkw)        · K paired along d (per block)
 *   dP  = dO·Vᵀ        dO rows (L, dvw)        · V paired along d (per block)
 *   dVᵀ += dOᵀ·P       dOᵀ rows (d_v, L/2 w.)  · P paired along queries
 *   dKᵀ += Qsᵀ·dS      Qsᵀ rows (d_k, L/2 w.)  · dS paired along queries
 *   dQ  += dS·K        dS rows (BR, BC/2)      · K paired along keys
 * P = exp(S − lse), D = rowsum(dO ∘ O) and dS = P ∘ (dP − D) are fp32; P and
 * dS are rounded where they enter products. dK and dV of a key block are
 * kept transposed (d, BC) and added to the outputs at the block's end; dQ
 * accumulates over the head's key blocks in the thread's scratch.
 *
 * With fewer than four (batch, head) problems, a split mode (the fp32
 * backward's before it summed dQ per chunk): the packed head is shared, tasks are key blocks (dK, dV) and then
 * query tiles (dQ, recomputing P and dS over the key blocks in order). Every
 * sum runs in the order of the per-head mode: the same bits in both modes
 * and for any number of threads. */
#include "flash_int.h"

#include <math.h>
#include <string.h>

/* Words / floats of one head's packed data and of a thread's tiles. */
typedef struct bf_head {
    uint32_t *kd, *vd, *kk; /* K, V paired along d; K paired along keys (per block) */
    uint32_t *qn, *don;     /* scale·Q, dO rows (L, dkw / dvw) */
    uint32_t *qt, *dot;     /* scale·Qᵀ, dOᵀ (d, lw) paired along queries */
    float *dd, *dq;         /* D (L), dQ accumulator (L, dkp) */
    float *pt, *dst, *dkt, *dvt; /* tiles (BR, BC) ×2, (d_k, BC), (d_v, BC) */
    uint32_t *pp, *dsp, *dsr;    /* P and dS paired along queries, dS rows */
    float *tmp;
} bf_head;

static size_t vdw(const plan *p) { return (p->dv + 1) / 2 * BC; } /* V block paired along d */
static size_t dvw(const plan *p) { return ((p->dv + 31) & ~(size_t)31) / 2; }
static size_t lw(const plan *p) { return p->nqt * BR / 2; }
static size_t tmp_floats(const plan *p)
{
    size_t t = bf16_tmp_floats(p), dmax = p->dk > p->dv ? p->dk : p->dv;
    if (dmax * BR > t) t = dmax * BR;
    if (BC * p->dkp > t) t = BC * p->dkp;
    return t > 2 * dvw(p) ? t : 2 * dvw(p);
}

/* Lays out the packed head in h from base; returns the floats it takes (h
 * NULL: only that). */
static size_t bf_layout_head(const plan *p, float *base, bf_head *h)
{
    size_t f = 0;
#define TAKE_W(ptr, n) (h ? (void)(h->ptr = (uint32_t *)(base + f)) : (void)0), f += (n)
#define TAKE_F(ptr, n) (h ? (void)(h->ptr = base + f) : (void)0), f += (n)
    TAKE_W(kd, p->nkb * p->kpw);
    TAKE_W(vd, p->nkb * vdw(p));
    TAKE_W(kk, p->nkb * BC / 2 * p->dkp);
    TAKE_W(qn, p->l * p->dkw);
    TAKE_W(don, p->l * dvw(p));
    TAKE_W(qt, p->dk * lw(p));
    TAKE_W(dot, p->dv * lw(p));
    TAKE_F(dd, p->l);
    return f;
}

/* The thread's tiles, a dQ accumulator of dq_rows rows first. */
static size_t bf_layout_tiles(const plan *p, size_t dq_rows, float *base, bf_head *h)
{
    size_t f = 0;
    TAKE_F(dq, dq_rows * p->dkp);
    TAKE_F(pt, BR * BC);
    TAKE_F(dst, BR * BC);
    TAKE_F(dkt, p->dk * BC);
    TAKE_F(dvt, p->dv * BC);
    TAKE_W(pp, BR / 2 * BC);
    TAKE_W(dsp, BR / 2 * BC);
    TAKE_W(dsr, BR * BC / 2);
    TAKE_F(tmp, tmp_floats(p));
#undef TAKE_W
#undef TAKE_F
    return f;
}

void plan_backward_bf16(plan *p)
{
    if (p->per_head) { /* head and tiles in each thread's scratch */
        p->group = 0, p->head_floats = 0;
        p->thread_floats = up16(bf_layout_head(p, NULL, NULL) + bf_layout_tiles(p, p->l, NULL, NULL));
    } else {
        p->head_floats = up16(bf_layout_head(p, NULL, NULL));
        p->group = pick_group(p, p->nkb + p->nqt);
        p->thread_floats = up16(bf_layout_tiles(p, BR, NULL, NULL));
    }
}

/* Rows i0.. of a (rows, d) tensor transposed into tmp (d, BR), then rounded
 * as rows of dst (d, lw) words at column i0/2, scaled. */
static void pack_transposed(const plan *p, uint32_t *dst, in_view src, size_t rs, size_t d,
                            size_t i0, size_t rows, float scale, float *tmp)
{
    memset(tmp, 0, d * BR * sizeof(float));
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < d; c++) tmp[c * BR + r] = scale * in_get(src, (i0 + r) * rs + c);
    p->bf16->cvt_rows(dst + i0 / 2, lw(p), tmp, BR, d, BR);
}

/* Key block kb of head idx as the pairs read it: K, V paired along d, K
 * paired along keys. */
static void pack_keys(const bwd_args *a, const bf_head *h, size_t idx, size_t kb)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const fk_bf16 *B = p->bf16;
    const head_ctx hc = head_of(d, idx);
    const in_view kh = in_of(a->k, a->k16, hc.b * d->k_bs + hc.h * d->k_hs);
    const in_view vh = in_of(a->v, a->v16, hc.b * d->v_bs + hc.h * d->v_hs);
    uint32_t *kd = h->kd + kb * p->kpw, *vd = h->vd + kb * vdw(p);
    pack_kt(h->tmp, kh, d->k_rs, p, kb, p->dk);
    B->cvt_pairs(kd, BC, h->tmp, BC, p->dk, BC);
    pack_kt(h->tmp, vh, d->v_rs, p, kb, p->dv);
    B->cvt_pairs(vd, BC, h->tmp, BC, p->dv, BC);
    pack_rows(h->tmp, kh, d->k_rs, p->dk, p->dkp, kb * BC, BC, p->s, 1.0f);
    B->cvt_pairs(h->kk + kb * BC / 2 * p->dkp, p->dkp, h->tmp, p->dkp, BC, p->dkp);
}

/* Query tile qt of head idx: scale·Q and dO rows, D, and both transposed. */
static void pack_queries(const bwd_args *a, const bf_head *h, size_t idx, size_t qt)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const fk_bf16 *B = p->bf16;
    const head_ctx hc = head_of(d, idx);
    const in_view qh = in_of(a->q, a->q16, hc.b * d->q_bs + hc.h * d->q_hs);
    const float *oh = a->out + hc.b * d->o_bs + hc.h * d->o_hs;
    const float *doh = a->dout + hc.b * d->o_bs + hc.h * d->o_hs;
    const size_t i0 = qt * BR, rows = min_sz(BR, p->l - i0);
    pack_bf16_q(p, h->qn + i0 * p->dkw, qh, d->q_rs, d->scale, i0, rows, h->tmp);
    memset(h->tmp + p->dv, 0, (2 * dvw(p) - p->dv) * sizeof(float));
    for (size_t i = i0; i < i0 + rows; i++) {
        const float *o = oh + i * d->o_rs, *g = doh + i * d->o_rs;
        float sum = 0.0f;
        for (size_t c = 0; c < p->dv; c++) sum += g[c] * o[c];
        h->dd[i] = sum;
        memcpy(h->tmp, g, p->dv * sizeof(float));
        B->cvt_rows(h->don + i * dvw(p), dvw(p), h->tmp, 0, 1, 2 * dvw(p));
    }
    pack_transposed(p, h->qt, qh, d->q_rs, p->dk, i0, rows, d->scale, h->tmp);
    pack_transposed(p, h->dot, in_f32(doh), d->o_rs, p->dv, i0, rows, 1.0f, h->tmp);
}

/* One (query tile, key block) pair: P, dS, then dVᵀ, dKᵀ (key_side) and
 * dQ rows += dS·K (dq, the tile's rows, or NULL). */
static void pair(const bwd_args *a, const bf_head *h, const head_ctx *hc, const float *lse,
                 size_t qt, size_t kb, int key_side, float *dq)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const fk_bf16 *B = p->bf16;
    const fk_table *K = a->K;
    const size_t i0 = qt * BR, rows = min_sz(BR, d->l - i0), rp = (rows + 1) / 2;
    const size_t j0 = kb * BC, valid = min_sz(BC, d->s - j0);
    B->gemm(h->pt, BC, h->qn + i0 * p->dkw, p->dkw, h->kd + kb * p->kpw, BC, rows, BC,
            (p->dk + 1) / 2, NULL, 0);
    apply_masks(K, d, p, hc, h->pt, rows, i0, j0, valid, 1.0f);
    K->probs(h->pt, rows, lse + i0);
    B->gemm(h->dst, BC, h->don + i0 * dvw(p), dvw(p), h->vd + kb * vdw(p), BC, rows, BC,
            (p->dv + 1) / 2, NULL, 0);
    K->dsoft(h->dst, h->pt, rows, h->dd + i0);
    if (a->dv && key_side) {
        B->cvt_pairs(h->pp, BC, h->pt, BC, rows, BC);
        B->gemm(h->dvt, BC, h->dot + i0 / 2, lw(p), h->pp, BC, p->dv, BC, rp, NULL, 1);
    }
    if (a->dk && key_side) {
        B->cvt_pairs(h->dsp, BC, h->dst, BC, rows, BC);
        B->gemm(h->dkt, BC, h->qt + i0 / 2, lw(p), h->dsp, BC, p->dk, BC, rp, NULL, 1);
    }
    if (dq) {
        B->cvt_rows(h->dsr, BC / 2, h->dst, BC, rows, BC);
        B->gemm(dq, p->dkp, h->dsr, BC / 2, h->kk + kb * BC / 2 * p->dkp,
                p->dkp, rows, p->dkp, BC / 2, NULL, 1);
    }
}

/* out rows j0.. (rs apart) += the transposed block t (dd, BC). */
static void add_transposed(float *out, size_t rs, const float *t, size_t dd, size_t valid)
{
    for (size_t r = 0; r < valid; r++)
        for (size_t c = 0; c < dd; c++) out[r * rs + c] += t[c * BC + r];
}

/* dK, dV of key block kb (and, with dqacc (L, dkp), dQ += dS·K unscaled). */
static void key_block(const bwd_args *a, const bf_head *h, size_t idx, size_t kb, float *dqacc)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const head_ctx hc = head_of(d, idx);
    const float *lse = a->lse + idx * d->l;
    const size_t j0 = kb * BC, valid = min_sz(BC, d->s - j0);
    memset(h->dkt, 0, p->dk * BC * sizeof(float));
    memset(h->dvt, 0, p->dv * BC * sizeof(float));
    for (size_t qt = first_tile_for(d, p, kb); qt < p->nqt; qt++)
        pair(a, h, &hc, lse, qt, kb, 1, dqacc ? dqacc + qt * BR * p->dkp : NULL);
    if (a->dk)
        add_transposed(a->dk + hc.b * d->k_bs + hc.h * d->k_hs + j0 * d->k_rs, d->k_rs, h->dkt,
                       p->dk, valid);
    if (a->dv)
        add_transposed(a->dv + hc.b * d->v_bs + hc.h * d->v_hs + j0 * d->v_rs, d->v_rs, h->dvt,
                       p->dv, valid);
}

static void head_task(const bwd_args *a, const bf_head *h, size_t idx)
{
    const plan *p = a->p;
    for (size_t kb = 0; kb < p->nkb; kb++) pack_keys(a, h, idx, kb);
    for (size_t qt = 0; qt < p->nqt; qt++) pack_queries(a, h, idx, qt);
    if (a->dq) memset(h->dq, 0, p->l * p->dkp * sizeof(float));
    for (size_t kb = 0; kb < p->nkb; kb++) key_block(a, h, idx, kb, a->dq ? h->dq : NULL);
    if (a->dq) bwd_add_dq(a, idx, 0, p->l, h->dq);
}

/* Split mode: dQ of query tile qt over the key blocks it sees, in order. */
static void query_tile(const bwd_args *a, const bf_head *h, size_t idx, size_t qt)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const head_ctx hc = head_of(d, idx);
    const size_t i0 = qt * BR, rows = min_sz(BR, d->l - i0);
    memset(h->dq, 0, BR * p->dkp * sizeof(float));
    const size_t kb_end = key_blocks_for(d, p, i0, rows);
    for (size_t kb = 0; kb < kb_end; kb++) pair(a, h, &hc, a->lse + idx * d->l, qt, kb, 0, h->dq);
    bwd_add_dq(a, idx, i0, rows, h->dq);
}

/* A thread's view: head g of the group (split mode) and its own tiles. */
static bf_head split_view(const plan *p, float *ws, size_t g)
{
    bf_head h;
    bf_layout_head(p, ws + g * p->head_floats, &h);
    bf_layout_tiles(p, BR, ws + p->group * p->head_floats + (size_t)thread_num() * p->thread_floats,
                    &h);
    return h;
}

static void backward_split(const bwd_args *a, float *ws)
{
    const plan *p = a->p;
    for (size_t g0 = 0; g0 < p->nh; g0 += p->group) {
        const size_t gn = min_sz(p->group, p->nh - g0);
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel if (par_worth(p))
#endif
        {
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
            for (size_t t = 0; t < gn * p->nkb; t++) {
                const bf_head h = split_view(p, ws, t / p->nkb);
                pack_keys(a, &h, g0 + t / p->nkb, t % p->nkb);
            }
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
            for (size_t t = 0; t < gn * p->nqt; t++) {
                const bf_head h = split_view(p, ws, t / p->nqt);
                pack_queries(a, &h, g0 + t / p->nqt, t % p->nqt);
            }
            if (a->dk || a->dv) {
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
                for (size_t t = 0; t < gn * p->nkb; t++) {
                    const bf_head h = split_view(p, ws, t % gn);
                    key_block(a, &h, g0 + t % gn, t / gn, NULL);
                }
            }
            if (a->dq) {
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
                for (size_t t = 0; t < gn * p->nqt; t++) {
                    const bf_head h = split_view(p, ws, t % gn);
                    query_tile(a, &h, g0 + t % gn, p->nqt - 1 - t / gn);
                }
            }
        }
    }
}

void backward_bf16(const bwd_args *a, float *ws)
{
    const plan *p = a->p;
    if (!p->per_head) {
        backward_split(a, ws);
        return;
    }
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (par_worth(p))
#endif
    for (size_t idx = 0; idx < p->nh; idx++) {
        float *base = ws + (size_t)thread_num() * p->thread_floats;
        bf_head h;
        bf_layout_tiles(p, p->l, base + bf_layout_head(p, base, &h), &h);
        head_task(a, &h, idx);
    }
}
