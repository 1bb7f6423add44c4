/* test_checkpoint_dir.c - the checkpoint directory both trainers share
 * (src/nn/ckpt_dir.h), through the real binary: the layout (a pointer to the
 * last complete state, the last two kept, the files linked), checkpoints of
 * the flat layout written before it still load and resume to the same bits,
 * files of another run are refused, leftovers of killed saves are removed,
 * errors name the file once, and a run that fails early creates no
 * directory. (Killing the trainer at random moments: test_kill.c.) */
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GPT "--layers 1 --heads 2 --width 16 --context 8 --batch 2 --eval-every 2 --eval-iters 1 --warmup 1"
#define CLS "--layers 1 --heads 2 --width 8 --context 6 --batch 8 --warmup 1 --min-count 1 --no-baselines"

static char text[600], data[600], legacy[600];

static void expect_ok(run_result *r, const char *what)
{
    if (r->status != 0) fail_msg("%s: exit %d: %s", what, r->status, r->err);
    run_result_free(r);
}

/* The command's stdout must be exactly `want`. */
static void expect_out(run_result *r, const char *want)
{
    if (r->status != 0 || strcmp(r->out, want)) fail_msg("expected '%s', got %d: '%s' %s", want, r->status, r->out, r->err);
    run_result_free(r);
}

static int setup(void **state)
{
    (void)state;
    snprintf(text, sizeof text, "%s", write_tiny_text());
    snprintf(data, sizeof data, "%s", write_tiny_labelled());
    snprintf(legacy, sizeof legacy, "%s/ckpt_v1", ATTN_TEST_FIXTURES);
    return 0;
}

static void test_layout(void **state)
{
    (void)state;
    const char *t = test_tmpdir(), *B = attn_bin();
    run_result r = run_cmd("'%s' train --data '%s' " GPT " --iters 6 --checkpoint-every 1 --out '%s/lay'", B, text, t);
    expect_ok(&r, "train");
    /* the pointer names the last state; the one before is kept; nothing else */
    r = run_cmd("cd '%s/lay' && readlink .steps/current && LC_ALL=C ls -A .steps | tr '\\n' ' ' && readlink model.safetensors && "
                "LC_ALL=C ls -A | tr '\\n' ' '",
                t);
    expect_out(&r, "step-000006\ncurrent step-000005 step-000006 .steps/current/model.safetensors\n"
                   ".steps config.json curves.svg model.safetensors optim.safetensors vocab.json ");
    /* every file records the run: 16 hex digits */
    r = run_cmd("grep -c '\"run\":\t\"[0-9a-f]\\{16\\}\"' '%s/lay/config.json' && grep -c '\"run\"' '%s/lay/model.safetensors'", t, t);
    expect_out(&r, "1\n1\n");
    /* a pointer that leaves the directory is refused */
    r = run_cmd("cp -r '%s/lay' '%s/evil' && ln -sfn ../../lay/.steps/step-000006 '%s/evil/.steps/current'", t, t, t);
    expect_ok(&r, "cp");
    r = run_cmd("'%s' generate --model '%s/evil' --tokens 2", B, t);
    expect_bad_input(&r, "attn generate:", "not a step of this checkpoint");
    /* the classifier: best.safetensors in each state, carried over unchanged */
    r = run_cmd("'%s' train --task classify --data '%s' " CLS " --epochs 2 --checkpoint-every 1 --stop-at 11 --out '%s/clay'", B, data, t);
    expect_ok(&r, "train --task classify");
    r = run_cmd("cd '%s/clay/.steps' && LC_ALL=C ls -A | tr '\\n' ' ' && LC_ALL=C ls step-000011 | tr '\\n' ' ' && "
                "cmp step-000010/best.safetensors step-000011/best.safetensors && echo same",
                t);
    expect_out(&r, "current step-000010 step-000011 best.safetensors config.json model.safetensors "
                   "optim.safetensors vocab.json same\n");
}

/* A run trained by attn before this layout (tests/fixtures/ckpt_v1/README)
 * generates, classifies and resumes exactly as that attn did. */
static void test_legacy_loads(void **state)
{
    (void)state;
    const char *t = test_tmpdir(), *B = attn_bin();
    run_result r = run_cmd("'%s' generate --model '%s/gpt' --tokens 20 --temperature 0", B, legacy);
    expect_out(&r, "kkkeeeeeeeeeeeeeeeee\n");
    r = run_cmd("'%s' classify --model '%s/cls' --text 'a small cat' --top 1", B, legacy);
    expect_out(&r, "  noun.food                0.337\n");
    /* resumed into a copy: the losses the old attn logged, then the new layout */
    r = run_cmd("cp -r '%s' '%s/old' && '%s' train --data '%s/gpt/text.txt' --resume '%s/old/gpt' --iters 6 "
                "--json-log '%s/old.log' > /dev/null && tail -1 '%s/old.log' | cut -d, -f2",
                legacy, t, B, legacy, t, t, t);
    expect_out(&r, " \"train_loss\": 3.0836279392242432\n");
    r = run_cmd("'%s' train --task classify --data '%s/cls/data' --resume '%s/old/cls' --iters 16 --json-log "
                "'%s/oldc.log' > /dev/null && sed -n 4p '%s/oldc.log' | cut -d, -f3",
                B, legacy, t, t, t);
    /* that attn logged 1.0682884480710566: the fused attention's softmax
     * exp (a cheaper polynomial since, issue 14, then on AVX-512 one on
     * [0, 1) after a vreduceps) and a step's batch in two parts whose
     * gradients are summed (cls_train.c's step_parts) move the last bits */
    expect_out(&r, " \"train_loss\": 1.0682884474171903\n");
    r = run_cmd("cd '%s/old/cls' && readlink .steps/current config.json best.safetensors && "
                "'%s' classify --model . --text 'a small cat' --top 1",
                t, B);
    expect_out(&r, "step-000016\n.steps/current/config.json\n.steps/current/best.safetensors\n"
                   "  noun.food                0.337\n");
}

/* Defect 12 of issue 15: a file of another run of the same shape and step. */
static void test_other_run_refused(void **state)
{
    (void)state;
    const char *t = test_tmpdir(), *B = attn_bin();
    run_result r = run_cmd("for s in 1 2; do '%s' train --data '%s' " GPT " --iters 4 --seed $s --out '%s/run'$s "
                           "> /dev/null || exit 1; done && cp -r '%s/run1' '%s/mixo' && cp '%s/run2/optim.safetensors' '%s/mixo/' && "
                           "cp -r '%s/run1' '%s/mixm' && cp '%s/run2/model.safetensors' '%s/mixm/'",
                           B, text, t, t, t, t, t, t, t, t, t);
    expect_ok(&r, "two runs");
    r = run_cmd("'%s' train --data '%s' --resume '%s/mixo' --iters 6", B, text, t);
    expect_bad_input(&r, "attn train:", "optim.safetensors: written by run");
    r = run_cmd("'%s' generate --model '%s/mixm' --tokens 2", B, t);
    expect_bad_input(&r, "attn generate:", "a file of another run mixed in");
    /* the same run repeated is the same name, and the same bytes */
    r = run_cmd("'%s' train --data '%s' " GPT " --iters 4 --seed 1 --out '%s/again' > /dev/null && "
                "cmp '%s/run1/optim.safetensors' '%s/again/optim.safetensors' && echo same",
                B, text, t, t, t);
    expect_out(&r, "same\n");
    /* the classifier's best weights from another run */
    r = run_cmd("for s in 1 2; do '%s' train --task classify --data '%s' " CLS " --epochs 1 --seed $s --out "
                "'%s/crun'$s > /dev/null || exit 1; done && cp -r '%s/crun1' '%s/cmix' && "
                "cp '%s/crun2/best.safetensors' '%s/cmix/'",
                B, data, t, t, t, t, t);
    expect_ok(&r, "two classifier runs");
    r = run_cmd("'%s' classify --model '%s/cmix' --text cat", B, t);
    expect_bad_input(&r, "attn classify:", "best.safetensors: written by run");
}

/* Defect 12 of issue 15: leftovers of killed saves are removed by the next. */
static void test_leftovers_removed(void **state)
{
    (void)state;
    const char *t = test_tmpdir(), *B = attn_bin();
    /* the flat layout's temporaries, and states of killed saves */
    run_result r = run_cmd("cp -r '%s/gpt' '%s/left' && cd '%s/left' && touch ..config.json.pending.tmp-AbC123 "
                           ".model.safetensors.pending ..vocab.json.pending.tmp-x .optim.safetensors.tmp-q keep.txt && "
                           "'%s' train --data text.txt --resume . --iters 5 > /dev/null && mkdir .steps/tmp-1-0 "
                           ".steps/step-000099 && touch .steps/tmp-1-0/model.safetensors .steps/step-000099/config.json && "
                           "'%s' train --data text.txt --resume . --iters 7 > /dev/null && LC_ALL=C ls -A | tr '\\n' ' ' && "
                           "LC_ALL=C ls -A .steps | tr '\\n' ' '",
                           legacy, t, t, B, B);
    expect_out(&r, ".steps config.json curves.svg keep.txt model.safetensors optim.safetensors text.txt vocab.json "
                   "current step-000005 step-000007 ");
}

/* Exit 2, config.json named once, then the reason. */
static void expect_named_once(run_result *r)
{
    const char *at = strstr(r->err, "config.json: ");
    if (r->status != 2 || !at || strstr(at + 1, "config.json") || !strstr(r->err, "divisible"))
        fail_msg("expected config.json named once, then the reason: %s", r->err);
    run_result_free(r);
}

/* Defect 5 of issue 15: the message names config.json once, then says why. */
static void test_message_names_file_once(void **state)
{
    (void)state;
    const char *t = test_tmpdir(), *B = attn_bin();
    run_result r = run_cmd("cp -r '%s' '%s/msg' && sed -i 's/\"heads\":\\s*2/\"heads\": 3/' '%s/msg/gpt/config.json' "
                           "'%s/msg/cls/config.json'",
                           legacy, t, t, t);
    expect_ok(&r, "edit");
    r = run_cmd("'%s' generate --model '%s/msg/gpt' --tokens 2", B, t);
    expect_named_once(&r);
    r = run_cmd("'%s' classify --model '%s/msg/cls' --text cat", B, t);
    expect_named_once(&r);
}

/* Defect 10 of issue 15: a run that fails before its first checkpoint
 * creates no output directory. */
static void test_failed_run_creates_nothing(void **state)
{
    (void)state;
    const char *t = test_tmpdir(), *B = attn_bin();
    run_result r = run_cmd("'%s' train --data '%s' " GPT " --out '%s/no1'", B, write_tmp("empty.txt", ""), t);
    expect_bad_input(&r, "attn train:", "empty");
    r = run_cmd("'%s' train --data '%s' " GPT " --context 400 --out '%s/no2'", B, text, t);
    expect_bad_input(&r, "attn train:", "too few");
    r = run_cmd("'%s' train --task classify --data '%s/nodata' " CLS " --out '%s/no3'", B, t, t);
    expect_bad_input(&r, "attn train:", "train.tsv: cannot open");
    r = run_cmd("'%s' data wordnet --out '%s/no4' --source '%s'", B, t,
                write_tmp("bad.noun", "00001740 03 n 01 entity 0 000 | that which is\n02330245 05 n 01\n"));
    expect_bad_input(&r, "attn data:", "bad.noun:2");
    r = run_cmd("ls -d '%s'/no* 2>/dev/null | wc -l", t);
    expect_out(&r, "0\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_legacy_loads),
        cmocka_unit_test(test_other_run_refused),
        cmocka_unit_test(test_leftovers_removed),
        cmocka_unit_test(test_message_names_file_once),
        cmocka_unit_test(test_failed_run_creates_nothing),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
