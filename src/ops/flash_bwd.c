/* flash_bwd.c - the backward of fused attention (the method: flash.c). */
#include "flash_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* dQ of a query row is Σ over key blocks of dS·K: summed block after block
 * within a chunk of key blocks (from zero), and the chunks' sums added to
 * d_q in order. Both modes do this, so that they give the same bits, and the
 * split mode runs chunks on different threads (each into a partial sum of its
 * own) without recomputing P and dS for dQ. The chunks depend on the shape
 * only: at most DQ_CHUNKS_MAX of at least DQ_CHUNK_BLOCKS key blocks each
 * (one chunk below 1024 keys: training's short sequences keep the bits of a
 * single sum), balanced by (query tile, key block) pairs under causality.
 * A chunk's merge costs one pass over d_q: below 1 % of a head at N = 4096. */
#define DQ_CHUNK_BLOCKS 8
#define DQ_CHUNKS_MAX 8
/* Split mode: bytes of packed heads and dQ partial sums held at once. */
#define SPLIT_BUDGET ((size_t)28 << 20)

static size_t dq_chunks(const plan *p)
{
    const size_t c = p->nkb / DQ_CHUNK_BLOCKS;
    return c < 1 ? 1 : c > DQ_CHUNKS_MAX ? DQ_CHUNKS_MAX : c;
}

/* First key block of chunk c (c = nchunks: nkb): the pairs before it are
 * the fraction c / nchunks of the head's. */
static size_t chunk_start(const attn_flash_desc *d, const plan *p, size_t c)
{
    if (c == 0) return 0;
    if (c >= p->nchunks) return p->nkb;
    if (d->causal == ATTN_CAUSAL_NONE) return c * p->nkb / p->nchunks;
    size_t total = 0, cum = 0, kb = 0;
    for (size_t j = 0; j < p->nkb; j++) total += p->nqt - first_tile_for(d, p, j);
    for (; kb < p->nkb && cum * p->nchunks < c * total; kb++) cum += p->nqt - first_tile_for(d, p, kb);
    return kb;
}

/* Backward head buffer: per-head mode Kt (nkb, d_k, BC) | Vt (nkb, d_v, BC)
 * | D (L) | Qs (L, dkp) | Kr (spad, dkp) unless d_k = dkp | dO (L, dvp)
 * unless d_v = dvp; split mode D | Qs | dO (the key blocks are packed one at
 * a time in the thread's tiles). */
static size_t bwd_head_floats(const plan *p, int per_head)
{
    size_t f = p->l + p->l * p->dkp;
    if (p->dv != p->dvp) f += p->l * p->dvp;
    if (per_head) {
        f += p->nkb * p->dk * BC + p->nkb * p->dv * BC;
        if (p->dk != p->dkp) f += p->spad * p->dkp;
    }
    return f;
}

/* Key blocks a sweep over the query tiles handles together: each query
 * tile's scale·Q, dO and dQ rows (from L3 or memory at long N) are read once
 * for a group of blocks; the products and their order stay those of one block
 * at a time. Split mode (one long head): eight, which ran 2 % faster than
 * four at N = 32768; per-head mode four, 2 % faster than eight at N = 4096
 * x 12 heads (medians of 5 back-to-back runs, causal or not). */
#define KB_GROUP 8
static size_t kb_group(int per_head) { return per_head ? 4 : KB_GROUP; }

/* Thread tiles: P, dS (BR, BC) | kb_group dK, dV blocks (BC, dkp / dvp) |
 * one row of O and 16 results (dvp + 32) | split mode: kb_group key blocks'
 * Kt, Vt (d_k / d_v, BC) and K rows (BC, dkp; unused when d_k = dkp: kept
 * for simpler offsets). */
static size_t bwd_tile_floats(const plan *p, int per_head)
{
    const size_t g = kb_group(per_head);
    size_t f = 2 * BR * BC + g * BC * (p->dkp + p->dvp) + p->dvp + 32;
    if (!per_head) f += g * ((p->dk + p->dv) * BC + BC * p->dkp);
    return f;
}

static void plan_backward(plan *p, const attn_flash_desc *d)
{
    plan_common(p, d);
    p->per_head = p->nh >= 4;
    p->nchunks = dq_chunks(p);
    if (p->bf16) { /* flash_bwd_bf16.c, in either mode */
        plan_backward_bf16(p);
        return;
    }
    p->head_floats = up16(bwd_head_floats(p, p->per_head)); /* heads start 64-byte aligned */
    if (p->per_head) {
        p->group = 0;
        p->thread_floats = p->head_floats + p->l * p->dkp + bwd_tile_floats(p, 1);
        return;
    }
    p->thread_floats = up16(bwd_tile_floats(p, 0));
    /* One partial dQ per thread up to one per chunk task, and heads enough
     * for GROUP_TASKS tasks per thread, within SPLIT_BUDGET (at least one of
     * each): 8 MB a partial at N = 32768, d_k = 64. */
    const size_t budget = SPLIT_BUDGET / sizeof(float), part = p->l * p->dkp;
    size_t g = min_sz(cdiv((size_t)GROUP_TASKS * (size_t)p->threads, p->nchunks), p->nh);
    size_t np = min_sz((size_t)p->threads, g * p->nchunks);
    while (np > 1 && p->head_floats + np * part > budget) np--;
    while (g > 1 && g * p->head_floats + np * part > budget) g--;
    p->group = g;
    p->partials = min_sz(np, g * p->nchunks);
    p->extra_floats = p->partials * part;
}


size_t attn_flash_backward_workspace(const attn_flash_desc *d)
{
    if (!d) return 0;
    plan p;
    plan_backward(&p, d);
    return (ws_floats(&p) * sizeof(float) + 63) & ~(size_t)63;
}


typedef struct bwd_head {
    float *kt, *vt, *dd; /* per-head mode: Kᵀ, Vᵀ blocks (else NULL); D */
    float *qs, *kr, *dO; /* scale·Q; padded K rows (per-head mode, d_k != dkp), dO (d_v !=
                          * dvp), else NULL */
} bwd_head;

static bwd_head bwd_head_at(const plan *p, float *hb)
{
    bwd_head h;
    h.kt = h.vt = h.kr = h.dO = NULL;
    float *f = hb;
    if (p->per_head) {
        h.kt = f, f += p->nkb * p->dk * BC;
        h.vt = f, f += p->nkb * p->dv * BC;
    }
    h.dd = f, f += p->l;
    h.qs = f, f += p->l * p->dkp;
    if (p->per_head && p->dk != p->dkp) h.kr = f, f += p->spad * p->dkp;
    if (p->dv != p->dvp) h.dO = f;
    return h;
}

/* A thread's tiles (bwd_tile_floats); dkb, dvb, kt, vt, kr: kb_group blocks. */
typedef struct bwd_tiles {
    float *pt, *dst, *dkb, *dvb, *orow, *res;
    float *kt, *vt, *kr; /* split mode: the key blocks in use; else NULL */
} bwd_tiles;

static bwd_tiles bwd_tiles_at(const plan *p, float *t)
{
    bwd_tiles b;
    b.pt = t;
    b.dst = b.pt + BR * BC;
    b.dkb = b.dst + BR * BC;
    const size_t g = kb_group(p->per_head);
    b.dvb = b.dkb + g * BC * p->dkp;
    b.orow = b.dvb + g * BC * p->dvp;
    b.res = b.orow + p->dvp + 16;
    b.kt = b.vt = b.kr = NULL;
    if (!p->per_head) {
        b.kt = b.res + 16;
        b.vt = b.kt + g * p->dk * BC;
        b.kr = b.vt + g * p->dv * BC;
    }
    return b;
}

/* A key block as the pairs read it: Kᵀ, Vᵀ (d, BC) and K rows (ldk apart). */
typedef struct bwd_block {
    const float *kt, *vt, *kr;
    size_t ldk;
} bwd_block;

/* Packs key block kb of head idx: into the head buffer (per-head mode) or
 * slot g of the thread's tiles (split mode); K rows in place when d_k = dkp. */
static bwd_block bwd_pack_keys(const bwd_args *a, const bwd_head *hb, const bwd_tiles *tl,
                               size_t idx, size_t kb, size_t g)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const head_ctx hc = head_of(d, idx);
    const float *kh = a->k + hc.b * d->k_bs + hc.h * d->k_hs;
    const float *vh = a->v + hc.b * d->v_bs + hc.h * d->v_hs;
    float *kt = hb->kt ? hb->kt + kb * p->dk * BC : tl->kt + g * p->dk * BC;
    float *vt = hb->vt ? hb->vt + kb * p->dv * BC : tl->vt + g * p->dv * BC;
    bwd_block b = {kt, vt, kh + kb * BC * d->k_rs, d->k_rs};
    pack_kt(kt, in_f32(kh), d->k_rs, p, kb, p->dk);
    pack_kt(vt, in_f32(vh), d->v_rs, p, kb, p->dv);
    if (p->dk != p->dkp) {
        float *kr = hb->kr ? hb->kr + kb * BC * p->dkp : tl->kr + g * BC * p->dkp;
        pack_rows(kr, in_f32(kh), d->k_rs, p->dk, p->dkp, kb * BC, BC, p->s, 1.0f);
        b.kr = kr, b.ldk = p->dkp;
    }
    return b;
}

/* The packed block kb of the per-head mode. */
static bwd_block bwd_block_at(const bwd_args *a, const bwd_head *hb, size_t idx, size_t kb)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const head_ctx hc = head_of(d, idx);
    bwd_block b = {hb->kt + kb * p->dk * BC, hb->vt + kb * p->dv * BC,
                   a->k + hc.b * d->k_bs + hc.h * d->k_hs + kb * BC * d->k_rs, d->k_rs};
    if (hb->kr) b.kr = hb->kr + kb * BC * p->dkp, b.ldk = p->dkp;
    return b;
}

/* dO rows (ldo apart, dvp wide) of query tile qt: packed in the head buffer
 * or in place when d_v = dvp. */
static const float *bwd_dout(const bwd_args *a, const bwd_head *hb, size_t idx, size_t qt,
                             size_t *ldo)
{
    const attn_flash_desc *d = a->d;
    const head_ctx hc = head_of(d, idx);
    if (hb->dO) {
        *ldo = a->p->dvp;
        return hb->dO + qt * BR * a->p->dvp;
    }
    *ldo = d->o_rs;
    return a->dout + hc.b * d->o_bs + hc.h * d->o_hs + qt * BR * d->o_rs;
}

/* Query tile qt: scale·Q (and dO when d_v != dvp) into the head buffer, and
 * D_i = dO_i · O_i through the same kernel (same rounding) as dP = dO·Vᵀ, so
 * that a row whose softmax is one-hot gets dS = 0 exactly, as it should. */
static void bwd_pack_queries(const bwd_args *a, const bwd_head *hb, const bwd_tiles *tl,
                             size_t idx, size_t qt)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const head_ctx hc = head_of(d, idx);
    const size_t i0 = qt * BR, rows = min_sz(BR, d->l - i0);
    const float *oh = a->out + hc.b * d->o_bs + hc.h * d->o_hs;
    const float *qh = a->q + hc.b * d->q_bs + hc.h * d->q_hs;
    const float *doh = a->dout + hc.b * d->o_bs + hc.h * d->o_hs;
    pack_rows(hb->qs + i0 * p->dkp, in_f32(qh), d->q_rs, p->dk, p->dkp, i0, rows, p->l, d->scale);
    if (hb->dO)
        pack_rows(hb->dO + i0 * p->dvp, in_f32(doh), d->o_rs, p->dv, p->dvp, i0, rows, p->l, 1.0f);
    size_t ldo;
    const float *dO = bwd_dout(a, hb, idx, qt, &ldo);
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
                     const bwd_block *blk, const bwd_tiles *tl)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const fk_table *K = a->K;
    const size_t i0 = qt * BR, rows = min_sz(BR, d->l - i0);
    const size_t j0 = kb * BC, valid = min_sz(BC, d->s - j0);
    if (!masks_apply(d, p, hc, i0, j0, valid)) { /* the same bits in registers */
        K->qk_probs(tl->pt, qs, p->dkp, blk->kt, p->dk, rows, lse + i0);
        K->dp_dsoft(tl->dst, dO, ldo, blk->vt, p->dv, rows, tl->pt, hb->dd + i0);
        return;
    }
    K->gemm(tl->pt, BC, qs, p->dkp, 1, blk->kt, BC, rows, BC, p->dk, NULL, 0);
    apply_masks(K, d, p, hc, tl->pt, rows, i0, j0, valid, 1.0f);
    K->probs(tl->pt, rows, lse + i0);
    K->gemm(tl->dst, BC, dO, ldo, 1, blk->vt, BC, rows, BC, p->dv, NULL, 0);
    K->dsoft(tl->dst, tl->pt, rows, hb->dd + i0);
}

/* The rows after those of a query tile (qs, dO, dqacc: the tile's, or NULL)
 * that the next pair reads: the head's packed scale·Q, dO in place when its
 * rows are contiguous, the dQ accumulator. */
static void bwd_prefetch_tile(const bwd_args *a, const float *qs, const float *dO, size_t ldo,
                              const float *dqacc)
{
    const plan *p = a->p;
    a->K->prefetch(qs + BR * p->dkp, BR * p->dkp * sizeof(float));
    if (ldo == p->dvp) a->K->prefetch(dO + BR * ldo, BR * p->dvp * sizeof(float));
    if (dqacc) a->K->prefetch(dqacc + BR * p->dkp, BR * p->dkp * sizeof(float));
}

/* dK, dV of key blocks kb0.. (ng <= kb_group of them: blk) over the query
 * tiles that see them; with dqacc (L, dkp), dQ rows += dS·K unscaled, block
 * after block (= for the block dq_first, the first of its chunk). */
static void bwd_key_group(const bwd_args *a, const bwd_head *hb, const bwd_tiles *tl,
                          const bwd_block *blk, size_t idx, size_t kb0, size_t ng, float *dqacc,
                          size_t dq_first)
{
    const attn_flash_desc *d = a->d;
    const plan *p = a->p;
    const fk_table *K = a->K;
    const head_ctx hc = head_of(d, idx);
    const float *lse = a->lse + idx * d->l;
    float *pt = tl->pt, *dst = tl->dst;
    const int want_k = a->dk != NULL, want_v = a->dv != NULL;
    size_t qfirst[KB_GROUP] = {0};
    for (size_t g = 0; g < ng; g++) qfirst[g] = first_tile_for(d, p, kb0 + g);
    memset(tl->dkb, 0, ng * BC * p->dkp * sizeof(float));
    memset(tl->dvb, 0, ng * BC * p->dvp * sizeof(float));
    for (size_t qt = qfirst[0]; qt < p->nqt; qt++) {
        const size_t i0 = qt * BR, rows = min_sz(BR, d->l - i0);
        const float *qs = hb->qs + i0 * p->dkp;
        size_t ldo;
        const float *dO = bwd_dout(a, hb, idx, qt, &ldo);
        if (qt + 1 < p->nqt) /* the next tile's rows, from L3 at long N: ahead of use */
            bwd_prefetch_tile(a, qs, dO, ldo, dqacc ? dqacc + i0 * p->dkp : NULL);
        for (size_t g = 0; g < ng; g++) {
            if (qt < qfirst[g]) continue;
            const size_t kb = kb0 + g, valid = min_sz(BC, d->s - kb * BC);
            bwd_pair(a, hb, &hc, lse, qs, dO, ldo, qt, kb, blk + g, tl);
            if (want_v)
                K->gemm(tl->dvb + g * BC * p->dvp, p->dvp, pt, 1, BC, dO, ldo, BC, p->dvp, rows,
                        NULL, 1);
            if (want_k)
                K->gemm(tl->dkb + g * BC * p->dkp, p->dkp, dst, 1, BC, qs, p->dkp, BC, p->dkp,
                        rows, NULL, 1);
            if (dqacc)
                K->gemm(dqacc + i0 * p->dkp, p->dkp, dst, BC, 1, blk[g].kr, blk[g].ldk, rows,
                        p->dkp, valid, NULL, kb != dq_first);
        }
    }
    for (size_t g = 0; g < ng; g++) {
        const size_t j0 = (kb0 + g) * BC, valid = min_sz(BC, d->s - j0);
        const float *dkb = tl->dkb + g * BC * p->dkp, *dvb = tl->dvb + g * BC * p->dvp;
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
}

/* Key blocks [kb0, kb1) of head idx (a chunk, or the whole head without dQ),
 * dQ into dqacc (L, dkp) from zero; returns the first query tile written
 * (nqt: none). The per-head mode reads its packed blocks, the split mode
 * packs each group of blocks into the thread's tiles. */
static size_t bwd_key_range(const bwd_args *a, const bwd_head *hb, const bwd_tiles *tl,
                            size_t idx, size_t kb0, size_t kb1, float *dqacc)
{
    const size_t group = kb_group(a->p->per_head);
    for (size_t kb = kb0; kb < kb1; kb += group) {
        const size_t ng = min_sz(group, kb1 - kb);
        bwd_block blk[KB_GROUP];
        for (size_t g = 0; g < ng; g++)
            blk[g] = a->p->per_head ? bwd_block_at(a, hb, idx, kb + g)
                                    : bwd_pack_keys(a, hb, tl, idx, kb + g, g);
        bwd_key_group(a, hb, tl, blk, idx, kb, ng, dqacc, kb0);
    }
    return kb0 < kb1 ? first_tile_for(a->d, a->p, kb0) : a->p->nqt;
}

/* d_q rows from query tile qt0 on += scale · dqacc: one chunk's sum. */
static void bwd_merge_dq(const bwd_args *a, size_t idx, size_t qt0, const float *dqacc)
{
    const plan *p = a->p;
    if (qt0 < p->nqt) bwd_add_dq(a, idx, qt0 * BR, p->l - qt0 * BR, dqacc + qt0 * BR * p->dkp);
}

/* One task per (batch, head): its keys packed, then its chunks in order. */
static void backward_per_head(const bwd_args *a, float *ws)
{
    const plan *p = a->p;
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (par_worth(p))
#endif
    for (size_t idx = 0; idx < p->nh; idx++) {
        float *tws = ws + (size_t)thread_num() * p->thread_floats;
        bwd_head hb = bwd_head_at(p, tws);
        float *dqacc = tws + p->head_floats;
        const bwd_tiles tl = bwd_tiles_at(p, dqacc + p->l * p->dkp);
        for (size_t kb = 0; kb < p->nkb; kb++) bwd_pack_keys(a, &hb, &tl, idx, kb, 0);
        for (size_t qt = 0; qt < p->nqt; qt++) bwd_pack_queries(a, &hb, &tl, idx, qt);
        if (!a->dq) {
            bwd_key_range(a, &hb, &tl, idx, 0, p->nkb, NULL);
            continue;
        }
        for (size_t c = 0; c < p->nchunks; c++) {
            const size_t qt0 = bwd_key_range(a, &hb, &tl, idx, chunk_start(a->d, p, c),
                                             chunk_start(a->d, p, c + 1), dqacc);
            bwd_merge_dq(a, idx, qt0, dqacc);
        }
    }
}

/* Fewer than four (batch, head) problems: groups of heads; the query side
 * packed on all threads, then tasks are (chunk, head) pairs, each into a
 * partial dQ of its thread, added to d_q in task order (OpenMP's ordered:
 * the order of the per-head mode whatever the thread that ran it); on
 * p->partials threads (the memory bound), or without dQ, key blocks on all. */
static void backward_split(const bwd_args *a, float *ws)
{
    const plan *p = a->p;
    const size_t nc = p->nchunks;
    float *tiles = ws + p->group * p->head_floats;
    float *parts = tiles + (size_t)p->threads * p->thread_floats;
    for (size_t g0 = 0; g0 < p->nh; g0 += p->group) {
        const size_t gn = min_sz(p->group, p->nh - g0);
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel if (par_worth(p))
#endif
        {
            const bwd_tiles tl = bwd_tiles_at(p, tiles + (size_t)thread_num() * p->thread_floats);
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
            for (size_t t = 0; t < gn * p->nqt; t++) {
                bwd_head hb = bwd_head_at(p, ws + (t / p->nqt) * p->head_floats);
                bwd_pack_queries(a, &hb, &tl, g0 + t / p->nqt, t % p->nqt);
            }
            if (!a->dq) {
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
                for (size_t t = 0; t < gn * p->nkb; t++) {
                    const size_t g = t % gn, kb = t / gn;
                    bwd_head hb = bwd_head_at(p, ws + g * p->head_floats);
                    bwd_key_range(a, &hb, &tl, g0 + g, kb, kb + 1, NULL);
                }
            }
        }
        if (!a->dq) continue;
        const int nt = (int)p->partials;
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1 && par_worth(p))
#endif
        {
            const bwd_tiles tl = bwd_tiles_at(p, tiles + (size_t)thread_num() * p->thread_floats);
            float *dqacc = parts + (size_t)thread_num() * p->l * p->dkp;
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1) ordered
#endif
            for (size_t t = 0; t < gn * nc; t++) {
                const size_t g = t % gn, c = t / gn;
                bwd_head hb = bwd_head_at(p, ws + g * p->head_floats);
                const size_t qt0 = bwd_key_range(a, &hb, &tl, g0 + g, chunk_start(a->d, p, c),
                                                 chunk_start(a->d, p, c + 1), dqacc);
#ifdef ATTN_HAVE_OPENMP
#pragma omp ordered
#endif
                bwd_merge_dq(a, g0 + g, qt0, dqacc);
            }
        }
    }
}

/* The backward on fp32 inputs (in16 NULL) or bf16 ones (in16 = {q, k, v};
 * q, k, v NULL; only with the bf16 kernels). */
static attn_status backward_run(float *d_q, float *d_k, float *d_v, const float *d_out,
                                const float *q, const float *k, const float *v,
                                const uint16_t *const *in16, const float *out, const float *lse,
                                const attn_flash_desc *d)
{
    if (!in16 && attn_fl_short_ok(d)) { /* fp32 products on a short sequence */
        attn_fl_short_backward(d_q, d_k, d_v, d_out, q, k, v, out, lse, d);
        return ATTN_OK;
    }
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

    if (p.bf16) backward_bf16(&a, ws);
    else if (p.per_head) backward_per_head(&a, ws);
    else backward_split(&a, ws);
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
    if (d->seq_off)
        return attn_error(ATTN_E_INVALID, "flash attention backward (bf16 inputs): packed sequences take fp32 inputs");
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
