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

#include "flash_bf16.h"
#include "flash_kern.h"
#include "gemm_bf16.h"
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

/* One product's arguments, as the built-in kernel's helpers see them. */
typedef struct gemm_job {
    float *c;
    const float *a, *b;
    size_t m, k, n, ars, ats, mb;
    int tb, acc;
    const fk_table *K;
    attn_gemm_tile_fn tile;
} gemm_job;

/* Rows [t0, te) of the panel of b's columns [n0, n0 + nw) and rows
 * [k0, k0 + ...) into dst (row t at dst + t·nwp), zero padded to nwp columns. */
static void pack_rows(float *dst, const gemm_job *g, size_t n0, size_t nw, size_t nwp, size_t k0,
                      size_t t0, size_t te)
{
    if (g->tb) /* b's rows n0.. (from column k0 + t0) transposed: the flash kernels' 16 × 16 blocks */
        g->K->transpose(dst + t0 * nwp, nwp, g->b + n0 * g->k + k0 + t0, g->k, nw, te - t0);
    else
        for (size_t t = t0; t < te; t++)
            memcpy(dst + t * nwp, g->b + (k0 + t) * g->n + n0, nw * sizeof(float));
    for (size_t t = t0; t < te; t++)
        for (size_t j = nw; j < nwp; j++) dst[t * nwp + j] = 0.0f;
}

/* Row block blk of c, columns [n0, n0 + nw), against rows [k0, k0 + kw) of
 * b (bp: their first row, ldb apart). */
static void gemm_block(const gemm_job *g, size_t blk, size_t n0, size_t nw, size_t k0, size_t kw,
                       const float *bp, size_t ldb)
{
    const size_t r0 = blk * g->mb, rows = g->m - r0 < g->mb ? g->m - r0 : g->mb;
    const size_t nmain = nw & ~(size_t)15, n = g->n, ars = g->ars, ats = g->ats;
    const int add = g->acc || k0 > 0;
    const float *ar = g->a + r0 * ars + k0 * ats;
    float *cr = g->c + r0 * n + n0;
    if (nmain && g->tile) g->tile(cr, n, ar, ars, ats, bp, ldb, rows, nmain, kw, add);
    else if (nmain) g->K->gemm(cr, n, ar, ars, ats, bp, ldb, rows, nmain, kw, NULL, add);
    if (nmain < nw) { /* the last, partial group of 16 columns */
        float tt[MB_MAX * 16];
        if (g->tile) g->tile(tt, 16, ar, ars, ats, bp + nmain, ldb, rows, 16, kw, 0);
        else g->K->gemm(tt, 16, ar, ars, ats, bp + nmain, ldb, rows, 16, kw, NULL, 0);
        for (size_t r = 0; r < rows; r++)
            for (size_t j = nmain; j < nw; j++)
                cr[r * n + j] = add ? cr[r * n + j] + tt[r * 16 + j - nmain] : tt[r * 16 + j - nmain];
    }
}

/* Packed B at most this many floats is packed whole, before the products. */
#define PACK_ALL_MAX ((size_t)1 << 21)

/* B used in place or packed whole (packed: panel n0 at packed + n0·k, its
 * rows up16(nw) apart): one pass of packing, then every row block runs
 * through all panels on its own, with no barrier between panels (each wakes
 * a sleeping thread under OMP_WAIT_POLICY=PASSIVE, which the CLI sets). */
static void gemm_whole(const gemm_job *g, float *packed, int par)
{
    const size_t m = g->m, k = g->k, n = g->n, nmb = (m + g->mb - 1) / g->mb;
    const size_t tiles = (k + 15) / 16, npan = (n + NC - 1) / NC;
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel if (par)
#endif
    {
        if (packed) {
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
            for (size_t q = 0; q < npan * tiles; q++) {
                const size_t n0 = q / tiles * NC, t0 = q % tiles * 16;
                const size_t nw = n - n0 < NC ? n - n0 : NC, te = k - t0 < 16 ? k : t0 + 16;
                pack_rows(packed + n0 * k, g, n0, nw, up16(nw), 0, t0, te);
            }
        }
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (size_t blk = 0; blk < nmb; blk++)
            for (size_t n0 = 0; n0 < n; n0 += NC) {
                const size_t nw = n - n0 < NC ? n - n0 : NC, ldb = packed ? up16(nw) : n;
                for (size_t k0 = 0; k0 < k; k0 += KC) {
                    const float *bp = packed ? packed + n0 * k + k0 * ldb : g->b + k0 * n + n0;
                    gemm_block(g, blk, n0, nw, k0, k - k0 < KC ? k - k0 : KC, bp, ldb);
                }
            }
    }
}

/* A B too large to pack whole: panel by panel (KC × NC), packed by all
 * threads, then multiplied by all row blocks. */
static void gemm_panels(const gemm_job *g, float *panel, int par)
{
    const size_t m = g->m, k = g->k, n = g->n, nmb = (m + g->mb - 1) / g->mb;
#ifdef ATTN_HAVE_OPENMP
#pragma omp parallel if (par)
#endif
    for (size_t n0 = 0; n0 < n; n0 += NC) {
        const size_t nw = n - n0 < NC ? n - n0 : NC, nwp = up16(nw);
        for (size_t k0 = 0; k0 < k; k0 += KC) {
            const size_t kw = k - k0 < KC ? k - k0 : KC;
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
            for (size_t t0 = 0; t0 < kw; t0 += 16)
                pack_rows(panel, g, n0, nw, nwp, k0, t0, kw - t0 < 16 ? kw : t0 + 16);
#ifdef ATTN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
            for (size_t blk = 0; blk < nmb; blk++) gemm_block(g, blk, n0, nw, k0, kw, panel, nwp);
        }
    }
}

/* Every element of c is one chain (c or 0, then one FMA per k in order,
 * panel after panel) whichever of the two paths runs it, so they and the
 * thread count give the same bits. */
static attn_status gemm_builtin(float *c, const float *a, const float *b, size_t m, size_t k,
                                size_t n, int ta, int tb, int acc)
{
    gemm_job g = {c, a, b, m, k, n, ta ? 1 : k, ta ? m : 1, row_block(m), tb, acc,
                  attn_fk_table(attn_simd_level()), attn_gemm_tile_kernel(attn_simd_level())};
    const int par = par_ok(m, k, n, (m + g.mb - 1) / g.mb);
    /* A row-major B whose width is a multiple of 16 needs no packing. */
    if (!tb && n % 16 == 0) {
        gemm_whole(&g, NULL, par);
        return ATTN_OK;
    }
    const size_t whole = k * (n + 15 * ((n + NC - 1) / NC));
    const int all = whole <= PACK_ALL_MAX;
    float *buf = aligned_alloc(64, (all ? (whole + 15) & ~(size_t)15 : KC * up16(n < NC ? n : NC)) * sizeof(float));
    if (!buf) return attn_error(ATTN_E_NOMEM, "gemm: cannot allocate a packing buffer");
    if (all) gemm_whole(&g, buf, par);
    else gemm_panels(&g, buf, par);
    free(buf);
    return ATTN_OK;
}

/* ---- bf16 products ---------------------------------------------------------------- */

/* x rounded to bf16, as floats (each product of two is exact in fp32). */
static float *bf16_copy(const float *x, size_t n)
{
    float *r = malloc((n ? n : 1) * sizeof *r);
    for (size_t i = 0; r && i < n; i++) {
        const uint32_t u = (uint32_t)attn_bf16_round(x[i]) << 16;
        memcpy(&r[i], &u, sizeof u);
    }
    return r;
}

/* ATTN_GEMM_BF16: the AVX-512 BF16 kernel, or the built-in one on rounded copies. */
static attn_status gemm_bf16(float *c, const float *a, const float *b, size_t m, size_t k,
                             size_t n, int ta, int tb, int acc)
{
    if (attn_fk_bf16()) return attn_gemm_bf16_run(c, a, b, m, k, n, ta, tb, acc);
    float *ar = bf16_copy(a, m * k), *br = bf16_copy(b, k * n);
    attn_status st = ar && br ? gemm_builtin(c, ar, br, m, k, n, ta, tb, acc)
                              : attn_error(ATTN_E_NOMEM, "gemm (bf16): cannot allocate rounded copies");
    free(ar), free(br);
    return st;
}

static int g_precision; /* attn_precision */

attn_precision attn_gemm_set_precision(attn_precision p)
{
    const int was = __atomic_exchange_n(&g_precision, p == ATTN_PRECISION_BF16 ? 1 : 0, __ATOMIC_ACQ_REL);
    return was ? ATTN_PRECISION_BF16 : ATTN_PRECISION_FP32;
}

attn_precision attn_gemm_precision(void)
{
    return __atomic_load_n(&g_precision, __ATOMIC_ACQUIRE) ? ATTN_PRECISION_BF16 : ATTN_PRECISION_FP32;
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
    if (which == ATTN_GEMM_AUTO)
        which = attn_gemm_precision() == ATTN_PRECISION_BF16 ? ATTN_GEMM_BF16 : attn_gemm_auto();
    if (which == ATTN_GEMM_BF16)
        return gemm_bf16(c, a, b, m, k, n, !!trans_a, !!trans_b, !!accumulate);
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
