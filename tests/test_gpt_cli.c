/* test_gpt_cli.c - `attn train` and `attn generate` through the real binary:
 * interrupt and resume give bitwise the same losses as one run; SIGINT
 * writes a usable checkpoint; generation with and without the KV cache agrees
 * at temperature 0; bad input gets one line on stderr, exit 2, and never
 * replaces a good checkpoint. */
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A tiny model: trains in well under a second per run. */
#define TINY "--layers 2 --heads 2 --width 16 --context 16 --batch 4 --eval-every 10 --eval-iters 2 --warmup 3 --lr 3e-3"

static const char *data_path;
static char ckpt[512];

static void make_text(void)
{
    static char text[6000];
    const char *lines[] = {"the cat sat on the mat.\n", "a dog ran to the park!\n",
                           "we will see the sea, said she.\n", "ROMEO: what light breaks?\n"};
    size_t n = 0, i = 0;
    while (n + 40 < sizeof text) {
        const char *l = lines[(i * 7 + i / 3) % 4];
        memcpy(text + n, l, strlen(l));
        n += strlen(l), i++;
    }
    text[n] = 0;
    data_path = write_tmp("text.txt", text);
}

/* "step N train_loss X [val_loss Y]" per line of a JSON log, timing removed. */
static char *losses(const char *log)
{
    run_result r = run_cmd("sed -e 's/, \"lr.*tokens_per_s\": [0-9.]*//' '%s'", log);
    assert_int_equal(r.status, 0);
    char *out = r.out;
    r.out = NULL;
    run_result_free(&r);
    return out;
}

static void expect_bad(run_result *r, const char *cmd, const char *needle)
{
    if (r->status != 2 || count_lines(r->err) != 1 || !strstr(r->err, needle) ||
        strncmp(r->err, cmd, strlen(cmd)) != 0)
        fail_msg("expected exit 2 and one line with '%s', got %d: %s", needle, r->status, r->err);
    run_result_free(r);
}

static int setup(void **state)
{
    (void)state;
    make_text();
    snprintf(ckpt, sizeof ckpt, "%s/good", test_tmpdir());
    run_result r = run_cmd("'%s' train --data '%s' " TINY " --iters 20 --out '%s' --json-log '%s/full.log'",
                           attn_bin(), data_path, ckpt, test_tmpdir());
    if (r.status != 0) fail_msg("train failed: %s", r.err);
    run_result_free(&r);
    return 0;
}

static void test_resume_is_exact(void **state)
{
    (void)state;
    const char *t = test_tmpdir();
    run_result r = run_cmd("'%s' train --data '%s' " TINY " --iters 20 --stop-at 10 --out '%s/part' "
                           "--json-log '%s/part1.log'",
                           attn_bin(), data_path, t, t);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "stopped at step 10"));
    run_result_free(&r);
    r = run_cmd("'%s' train --data '%s' --resume '%s/part' --json-log '%s/part2.log'", attn_bin(),
                data_path, t, t);
    if (r.status != 0) fail_msg("resume failed: %s", r.err);
    run_result_free(&r);
    char full[600], p1[600], p2[600];
    snprintf(full, sizeof full, "%s/full.log", t);
    snprintf(p1, sizeof p1, "%s/part1.log", t);
    snprintf(p2, sizeof p2, "%s/part2.log", t);
    char *a = losses(full), *b1 = losses(p1), *b2 = losses(p2);
    assert_int_equal(count_lines(a), 20);
    assert_int_equal(count_lines(b1), 10);
    assert_non_null(strstr(a, "\"val_loss\""));
    char *b = malloc(strlen(b1) + strlen(b2) + 1);
    strcpy(b, b1), strcat(b, b2);
    assert_string_equal(a, b); /* bitwise: every digit of every loss */
    /* and the final weights too */
    r = run_cmd("cmp '%s/model.safetensors' '%s/part/model.safetensors'", ckpt, t);
    assert_int_equal(r.status, 0);
    run_result_free(&r);
    free(a), free(b1), free(b2), free(b);
}

static void test_sigint_checkpoints(void **state)
{
    (void)state;
    const char *t = test_tmpdir();
    run_result r = run_cmd(
        "'%s' train --data '%s' " TINY " --iters 1000000 --out '%s/int' --json-log '%s/int.log' & "
        "pid=$!; i=0; while [ ! -s '%s/int.log' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; "
        "kill -INT $pid; wait $pid",
        attn_bin(), data_path, t, t, t);
    if (r.status != 0) fail_msg("interrupted train: %d %s", r.status, r.err);
    assert_non_null(strstr(r.out, "interrupted"));
    run_result_free(&r);
    r = run_cmd("'%s' generate --model '%s/int' --tokens 5 --temperature 0", attn_bin(), t);
    assert_int_equal(r.status, 0);
    run_result_free(&r);
}

static void test_kv_cache_matches(void **state)
{
    (void)state;
    /* 40 tokens with a context of 16: the window restarts twice. */
    run_result a = run_cmd("'%s' generate --model '%s' --prompt 'the ' --tokens 40 --temperature 0",
                           attn_bin(), ckpt);
    run_result b = run_cmd("'%s' generate --model '%s' --prompt 'the ' --tokens 40 --temperature 0 --no-cache",
                           attn_bin(), ckpt);
    assert_int_equal(a.status, 0);
    assert_int_equal(b.status, 0);
    assert_true(strlen(a.out) >= 44);
    assert_string_equal(a.out, b.out);
    run_result_free(&a), run_result_free(&b);
    /* sampled, too: the same seed, the same text */
    a = run_cmd("'%s' generate --model '%s' --tokens 30 --top-k 5 --top-p 0.9 --seed 3", attn_bin(), ckpt);
    b = run_cmd("'%s' generate --model '%s' --tokens 30 --top-k 5 --top-p 0.9 --seed 3 --no-cache", attn_bin(), ckpt);
    assert_int_equal(a.status, 0);
    assert_string_equal(a.out, b.out);
    run_result_free(&a), run_result_free(&b);
}

static void test_bad_data(void **state)
{
    (void)state;
    const char *t = test_tmpdir(), *B = attn_bin();
    run_result r = run_cmd("'%s' train --data '%s' " TINY " --out '%s/x'", B, write_tmp("empty.txt", ""), t);
    expect_bad(&r, "attn train:", "empty");
    r = run_cmd("'%s' train --data '%s/nope.txt' " TINY " --out '%s/x'", B, t, t);
    expect_bad(&r, "attn train:", "cannot open");
    r = run_cmd("'%s' train --data '%s' " TINY " --out '%s/x'", B, write_tmp("short.txt", "abcdefghij\n"), t);
    expect_bad(&r, "attn train:", "too few");
    r = run_cmd("'%s' train --data '%s' " TINY " --out /dev/null/sub", B, data_path);
    expect_bad(&r, "attn train:", "/dev/null");
}

static void test_bad_config(void **state)
{
    (void)state;
    const char *t = test_tmpdir(), *B = attn_bin();
    run_result r = run_cmd("'%s' train --data '%s' " TINY " --layers 0 --out '%s/x'", B, data_path, t);
    expect_bad(&r, "attn train:", "layers");
    r = run_cmd("'%s' train --data '%s' " TINY " --width 15 --out '%s/x'", B, data_path, t);
    expect_bad(&r, "attn train:", "not divisible");
    r = run_cmd("'%s' train --data '%s' " TINY " --context 0 --out '%s/x'", B, data_path, t);
    expect_bad(&r, "attn train:", "context");
    r = run_cmd("'%s' train --data '%s' --config '%s' --out '%s/x'", B, data_path,
                write_tmp("cfg.json", "{\"layers\": 2, \"hidden\": 3}"), t);
    expect_bad(&r, "attn train:", "unknown key \"hidden\"");
    r = run_cmd("'%s' train --data '%s' --resume '%s' --width 32", B, data_path, ckpt);
    if (r.status != 2 || !strstr(r.err, "cannot be changed")) fail_msg("%s", r.err);
    run_result_free(&r);
}

static void test_bad_checkpoints(void **state)
{
    (void)state;
    const char *t = test_tmpdir(), *B = attn_bin();
    run_result r = run_cmd("'%s' generate --model '%s' --prompt 'the Zebra'", B, ckpt);
    expect_bad(&r, "attn generate:", "'Z'");
    /* truncated */
    r = run_cmd("cp -r '%s' '%s/trunc' && truncate -s 5000 '%s/trunc/model.safetensors'", ckpt, t, t);
    run_result_free(&r);
    r = run_cmd("'%s' generate --model '%s/trunc' --tokens 3", B, t);
    expect_bad(&r, "attn generate:", "model.safetensors");
    /* another architecture: a wider model's weights under this config */
    r = run_cmd("'%s' train --data '%s' --layers 2 --heads 2 --width 32 --context 16 --batch 2 "
                "--iters 20 --eval-iters 1 --out '%s/wide' && cp -r '%s' '%s/mixed' && "
                "cp '%s/wide/model.safetensors' '%s/mixed/'",
                B, data_path, t, ckpt, t, t, t);
    assert_int_equal(r.status, 0);
    run_result_free(&r);
    r = run_cmd("'%s' generate --model '%s/mixed' --tokens 3", B, t);
    expect_bad(&r, "attn generate:", "another architecture");
    /* a missing tensor: the configuration asks for biases the file lacks
     * (the files are links into the checkpoint's current state: edited through) */
    r = run_cmd("cp -r '%s' '%s/nobias' && sed -i --follow-symlinks 's/\"bias\":\\s*false/\"bias\": true/' '%s/nobias/config.json'",
                ckpt, t, t);
    run_result_free(&r);
    r = run_cmd("'%s' generate --model '%s/nobias' --tokens 3", B, t);
    expect_bad(&r, "attn generate:", "missing");
    /* a failed resume leaves the good checkpoint as it was */
    r = run_cmd("md5sum '%s'/* > '%s/before.md5' && '%s' train --data '%s' --resume '%s' --iters 30",
                ckpt, t, B, write_tmp("other.txt", "QQQQ XXXX ZZZZ\n"), ckpt);
    expect_bad(&r, "attn train:", "not in the model's vocabulary");
    r = run_cmd("md5sum -c --quiet '%s/before.md5' && ls -A '%s' | grep -c pending", t, ckpt);
    assert_string_equal(r.out, "0\n"); /* unchanged, and nothing left behind */
    run_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_is_exact), cmocka_unit_test(test_sigint_checkpoints),
        cmocka_unit_test(test_kv_cache_matches), cmocka_unit_test(test_bad_data),
        cmocka_unit_test(test_bad_config),      cmocka_unit_test(test_bad_checkpoints),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
