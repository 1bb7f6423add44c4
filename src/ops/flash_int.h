/* flash_int.h - what flash.c (forward, shared parts) and flash_bwd.c
 * (backward) share (internal). The shared functions carry attn_fl_ names
 * through the macros below. */
#ifndef ATTN_FLASH_INT_H
#define ATTN_FLASH_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "attn/ops.h"
#include "flash_bf16.h"
#include "flash_kern.h"

#ifdef ATTN_HAVE_OPENMP
#include <omp.h>
#endif

#define BR 64          /* queries per tile */
#define BC FK_BC       /* keys per block */
#define PACK_BUDGET ((size_t)24 << 20) /* bytes of packed heads held at once */
#define GROUP_TASKS 8  /* tasks per thread that make a group of heads big enough */

/* An input tensor (q, k or v): fp32, or bf16 bit patterns (the upper halves
 * of floats: attn_flash_forward_bf16); read widened to fp32, exactly. */
typedef struct in_view {
    const float *f;
    const uint16_t *h; /* when f is NULL */
} in_view;
static inline in_view in_f32(const float *f)
{
    in_view v = {f, NULL};
    return v;
}
static inline in_view in_off(in_view v, size_t off)
{
    if (v.f) v.f += off;
    else v.h += off;
    return v;
}
static inline float in_get(in_view v, size_t i)
{
    if (v.f) return v.f[i];
    const uint32_t u = (uint32_t)v.h[i] << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static inline size_t up16(size_t x) { return (x + 15) & ~(size_t)15; }
static inline size_t cdiv(size_t a, size_t b) { return (a + b - 1) / b; }
static inline size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

static inline int thread_num(void)
{
#ifdef ATTN_HAVE_OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* ---- plan (see flash.c) ------------------------------------------------------ */

typedef struct plan {
    size_t l, s, dk, dv, dkp, dvp;
    size_t nkb, spad, nqt, nh;
    size_t head_floats;   /* packed data of one head */
    size_t thread_floats; /* scratch of one thread */
    size_t group;         /* heads packed at once (shared packing) */
    size_t fbr;           /* forward: queries per tile (FWD_BR or FWD_BR_WIDE) */
    int threads;
    int per_head;         /* backward: one task per head */
    size_t nchunks;       /* backward: chunks of key blocks whose dQ sums are added in order */
    size_t partials;      /* backward, split mode: dQ partial sums held at once (L, dkp) each */
    size_t extra_floats;  /* scratch after the threads' (the partials) */
    long long off;        /* causal: key j allowed iff j <= i + off */
    const fk_bf16 *bf16;  /* bf16 products (dtype bf16 and available), else NULL */
    const fk_table *fk;   /* the kernels of the SIMD level in use */
    size_t dkw;           /* bf16: words of a row of Q (d_k rounded up to 32, halved) */
    size_t kpw, vpw;      /* bf16: words of a packed K block (paired along d) and V block
                           * (paired along keys) */
} plan;

/* Threads only for problems worth a parallel region: a token's attention
 * during generation is a few thousand multiply-adds, less than waking a
 * thread costs. The tasks are the same either way. */
#define PAR_WORK ((double)(1 << 18))
static inline int par_worth(const plan *p)
{
    return (double)p->nh * (double)p->l * (double)p->s * (double)(p->dk + p->dv) >= PAR_WORK;
}

typedef struct head_ctx {
    size_t b, h;
    const uint8_t *bm; /* (L, S) */
    const float *am;   /* (L, S) */
    const float *km;   /* (S) */
} head_ctx;

static inline head_ctx head_of(const attn_flash_desc *d, size_t idx)
{
    head_ctx c;
    c.b = idx / d->heads, c.h = idx % d->heads;
    c.bm = d->bool_mask ? d->bool_mask + c.b * d->bool_mask_bs + c.h * d->bool_mask_hs : NULL;
    c.am = d->add_mask ? d->add_mask + c.b * d->add_mask_bs + c.h * d->add_mask_hs : NULL;
    c.km = d->key_mask ? d->key_mask + c.b * d->key_mask_bs : NULL;
    return c;
}


#define plan_common attn_fl_plan_common
#define pick_group attn_fl_pick_group
#define ws_floats attn_fl_ws_floats
#define ws_alloc attn_fl_ws_alloc
#define check_desc attn_fl_check_desc
#define apply_masks attn_fl_apply_masks
#define masks_apply attn_fl_masks_apply
#define key_blocks_for attn_fl_key_blocks_for
#define first_tile_for attn_fl_first_tile_for
#define pack_kt attn_fl_pack_kt
#define pack_rows attn_fl_pack_rows
#define pack_bf16_q attn_fl_pack_bf16_q
#define pack_bf16_block attn_fl_pack_bf16_block
#define bf16_tmp_floats attn_fl_bf16_tmp_floats

void plan_common(plan *p, const attn_flash_desc *d);
size_t pick_group(const plan *p, size_t tasks_per_head);
size_t ws_floats(const plan *p);
float *ws_alloc(const plan *p);
attn_status check_desc(const char *op, const attn_flash_desc *d);
int masks_apply(const attn_flash_desc *d, const plan *p, const head_ctx *hc, size_t i0, size_t j0,
                size_t valid);
void apply_masks(const fk_table *K, const attn_flash_desc *d, const plan *p, const head_ctx *hc,
                 float *st, size_t rows, size_t i0, size_t j0, size_t valid, float unit);
size_t key_blocks_for(const attn_flash_desc *d, const plan *p, size_t i0, size_t rows);
size_t first_tile_for(const attn_flash_desc *d, const plan *p, size_t kb);
void pack_kt(float *kt, in_view kh, size_t rs, const plan *p, size_t kb, size_t dk);
void pack_rows(float *dst, in_view src, size_t rs, size_t d, size_t dpad, size_t row0,
               size_t nrows, size_t total, float scale);

size_t bf16_tmp_floats(const plan *p);
void pack_bf16_block(const plan *p, uint32_t *kp, uint32_t *vp, in_view kh, size_t krs, in_view vh,
                     size_t vrs, size_t kb, float *tmp);
void pack_bf16_q(const plan *p, uint32_t *qw, in_view qh, size_t qrs, float scale, size_t i0,
                 size_t rows, float *tmp);


/* ---- short sequences (flash_short.c) ---- */

/* 1 when the short-sequence kernels take d: fp32 products, at most 64 keys, d_k and
 * d_v multiples of 16 up to 128, no mask but the key mask, not causal. */
int attn_fl_short_ok(const attn_flash_desc *d);
/* attn_flash_forward / attn_flash_backward on such a d. */
void attn_fl_short_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                           const attn_flash_desc *d);
void attn_fl_short_backward(float *d_q, float *d_k, float *d_v, const float *d_out, const float *q,
                            const float *k, const float *v, const float *out, const float *lse,
                            const attn_flash_desc *d);

/* ---- backward (flash_bwd.c, flash_bwd_bf16.c) ---- */

typedef struct bwd_args {
    const attn_flash_desc *d;
    const plan *p;
    const fk_table *K;
    const float *q, *k, *v, *out, *dout, *lse;
    float *dq, *dk, *dv;
    const uint16_t *q16, *k16, *v16; /* bf16 inputs (then q, k, v are NULL) */
} bwd_args;

/* The input tensor x (fp32 or bf16) at element offset off. */
static inline in_view in_of(const float *x, const uint16_t *x16, size_t off)
{
    in_view v = {x, x16};
    return in_off(v, off);
}

#define widen_input attn_fl_widen_input
#define widen_qkv attn_fl_widen_qkv
/* A bf16 input widened to fp32, strides kept (elements up to the last one the
 * descriptor reaches: batch, heads, rows of d each); NULL if out of memory. */
float *widen_input(const uint16_t *x, size_t batch, size_t bs, size_t heads, size_t hs,
                   size_t rows, size_t rs, size_t d);
void widen_qkv(const attn_flash_desc *d, const uint16_t *q, const uint16_t *k, const uint16_t *v,
               float **qf, float **kf, float **vf);

#define bwd_add_dq attn_fl_bwd_add_dq
/* dq rows i0.. of head idx += scale · acc (rows, dkp). */
void bwd_add_dq(const bwd_args *a, size_t idx, size_t i0, size_t rows, const float *acc);
#define plan_backward_bf16 attn_fl_plan_backward_bf16
#define backward_bf16 attn_fl_backward_bf16
/* The bf16 per-head backward's scratch (thread_floats) and run. */
void plan_backward_bf16(plan *p);
void backward_bf16(const bwd_args *a, float *ws);

#endif
