/* flash_tmpl_sm.h - the online softmax's row, part of the kernel template
 * (flash_tmpl.h, whose parameters it uses); flash_bf16.c includes it alone
 * with the AVX-512 parameters (flash_avx512.h). Internal; no include guard
 * on purpose. */

#ifndef FK_INL
#define FK_INL static inline FK_ATTR __attribute__((always_inline))
#define FK_SM_OWN_INL
#endif

/* One row of the online softmax, its FK_BC scores in x (FK_BC / W vectors)
 * in log2 units (the forward scales Q by log2e: 2^(s − m) needs no multiply
 * per exp): the running max m, the lane sums lr (FK_LANES), 2^(s − m) into
 * row and the factor alpha = 2^(m_old − m_new) that rescales the output row.
 * The horizontal reductions were the latency-bound part: the max is reduced
 * only when some score exceeds the running max (rarely, after the first
 * blocks), and the sum is kept per lane (reduced once per query tile). */
FK_INL void FK(sm_row)(const VF *x, float *row, float *m, float *lr, float *alpha)
{
    VF mx = x[0];
    for (int c = 1; c < FK_BC / W; c++) mx = VMAX(mx, x[c]);
    const float mo = *m;
    float mn = mo, al = 1.0f;
    if (mo == -INFINITY || VANY_GT(mx, mo)) {
        const float bm = HMAX(mx);
        mn = bm > mo ? bm : mo;
        if (mn == -INFINITY) { /* nothing allowed yet in this row */
            for (int c = 0; c < FK_BC; c += W) VSTORE(row + c, VZERO());
            *alpha = 1.0f;
            return;
        }
        if (mn != mo) { /* mo = -inf gives 0; through the vector exp (a call of expf cost
                         * 1 % of the forward) */
            float t[W];
            VSTORE(t, FK(vexp2_sm)(VSET1(mo - mn)));
            al = t[0];
        }
    }
    const VF vm = VSET1(mn);
    VF sum = VZERO();
    for (int c = 0; c < FK_BC / W; c++) {
        VF p = FK(vexp2_sm)(VSUB(x[c], vm));
        VSTORE(row + c * W, p);
        sum = VADD(sum, p);
    }
    VSTORE(lr, VFMA(VLOAD(lr), VSET1(al), sum));
    *m = mn;
    *alpha = al;
}

#ifdef FK_SM_OWN_INL
#undef FK_INL
#undef FK_SM_OWN_INL
#endif
