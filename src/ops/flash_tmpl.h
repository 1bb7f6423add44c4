/* flash_tmpl.h - kernel template, included once per instruction set by
 * flash_simd.c with these defined:
 *   FK(name)   the name with the level's suffix
 *   FK_ATTR    the function attribute (target(...)) or nothing
 *   VF, W      the vector type and its number of floats
 *   RM, NVMAX  the micro-kernel: RM rows × NVMAX vectors of accumulators
 *   VLOAD VSTORE VSET1 VZERO VFMA VMUL VADD VSUB VDIV VMAX HMAX HSUM VBOOL
 *   VANY_GT(v, x) (some lane of v > x), FK(vexp), FK(vexp_sm) (the softmax's),
 *   FK(vexp2_sm) (the same on log2 units: FK(vexp_sm)(x) = FK(vexp2_sm)(x·log2e))
 *   FK_PREFETCH(p)      prefetch the line at p into L1 (or nothing)
 *   FK_T16(dst, ldd, src, lds)  optional: a 16 × 16 block transposed
 * Internal; no include guard on purpose. */

#define FK_INL static inline FK_ATTR __attribute__((always_inline))

/* The register-blocked micro-kernel: R rows × NV vectors, then by EP what
 * is stored: 0 the sums; 1 exp(sum − ev[r]) (0 where ev[r] = -inf): FK(probs);
 * 2 pp ∘ (sum − ev[r]), pp laid out as C: FK(dsoft). The same operations
 * as those kernels on the stored sums, without the tile's round trip. */
FK_INL void FK(micro)(const int R, const int NV, const int EP, float *C, size_t ldc,
                      const float *A, size_t ars, size_t ats, const float *B, size_t ldb, size_t T,
                      const float *rowscale, int accumulate, const float *ev, const float *pp)
{
    VF acc[RM][NVMAX];
#pragma GCC unroll 8
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 8
        for (int v = 0; v < NVMAX; v++) {
            if (r >= R || v >= NV) continue;
            if (!accumulate) acc[r][v] = VZERO();
            else if (rowscale) acc[r][v] = VMUL(VSET1(rowscale[r]), VLOAD(C + r * ldc + v * W));
            else acc[r][v] = VLOAD(C + r * ldc + v * W);
        }
    const float *a0 = A, *a1 = A + ars, *a2 = A + 2 * ars, *a3 = A + 3 * ars;
#if RM > 4
    const float *a4 = A + 4 * ars, *a5 = A + 5 * ars;
#endif
    for (size_t t = 0; t < T; t++) {
        VF b[NVMAX];
        const float *bt = B + t * ldb;
#pragma GCC unroll 8
        for (int v = 0; v < NVMAX; v++)
            if (v < NV) b[v] = VLOAD(bt + v * W);
        const size_t o = t * ats;
#define FK_ROW(r, ap)                                                    \
    if (r < R) {                                                         \
        VF av = VSET1(ap[o]);                                            \
        _Pragma("GCC unroll 8") for (int v = 0; v < NVMAX; v++) if (v < NV) \
            acc[r][v] = VFMA(av, b[v], acc[r][v]);                       \
    }
        FK_ROW(0, a0)
        FK_ROW(1, a1)
        FK_ROW(2, a2)
        FK_ROW(3, a3)
#if RM > 4
        FK_ROW(4, a4)
        FK_ROW(5, a5)
#endif
#undef FK_ROW
    }
#pragma GCC unroll 8
    for (int r = 0; r < RM; r++) {
        if (r >= R) continue;
        const int zero = EP == 1 && ev[r] == -INFINITY;
        const VF e = EP ? VSET1(ev[r]) : VZERO();
#pragma GCC unroll 8
        for (int v = 0; v < NVMAX; v++) {
            if (v >= NV) continue;
            float *cp = C + r * ldc + v * W;
            if (EP == 0) VSTORE(cp, acc[r][v]);
            else if (EP == 2) VSTORE(cp, VMUL(VLOAD(pp + r * ldc + v * W), VSUB(acc[r][v], e)));
            else VSTORE(cp, zero ? VZERO() : FK(vexp_sm)(VSUB(acc[r][v], e)));
        }
    }
}

#define FK_CASE(R, NV)                                                                       \
    case (R) * 8 + (NV):                                                                     \
        FK(micro)(R, NV, EP, c + r0 * ldc + c0, ldc, a + r0 * ars, ars, ats, b + c0, ldb, t, \
                  rowscale ? rowscale + r0 : NULL, accumulate, ev ? ev + r0 : NULL,          \
                  pp ? pp + r0 * ldc + c0 : NULL);                                           \
        break;

/* FK(gemm) with the micro-kernel's epilogue EP (ev, pp: rows from 0). */
FK_INL void FK(gemm_ep)(const int EP, float *c, size_t ldc, const float *a, size_t ars,
                        size_t ats, const float *b, size_t ldb, size_t rows, size_t ncols,
                        size_t t, const float *rowscale, int accumulate, const float *ev,
                        const float *pp)
{
    for (size_t r0 = 0; r0 < rows; r0 += RM) {
        const int rr = (int)(rows - r0 < RM ? rows - r0 : RM);
        for (size_t c0 = 0; c0 < ncols; c0 += (size_t)NVMAX * W) {
            size_t left = (ncols - c0) / W;
            const int nv = (int)(left < NVMAX ? left : NVMAX);
            switch (rr * 8 + nv) {
                FK_CASE(1, 1) FK_CASE(2, 1) FK_CASE(3, 1) FK_CASE(4, 1)
#if NVMAX >= 2
                FK_CASE(1, 2) FK_CASE(2, 2) FK_CASE(3, 2) FK_CASE(4, 2)
#endif
#if NVMAX >= 4
                FK_CASE(1, 3) FK_CASE(2, 3) FK_CASE(3, 3) FK_CASE(4, 3)
                FK_CASE(1, 4) FK_CASE(2, 4) FK_CASE(3, 4) FK_CASE(4, 4)
#endif
#if RM > 4
                FK_CASE(5, 1) FK_CASE(6, 1)
#if NVMAX >= 2
                FK_CASE(5, 2) FK_CASE(6, 2)
#endif
#if NVMAX >= 4
                FK_CASE(5, 3) FK_CASE(6, 3) FK_CASE(5, 4) FK_CASE(6, 4)
#endif
#endif
            default: break;
            }
        }
    }
}
#undef FK_CASE

static FK_ATTR void FK(gemm)(float *c, size_t ldc, const float *a, size_t ars, size_t ats,
                             const float *b, size_t ldb, size_t rows, size_t ncols, size_t t,
                             const float *rowscale, int accumulate)
{
    FK(gemm_ep)(0, c, ldc, a, ars, ats, b, ldb, rows, ncols, t, rowscale, accumulate, NULL, NULL);
}

static FK_ATTR void FK(qk_probs)(float *s, const float *q, size_t ldq, const float *kt, size_t dk,
                                 size_t rows, const float *lse)
{
    FK(gemm_ep)(1, s, FK_BC, q, ldq, 1, kt, FK_BC, rows, FK_BC, dk, NULL, 0, lse, NULL);
}

static FK_ATTR void FK(dp_dsoft)(float *ds, const float *dout, size_t ldo, const float *vt,
                                 size_t dv, size_t rows, const float *p, const float *dd)
{
    FK(gemm_ep)(2, ds, FK_BC, dout, ldo, 1, vt, FK_BC, rows, FK_BC, dv, NULL, 0, dd, p);
}

#include "flash_tmpl_sm.h"

static FK_ATTR void FK(softmax_online)(float *s, size_t rows, float *m, float *l, float *alpha)
{
    for (size_t r = 0; r < rows; r++) {
        float *row = s + r * FK_BC;
        VF x[FK_BC / W];
        for (int c = 0; c < FK_BC / W; c++) x[c] = VLOAD(row + c * W);
        FK(sm_row)(x, row, m + r, l + r * FK_LANES, alpha + r);
    }
}

#if NVMAX * W == FK_BC
/* RM query rows of S = Q·Kᵀ for a whole key block held in registers, the
 * online softmax applied there: the bits of FK(gemm) then FK(softmax_online)
 * (the same products in the same order), without the tile's round trip
 * through memory. pa, pb: dk / 4 cache lines each of what the caller needs
 * next, prefetched along (or NULL). */
FK_INL void FK(qk_rows)(float *s, const float *q, size_t dk, const float *kt, float *m, float *l,
                        float *alpha, const char *pa, const char *pb)
{
    VF acc[RM][NVMAX];
#pragma GCC unroll 8
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 8
        for (int v = 0; v < NVMAX; v++) acc[r][v] = VZERO();
    for (size_t t = 0; t < dk; t++) {
        VF b[NVMAX];
        const float *bt = kt + t * FK_BC;
#pragma GCC unroll 8
        for (int v = 0; v < NVMAX; v++) b[v] = VLOAD(bt + v * W);
#pragma GCC unroll 8
        for (int r = 0; r < RM; r++) {
            const VF av = VSET1(q[r * dk + t]);
#pragma GCC unroll 8
            for (int v = 0; v < NVMAX; v++) acc[r][v] = VFMA(av, b[v], acc[r][v]);
        }
        if (pa && (t & 3) == 0) FK_PREFETCH(pa + (t >> 2) * 64);
        if (pb && (t & 3) == 2) FK_PREFETCH(pb + (t >> 2) * 64);
    }
#pragma GCC unroll 8
    for (int r = 0; r < RM; r++)
        FK(sm_row)(acc[r], s + r * FK_BC, m + r, l + r * FK_LANES, alpha + r);
}
#endif

/* S = Q·Kᵀ (rows, FK_BC) for q (rows, dk) and a block kt (dk, FK_BC), then
 * the online softmax (as FK(softmax_online)). pa, pb: two regions of
 * pf_bytes (or NULL) the caller reads next (the next K and V blocks), brought
 * into L1 along the way (a head's K and V outgrow L2 at N = 4096, d = 64). */
static FK_ATTR void FK(qk_softmax)(float *s, const float *q, size_t dk, const float *kt,
                                   size_t rows, float *m, float *l, float *alpha, const void *pa,
                                   const void *pb, size_t pf_bytes)
{
    size_t r0 = 0;
#if NVMAX * W == FK_BC
    const char *ca = (const char *)pa, *cb = (const char *)pb;
    const size_t step = dk / 4 * 64; /* bytes each call of qk_rows prefetches per region */
    size_t done = 0;
    for (; r0 + RM <= rows; r0 += RM, done += step) {
        const int more = done + step <= pf_bytes;
        FK(qk_rows)(s + r0 * FK_BC, q + r0 * dk, dk, kt, m + r0, l + r0 * FK_LANES, alpha + r0,
                    more && ca ? ca + done : NULL, more && cb ? cb + done : NULL);
    }
#else
    (void)pa, (void)pb, (void)pf_bytes;
#endif
    if (r0 < rows) {
        FK(gemm)(s + r0 * FK_BC, FK_BC, q + r0 * dk, dk, 1, kt, FK_BC, rows - r0, FK_BC, dk, NULL,
                 0);
        FK(softmax_online)(s + r0 * FK_BC, rows - r0, m + r0, l + r0 * FK_LANES, alpha + r0);
    }
}

static FK_ATTR void FK(probs)(float *s, size_t rows, const float *lse)
{
    for (size_t r = 0; r < rows; r++) {
        float *row = s + r * FK_BC;
        if (lse[r] == -INFINITY) {
            for (int c = 0; c < FK_BC; c += W) VSTORE(row + c, VZERO());
            continue;
        }
        const VF vl = VSET1(lse[r]);
        for (int c = 0; c < FK_BC; c += W)
            VSTORE(row + c, FK(vexp_sm)(VSUB(VLOAD(row + c), vl)));
    }
}

static FK_ATTR void FK(dsoft)(float *dp, const float *p, size_t rows, const float *dd)
{
    for (size_t r = 0; r < rows; r++) {
        float *row = dp + r * FK_BC;
        const float *pr = p + r * FK_BC;
        const VF vd = VSET1(dd[r]);
        for (int c = 0; c < FK_BC; c += W)
            VSTORE(row + c, VMUL(VLOAD(pr + c), VSUB(VLOAD(row + c), vd)));
    }
}

static FK_ATTR void FK(add_row)(float *row, const float *src, float f)
{
    const VF vf = VSET1(f);
    for (int c = 0; c < FK_BC; c += W) VSTORE(row + c, VFMA(vf, VLOAD(src + c), VLOAD(row + c)));
}

static FK_ATTR void FK(bool_row)(float *row, const uint8_t *b)
{
    for (int c = 0; c < FK_BC; c += W) VSTORE(row + c, VBOOL(VLOAD(row + c), b + c));
}

static FK_ATTR void FK(exp_n)(float *out, const float *x, size_t n, int softmax)
{
    size_t i = 0;
    for (; i + W <= n; i += W) {
        const VF v = VLOAD(x + i);
        VSTORE(out + i, softmax ? FK(vexp_sm)(v) : FK(vexp)(v));
    }
    for (; i < n; i++) {
        float tmp[W];
        for (int j = 0; j < W; j++) tmp[j] = x[i];
        const VF v = VLOAD(tmp);
        VSTORE(tmp, softmax ? FK(vexp_sm)(v) : FK(vexp)(v));
        out[i] = tmp[0];
    }
}

/* s = σ(2u) = 1 / (1 + e^(−2u)), u = k(x + c x³): exact in both tails (e^(−2u)
 * overflowing to +inf gives 0). */
FK_INL VF FK(gelu_sig)(VF x)
{
    const VF x2 = VMUL(x, x);
    const VF u2 = VMUL(VMUL(x, VSET1(-2.0f * FK_GELU_K)), VFMA(VSET1(FK_GELU_C), x2, VSET1(1.0f)));
    return VDIV(VSET1(1.0f), VADD(VSET1(1.0f), FK(vexp)(u2)));
}

static FK_ATTR void FK(gelu_fwd)(float *y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + W <= n; i += W) {
        const VF v = VLOAD(x + i);
        VSTORE(y + i, VMUL(v, FK(gelu_sig)(v)));
    }
    if (i < n) {
        float tx[W], ty[W];
        for (int j = 0; j < W; j++) tx[j] = i + (size_t)j < n ? x[i + (size_t)j] : 0.0f;
        const VF v = VLOAD(tx);
        VSTORE(ty, VMUL(v, FK(gelu_sig)(v)));
        for (size_t j = 0; i + j < n; j++) y[i + j] = ty[j];
    }
}

/* g = s + 2·x·s·(1 − s)·k·(1 + 3c x²)  (0.5(1 − t²) = 2s(1 − s)) */
FK_INL VF FK(gelu_grad)(VF x)
{
    const VF s = FK(gelu_sig)(x);
    const VF x2 = VMUL(x, x);
    const VF du = VFMA(VSET1(3.0f * FK_GELU_C * FK_GELU_K), x2, VSET1(FK_GELU_K));
    const VF sp = VMUL(s, VSUB(VSET1(1.0f), s));
    return VFMA(VMUL(VADD(x, x), sp), du, s);
}

static FK_ATTR void FK(gelu_bwd)(float *d_x, const float *d_y, const float *x, size_t n)
{
    size_t i = 0;
    for (; i + W <= n; i += W)
        VSTORE(d_x + i, VFMA(FK(gelu_grad)(VLOAD(x + i)), VLOAD(d_y + i), VLOAD(d_x + i)));
    if (i < n) {
        float tx[W], tdy[W], tdx[W];
        for (int j = 0; j < W; j++) {
            const int in = i + (size_t)j < n;
            tx[j] = in ? x[i + (size_t)j] : 0.0f;
            tdy[j] = in ? d_y[i + (size_t)j] : 0.0f;
            tdx[j] = in ? d_x[i + (size_t)j] : 0.0f;
        }
        VSTORE(tdx, VFMA(FK(gelu_grad)(VLOAD(tx)), VLOAD(tdy), VLOAD(tdx)));
        for (size_t j = 0; i + j < n; j++) d_x[i + j] = tdx[j];
    }
}

static FK_ATTR void FK(transpose)(float *dst, size_t ldd, const float *src, size_t lds,
                                  size_t rows, size_t cols)
{
    size_t r0 = 0;
#ifdef FK_T16
    for (; r0 + 16 <= rows; r0 += 16) {
        size_t c0 = 0;
        for (; c0 + 16 <= cols; c0 += 16) FK_T16(dst + c0 * ldd + r0, ldd, src + r0 * lds + c0, lds);
        for (size_t r = r0; r < r0 + 16; r++)
            for (size_t c = c0; c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
    }
#endif
    for (size_t r = r0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) dst[c * ldd + r] = src[r * lds + c];
}

/* Bytes ahead of the row in use that the lone query's passes prefetch: 4
 * rows of 64 floats. */
#ifndef FK_OQ_AHEAD
#define FK_OQ_AHEAD 1024
#endif
/* Groups of keys the lone query reads side by side (gemv_avx512.c: memory
 * serves four streams far apart a core best). */
#define FK_OQ_G 4 /* a power of two (the groups are added pairwise) */

/* s_j = factor · q · k_j for key j (q (dk), k_j (dk)) */
FK_INL float FK(oq_score)(const float *q, const float *kj, size_t dk, float factor)
{
    for (size_t o = 0; o < dk * sizeof(float); o += 64)
        FK_PREFETCH((const char *)kj + FK_OQ_AHEAD + o);
    VF acc = VZERO();
    size_t c = 0;
    for (; c + W <= dk; c += W) acc = VFMA(VLOAD(q + c), VLOAD(kj + c), acc);
    float sc = HSUM(acc);
    for (; c < dk; c++) sc += q[c] * kj[c];
    return sc * factor;
}

/* acc[i] += p_j · v_j[i·W ..] for the nv (<= 4) vectors of a value row's chunk */
FK_INL void FK(oq_add)(VF *acc, int nv, float pj, const float *vj)
{
    for (size_t o = 0; o < (size_t)nv * W * sizeof(float); o += 64)
        FK_PREFETCH((const char *)vj + FK_OQ_AHEAD + o);
    const VF pv = VSET1(pj);
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        if (i < nv) acc[i] = VFMA(pv, VLOAD(vj + i * W), acc[i]);
}

/* The lone query of a decode step: out (dv) = Σ_j p_j · v_j / Σ_j p_j with
 * p_j = exp(s_j − max s), s = factor · k · q; q (dk), k (s, dk), v (s, dv),
 * p (s) scratch. Bound by memory (the cache is read once a token: GPT-2's
 * 12 layers × 2 × 1.7 MB at 544 tokens), so both passes read their rows in
 * FK_OQ_G groups spread over the keys, prefetched ahead; the output sums
 * stay in registers (4 vectors of each group at a time), added across the
 * groups and scaled once at the end. */
static FK_ATTR void FK(one_query)(float *out, const float *q, const float *k, const float *v,
                                  size_t s, size_t dk, size_t dv, float factor, float *p)
{
    const size_t h = s / FK_OQ_G, rest = FK_OQ_G * h; /* keys in each group; then the rest */
    float mx = -INFINITY;
    for (size_t j = 0; j < h; j++)
#pragma GCC unroll 4
        for (int g = 0; g < FK_OQ_G; g++) {
            const size_t jj = j + (size_t)g * h;
            p[jj] = FK(oq_score)(q, k + jj * dk, dk, factor);
            mx = p[jj] > mx ? p[jj] : mx;
        }
    for (size_t j = rest; j < s; j++) {
        p[j] = FK(oq_score)(q, k + j * dk, dk, factor);
        mx = p[j] > mx ? p[j] : mx;
    }
    size_t j = 0;
    VF vs = VZERO();
    for (; j + W <= s; j += W) {
        const VF e = FK(vexp_sm)(VSUB(VLOAD(p + j), VSET1(mx)));
        VSTORE(p + j, e);
        vs = VADD(vs, e);
    }
    float sum = HSUM(vs);
    for (; j < s; j++) { /* the tail through the same exp, one lane used */
        float t[W];
        for (int l = 0; l < W; l++) t[l] = p[j] - mx;
        VSTORE(t, FK(vexp_sm)(VLOAD(t)));
        sum += p[j] = t[0];
    }
    const VF inv = VSET1(1.0f / sum);
    const size_t dvw = dv / W * W;
    for (size_t c0 = 0; c0 < dvw; c0 += 4 * W) {
        const int nv = dvw - c0 >= 4 * W ? 4 : (int)((dvw - c0) / W);
        VF acc[FK_OQ_G][4];
#pragma GCC unroll 4
        for (int g = 0; g < FK_OQ_G; g++)
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) acc[g][i] = VZERO();
        for (size_t jj = 0; jj < h; jj++)
#pragma GCC unroll 4
            for (int g = 0; g < FK_OQ_G; g++) {
                const size_t key = jj + (size_t)g * h;
                FK(oq_add)(acc[g], nv, p[key], v + key * dv + c0);
            }
        for (size_t key = rest; key < s; key++) FK(oq_add)(acc[0], nv, p[key], v + key * dv + c0);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            if (i >= nv) continue;
            for (int w = 1; w < FK_OQ_G; w *= 2) /* pairwise: (g0 + g1) + (g2 + g3) */
                for (int g = 0; g + w < FK_OQ_G; g += 2 * w) acc[g][i] = VADD(acc[g][i], acc[g + w][i]);
            VSTORE(out + c0 + (size_t)i * W, VMUL(acc[0][i], inv));
        }
    }
    for (size_t c = dvw; c < dv; c++) { /* columns past the last vector */
        float acc = 0.0f;
        for (size_t jj = 0; jj < s; jj++) acc += p[jj] * v[jj * dv + c];
        out[c] = acc * (1.0f / sum);
    }
}

static FK_ATTR void FK(prefetch)(const void *p, size_t bytes)
{
    for (size_t o = 0; o < bytes; o += 64) FK_PREFETCH((const char *)p + o);
}

static const fk_table FK(table) = {FK(gemm),     FK(softmax_online), FK(qk_softmax), FK(probs),
                                   FK(dsoft),    FK(qk_probs),       FK(dp_dsoft),   FK(add_row),
                                   FK(bool_row), FK(exp_n),          FK(gelu_fwd),   FK(gelu_bwd),
                                   FK(transpose), FK(prefetch),       FK(one_query)};

#undef FK_INL
#undef FK_OQ_G

/* The template consumes its parameters, so that the next level can define them. */
#undef FK
#undef FK_ATTR
#undef VF
#undef W
#undef RM
#undef NVMAX
#undef VLOAD
#undef VSTORE
#undef VSET1
#undef VZERO
#undef VFMA
#undef VMUL
#undef VADD
#undef VSUB
#undef VDIV
#undef VMAX
#undef HMAX
#undef HSUM
#undef VBOOL
#undef VANY_GT
#undef FK_PREFETCH
#undef FK_T16
