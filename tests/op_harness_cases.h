/* op_harness_cases.h - the cases of test_op_harness.c (included once, after
 * its op_defs): sizes odd on purpose, the variants of each op, big cases
 * past the sizes where kernels start threads or take blocked paths. */
static const op_case CASES[] = {
    /* matmul family, d = {m, k, n}; big: m·k·n >= 2^20 (threads, blocked kernel) */
    {&OP_MATMUL, {1, 1, 1}, 0, 1, 0},
    {&OP_MATMUL, {3, 5, 7}, 0, 1, 0},
    {&OP_MATMUL, {17, 33, 9}, 0, 1, 0},
    {&OP_MATMUL, {129, 67, 131}, 0, 1, 1},
    {&OP_MATMUL_NT, {1, 3, 1}, 0, 1, 0},
    {&OP_MATMUL_NT, {4, 19, 5}, 0, 1, 0},
    {&OP_MATMUL_NT, {1, 37, 23}, 0, 1, 0}, /* one row: the small path's row kernel */
    {&OP_MATMUL_NT, {3, 32, 13}, 0, 1, 0}, /* k of whole vectors, n past 8 rows */
    {&OP_MATMUL_NT, {1, 777, 700}, 0, 1, 1}, /* the row kernel on threads, tails everywhere */
    {&OP_MATMUL_NT, {131, 67, 129}, 0, 1, 1},
    {&OP_LINEAR, {5, 7, 3}, 0, 1, 0},
    {&OP_LINEAR, {5, 7, 3}, LIN_BIAS, 1, 0},
    {&OP_LINEAR, {1, 17, 33}, LIN_BIAS, 1, 0},
    {&OP_LINEAR, {130, 67, 129}, LIN_BIAS, 1, 1},
    {&OP_LINEAR, {5, 7, 3}, LIN_SET, 1, 0},
    {&OP_LINEAR, {130, 67, 129}, LIN_BIAS | LIN_SET, 1, 1},
    {&OP_GEMM, {7, 9, 5}, 0, 1, 0},
    {&OP_GEMM, {7, 9, 5}, G_TA, 1, 0},
    {&OP_GEMM, {7, 9, 5}, G_TB | G_ACC, 1, 0},
    {&OP_GEMM, {33, 17, 19}, G_TA | G_TB | G_ACC | G_BUILTIN, 1, 0},
    {&OP_GEMM, {33, 17, 19}, G_TB | G_CBLAS, 1, 0},
    {&OP_GEMM, {129, 67, 131}, G_ACC | G_BUILTIN, 1, 1},
    {&OP_GEMM, {129, 67, 131}, G_TA | G_TB | G_ACC | G_CBLAS, 1, 1},
    {&OP_GEMM, {13, 11, 9}, G_DIRECT, 1, 0},
    /* the 6 × 64 AVX-512 tiles: partial rows and 1-3 vectors, two k panels */
    {&OP_GEMM, {50, 300, 48}, G_BUILTIN, 1, 1},
    {&OP_GEMM, {50, 300, 83}, G_TA | G_TB | G_ACC | G_BUILTIN, 1, 1},
    {&OP_GEMM, {13, 11, 9}, G_DIRECT | G_TB, 1, 0},
    {&OP_GEMM, {13, 11, 9}, G_DIRECT | G_TB | G_CBLAS, 1, 0},
    /* softmax, d = {rows, cols} */
    {&OP_SOFTMAX, {1, 1}, 0, 3, 0},
    {&OP_SOFTMAX, {3, 17}, 0, 3, 0},
    {&OP_SOFTMAX, {5, 33}, SM_INF, 3, 0},
    {&OP_SOFTMAX, {129, 131}, 0, 3, 1},
    /* attention, d = {L, S, d_k, d_v} */
    {&OP_SDPA, {1, 1, 1, 1}, 0, 1, 0},
    {&OP_SDPA, {5, 7, 3, 4}, 0, 1, 0},
    {&OP_SDPA, {5, 7, 3, 4}, A_NOWEIGHTS, 1, 0},
    {&OP_SDPA, {6, 9, 17, 5}, A_NOSCALE | A_BOOL, 0.5f, 0},
    {&OP_SDPA, {6, 9, 17, 5}, A_CUSTOM | A_TEMP | A_ADD | A_NOWEIGHTS, 1, 0},
    {&OP_SDPA, {7, 5, 4, 3}, A_TOPLEFT | A_BOOL, 1, 0},
    {&OP_SDPA, {4, 9, 5, 6}, A_BOTRIGHT | A_TEMP, 1, 0},
    {&OP_SDPA, {4, 9, 5, 6}, A_BOTRIGHT | A_ADD | A_NOWEIGHTS, 1, 0},
    {&OP_SDPA_FLASH, {1, 1, 1, 1}, 0, 1, 0},
    {&OP_SDPA_FLASH, {5, 7, 3, 4}, A_TEMP, 1, 0},
    {&OP_SDPA_FLASH, {9, 6, 17, 5}, A_CUSTOM | A_BOOL | A_TOPLEFT, 1, 0},
    {&OP_SDPA_FLASH, {4, 9, 5, 6}, A_NOSCALE | A_ADD | A_BOTRIGHT, 0.5f, 0},
    /* flash over heads, d = {batch, heads, L, S, d_k, d_v}; big: nh·L·S·(dk+dv) >= 2^18 */
    {&OP_FLASH, {1, 1, 3, 5, 2, 3}, 0, 1, 0},
    {&OP_FLASH, {2, 3, 5, 7, 9, 4}, F_TOPLEFT, 1, 0},
    {&OP_FLASH, {2, 2, 6, 4, 3, 5}, F_BOTRIGHT | F_KEYMASK, 1, 0},
    {&OP_FLASH, {2, 3, 37, 45, 33, 31}, F_KEYMASK | F_TOPLEFT, 1, 1},
    /* layer norm, d = {rows, dim}; big: rows·dim >= 2^15 */
    {&OP_LAYERNORM, {1, 1}, 0, 2, 0},
    {&OP_LAYERNORM, {5, 7}, 0, 2, 0},
    {&OP_LAYERNORM, {3, 33}, LN_NOBIAS, 2, 0},
    {&OP_LAYERNORM, {4, 17}, LN_NOSAVE, 2, 0},
    {&OP_LAYERNORM, {129, 257}, 0, 2, 1},
    /* GELU and dropout, d = {n}; big: n >= 2^17 */
    {&OP_GELU, {1}, 0, 4, 0},
    {&OP_GELU, {41}, 0, 4, 0},
    {&OP_GELU, {131075}, 0, 4, 1},
    {&OP_GELU, {41}, 1, 4, 0},
    {&OP_GELU, {131075}, 1, 4, 1},
    {&OP_DROPOUT, {1}, 0, 1, 0},
    {&OP_DROPOUT, {37}, 0, 1, 0},
    {&OP_DROPOUT, {37}, 30, 1, 0},
    {&OP_DROPOUT, {131075}, 90, 1, 1},
    /* embedding, d = {n, dim, vocab}; big: n·dim >= 2^16 */
    {&OP_EMBEDDING, {1, 1, 1}, 0, 1, 0},
    {&OP_EMBEDDING, {6, 3, 5}, 0, 1, 0},
    {&OP_EMBEDDING, {7, 5, 4}, 1, 1, 0},
    {&OP_EMBEDDING, {257, 259, 11}, 1, 1, 1},
    /* cross-entropy, d = {rows, vocab}; big: rows·vocab >= 2^14 */
    {&OP_CE, {1, 1}, 0, 3, 0},
    {&OP_CE, {3, 7}, 0, 3, 0},
    {&OP_CE, {5, 33}, 0, 3, 0},
    {&OP_CE, {4, 9}, 10, 3, 0},
    {&OP_CE, {67, 259}, 0, 3, 1},
    {&OP_CE, {67, 259}, 20, 3, 1},
};
