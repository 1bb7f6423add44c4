/* attn/ops.h - the math: matmul, row softmax, scaled dot-product attention.
 *
 * Conventions (see docs/design.md):
 *  - attn_<op>_forward(outputs..., inputs..., sizes..., ctx). Every buffer is
 *    contiguous row-major float32; its shape is in the comment beside it.
 *  - Each op has a plain reference implementation, attn_<op>_ref, that is
 *    short and obviously right; the dispatching attn_<op>_forward may use a
 *    faster kernel, and tests hold the two together. With a trace in ctx the
 *    ops take the reference path and record their intermediates.
 *  - Sizes of 0 are rejected: an attention over nothing has no meaning here.
 */
#ifndef ATTN_OPS_H
#define ATTN_OPS_H

#include <stddef.h>
#include <stdint.h>
#include "attn/cpu.h"
#include "attn/status.h"
#include "attn/tensor.h"
#include "attn/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Context handed to every op. A zeroed struct (or NULL) means: no trace. */
typedef struct attn_op_ctx {
    attn_trace *trace;   /* record intermediates here when not NULL */
    const char *prefix;  /* name prefix for recorded entries, e.g. "layer0.head1" */
} attn_op_ctx;

/* Records data (rows, cols) as "<ctx->prefix>.<name>" with the given axis
 * names when ctx carries a trace; does nothing (ATTN_OK) otherwise. The one
 * way ops and layers keep an intermediate. */
attn_status attn_op_record(const attn_op_ctx *ctx, const char *name, const float *data,
                           size_t rows, size_t cols, const char *row_axis, const char *col_axis);

/* ---- matmul ------------------------------------------------------------ */

/* c = a · b         c: (M, N)  a: (M, K)  b: (K, N) */
attn_status attn_matmul_forward(float *c, const float *a, const float *b,
                                size_t m, size_t k, size_t n, const attn_op_ctx *ctx);
/* c = a · bᵀ        c: (M, N)  a: (M, K)  b: (N, K) */
attn_status attn_matmul_nt_forward(float *c, const float *a, const float *b,
                                   size_t m, size_t k, size_t n, const attn_op_ctx *ctx);
/* Reference twins: one dot product per output, accumulated in double. */
attn_status attn_matmul_ref(float *c, const float *a, const float *b,
                            size_t m, size_t k, size_t n);
attn_status attn_matmul_nt_ref(float *c, const float *a, const float *b,
                               size_t m, size_t k, size_t n);

/* Backward of c = a · b: d_a += d_c · bᵀ, d_b += aᵀ · d_c. Either gradient may
 * be NULL (not wanted). Gradients accumulate: zero them before the first call.
 *   d_a: (M, K)  d_b: (K, N)  d_c: (M, N)  a: (M, K)  b: (K, N) */
attn_status attn_matmul_backward(float *d_a, float *d_b, const float *d_c, const float *a,
                                 const float *b, size_t m, size_t k, size_t n);
/* Backward of c = a · bᵀ: d_a += d_c · b, d_b += d_cᵀ · a.
 *   d_a: (M, K)  d_b: (N, K)  d_c: (M, N)  a: (M, K)  b: (N, K) */
attn_status attn_matmul_nt_backward(float *d_a, float *d_b, const float *d_c, const float *a,
                                    const float *b, size_t m, size_t k, size_t n);

/* ---- linear (PyTorch nn.Linear convention) --------------------------------- */

/* y = x · wᵀ + bias      y: (rows, out)  x: (rows, in)  w: (out, in)  bias: (out) or NULL */
attn_status attn_linear_forward(float *y, const float *x, const float *w, const float *bias,
                                size_t rows, size_t in, size_t out);
/* d_x += d_y · w, d_w += d_yᵀ · x, d_bias += column sums of d_y. Any gradient
 * may be NULL. */
attn_status attn_linear_backward(float *d_x, float *d_w, float *d_bias, const float *d_y,
                                 const float *x, const float *w, size_t rows, size_t in,
                                 size_t out);
/* The same with d_x = d_y · w written instead of added, so that the caller
 * need not zero d_x first: the same bits as attn_linear_backward on a zeroed
 * d_x (through one GEMM that stores instead of loading zeros). */
attn_status attn_linear_backward_set(float *d_x, float *d_w, float *d_bias, const float *d_y,
                                     const float *x, const float *w, size_t rows, size_t in,
                                     size_t out);

/* ---- softmax ----------------------------------------------------------- */

/* y[i,:] = softmax(x[i,:])     y, x: (rows, cols); y may alias x.
 * Max-subtracted. A row whose entries are all -inf gives zeros, not NaN
 * (PyTorch's _safe_softmax). NaN in a row propagates (NaN out). */
attn_status attn_softmax_forward(float *y, const float *x, size_t rows, size_t cols,
                                 const attn_op_ctx *ctx);
attn_status attn_softmax_ref(float *y, const float *x, size_t rows, size_t cols);
/* d_x += y ∘ (d_y − rowsum(d_y ∘ y)), from the forward's output y.
 *   d_x, d_y, y: (rows, cols) */
attn_status attn_softmax_backward(float *d_x, const float *d_y, const float *y, size_t rows,
                                  size_t cols);

/* ---- scaled dot-product attention ------------------------------------- */

typedef enum attn_scale_mode {
    ATTN_SCALE_DEFAULT = 0, /* 1/sqrt(d_k) */
    ATTN_SCALE_NONE = 1,    /* 1: raw dot products */
    ATTN_SCALE_CUSTOM = 2   /* params.scale */
} attn_scale_mode;

typedef enum attn_causal {
    ATTN_CAUSAL_NONE = 0,
    ATTN_CAUSAL_TOP_LEFT = 1,     /* query i sees keys j <= i (PyTorch is_causal) */
    ATTN_CAUSAL_BOTTOM_RIGHT = 2  /* query i sees keys j <= i + S - L (KV cache) */
} attn_causal;

typedef struct attn_sdpa_params {
    attn_scale_mode scale_mode;
    float scale;          /* used when scale_mode == ATTN_SCALE_CUSTOM; finite */
    float temperature;    /* scaled scores are divided by it; > 0, default 1 */
    /* Boolean mask (L, S), SDPA convention: nonzero = may attend, 0 = masked. */
    const uint8_t *bool_mask;
    /* Additive float mask (L, S), added to the scaled scores (-inf masks). */
    const float *add_mask;
    attn_causal causal;   /* combined with the masks above (all must allow) */
    /* Scratch the caller owns (a model's or a KV cache's arena; NULL by
     * default): attn_sdpa_forward takes its temporary buffers (the fused
     * kernel's workspace, the reference path's scores) from the arena's free
     * end and gives them back before returning, so a hot path allocates
     * nothing; when it is NULL or lacks room, the op allocates. */
    attn_arena *scratch;
} attn_sdpa_params;

/* Defaults: scale 1/sqrt(d_k), temperature 1, no mask, not causal. */
attn_sdpa_params attn_sdpa_defaults(void);

/* The one validation of the params (scale mode, finite scale, temperature
 * finite and > 0, a known causal alignment), for every caller. */
attn_status attn_sdpa_check(const attn_sdpa_params *p);
/* ATTN_E_INVALID unless c is one of the three alignments. */
attn_status attn_causal_check(attn_causal c);
/* The one causal rule: may query i (of l) attend to key j (of s)? */
int attn_causal_allows(attn_causal c, size_t i, size_t j, size_t l, size_t s);

/* The scale factor the params give for width d_k (before temperature). */
float attn_sdpa_scale(const attn_sdpa_params *p, size_t d_k);

/* Keys up to which one unmasked query (L = 1, weights NULL, no trace) is
 * computed directly with its scores on the stack: no scratch, no allocation. */
#define ATTN_SDPA_ONE_QUERY_MAX_KEYS 4096

/* out = softmax((q · kᵀ) · scale / temperature + mask) · v
 *   out:     (L, d_v)
 *   weights: (L, S) or NULL; receives the attention matrix when not NULL
 *   q: (L, d_k)   k: (S, d_k)   v: (S, d_v)
 * A query row that may attend to no key gives weights 0 and an output of 0.
 * With a trace, records "scores" (q·kᵀ), "scaled", the scalars "scale" and
 * "temperature", "mask" (the additive form actually applied, when any mask or
 * causal is set), "attention", "output". */
attn_status attn_sdpa_forward(float *out, float *weights, const float *q, const float *k,
                              const float *v, size_t l, size_t s, size_t d_k, size_t d_v,
                              const attn_sdpa_params *params, const attn_op_ctx *ctx);
attn_status attn_sdpa_ref(float *out, float *weights, const float *q, const float *k,
                          const float *v, size_t l, size_t s, size_t d_k, size_t d_v,
                          const attn_sdpa_params *params, const attn_op_ctx *ctx);

/* Backward of attention from the forward's attention weights (saved):
 *   grad_v += Pᵀ · grad_out
 *   dP   = grad_out · vᵀ
 *   dS   = P ∘ (dP − rowsum(dP ∘ P))        (the softmax backward, row-wise)
 *   grad_q += f · dS · k,  grad_k += f · dSᵀ · q   (f = scale / temperature)
 * No softmax Jacobian is formed. Masked entries have P = 0 and get no
 * gradient. Any of grad_q, d_k, d_v may be NULL. Gradients accumulate.
 * Scratch as the forward's (params->scratch; attn_sdpa_backward_scratch_bytes).
 *   grad_q: (L, d_k)  grad_k: (S, d_k)  grad_v: (S, d_v)  grad_out: (L, d_v)
 *   q: (L, d_k)  k: (S, d_k)  v: (S, d_v)  weights: (L, S) */
attn_status attn_sdpa_backward(float *grad_q, float *grad_k, float *grad_v, const float *grad_out,
                               const float *q, const float *k, const float *v,
                               const float *weights, size_t l, size_t s, size_t d_k,
                               size_t d_v, const attn_sdpa_params *params);
/* The scratch attn_sdpa_backward takes from params->scratch (dP and dS,
 * (L, S) each) when the arena has this much room; else it allocates. */
size_t attn_sdpa_backward_scratch_bytes(size_t l, size_t s);


/* ---- fused ("flash") attention ------------------------------------------
 *
 * softmax(q·kᵀ·scale + masks)·v over tiles of queries × keys with an online
 * softmax: no (L, S) matrix is ever formed, memory is O((L + S)·d). The same
 * math as attn_sdpa_ref for many heads at once; rows that may attend to no key
 * give an output of 0 (and a log-sum-exp of -inf).
 *
 * Problem (b, h) for b < batch, h < heads reads row i of q at
 *   q + b·q_bs + h·q_hs + i·q_rs          (d_k floats, contiguous)
 * and likewise k, v (rows j < S) and out (rows i < L, d_v floats). Gradients
 * use the strides of the tensor they belong to (d_q those of q, d_out those
 * of out). lse is (batch, heads, L), contiguous.
 * Masks (all optional; a key must be allowed by all of them):
 *   bool_mask (L, S) at b·bool_mask_bs + h·bool_mask_hs: nonzero = may attend;
 *   add_mask  (L, S) at b·add_mask_bs + h·add_mask_hs: added to the scaled
 *             scores (-inf masks);
 *   key_mask  (S) at b·key_mask_bs: added to every row (key padding);
 *   causal    top-left (j <= i) or bottom-right (j <= i + S - L).
 * A stride of 0 shares one mask among batches or heads.
 *
 * dtype ATTN_FLASH_BF16 rounds Q, K, V (and the probabilities and gradients
 * that enter products) to bf16 and multiplies them with the AVX-512 BF16
 * dot-product instructions; softmax, statistics and every sum stay fp32, and
 * inputs and outputs stay fp32 arrays. Where attn_flash_bf16_available() is
 * 0 (no avx512_bf16, or ATTN_SIMD / attn_simd_set below avx512) the fp32
 * kernels run instead. The error against fp32 is that of rounding the inputs:
 * see docs/attention.md. */
typedef enum attn_flash_dtype { ATTN_FLASH_F32 = 0, ATTN_FLASH_BF16 = 1 } attn_flash_dtype;

typedef struct attn_flash_desc {
    size_t batch, heads, l, s, d_k, d_v;
    size_t q_rs, q_hs, q_bs;
    size_t k_rs, k_hs, k_bs;
    size_t v_rs, v_hs, v_bs;
    size_t o_rs, o_hs, o_bs;
    float scale; /* factor on q·kᵀ (scale / temperature) */
    attn_causal causal;
    const uint8_t *bool_mask;
    size_t bool_mask_hs, bool_mask_bs;
    const float *add_mask;
    size_t add_mask_hs, add_mask_bs;
    const float *key_mask;
    size_t key_mask_bs;
    /* Packed sequences (NULL: none; attn_flash_desc_make's): batch b is the
     * rows [seq_off[b], seq_off[b + 1]) of q, k, v and out (the row and head
     * strides as set, the batch strides unused), 1 to l of them, attending
     * to its own rows only: the result a padded batch gives on its real
     * rows, without the padding's work. lse keeps its (batch, heads, l)
     * layout. Self-attention on short sequences only: l = s ≤ 64, fp32
     * inputs, no masks, not causal (else ATTN_E_INVALID). */
    const size_t *seq_off;
    attn_flash_dtype dtype; /* of the products (attn_flash_desc_make: fp32) */
    /* Scratch, 64-byte aligned, from the caller (an arena or workspace it
     * owns): the forward uses it when workspace_bytes >=
     * attn_flash_forward_workspace(d), the backward when >=
     * attn_flash_backward_workspace(d); else (NULL: attn_flash_desc_make's)
     * the call allocates its own. */
    float *workspace;
    size_t workspace_bytes;
} attn_flash_desc;

/* 1 when ATTN_FLASH_BF16 runs bf16 kernels: the CPU has AVX-512 BF16 and the
 * SIMD level in use is avx512. */
int attn_flash_bf16_available(void);

/* 1 when attn_flash_forward and attn_flash_backward take packed sequences
 * (attn_flash_desc.seq_off) of up to len rows with these head widths (fp32
 * products, no masks, not causal): the short-sequence kernels' limits. */
int attn_flash_packs(size_t len, size_t d_k, size_t d_v);

/* Contiguous (batch, heads, rows, d) tensors, scale 1/sqrt(d_k), no mask. */
attn_flash_desc attn_flash_desc_make(size_t batch, size_t heads, size_t l, size_t s, size_t d_k,
                                     size_t d_v);

/* out (see above) = attention; lse (batch, heads, L) or NULL receives each
 * row's log-sum-exp of its scaled, masked scores (what the backward needs). */
attn_status attn_flash_forward(float *out, float *lse, const float *q, const float *k,
                               const float *v, const attn_flash_desc *d);

/* Gradients from the forward's output and lse, recomputing the probabilities
 * tile by tile (dS = P ∘ (dP − rowsum(dO ∘ O))). Gradients accumulate (+=);
 * any of d_q, d_k, d_v may be NULL. Deterministic: the same bits for any
 * number of threads. */
attn_status attn_flash_backward(float *d_q, float *d_k, float *d_v, const float *d_out,
                                const float *q, const float *k, const float *v,
                                const float *out, const float *lse, const attn_flash_desc *d);

/* The same with Q, K, V given as bf16 (bit patterns: the upper 16 bits of
 * a float), with the strides of the descriptor in elements: no fp32 copy of
 * the inputs where attn_flash_bf16_available() (the bf16 kernels read them
 * as they pack, whatever d->dtype says); elsewhere they are widened to fp32
 * (exactly) for the fp32 kernels. Gradients, out, d_out and lse stay fp32.
 * The results are those of attn_flash_forward / backward with dtype
 * ATTN_FLASH_BF16 on the same values as floats. */
attn_status attn_flash_forward_bf16(float *out, float *lse, const uint16_t *q, const uint16_t *k,
                                    const uint16_t *v, const attn_flash_desc *d);
attn_status attn_flash_backward_bf16(float *d_q, float *d_k, float *d_v, const float *d_out,
                                     const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                     const float *out, const float *lse, const attn_flash_desc *d);

/* Bytes the forward / backward allocate for the problem (packed K/V, tiles,
 * per-thread scratch) with the current thread count. */
size_t attn_flash_forward_workspace(const attn_flash_desc *d);
size_t attn_flash_backward_workspace(const attn_flash_desc *d);

/* One head with attn_sdpa_params (its masks, causal, scale and temperature):
 * out (L, d_v), lse (L) or NULL; the backward accumulates into grad_q (L, d_k),
 * grad_k (S, d_k), grad_v (S, d_v) from out and lse of the forward. */
attn_status attn_sdpa_flash_forward(float *out, float *lse, const float *q, const float *k,
                                    const float *v, size_t l, size_t s, size_t d_k, size_t d_v,
                                    const attn_sdpa_params *params);
attn_status attn_sdpa_flash_backward(float *grad_q, float *grad_k, float *grad_v,
                                     const float *grad_out, const float *q, const float *k,
                                     const float *v, const float *out, const float *lse,
                                     size_t l, size_t s, size_t d_k, size_t d_v,
                                     const attn_sdpa_params *params);

/* Merges a partial attention result over other keys into a running one:
 * out_p (bh, ql, d_v) and lse_p (bh, ql), contiguous, into rows
 * [row0, row0 + ql) of out (bh, n, d_v) and lse (bh, n). A row whose lse is
 * -inf (no key seen yet) takes the partial as it is. */
void attn_attention_merge(float *out, float *lse, const float *out_p, const float *lse_p,
                          size_t bh, size_t n, size_t row0, size_t ql, size_t dv);

/* ---- GEMM kernels (for benchmarks and tests) ------------------------------
 * c (M, N) = a (M, K) · b, b (K, N) when !trans_b else (N, K), through the
 * built-in blocked SIMD kernel or (when available) CBLAS. attn_matmul_forward
 * and attn_matmul_nt_forward choose between them by size. */
attn_status attn_gemm_builtin(float *c, const float *a, const float *b, size_t m, size_t k,
                              size_t n, int trans_b);
/* ATTN_E_NOTFOUND when the library was built without CBLAS. */
attn_status attn_gemm_cblas(float *c, const float *a, const float *b, size_t m, size_t k,
                            size_t n, int trans_b);
int attn_have_cblas(void);

/* The general product behind matmul and linear, forward and backward:
 *   c (M, N) = op(a) · op(b)        (accumulate == 0)
 *   c (M, N) += op(a) · op(b)       (accumulate != 0)
 * op(a) = a (M, K), or aᵀ with a stored (K, M) when trans_a; op(b) = b (K, N),
 * or bᵀ with b stored (N, K) when trans_b. ATTN_GEMM_AUTO picks the faster
 * kernel for the SIMD level in use, or the one the environment names (read
 * once): ATTN_BLAS=0 the built-in kernel, ATTN_BLAS=1 CBLAS where the library
 * has it (see attn_gemm_auto). Rows of c are computed in fixed blocks
 * (threads take whole blocks), so the result does not depend on the thread
 * count. ATTN_E_NOTFOUND for ATTN_GEMM_CBLAS without CBLAS.
 * ATTN_GEMM_BF16 rounds a and b to bf16 (to nearest even) and sums the
 * products in fp32, as mixed-precision training does: through the AVX-512
 * BF16 dot products where attn_flash_bf16_available(), else through the
 * built-in kernel on rounded copies (the same products, summed by FMAs). Its
 * error against the fp32 product is at most about 2^-8 · Σ_k |a||b| per
 * element (the inputs' rounding; tests/test_gemm_bf16.c). */
typedef enum attn_gemm_kernel {
    ATTN_GEMM_AUTO = 0,
    ATTN_GEMM_BUILTIN = 1,
    ATTN_GEMM_CBLAS = 2,
    ATTN_GEMM_BF16 = 3
} attn_gemm_kernel;
attn_status attn_gemm(float *c, const float *a, const float *b, size_t m, size_t k, size_t n,
                      int trans_a, int trans_b, int accumulate, attn_gemm_kernel which);
/* The fp32 kernel ATTN_GEMM_AUTO stands for in this process (never AUTO;
 * BUILTIN or CBLAS, whatever the precision below). */
attn_gemm_kernel attn_gemm_auto(void);

/* The products of ATTN_GEMM_AUTO, and so of every matmul and linear layer
 * large enough for the GEMM: fp32 (the default) or bf16 (ATTN_GEMM_BF16's),
 * for the whole process, as attn_simd_set; `attn train --precision bf16`
 * sets it while it trains. Not to be changed while a GEMM runs. The setter
 * returns the precision it replaces, for the caller to give back. */
typedef enum attn_precision { ATTN_PRECISION_FP32 = 0, ATTN_PRECISION_BF16 = 1 } attn_precision;
attn_precision attn_gemm_set_precision(attn_precision p);
attn_precision attn_gemm_precision(void);

#ifdef __cplusplus
}
#endif
#endif
