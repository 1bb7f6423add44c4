/* test_same_bits.c - both trainers give the same weights, bit for bit, on 1
 * and 2 threads, for each GEMM path (ATTN_BLAS=0: the built-in kernel;
 * ATTN_BLAS=1: OpenBLAS, where the library has it), through `attn train`.
 *
 * The models are sized so that their large products go through attn_gemm on
 * several threads (rows of c = batch × context = 512, at least 2^20
 * multiply-adds). That the two paths give different weights shows that the
 * switch reaches the products and that they are summed by different code. */
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attn/ops.h"
#include "attn/safetensors.h"

static char work[600], text[700], data[700];

/* The tensors of a and b (same names, in the same order) are equal bit for
 * bit: 1; 0 when any value differs. */
static int same_tensors(const char *a, const char *b)
{
    attn_safetensors *sa = NULL, *sb = NULL;
    if (attn_safetensors_open(&sa, a) || attn_safetensors_open(&sb, b))
        fail_msg("cannot open %s or %s: %s", a, b, attn_last_error());
    const size_t n = attn_safetensors_count(sa);
    assert_int_equal(n, attn_safetensors_count(sb));
    assert_true(n > 0);
    int same = 1;
    for (size_t i = 0; i < n; i++) {
        attn_st_info ia, ib;
        attn_tensor ta = {0}, tb = {0};
        assert_int_equal(attn_safetensors_info_at(sa, i, &ia), ATTN_OK);
        assert_int_equal(attn_safetensors_info_at(sb, i, &ib), ATTN_OK);
        assert_string_equal(ia.name, ib.name);
        assert_int_equal(ia.numel, ib.numel);
        assert_int_equal(attn_safetensors_read(sa, ia.name, &ta), ATTN_OK);
        assert_int_equal(attn_safetensors_read(sb, ib.name, &tb), ATTN_OK);
        same &= memcmp(ta.data, tb.data, ta.numel * sizeof(float)) == 0;
        attn_tensor_free(&ta), attn_tensor_free(&tb);
    }
    attn_safetensors_close(sa), attn_safetensors_close(sb);
    return same;
}

/* attn train ARGS --out WORK/NAME-bBLAS-tTHREADS with that environment. */
static void train(const char *name, const char *args, int blas, int threads, char *out, size_t cap)
{
    snprintf(out, cap, "%.600s/%s-b%d-t%d", work, name, blas, threads);
    run_result r = run_cmd("OMP_NUM_THREADS=%d ATTN_BLAS=%d '%s' train %s --out '%s'", threads, blas,
                           attn_bin(), args, out);
    if (r.status != 0) fail_msg("%s (ATTN_BLAS=%d, %d threads) failed: %s", name, blas, threads, r.err);
    run_result_free(&r);
}

/* Trains on each path with 1 and 2 threads; the files must match per path
 * and the paths must differ from each other. */
static void same_bits(const char *name, const char *args, const char *const *files)
{
    char ref[2][900];
    const int paths = attn_have_cblas() ? 2 : 1;
    if (paths == 1) print_message("built without CBLAS: the built-in path only\n");
    for (int blas = 0; blas < paths; blas++) {
        char one[700], two[700], fa[900], fb[900];
        train(name, args, blas, 1, one, sizeof one);
        train(name, args, blas, 2, two, sizeof two);
        for (size_t i = 0; files[i]; i++) {
            snprintf(fa, sizeof fa, "%s/%s", one, files[i]);
            snprintf(fb, sizeof fb, "%s/%s", two, files[i]);
            if (!same_tensors(fa, fb))
                fail_msg("%s, ATTN_BLAS=%d: %s differs between 1 and 2 threads", name, blas, files[i]);
        }
        snprintf(ref[blas], sizeof ref[blas], "%s/model.safetensors", one);
    }
    if (paths == 2 && same_tensors(ref[0], ref[1]))
        fail_msg("%s: the built-in and the CBLAS path gave the same weights (is ATTN_BLAS read?)", name);
}

static void test_gpt_same_bits(void **state)
{
    (void)state;
    static const char *const files[] = {"model.safetensors", "optim.safetensors", NULL};
    char args[1200];
    snprintf(args, sizeof args,
             "--data '%s' --layers 2 --heads 4 --width 64 --context 32 --batch 16 --iters 6 "
             "--eval-every 3 --eval-iters 1 --warmup 2",
             text);
    same_bits("gpt", args, files);
}

static void test_classify_same_bits(void **state)
{
    (void)state;
    static const char *const files[] = {"model.safetensors", "optim.safetensors", "best.safetensors",
                                        NULL};
    char args[1200];
    /* 256 texts in batches of 64: 4 steps an epoch, 3 epochs */
    snprintf(args, sizeof args,
             "--task classify --data '%s' --no-baselines --layers 2 --heads 4 --width 64 "
             "--context 8 --batch 64 --epochs 3 --warmup 2 --min-count 1",
             data);
    same_bits("classify", args, files);
}

static int setup(void **state)
{
    (void)state;
    snprintf(work, sizeof work, "%.500s/runs", test_tmpdir());
    if (mkdir(work, 0777) != 0) fail_msg("cannot create %s", work);
    snprintf(text, sizeof text, "%s", write_tiny_text());
    static const size_t n[3] = {256, 32, 32};
    snprintf(data, sizeof data, "%s", write_labelled_dir("split", n, 6));
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt_same_bits),
        cmocka_unit_test(test_classify_same_bits),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
