/* gemm.c - large GEMMs: a built-in blocked SIMD kernel and CBLAS.
 *
 * c (M, N) = [c +] op(a) · op(b) with op(a) = a (M, K) or aᵀ (a: (K, M)) and
 * op(b) = b (K, N) or bᵀ (b: (N, K)).
 *
 * Both kernels split the rows of c into fixed blocks whose size depends only
 * on the shape, and OpenMP hands whole blocks to threads (dynamically, so that
 * a thread the OS preempted does not hold the others up): every element of c
 * is summed by one thread, in one fixed order, so the result does not depend
 * on the thread count nor on which thread took which block. OpenBLAS is told once to use one thread of its own, so
 * that on a small machine its pool and OpenMP's do not fight over the cores.
 *
 * Built-in: B is packed panel by panel (KC × NC, zero padded to a multiple of
 * 16 columns; a row-major B whose width is a multiple of 16 is used in place)
 * and multiplied by row blocks of A with the register-blocked micro-kernel of
 * flash_tmpl.h (gemm_avx512.c's 6 × 64 tiles with AVX-512). */
#include "attn/ops.h"

#include <stdlib.h>
#include <string.h>

#include "flash_kern.h"
#include "gemm_kern.h"
#include "op_check.h"

#ifdef ATTN_HAVE_OPENMP
#include <omp.h>
#endif
#ifdef ATTN_HAVE_CBLAS
#include <cblas.h>
/* OpenBLAS's own call, when the CBLAS is OpenBLAS (weak: other CBLASes lack it). */
extern void openblas_set_num_threads(int) __attribute__((weak));
#endif

#define KC 256
#define NC 512
#define MB_MAX 48

/* Multiply-adds below which one thread does the whole product. */
#define GEMM_PAR_WORK ((double)(1 << 20))

static size_t up16(size_t x) { return (x + 15) & ~(size_t)15; }

/* Rows per block: a function of the shape only (never of the thread count),
 * a multiple of the AVX-512 kernel's 6 rows. */
static size_t row_block(size_t m) { return m >= 512 ? 48 : m >= 128 ? 24 : 12; }

static int par_ok(size_t m, size_t k, size_t n, size_t blocks)
{
    return blocks > 1 && (double)m * (double)k * (double)n >= GEMM_PAR_WORK;
}

int attn_have_cblas(void)
{
#ifdef ATTN_HAVE_CBLAS
    return 1;
#else
    return 0;
#endif
}

static attn_status check_gemm(const char *op, const float *c, const float *a, const float *b,
                              size_t m, size_t k, size_t n)
{
    return attn_check_matmul(op, c, a, b, m, k, n);
}

/* ---- CBLAS ------------------------------------------------------------------ */

#ifdef ATTN_HAVE_CBLAS
static void cblas_single_thread(void)
{
    static int done; /* benign: setting 1 twice is harmless */
    if (__atomic_load_n(&done, __ATOMIC_ACQUIRE)) return;
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
}
#endif

static attn_status gemm_cblas(float *c, const float *a, const float *b, size_t m, size_t k,
                              size_t n, int ta, int tb, int acc)
{
#ifdef ATTN_HAVE_CBLAS
    if (m > (size_t)0x7fffffff || k > (size_t)0x7fffffff || n > (size_t)0x7fffffff)
        return attn_error(ATTN_E_INVALID, "gemm_cblas: sizes above 2^31");
    cblas_single_thread();
    const size_t mb = row_block(m), nb = (m + mb - 1) / mb;
    const int lda = ta ? (int)m : (int)k, ldb = tb ? (int)k : (int)n;
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (par_ok(m, k, n, nb))
#endif
    for (size_t blk = 0; blk < nb; blk++) {
        const size_t r0 = blk * mb, rows = m - r0 < mb ? m - r0 : mb;
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    (int)rows, (int)n, (int)k, 1.0f, ta ? a + r0 : a + r0 * k, lda, b, ldb,
                    acc ? 1.0f : 0.0f, c + r0 * n, (int)n);
    }
    return ATTN_OK;
#else
    (void)c, (void)a, (void)b, (void)m, (void)k, (void)n, (void)ta, (void)tb, (void)acc;
    return attn_error(ATTN_E_NOTFOUND, "gemm_cblas: built without CBLAS");
#endif
}

/* ---- built-in ---------------------------------------------------------------- */

static attn_status gemm_builtin(float *c, const float *a, const float *b, size_t m, size_t k,
                                size_t n, int ta, int tb, int acc)
{
    const fk_table *K = attn_fk_table(attn_simd_level());
    const attn_gemm_tile_fn tile = attn_gemm_tile_kernel(attn_simd_level());
    const size_t ars = ta ? 1 : k, ats = ta ? m : 1;
    /* A row-major B whose width is a multiple of 16 needs no packing. */
    const int direct = !tb && n % 16 == 0;
    const size_t ncp = up16(n < NC ? n : NC);
    float *panel = NULL;
    if (!direct) {
        panel = aligned_alloc(64, KC * ncp * sizeof(float));
        if (!panel) return attn_error(ATTN_E_NOMEM, "gemm: cannot allocate a packing buffer");
    }
    const size_t mb = row_block(m), nmb = (m + mb - 1) / mb;
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel if (par_ok(m, k, n, nmb))
#endif
    for (size_t n0 = 0; n0 < n; n0 += NC) {
        const size_t nw = n - n0 < NC ? n - n0 : NC, nwp = up16(nw), nmain = nw & ~(size_t)15;
        for (size_t k0 = 0; k0 < k; k0 += KC) {
            const size_t kw = k - k0 < KC ? k - k0 : KC;
            const int add = acc || k0 > 0;
            const float *bp;
            size_t ldb;
            if (direct) {
                bp = b + k0 * n + n0, ldb = n;
            } else {
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
                for (size_t t0 = 0; t0 < kw; t0 += 16) {
                    const size_t te = kw - t0 < 16 ? kw : t0 + 16;
                    if (tb) /* 16 × 16 tiles: contiguous reads of b's rows */
                        for (size_t j0 = 0; j0 < nw; j0 += 16) {
                            const size_t je = nw - j0 < 16 ? nw : j0 + 16;
                            for (size_t j = j0; j < je; j++) {
                                const float *bj = b + (n0 + j) * k + k0;
                                for (size_t t = t0; t < te; t++) panel[t * nwp + j] = bj[t];
                            }
                        }
                    else
                        for (size_t t = t0; t < te; t++)
                            memcpy(panel + t * nwp, b + (k0 + t) * n + n0, nw * sizeof(float));
                    for (size_t t = t0; t < te; t++)
                        for (size_t j = nw; j < nwp; j++) panel[t * nwp + j] = 0.0f;
                }
                bp = panel, ldb = nwp;
            }
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (size_t blk = 0; blk < nmb; blk++) {
                const size_t r0 = blk * mb, rows = m - r0 < mb ? m - r0 : mb;
                const float *ar = a + r0 * ars + k0 * ats;
                float *cr = c + r0 * n + n0;
                if (nmain && tile) tile(cr, n, ar, ars, ats, bp, ldb, rows, nmain, kw, add);
                else if (nmain) K->gemm(cr, n, ar, ars, ats, bp, ldb, rows, nmain, kw, NULL, add);
                if (nmain < nw) { /* the last, partial group of 16 columns */
                    float tt[MB_MAX * 16];
                    if (tile) tile(tt, 16, ar, ars, ats, bp + nmain, ldb, rows, 16, kw, 0);
                    else K->gemm(tt, 16, ar, ars, ats, bp + nmain, ldb, rows, 16, kw, NULL, 0);
                    for (size_t r = 0; r < rows; r++)
                        for (size_t j = nmain; j < nw; j++)
                            cr[r * n + j] = add ? cr[r * n + j] + tt[r * 16 + j - nmain]
                                                : tt[r * 16 + j - nmain];
                }
            }
        }
    }
    free(panel);
    return ATTN_OK;
}

/* ---- entry points -------------------------------------------------------------- */

/* ATTN_GEMM_AUTO's kernel, chosen on first use. The built-in AVX-512 kernel is
 * about twice as fast as OpenBLAS's AVX2 one on these machines; with AVX2
 * only, OpenBLAS is a bit faster. ATTN_BLAS=0|1 overrides the choice (so one
 * build can test both paths); other values are ignored, as ATTN_SIMD's are. */
static int g_auto = -1; /* -1: not chosen yet */

attn_gemm_kernel attn_gemm_auto(void)
{
    int k = __atomic_load_n(&g_auto, __ATOMIC_ACQUIRE);
    if (k >= 0) return (attn_gemm_kernel)k;
    k = attn_have_cblas() && attn_simd_level() < ATTN_SIMD_AVX512 ? ATTN_GEMM_CBLAS
                                                                  : ATTN_GEMM_BUILTIN;
    const char *env = getenv("ATTN_BLAS");
    if (env && !strcmp(env, "0")) k = ATTN_GEMM_BUILTIN;
    else if (env && !strcmp(env, "1") && attn_have_cblas()) k = ATTN_GEMM_CBLAS;
    __atomic_store_n(&g_auto, k, __ATOMIC_RELEASE);
    return (attn_gemm_kernel)k;
}

attn_status attn_gemm(float *c, const float *a, const float *b, size_t m, size_t k, size_t n,
                      int trans_a, int trans_b, int accumulate, attn_gemm_kernel which)
{
    attn_status st = check_gemm("gemm", c, a, b, m, k, n);
    if (st) return st;
    if (which == ATTN_GEMM_AUTO) which = attn_gemm_auto();
    if (which == ATTN_GEMM_CBLAS)
        return gemm_cblas(c, a, b, m, k, n, !!trans_a, !!trans_b, !!accumulate);
    if (which != ATTN_GEMM_BUILTIN)
        return attn_error(ATTN_E_INVALID, "gemm: unknown kernel %d", (int)which);
    return gemm_builtin(c, a, b, m, k, n, !!trans_a, !!trans_b, !!accumulate);
}

attn_status attn_gemm_cblas(float *c, const float *a, const float *b, size_t m, size_t k,
                            size_t n, int trans_b)
{
    attn_status st = check_gemm("gemm_cblas", c, a, b, m, k, n);
    if (st) return st;
    return gemm_cblas(c, a, b, m, k, n, 0, !!trans_b, 0);
}

attn_status attn_gemm_builtin(float *c, const float *a, const float *b, size_t m, size_t k,
                              size_t n, int trans_b)
{
    attn_status st = check_gemm("gemm", c, a, b, m, k, n);
    if (st) return st;
    return gemm_builtin(c, a, b, m, k, n, 0, !!trans_b, 0);
}
