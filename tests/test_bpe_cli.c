/* test_bpe_cli.c - `attn tokenize`: learning, encoding, decoding, and each
 * kind of bad input (one line on stderr, exit 2, nothing on stdout). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

static char dir[512]; /* a learnt tokenizer: encoder.json + vocab.bpe */

static int setup(void **state)
{
    (void)state;
    const char *text = write_tmp("train.txt", "ab ab ab abc\n");
    snprintf(dir, sizeof dir, "%s/tok", test_tmpdir());
    run_result r = run_cmd("'%s' tokenize --train '%s' --vocab-size 300 --out '%s'", attn_bin(), text, dir);
    if (r.status != 0) fail_msg("attn tokenize --train: %s", r.err);
    run_result_free(&r);
    return 0;
}

static void test_train_encode_decode(void **state)
{
    (void)state;
    run_result r = run_cmd("'%s' tokenize --help", attn_bin());
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "--gpt2 DIR"));
    run_result_free(&r);
    /* learnt by hand in test_bpe.c: ab = 256, " ab" = 257, 'c' = 66; here
     * also "\n" (byte 0x0A = id 198) occurs once */
    r = run_cmd("printf 'ab ab abc' | '%s' tokenize --gpt2 '%s'", attn_bin(), dir);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "256 257 257 66\n");
    run_result_free(&r);
    r = run_cmd("printf '256 257\\n 257\\t66 198' | '%s' tokenize --gpt2 '%s' --decode", attn_bin(), dir);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "ab ab abc\n");
    run_result_free(&r);
    r = run_cmd("printf 'x<|endoftext|>' | '%s' tokenize --gpt2 '%s' --special", attn_bin(), dir);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "87 258\n"); /* 'x' - '!' = 87; <|endoftext|> last */
    run_result_free(&r);
    r = run_cmd("'%s' tokenize --gpt2 '%s' < /dev/null", attn_bin(), dir);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "\n");
    run_result_free(&r);
}

/* Runs the command and checks the bad-input contract; `want` must be in the
 * message. */
static void bad(const char *want, const char *cmd)
{
    run_result r = run_cmd("%s", cmd);
    if (r.status != 2 || r.out[0] || count_lines(r.err) != 1 || !strstr(r.err, want))
        fail_msg("%s\n  exit %d, stdout '%s', stderr '%s' (wanted exit 2, no output, one line with '%s')",
                 cmd, r.status, r.out, r.err, want);
    run_result_free(&r);
}

/* A copy of the tokenizer whose `file` is replaced by `content` (or, with
 * content NULL, cut to its first `keep` bytes). */
static const char *variant(const char *name, const char *file, const char *content, long keep)
{
    static char path[8][600];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 600, "%s/%s", test_tmpdir(), name);
    run_result r = run_cmd("mkdir -p '%s' && cp '%s'/encoder.json '%s'/vocab.bpe '%s'/", p, dir, dir, p);
    assert_int_equal(r.status, 0);
    run_result_free(&r);
    char target[700];
    snprintf(target, sizeof target, "%s/%s", p, file);
    if (content) {
        FILE *f = fopen(target, "wb");
        assert_non_null(f);
        fputs(content, f);
        fclose(f);
    } else {
        r = run_cmd("truncate -s %ld '%s'", keep, target);
        assert_int_equal(r.status, 0);
        run_result_free(&r);
    }
    return p;
}

/* Encoding "hi" with the tokenizer in d. */
static const char *enc_cmd(const char *d)
{
    static char cmd[2048];
    snprintf(cmd, sizeof cmd, "echo hi | '%s' tokenize --gpt2 '%s'", attn_bin(), d);
    return cmd;
}

static const char *dec_cmd(const char *ids)
{
    static char cmd[2048];
    snprintf(cmd, sizeof cmd, "echo '%s' | '%s' tokenize --gpt2 '%s' --decode", ids, attn_bin(), dir);
    return cmd;
}

static void test_bad_files(void **state)
{
    (void)state;
    bad("not valid JSON", enc_cmd(variant("trunc_json", "encoder.json", NULL, 1000)));
    /* vocab.bpe without its last merge: " ab" is made by none */
    bad("neither a byte nor made by a merge", enc_cmd(variant("trunc_bpe", "vocab.bpe", "#version: 0.2\na b\n", 0)));
    bad("vocab.bpe:2: expected two tokens separated by a space, not one", enc_cmd(variant("one_token", "vocab.bpe", "#version: 0.2\nab\n\xc4\xa0 ab\n", 0)));
    bad("vocab.bpe:3: merging \"x y\" gives no token", enc_cmd(variant("no_result", "vocab.bpe", "#version: 0.2\na b\nx y\n\xc4\xa0 ab\n", 0)));
    bad("\"zz\" is not a token", enc_cmd(variant("unknown", "vocab.bpe", "#version: 0.2\na b\nzz a\n\xc4\xa0 ab\n", 0)));
    bad("expected a JSON object of token -> integer id", enc_cmd(variant("array", "encoder.json", "[1, 2, 3]", 0)));
    bad("token \"a\": expected an integer id >= 0, found a string", enc_cmd(variant("string", "encoder.json", "{\"!\": 0, \"a\": \"x\"}", 0)));
    bad("token \"!\": expected an integer id >= 0", enc_cmd(variant("fraction", "encoder.json", "{\"!\": 1.5}", 0)));
    bad("must have ids 0..1", enc_cmd(variant("range", "encoder.json", "{\"!\": 0, \"a\": 7}", 0)));
    bad("no token for the byte 0x00", enc_cmd(variant("bytes", "encoder.json", "{\"!\": 0}", 0)));
    char nowhere[600];
    snprintf(nowhere, sizeof nowhere, "%s/nowhere", test_tmpdir());
    bad("encoder.json and vocab.bpe", enc_cmd(nowhere));
}

static void test_bad_ids(void **state)
{
    (void)state;
    bad("id 300 (number 3) is out of range: the vocabulary has 259 tokens",
        dec_cmd("1 2 300"));
    bad("expected a token id", dec_cmd("1 2x 3"));
    bad("expected a token id", dec_cmd("1 -2"));
}

/* attn train --tokenizer: a GPT on BPE tokens, saved with its tokenizer,
 * resumed and sampled from. */
static void test_train_gpt(void **state)
{
    (void)state;
    char text[4096] = "", ck[600];
    for (int i = 0; i < 60; i++) strcat(text, i % 3 ? "ab ab abc, " : "abc ab\n");
    const char *data = write_tmp("gpt.txt", text);
    snprintf(ck, sizeof ck, "%s/ck", test_tmpdir());
    run_result r = run_cmd("'%s' train --data '%s' --tokenizer '%s' --out '%s' --iters 2 --layers 1 "
                           "--heads 1 --width 8 --context 8 --batch 2 --eval-every 1 --eval-iters 1",
                           attn_bin(), data, dir, ck);
    if (r.status) fail_msg("attn train --tokenizer: %s", r.err);
    assert_non_null(strstr(r.out, "vocab 259"));
    run_result_free(&r);
    r = run_cmd("head -c 40 '%s/vocab.json'", ck);
    assert_non_null(strstr(r.out, "\"type\": \"bpe\""));
    run_result_free(&r);
    r = run_cmd("'%s' train --data '%s' --resume '%s' --iters 3", attn_bin(), data, ck);
    if (r.status) fail_msg("attn train --resume: %s", r.err);
    run_result_free(&r);
    r = run_cmd("'%s' generate --model '%s' --prompt 'ab ab' --tokens 4 --temperature 0", attn_bin(), ck);
    if (r.status) fail_msg("attn generate: %s", r.err);
    assert_memory_equal(r.out, "ab ab", 5);
    run_result_free(&r);
    r = run_cmd("'%s' train --data '%s' --resume '%s' --tokenizer '%s'", attn_bin(), data, ck, dir);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--tokenizer cannot be changed when resuming"));
    run_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_encode_decode),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bad_ids),
        cmocka_unit_test(test_train_gpt),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
