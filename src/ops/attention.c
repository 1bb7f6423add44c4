/* attention.c - scaled dot-product attention (reference and default path).
 *
 *   scores    = q · kᵀ                               (L, S)
 *   scaled    = scores · scale / temperature         (L, S)
 *   mask      = bool/causal → 0 or -inf, + additive  (L, S)
 *   attention = softmax_rows(scaled + mask)          (L, S)
 *   output    = attention · v                        (L, d_v)
 */
#include "attn/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flash_kern.h"
#include "op_check.h"

attn_sdpa_params attn_sdpa_defaults(void)
{
    attn_sdpa_params p;
    memset(&p, 0, sizeof p);
    p.scale_mode = ATTN_SCALE_DEFAULT;
    p.scale = 1.0f;
    p.temperature = 1.0f;
    p.causal = ATTN_CAUSAL_NONE;
    return p;
}

float attn_sdpa_scale(const attn_sdpa_params *p, size_t d_k)
{
    attn_scale_mode mode = p ? p->scale_mode : ATTN_SCALE_DEFAULT;
    if (mode == ATTN_SCALE_NONE) return 1.0f;
    if (mode == ATTN_SCALE_CUSTOM) return p->scale;
    return (float)(1.0 / sqrt((double)d_k));
}

attn_status attn_causal_check(attn_causal c)
{
    if (c != ATTN_CAUSAL_NONE && c != ATTN_CAUSAL_TOP_LEFT && c != ATTN_CAUSAL_BOTTOM_RIGHT)
        return attn_error(ATTN_E_INVALID, "attention: unknown causal alignment %d", (int)c);
    return ATTN_OK;
}

attn_status attn_sdpa_check(const attn_sdpa_params *p)
{
    if (!p) return ATTN_OK;
    if (p->scale_mode != ATTN_SCALE_DEFAULT && p->scale_mode != ATTN_SCALE_NONE &&
        p->scale_mode != ATTN_SCALE_CUSTOM)
        return attn_error(ATTN_E_INVALID, "attention: unknown scale mode %d", (int)p->scale_mode);
    if (p->scale_mode == ATTN_SCALE_CUSTOM && !isfinite(p->scale))
        return attn_error(ATTN_E_INVALID, "attention: scale must be finite, got %g",
                          (double)p->scale);
    if (!(p->temperature > 0.0f) || !isfinite(p->temperature))
        return attn_error(ATTN_E_INVALID, "attention: temperature must be finite and > 0, got %g",
                          (double)p->temperature);
    return attn_causal_check(p->causal);
}

int attn_causal_allows(attn_causal c, size_t i, size_t j, size_t l, size_t s)
{
    if (c == ATTN_CAUSAL_TOP_LEFT) return j <= i;
    if (c == ATTN_CAUSAL_BOTTOM_RIGHT) return j + l <= i + s; /* j <= i + (S - L) */
    return 1;
}

static int has_mask(const attn_sdpa_params *p)
{
    return p->bool_mask || p->add_mask || p->causal != ATTN_CAUSAL_NONE;
}

/* The additive mask actually applied: 0 where attending is allowed, -inf where
 * the boolean mask or causality forbids it, plus the caller's float mask. */
static void build_mask(float *mask, const attn_sdpa_params *p, size_t l, size_t s)
{
    for (size_t i = 0; i < l; i++)
        for (size_t j = 0; j < s; j++) {
            size_t ij = i * s + j;
            int allowed = attn_causal_allows(p->causal, i, j, l, s) &&
                          (!p->bool_mask || p->bool_mask[ij]);
            mask[ij] = allowed ? (p->add_mask ? p->add_mask[ij] : 0.0f) : -INFINITY;
        }
}

/* n floats from the free end of the scratch arena a, or NULL when there is
 * none or it lacks room (the caller then allocates). The caller gives them
 * back with attn_arena_rewind. */
static float *scratch_take(attn_arena *a, size_t n)
{
    const size_t room = attn_arena_room(a);
    if (room < 64 || n > (room - 63) / sizeof(float)) return NULL;
    attn_tensor t;
    size_t shape[1] = {n};
    return attn_arena_tensor(a, &t, 1, shape) ? NULL : t.data;
}

/* The fused kernel's workspace (the backward's when `backward`) from the
 * arena, when it has room and the problem is sane enough to size (`given`:
 * the buffers are there; the kernel checks the rest and reports). */
static void flash_scratch(attn_flash_desc *d, attn_arena *a, int backward, int given)
{
    const int sized = given && d->l && d->s && d->d_k && d->d_v && d->l < ((size_t)1 << 30) &&
                      d->s < ((size_t)1 << 30) && d->d_k < 65536 && d->d_v < 65536;
    const size_t bytes = !a || !sized ? 0
                         : backward   ? attn_flash_backward_workspace(d)
                                      : attn_flash_forward_workspace(d);
    d->workspace = bytes ? scratch_take(a, bytes / sizeof(float)) : NULL;
    d->workspace_bytes = d->workspace ? bytes : 0;
}

/* Shared body of the reference and default paths; `ref` picks the kernels. */
static attn_status sdpa(int ref, float *out, float *weights, const float *q, const float *k,
                        const float *v, size_t l, size_t s, size_t d_k, size_t d_v,
                        const attn_sdpa_params *params, const attn_op_ctx *ctx)
{
    attn_sdpa_params defaults = attn_sdpa_defaults();
    const attn_sdpa_params *p = params ? params : &defaults;
    if (!out || !q || !k || !v) return attn_error(ATTN_E_INVALID, "attention: NULL buffer");
    if (!l || !s || !d_k || !d_v)
        return attn_error(ATTN_E_INVALID,
                          "attention: sizes must be > 0, got L=%zu S=%zu d_k=%zu d_v=%zu", l, s,
                          d_k, d_v);
    attn_status st = attn_sdpa_check(p);
    if (st) return st;
    size_t ls = 0, tmp = 0;
    if ((st = attn_mul_sizes("attention", l, s, &ls))) return st;
    if ((st = attn_mul_sizes("attention", l, d_k, &tmp))) return st;
    if ((st = attn_mul_sizes("attention", s, d_k, &tmp))) return st;
    if ((st = attn_mul_sizes("attention", s, d_v, &tmp))) return st;
    if ((st = attn_mul_sizes("attention", l, d_v, &tmp))) return st;

    int masked = has_mask(p);
    /* Scratch from the caller's arena where it has room, else our own. */
    const size_t mark = attn_arena_used(p->scratch);
    float *s_scores = scratch_take(p->scratch, ls);
    float *s_mask = masked ? scratch_take(p->scratch, ls) : NULL;
    float *s_att = weights ? NULL : scratch_take(p->scratch, ls);
    float *scores = s_scores ? s_scores : malloc(ls * sizeof(float));
    float *mask = !masked ? NULL : s_mask ? s_mask : malloc(ls * sizeof(float));
    float *att = weights ? weights : s_att ? s_att : malloc(ls * sizeof(float));
    if (!scores || (masked && !mask) || !att) {
        st = attn_error(ATTN_E_NOMEM, "attention: cannot allocate %zu x %zu scores", l, s);
        goto done;
    }

    st = ref ? attn_matmul_nt_ref(scores, q, k, l, d_k, s)
             : attn_matmul_nt_forward(scores, q, k, l, d_k, s, NULL);
    if (!st) st = attn_op_record(ctx, "scores", scores, l, s, "query", "key");
    if (st) goto done;

    /* Scale and temperature in one factor, computed in double. */
    const double factor = (double)attn_sdpa_scale(p, d_k) / (double)p->temperature;
    for (size_t i = 0; i < ls; i++) att[i] = (float)((double)scores[i] * factor);
    if ((st = attn_op_record(ctx, "scaled", att, l, s, "query", "key"))) goto done;
    if (ctx && ctx->trace) {
        const float scale = attn_sdpa_scale(p, d_k);
        st = attn_trace_record(ctx->trace, ctx->prefix, "scale", &scale, 0, NULL, NULL, NULL);
        if (!st)
            st = attn_trace_record(ctx->trace, ctx->prefix, "temperature", &p->temperature, 0,
                                   NULL, NULL, NULL);
        if (st) goto done;
    }

    if (masked) {
        build_mask(mask, p, l, s);
        if ((st = attn_op_record(ctx, "mask", mask, l, s, "query", "key"))) goto done;
        for (size_t i = 0; i < ls; i++) att[i] += mask[i];
    }

    st = ref ? attn_softmax_ref(att, att, l, s) : attn_softmax_forward(att, att, l, s, NULL);
    if (!st) st = attn_op_record(ctx, "attention", att, l, s, "query", "key");
    if (!st)
        st = ref ? attn_matmul_ref(out, att, v, l, s, d_v)
                 : attn_matmul_forward(out, att, v, l, s, d_v, NULL);
    if (!st) st = attn_op_record(ctx, "output", out, l, d_v, "query", "value_dim");

done:
    if (scores != s_scores) free(scores);
    if (mask != s_mask) free(mask);
    if (att != weights && att != s_att) free(att);
    attn_arena_rewind(p->scratch, mark);
    return st;
}

attn_status attn_sdpa_ref(float *out, float *weights, const float *q, const float *k,
                          const float *v, size_t l, size_t s, size_t d_k, size_t d_v,
                          const attn_sdpa_params *params, const attn_op_ctx *ctx)
{
    return sdpa(1, out, weights, q, k, v, l, s, d_k, d_v, params, ctx);
}

/* The fused kernel's description of one head under params (checked). */
static attn_status flash_desc_of(attn_flash_desc *d, const attn_sdpa_params *p, size_t l,
                                 size_t s, size_t d_k, size_t d_v)
{
    attn_status st = attn_sdpa_check(p);
    if (st) return st;
    *d = attn_flash_desc_make(1, 1, l, s, d_k, d_v);
    d->scale = (float)((double)attn_sdpa_scale(p, d_k) / (double)p->temperature);
    d->causal = p->causal;
    d->bool_mask = p->bool_mask;
    d->add_mask = p->add_mask;
    return ATTN_OK;
}

attn_status attn_sdpa_flash_forward(float *out, float *lse, const float *q, const float *k,
                                    const float *v, size_t l, size_t s, size_t d_k, size_t d_v,
                                    const attn_sdpa_params *params)
{
    attn_sdpa_params defaults = attn_sdpa_defaults();
    attn_flash_desc d;
    attn_status st = flash_desc_of(&d, params ? params : &defaults, l, s, d_k, d_v);
    return st ? st : attn_flash_forward(out, lse, q, k, v, &d);
}

attn_status attn_sdpa_flash_backward(float *grad_q, float *grad_k, float *grad_v,
                                     const float *grad_out, const float *q, const float *k,
                                     const float *v, const float *out, const float *lse,
                                     size_t l, size_t s, size_t d_k, size_t d_v,
                                     const attn_sdpa_params *params)
{
    attn_sdpa_params defaults = attn_sdpa_defaults();
    const attn_sdpa_params *p = params ? params : &defaults;
    attn_flash_desc d;
    attn_status st = flash_desc_of(&d, p, l, s, d_k, d_v);
    if (st) return st;
    const size_t mark = attn_arena_used(p->scratch);
    flash_scratch(&d, p->scratch, 1, grad_out && q && k && v && out && lse);
    st = attn_flash_backward(grad_q, grad_k, grad_v, grad_out, q, k, v, out, lse, &d);
    attn_arena_rewind(p->scratch, mark);
    return st;
}

/* ---- one query -------------------------------------------------------------------
 *
 * A generated token's step with a KV cache: one query over the S cached keys.
 * The fused kernel would pack each head's keys into a workspace for a single
 * row of scores, and its tiles and parallel region cost more than the
 * product itself at this size; so one query that no mask restricts (no
 * boolean or additive mask; causality lets a lone bottom-right-aligned query
 * see every key) is computed directly, serially, with its S scores on the
 * stack. */
#define ONE_QUERY_MAX_KEYS ATTN_SDPA_ONE_QUERY_MAX_KEYS /* 16 KiB of scores on the stack */

static int one_query_fits(const attn_sdpa_params *p, size_t l, size_t s)
{
    return l == 1 && s <= ONE_QUERY_MAX_KEYS && !p->bool_mask && !p->add_mask &&
           (p->causal == ATTN_CAUSAL_NONE || p->causal == ATTN_CAUSAL_BOTTOM_RIGHT);
}

/* out (d_v) = softmax(q · kᵀ · factor) · v for q (d_k), k (S, d_k), v (S, d_v),
 * by the level's kernel (flash_tmpl.h's one_query). */
static attn_status one_query(float *out, const float *q, const float *k, const float *v,
                             size_t s, size_t d_k, size_t d_v, const attn_sdpa_params *p)
{
    float att[ONE_QUERY_MAX_KEYS];
    const float factor = (float)((double)attn_sdpa_scale(p, d_k) / (double)p->temperature);
    attn_fk_table(attn_simd_level())->one_query(out, q, k, v, s, d_k, d_v, factor, att);
    return ATTN_OK;
}

attn_status attn_sdpa_forward(float *out, float *weights, const float *q, const float *k,
                              const float *v, size_t l, size_t s, size_t d_k, size_t d_v,
                              const attn_sdpa_params *params, const attn_op_ctx *ctx)
{
    /* A trace asks for every intermediate, and the weights are an (L, S)
     * matrix: both are the reference path. Otherwise the fused kernel, or
     * the direct one for a lone query. */
    if (!(ctx && ctx->trace) && !weights) {
        attn_sdpa_params defaults = attn_sdpa_defaults();
        const attn_sdpa_params *p = params ? params : &defaults;
        attn_status st = attn_sdpa_check(p);
        if (st) return st;
        if (out && q && k && v && d_k && d_v && s && one_query_fits(p, l, s))
            return one_query(out, q, k, v, s, d_k, d_v, p);
        attn_flash_desc d;
        if ((st = flash_desc_of(&d, p, l, s, d_k, d_v))) return st;
        const size_t mark = attn_arena_used(p->scratch);
        flash_scratch(&d, p->scratch, 0, out && q && k && v);
        st = attn_flash_forward(out, NULL, q, k, v, &d);
        attn_arena_rewind(p->scratch, mark);
        return st;
    }
    return sdpa(ctx && ctx->trace, out, weights, q, k, v, l, s, d_k, d_v, params, ctx);
}

attn_status attn_sdpa_backward(float *grad_q, float *grad_k, float *grad_v, const float *grad_out,
                               const float *q, const float *k, const float *v,
                               const float *weights, size_t l, size_t s, size_t d_k,
                               size_t d_v, const attn_sdpa_params *params)
{
    attn_sdpa_params defaults = attn_sdpa_defaults();
    const attn_sdpa_params *p = params ? params : &defaults;
    if (!grad_out || !q || !k || !v || !weights)
        return attn_error(ATTN_E_INVALID, "attention backward: NULL buffer");
    if (!l || !s || !d_k || !d_v)
        return attn_error(ATTN_E_INVALID,
                          "attention backward: sizes must be > 0, got L=%zu S=%zu d_k=%zu d_v=%zu",
                          l, s, d_k, d_v);
    attn_status st = attn_sdpa_check(p);
    size_t ls = 0;
    if (!st) st = attn_mul_sizes("attention backward", l, s, &ls);
    if (st) return st;
    if (grad_v && (st = attn_matmul_backward(NULL, grad_v, grad_out, weights, v, l, s, d_v))) return st;
    if (!grad_q && !grad_k) return ATTN_OK;
    /* Scratch from the caller's arena where it has room (zero-filled, as
     * calloc), else our own. */
    const size_t mark = attn_arena_used(p->scratch);
    float *s_ds = scratch_take(p->scratch, ls), *s_dp = s_ds ? scratch_take(p->scratch, ls) : NULL;
    float *ds = s_ds ? s_ds : calloc(ls, sizeof(float));
    float *dp = s_dp ? s_dp : malloc(ls * sizeof(float));
    if (!ds || !dp) {
        if (ds != s_ds) free(ds);
        if (dp != s_dp) free(dp);
        attn_arena_rewind(p->scratch, mark);
        return attn_error(ATTN_E_NOMEM, "attention backward: cannot allocate %zu x %zu", l, s);
    }
    st = attn_matmul_nt_forward(dp, grad_out, v, l, d_v, s, NULL); /* dP = grad_out · vᵀ */
    if (!st) st = attn_softmax_backward(ds, dp, weights, l, s);
    if (!st) {
        const float factor = (float)((double)attn_sdpa_scale(p, d_k) / (double)p->temperature);
        for (size_t i = 0; i < ls; i++) ds[i] *= factor;
        st = attn_matmul_nt_backward(grad_q, grad_k, ds, q, k, l, d_k, s);
    }
    if (ds != s_ds) free(ds);
    if (dp != s_dp) free(dp);
    attn_arena_rewind(p->scratch, mark);
    return st;
}

size_t attn_sdpa_backward_scratch_bytes(size_t l, size_t s)
{
    if (s && l > (SIZE_MAX / 4 - 64) / sizeof(float) / s) return SIZE_MAX; /* cannot fit */
    const size_t one = (l * s * sizeof(float) + 63) & ~(size_t)63;
    return one > (SIZE_MAX - 64) / 2 ? SIZE_MAX : 2 * one + 64;
}
