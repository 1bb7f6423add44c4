/* test_gpt_cli.c - `attn train` and `attn generate` through the real binary:
 * interrupt and resume give bitwise the same losses as one run; SIGINT
 * writes a usable checkpoint; generation with and without the KV cache agrees
 * at temperature 0; bad input gets one line on stderr, exit 2, and never
 * replaces a good checkpoint. */
#include "cli_support.h"

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

/* Each row runs with $B the binary, $T the temporary directory, $X the text
 * data and $C the trained checkpoint (run_steps). */
#define TRAIN_X "\"$B\" train --data \"$X\" "
static const cli_step BAD_DATA[] = {
    {STEP_BAD, "\"$B\" train --data \"$T/empty.txt\" " TINY " --out \"$T/x\"", "attn train:", "empty"},
    {STEP_BAD, "\"$B\" train --data \"$T/nope.txt\" " TINY " --out \"$T/x\"", "attn train:", "cannot open"},
    {STEP_BAD, "\"$B\" train --data \"$T/short.txt\" " TINY " --out \"$T/x\"", "attn train:", "too few"},
    {STEP_BAD, TRAIN_X TINY " --out /dev/null/sub", "attn train:", "/dev/null"},
};

static const cli_step BAD_CONFIG[] = {
    /* a flag out of its range is a usage error: the message, then where --help is */
    {STEP_USAGE, TRAIN_X TINY " --layers 0 --out \"$T/x\"", "attn train:",
     "--layers: expected an integer in [1, 4096]"},
    {STEP_BAD, TRAIN_X TINY " --width 15 --out \"$T/x\"", "attn train:", "not divisible"},
    {STEP_USAGE, TRAIN_X TINY " --context 0 --out \"$T/x\"", "attn train:",
     "--context: expected an integer in [1, "},
    {STEP_BAD, TRAIN_X "--config \"$T/cfg.json\" --out \"$T/x\"", "attn train:", "unknown key \"hidden\""},
    {STEP_EXIT2, TRAIN_X "--resume \"$C\" --width 32", NULL, "cannot be changed"},
};

static void export_paths(void)
{
    if (setenv("X", data_path, 1) != 0 || setenv("C", ckpt, 1) != 0) fail_msg("setenv failed");
}

static void test_bad_data(void **state)
{
    (void)state;
    write_tmp("empty.txt", "");
    write_tmp("short.txt", "abcdefghij\n");
    export_paths();
    run_steps(BAD_DATA, sizeof BAD_DATA / sizeof *BAD_DATA);
}

static void test_bad_config(void **state)
{
    (void)state;
    write_tmp("cfg.json", "{\"layers\": 2, \"hidden\": 3}");
    export_paths();
    run_steps(BAD_CONFIG, sizeof BAD_CONFIG / sizeof *BAD_CONFIG);
}

static const cli_step BAD_CHECKPOINTS[] = {
    {STEP_BAD, "\"$B\" generate --model \"$C\" --prompt 'the Zebra'", "attn generate:", "'Z'"},
    /* truncated */
    {STEP_PREP, "cp -r \"$C\" \"$T/trunc\" && truncate -s 5000 \"$T/trunc/model.safetensors\"", NULL, NULL},
    {STEP_BAD, "\"$B\" generate --model \"$T/trunc\" --tokens 3", "attn generate:", "model.safetensors"},
    /* another architecture: a wider model's weights under this config */
    {STEP_OK, TRAIN_X "--layers 2 --heads 2 --width 32 --context 16 --batch 2 --iters 20 --eval-iters 1 "
              "--out \"$T/wide\" && cp -r \"$C\" \"$T/mixed\" && cp \"$T/wide/model.safetensors\" \"$T/mixed/\"",
     NULL, NULL},
    {STEP_BAD, "\"$B\" generate --model \"$T/mixed\" --tokens 3", "attn generate:", "another architecture"},
    /* a missing tensor: the configuration asks for biases the file lacks */
    /* the files are links into the checkpoint's current state: edited through */
    {STEP_PREP, "cp -r \"$C\" \"$T/nobias\" && sed -i --follow-symlinks 's/\"bias\":\\s*false/\"bias\": true/' \"$T/nobias/config.json\"",
     NULL, NULL},
    {STEP_BAD, "\"$B\" generate --model \"$T/nobias\" --tokens 3", "attn generate:", "missing"},
    /* a failed resume leaves the good checkpoint as it was */
    {STEP_BAD, "md5sum \"$C\"/* > \"$T/before.md5\" && \"$B\" train --data \"$T/other.txt\" --resume \"$C\" --iters 30",
     "attn train:", "not in the model's vocabulary"},
    /* unchanged, and nothing left behind */
    {STEP_STDOUT, "md5sum -c --quiet \"$T/before.md5\" && ls -A \"$C\" | grep -c pending", NULL, "0\n"},
};

static void test_bad_checkpoints(void **state)
{
    (void)state;
    write_tmp("other.txt", "QQQQ XXXX ZZZZ\n");
    export_paths();
    run_steps(BAD_CHECKPOINTS, sizeof BAD_CHECKPOINTS / sizeof *BAD_CHECKPOINTS);
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
