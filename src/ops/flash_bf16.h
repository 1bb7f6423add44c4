/* flash_bf16.h - bf16 kernels behind ATTN_FLASH_BF16 (internal).
 *
 * vdpbf16ps multiplies pairs: acc[c] += a[2c]·b[2c] + a[2c+1]·b[2c+1], so
 * both operands of a product hold their reduction index in pairs: one uint32
 * is two bf16 values (the even index in the low half). A matrix "paired
 * along t" holds element (t, x) in the half t & 1 of word (t / 2, x). */
#ifndef ATTN_FLASH_BF16_H
#define ATTN_FLASH_BF16_H

#include <stddef.h>
#include <stdint.h>

typedef struct fk_bf16 {
    /* C[r][c] = base + Σ_{p<tp} dot2(A[r·ars + p], B[p·ldb + c])   (r < rows, c < ncols)
     * A rows paired along t (natural row-major bf16), B paired along t; base
     * as in fk_table.gemm (0, C, or rowscale[r]·C). ncols a multiple of 16. */
    void (*gemm)(float *c, size_t ldc, const uint32_t *a, size_t ars, const uint32_t *b,
                 size_t ldb, size_t rows, size_t ncols, size_t tp, const float *rowscale,
                 int accumulate);
    /* dst (rows, n/2 words, ldd words apart) = bf16 of src (rows, n, lds floats
     * apart), n a multiple of 32. */
    void (*cvt_rows)(uint32_t *dst, size_t ldd, const float *src, size_t lds, size_t rows,
                     size_t n);
    /* dst (⌈rows/2⌉, n words, ldd apart) = src (rows, n) paired along rows (a
     * missing last partner is 0), n a multiple of 16. */
    void (*cvt_pairs)(uint32_t *dst, size_t ldd, const float *src, size_t lds, size_t rows,
                      size_t n);
    /* One key block of the forward without masks: S = Qw·Kp (rows, FK_BC; Qw
     * rows ars words apart, Kp paired along d, tp pairs) times log2e (the log2
     * units that fk_table.softmax_online takes), the online softmax
     * on it (m, l, alpha as fk_table.softmax_online) and P rounded into pw
     * (rows, FK_BC / 2 words): the bits of gemm, S·log2e, softmax_online, cvt_rows,
     * the scores kept in registers. s: (rows, FK_BC) scratch. */
    void (*qk_softmax)(uint32_t *pw, const uint32_t *qw, size_t ars, const uint32_t *kp,
                       size_t tp, size_t rows, float *m, float *l, float *alpha, float *s);
} fk_bf16;

/* The kernels, or NULL when attn_flash_bf16_available() is 0. */
const fk_bf16 *attn_fk_bf16(void);

/* x rounded to bf16, to nearest even (NaN stays NaN): the rounding of the
 * vector conversions. */
uint16_t attn_bf16_round(float x);

static inline uint32_t attn_bf16_pair(float lo, float hi)
{
    return (uint32_t)attn_bf16_round(lo) | (uint32_t)attn_bf16_round(hi) << 16;
}

#endif
