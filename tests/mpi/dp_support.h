/* dp_support.h - what the data-parallel CLI tests (tests/mpi/cli_dp_*.c)
 * share: the losses of a JSON log, the largest weight difference of two
 * checkpoints' safetensors files, and a run that must succeed. */
#ifndef ATTN_DP_SUPPORT_H
#define ATTN_DP_SUPPORT_H

#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/safetensors.h"

static inline const char *mpiexec(void) { return ATTN_MPIEXEC; }

/* Every "train_loss" and "val_loss" number of test_tmpdir()/<name>.log, in order. */
static inline size_t log_losses(const char *name, double *v, size_t cap)
{
    run_result r = run_cmd("grep -o '\"\\(train\\|val\\)_loss\": [-0-9.e+]*' '%s/%s.log' | sed 's/.*: //'",
                           test_tmpdir(), name);
    assert_int_equal(r.status, 0);
    size_t n = 0;
    for (char *p = r.out; *p && n < cap; n++) {
        char *end;
        v[n] = strtod(p, &end);
        if (end == p) break;
        p = end + (*end == '\n');
    }
    run_result_free(&r);
    return n;
}

/* Largest difference between the losses of test_tmpdir()/<name>.log and
 * ref[0..n) (the log must hold n). */
static inline double loss_diff(const char *name, const double *ref, size_t n)
{
    double got[64], worst = 0.0;
    assert_true(n <= 64);
    assert_int_equal(log_losses(name, got, 64), n);
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(got[i] - ref[i]));
    return worst;
}

/* A run of 2 ranks: the communication summary, and rank 0 alone printed
 * (nothing before its banner line). */
static inline void expect_rank0_alone(const run_result *r, const char *banner)
{
    assert_non_null(strstr(r->out, "data parallel: 2 ranks"));
    assert_non_null(strstr(r->out, banner));
    assert_int_equal(count_lines(r->out), count_lines(strstr(r->out, banner)));
}

/* Largest |a - b| over every tensor of file `file` in two checkpoints. */
static inline double weight_diff_of(const char *a, const char *b, const char *file)
{
    char pa[1024], pb[1024];
    snprintf(pa, sizeof pa, "%s/%s/%s", test_tmpdir(), a, file);
    snprintf(pb, sizeof pb, "%s/%s/%s", test_tmpdir(), b, file);
    attn_safetensors *sa = NULL, *sb = NULL;
    assert_int_equal(attn_safetensors_open(&sa, pa), ATTN_OK);
    assert_int_equal(attn_safetensors_open(&sb, pb), ATTN_OK);
    assert_int_equal(attn_safetensors_count(sa), attn_safetensors_count(sb));
    double worst = 0.0;
    for (size_t i = 0; i < attn_safetensors_count(sa); i++) {
        attn_st_info info;
        assert_int_equal(attn_safetensors_info_at(sa, i, &info), ATTN_OK);
        attn_tensor x = fixture_tensor(sa, pa, info.name), y = fixture_tensor(sb, pb, info.name);
        assert_int_equal(x.numel, y.numel);
        double d = max_abs_diff_f32(x.data, y.data, x.numel);
        worst = d > worst ? d : worst;
        attn_tensor_free(&x), attn_tensor_free(&y);
    }
    attn_safetensors_close(sa), attn_safetensors_close(sb);
    return worst;
}

static inline void expect_ok(run_result *r)
{
    if (r->status != 0) fail_msg("exit %d: %s", r->status, r->err);
    run_result_free(r);
}

#endif
