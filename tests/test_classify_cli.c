/* test_classify_cli.c - `attn data wordnet`, `attn train --task classify`
 * and `attn classify` through the real binary, on tiny synthetic data:
 * train then classify end to end, exact resume, explain outputs, and bad
 * input (one line on stderr, exit 2). */
#include "cli_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TINY "--layers 1 --heads 2 --width 16 --context 12 --batch 16 --warmup 5 --lr 1e-2 --min-count 1"

static char data[512], model[512];

static const char *const words[3][5] = {{"cat", "dog", "owl", "horse", "mouse"},
                                        {"screen", "cable", "laptop", "keyboard", "mouse"},
                                        {"bread", "cheese", "apple", "soup", "pie"}};
static const char *const labels[3] = {"noun.animal", "noun.artifact", "noun.food"};
static const char *const fillers[] = {"the", "a", "small", "with", "and", "of", "some"};

static void write_split(const char *name, size_t n, unsigned seed)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", data, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned c = (seed >> 16) % 3, w = (seed >> 8) % 5, a = (seed >> 4) % 7, b = (seed >> 20) % 7;
        fprintf(f, "%s\t%s %s %s, %s\n", labels[c], fillers[a], words[c][w], fillers[b], fillers[(a + b) % 7]);
    }
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(data, sizeof data, "%s/data", test_tmpdir());
    snprintf(model, sizeof model, "%s/model", test_tmpdir());
    run_result r = run_cmd("mkdir -p '%s'", data);
    run_result_free(&r);
    write_split("train.tsv", 480, 1), write_split("valid.tsv", 60, 2), write_split("test.tsv", 60, 3);
    r = run_cmd("'%s' train --task classify --data '%s' --out '%s' " TINY " --epochs 4 --json-log '%s/full.log'",
                attn_bin(), data, model, test_tmpdir());
    if (r.status != 0) fail_msg("train failed: %s", r.err);
    run_result_free(&r);
    return 0;
}

static void test_train_report(void **state)
{
    (void)state;
    run_result r = run_cmd("tail -1 '%s/full.log'", test_tmpdir());
    assert_non_null(strstr(r.out, "\"test\""));
    assert_non_null(strstr(r.out, "\"bag_of_words\""));
    assert_non_null(strstr(r.out, "\"confusion\""));
    assert_non_null(strstr(r.out, "\"f1\": ["));
    run_result_free(&r);
    /* dropout is part of the saved configuration */
    r = run_cmd("grep -c '\"dropout\":' '%s/config.json'", model);
    assert_string_equal(r.out, "1\n");
    run_result_free(&r);
    /* it learns: the last validation loss is far below chance (ln 3 = 1.10 for
     * 3 classes; about 0.17 here) and below the first epoch's (about 0.23) */
    r = run_cmd("grep val_loss '%s/full.log' | sed -n '1p;$p' | sed 's/.*\"val_loss\": \\([0-9.e+-]*\\).*/\\1/'",
                test_tmpdir());
    double first = 0.0, last = 0.0;
    if (sscanf(r.out, "%lf %lf", &first, &last) != 2 || !(last < 0.3) || !(first > last))
        fail_msg("validation losses (first, last): %s", r.out);
    run_result_free(&r);
    /* each evaluation logs accuracy and macro-F1; 30 steps per epoch, 4 epochs */
    r = run_cmd("grep -c val_accuracy '%s/full.log'", test_tmpdir());
    assert_string_equal(r.out, "4\n");
    run_result_free(&r);
    r = run_cmd("ls '%s'", model);
    assert_non_null(strstr(r.out, "best.safetensors"));
    assert_non_null(strstr(r.out, "optim.safetensors"));
    assert_non_null(strstr(r.out, "vocab.json"));
    run_result_free(&r);
}

static void test_classify_texts(void **state)
{
    (void)state;
    run_result r = run_cmd("'%s' classify --model '%s' --text 'the horse with a dog' --top 2", attn_bin(), model);
    if (r.status != 0) fail_msg("classify: %s", r.err);
    assert_int_equal(count_lines(r.out), 2);
    assert_non_null(strstr(r.out, "  noun.animal"));
    assert_true(strstr(r.out, "noun.animal") < strstr(r.out, "noun.") + 1); /* first line */
    run_result_free(&r);
    r = run_cmd("printf 'a laptop and cable\\nsome soup with bread\\n' | '%s' classify --model '%s' --top 1",
                attn_bin(), model);
    assert_int_equal(r.status, 0);
    const char *want = "a laptop and cable\n  noun.artifact";
    if (strncmp(r.out, want, strlen(want))) fail_msg("%s", r.out);
    assert_non_null(strstr(r.out, "some soup with bread\n  noun.food"));
    run_result_free(&r);
    /* --explain: a row per layer and head over the tokens */
    r = run_cmd("'%s' classify --model '%s' --text 'the cat' --explain --color never", attn_bin(), model);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "layer 0 head 1"));
    assert_non_null(strstr(r.out, "[CLS]"));
    run_result_free(&r);
    r = run_cmd("'%s' classify --model '%s' --text 'the cat' --csv '%s/csv' && ls '%s/csv'", attn_bin(), model,
                test_tmpdir(), test_tmpdir());
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "head1-attention.csv"));
    run_result_free(&r);
}

static void test_resume_is_exact(void **state)
{
    (void)state;
    const char *t = test_tmpdir(), *B = attn_bin();
    run_result r = run_cmd("'%s' train --task classify --data '%s' --out '%s/part' " TINY
                           " --epochs 4 --stop-at 50 --no-baselines --json-log '%s/p1.log'",
                           B, data, t, t);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "stopped at step 50"));
    run_result_free(&r);
    r = run_cmd("'%s' train --task classify --data '%s' --resume '%s/part' --json-log '%s/p2.log'", B, data, t, t);
    if (r.status != 0) fail_msg("resume: %s", r.err);
    run_result_free(&r);
    r = run_cmd("cd '%s' && cat p1.log p2.log | grep -v '\"test\"' | sed -e 's/, \"lr.*tokens_per_s\": [0-9.]*//' > a && "
                "grep -v '\"test\"' full.log | sed -e 's/, \"lr.*tokens_per_s\": [0-9.]*//' > b && cmp a b && "
                "cmp '%s/best.safetensors' part/best.safetensors && wc -l < a",
                t, model);
    if (r.status != 0) fail_msg("resumed run differs: %s %s", r.out, r.err);
    assert_string_equal(r.out, "120\n");
    run_result_free(&r);
}

/* Each row runs with $B the binary, $T the temporary directory, $D the data
 * directory, $M the trained model (run_steps). */
#define TRAIN "\"$B\" train --task classify "
static const cli_step BAD_INPUT[] = {
    {STEP_BAD, "\"$B\" data wordnet --out \"$T/wn\" --source \"$T/none/data.noun\"", "attn data:",
     "none/data.noun: cannot read"},
    {STEP_BAD, "\"$B\" data wordnet --out \"$T/wn\" --source \"$T/data.noun\"", "attn data:",
     "data.noun:2: expected a word"},
    {STEP_USAGE, "\"$B\" data wordnet --source x", "attn data:", "missing --out"},
    {STEP_USAGE, "\"$B\" data imagenet --out x", "attn data:", "unknown data set"},
    {STEP_OK, "\"$B\" data wordnet --out \"$T/wn2\" --source \"$T/ok.noun\"", NULL, NULL},
    /* training data */
    {STEP_BAD, TRAIN "--data \"$T/nodir\" --out \"$T/x\"", "attn train:", "train.tsv: cannot open"},
    {STEP_PREP, "mkdir -p \"$T/bad\" && cp \"$D\"/*.tsv \"$T/bad/\" && printf 'noun.food bread\\n' >> \"$T/bad/valid.tsv\"",
     NULL, NULL},
    {STEP_BAD, TRAIN "--data \"$T/bad\" --out \"$T/x\"", "attn train:", "valid.tsv:61: no tab"},
    {STEP_PREP, "cp \"$D/valid.tsv\" \"$T/bad/\" && printf 'noun.plant\\tfern\\n' >> \"$T/bad/test.tsv\"", NULL, NULL},
    {STEP_BAD, TRAIN "--data \"$T/bad\" --out \"$T/x\"", "attn train:", "test.tsv:61: the label 'noun.plant'"},
    {STEP_USAGE, TRAIN "--data \"$D\" --out \"$T/x\" --pooling max", "attn train:", "--pooling"},
    {STEP_BAD, TRAIN "--data \"$D\" --out \"$T/x\" --width 10 --heads 4", "attn train:", "not divisible"},
    {STEP_USAGE, TRAIN "--data \"$D\" --out \"$T/x\" --dropout 1", "attn train:",
     "--dropout: expected a number in [0, 1)"},
    {STEP_USAGE, TRAIN "--data \"$D\" --out \"$T/x\" --label-smoothing -0.1", "attn train:", "--label-smoothing"},
    {STEP_USAGE, TRAIN "--data \"$D\" --resume \"$M\" --dropout 0.2", "attn train:", "cannot be changed"},
    {STEP_USAGE, "\"$B\" train --task nope --data \"$D\" --out \"$T/x\"", "attn train:", "--task"},
    {STEP_USAGE, TRAIN "--data \"$D\" --resume \"$M\" --width 32", "attn train:", "cannot be changed"},
    /* classify */
    {STEP_USAGE, "\"$B\" classify --text hi", "attn classify:", "missing --model"},
    {STEP_BAD, "\"$B\" classify --model \"$T/nothing\" --text hi", "attn classify:", "config.json"},
    {STEP_PREP, "cp -r \"$M\" \"$T/trunc\" && truncate -s 100 \"$T/trunc/best.safetensors\"", NULL, NULL},
    {STEP_BAD, "\"$B\" classify --model \"$T/trunc\" --text hi", "attn classify:", "best.safetensors"},
    {STEP_USAGE, "\"$B\" classify --model \"$M\" --html x.html", "attn classify:", "need --text"},
    {STEP_USAGE, "\"$B\" classify --model \"$M\" --text hi --top 0", "attn classify:", "--top"},
};

static void test_bad_input(void **state)
{
    (void)state;
    write_tmp("data.noun", "00001740 03 n 01 entity 0 000 | that which is\n02330245 05 n 01\n");
    write_tmp("ok.noun", "00001740 03 n 01 entity 0 000 | that which is\n");
    if (setenv("D", data, 1) != 0 || setenv("M", model, 1) != 0) fail_msg("setenv failed");
    run_steps(BAD_INPUT, sizeof BAD_INPUT / sizeof *BAD_INPUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_report), cmocka_unit_test(test_classify_texts),
        cmocka_unit_test(test_resume_is_exact), cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
