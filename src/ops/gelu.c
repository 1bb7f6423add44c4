/* gelu.c - GELU with the tanh approximation of GPT-2, forward and backward.
 * The fast path is the vector kernel of flash_tmpl.h (x·σ(2u) through the
 * vector exp); the reference is the tanh form in double. */
#include <math.h>
#include <string.h>

#include "attn/ops_nn.h"
#include "flash_kern.h"
#include "omp_util.h"

/* Elements per parallel chunk: threads take whole chunks (elementwise, so the
 * result cannot depend on the split anyway). */
#define GELU_CHUNK 8192

static attn_status gelu_run(float *y, const float *x, size_t n)
{
    if (!y || !x) return attn_error(ATTN_E_INVALID, "gelu: NULL buffer");
    if (!n) return attn_error(ATTN_E_INVALID, "gelu: size must be > 0");
    const fk_table *K = attn_fk_table(attn_simd_level());
    /* Small inputs (a generated token's MLP) skip the parallel region: even
     * with a false if clause it costs libgomp a futex call, ~2 µs here, ten
     * times the work. Elementwise, so the values are the same either way. */
    if (n < 8 * ATTN_OMP_MIN_WORK) {
        K->gelu_fwd(y, x, n);
        return ATTN_OK;
    }
    const size_t chunks = (n + GELU_CHUNK - 1) / GELU_CHUNK;
    ATTN_OMP_FOR_IF(n >= 8 * ATTN_OMP_MIN_WORK)
    for (size_t c = 0; c < chunks; c++) {
        const size_t i = c * GELU_CHUNK, len = n - i < GELU_CHUNK ? n - i : GELU_CHUNK;
        K->gelu_fwd(y + i, x + i, len);
    }
    return ATTN_OK;
}

attn_status attn_gelu_ref(float *y, const float *x, size_t n)
{
    if (!y || !x) return attn_error(ATTN_E_INVALID, "gelu_ref: NULL buffer");
    if (!n) return attn_error(ATTN_E_INVALID, "gelu_ref: size must be > 0");
    const double k = sqrt(2.0 / 3.14159265358979323846);
    for (size_t i = 0; i < n; i++) {
        const double v = x[i];
        y[i] = (float)(0.5 * v * (1.0 + tanh(k * (v + 0.044715 * v * v * v))));
    }
    return ATTN_OK;
}

/* d_x (+)= gelu'(x) ∘ d_y; with set, each chunk of d_x is zeroed first. */
static attn_status gelu_bwd_run(const char *op, float *d_x, const float *d_y, const float *x,
                                size_t n, int set)
{
    if (!d_x || !d_y || !x) return attn_error(ATTN_E_INVALID, "%s: NULL buffer", op);
    if (!n) return attn_error(ATTN_E_INVALID, "%s: size must be > 0", op);
    const fk_table *K = attn_fk_table(attn_simd_level());
    const size_t chunks = (n + GELU_CHUNK - 1) / GELU_CHUNK;
    ATTN_OMP_FOR_IF(n >= 8 * ATTN_OMP_MIN_WORK)
    for (size_t c = 0; c < chunks; c++) {
        const size_t i = c * GELU_CHUNK, len = n - i < GELU_CHUNK ? n - i : GELU_CHUNK;
        if (set) memset(d_x + i, 0, len * sizeof(float));
        K->gelu_bwd(d_x + i, d_y + i, x + i, len);
    }
    return ATTN_OK;
}

/* d/dx = 0.5 (1 + t) + 0.5 x (1 − t²) k (1 + 3c x²),  t = tanh(k (x + c x³)) */
attn_status attn_gelu_backward(float *d_x, const float *d_y, const float *x, size_t n)
{
    return gelu_bwd_run("gelu_backward", d_x, d_y, x, n, 0);
}

attn_status attn_gelu_backward_set(float *d_x, const float *d_y, const float *x, size_t n)
{
    return gelu_bwd_run("gelu_backward_set", d_x, d_y, x, n, 1);
}

attn_status attn_gelu_forward(float *y, const float *x, size_t n, const attn_op_ctx *ctx)
{
    attn_status st = gelu_run(y, x, n);
    if (!st) st = attn_op_record(ctx, "output", y, 1, n, NULL, NULL);
    return st;
}
