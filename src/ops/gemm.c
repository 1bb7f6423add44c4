/* gemm.c - large GEMMs: a built-in blocked SIMD kernel and CBLAS.
 *
 * Built-in: B is packed panel by panel (KC × NC, zero padded to a multiple of
 * 16 columns) and multiplied by row blocks of A with the register-blocked
 * micro-kernel of flash_tmpl.h. Row blocks run in parallel; every element of
 * c is summed by one thread in one fixed order, so the result does not depend
 * on the thread count. */
#include "attn/ops.h"

#include <stdlib.h>
#include <string.h>

#include "flash_kern.h"
#include "op_check.h"

#ifdef ATTN_HAVE_OPENMP
#include <omp.h>
#endif
#ifdef ATTN_HAVE_CBLAS
#include <cblas.h>
#endif

#define KC 256
#define NC 512
#define MB 64

static size_t up16(size_t x) { return (x + 15) & ~(size_t)15; }

int attn_have_cblas(void)
{
#ifdef ATTN_HAVE_CBLAS
    return 1;
#else
    return 0;
#endif
}

attn_status attn_gemm_cblas(float *c, const float *a, const float *b, size_t m, size_t k,
                            size_t n, int trans_b)
{
    attn_status st = attn_check_matmul("gemm_cblas", c, a, b, m, k, n);
    if (st) return st;
#ifdef ATTN_HAVE_CBLAS
    if (m > (size_t)0x7fffffff || k > (size_t)0x7fffffff || n > (size_t)0x7fffffff)
        return attn_error(ATTN_E_INVALID, "gemm_cblas: sizes above 2^31");
    cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n,
                (int)k, 1.0f, a, (int)k, b, trans_b ? (int)k : (int)n, 0.0f, c, (int)n);
    return ATTN_OK;
#else
    (void)trans_b;
    return attn_error(ATTN_E_NOTFOUND, "gemm_cblas: built without CBLAS");
#endif
}

attn_status attn_gemm_builtin(float *c, const float *a, const float *b, size_t m, size_t k,
                              size_t n, int trans_b)
{
    attn_status st = attn_check_matmul("gemm", c, a, b, m, k, n);
    if (st) return st;
    const fk_table *K = attn_fk_table(attn_simd_level());
    const size_t ncp = up16(n < NC ? n : NC);
    const int threads = attn_threads() > 0 ? attn_threads() : 1;
    float *panel = aligned_alloc(64, KC * ncp * sizeof(float));
    float *tmp = aligned_alloc(64, (size_t)threads * MB * ncp * sizeof(float));
    if (!panel || !tmp) {
        free(panel), free(tmp);
        return attn_error(ATTN_E_NOMEM, "gemm: cannot allocate packing buffers");
    }
    const size_t nmb = (m + MB - 1) / MB;
    for (size_t n0 = 0; n0 < n; n0 += NC) {
        const size_t nw = n - n0 < NC ? n - n0 : NC, nwp = up16(nw);
        for (size_t k0 = 0; k0 < k; k0 += KC) {
            const size_t kw = k - k0 < KC ? k - k0 : KC;
            const int acc = k0 > 0;
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel
#endif
            {
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
                for (size_t t = 0; t < kw; t++) {
                    float *row = panel + t * nwp;
                    if (trans_b)
                        for (size_t j = 0; j < nw; j++) row[j] = b[(n0 + j) * k + k0 + t];
                    else
                        memcpy(row, b + (k0 + t) * n + n0, nw * sizeof(float));
                    for (size_t j = nw; j < nwp; j++) row[j] = 0.0f;
                }
#ifdef ATTN_HAVE_OPENMP
                float *tt = tmp + (size_t)omp_get_thread_num() * MB * ncp;
#pragma omp for schedule(static)
#else
                float *tt = tmp;
#endif
                for (size_t mb = 0; mb < nmb; mb++) {
                    const size_t r0 = mb * MB, rows = m - r0 < MB ? m - r0 : MB;
                    const float *ar = a + r0 * k + k0;
                    float *cr = c + r0 * n + n0;
                    if (nw == nwp) {
                        K->gemm(cr, n, ar, k, 1, panel, nwp, rows, nwp, kw, NULL, acc);
                    } else {
                        K->gemm(tt, nwp, ar, k, 1, panel, nwp, rows, nwp, kw, NULL, 0);
                        for (size_t r = 0; r < rows; r++)
                            for (size_t j = 0; j < nw; j++)
                                cr[r * n + j] = acc ? cr[r * n + j] + tt[r * nwp + j] : tt[r * nwp + j];
                    }
                }
            }
        }
    }
    free(panel), free(tmp);
    return ATTN_OK;
}
