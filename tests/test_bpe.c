/* test_bpe.c - GPT-2's byte-level BPE: learning, files, decoding, bad input.
 * (The ids against the reference encoder: gpt2_tokenizer_check.sh.) */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attn/tokenizer.h"
#include "test_support.h"

static uint32_t *enc(const attn_tokenizer *t, const char *s, size_t len, size_t *n)
{
    uint32_t *ids = NULL;
    assert_int_equal(attn_tokenizer_encode(t, s, len, "test", &ids, n), ATTN_OK);
    return ids;
}

static void assert_roundtrip(const attn_tokenizer *t, const char *s, size_t len)
{
    size_t n, back_len;
    char *back = NULL;
    uint32_t *ids = enc(t, s, len, &n);
    assert_int_equal(attn_tokenizer_decode(t, ids, n, "ids", &back, &back_len), ATTN_OK);
    assert_int_equal(back_len, len);
    assert_memory_equal(back, s, len);
    free(back), free(ids);
}

static attn_tokenizer *learn(const char *text, size_t vocab)
{
    attn_tokenizer *t = NULL;
    assert_int_equal(attn_bpe_train(&t, text, strlen(text), "text", vocab, NULL, NULL), ATTN_OK);
    return t;
}

/* Hand-computed: in "ab ab ab abc" the pieces are ab, " ab" twice and " abc";
 * (a, b) occurs 4 times, then (" ", ab) 3 times, then nothing twice. */
static void test_learn_by_hand(void **state)
{
    (void)state;
    attn_tokenizer *t = learn("ab ab ab abc", 300);
    assert_int_equal(attn_tokenizer_vocab_size(t), 256 + 2 + 1);
    const char *b;
    size_t len;
    /* the bytes in GPT-2's order: printable ones first */
    assert_int_equal(attn_tokenizer_token_bytes(t, 0, &b, &len), ATTN_OK);
    assert_true(len == 1 && b[0] == '!');
    assert_int_equal(attn_tokenizer_token_bytes(t, 188, &b, &len), ATTN_OK);
    assert_true(len == 1 && b[0] == 0);
    assert_int_equal(attn_tokenizer_token_bytes(t, 255, &b, &len), ATTN_OK);
    assert_true(len == 1 && (unsigned char)b[0] == 0xAD);
    assert_int_equal(attn_tokenizer_token_bytes(t, 256, &b, &len), ATTN_OK);
    assert_true(len == 2 && !memcmp(b, "ab", 2));
    assert_int_equal(attn_tokenizer_token_bytes(t, 257, &b, &len), ATTN_OK);
    assert_true(len == 3 && !memcmp(b, " ab", 3));
    assert_int_equal(attn_tokenizer_token_bytes(t, 258, &b, &len), ATTN_OK);
    assert_true(len == 13 && !memcmp(b, "<|endoftext|>", 13));
    size_t n;
    uint32_t *ids = enc(t, "ab ab abc", 9, &n);
    uint32_t want[] = {256, 257, 257, 'c' - '!'};
    assert_int_equal(n, 4);
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    attn_tokenizer_free(t);
}

static const char sample[] =
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. "
    "resolved.\n\nFirst Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n"
    "We know't, we know't.   Let us kill him, and we'll have corn at our own price.\n";

/* Learning then encoding replays the merges; any bytes go through. */
static void test_learn_roundtrip(void **state)
{
    (void)state;
    attn_tokenizer *t = learn(sample, 300);
    assert_int_equal(attn_tokenizer_vocab_size(t), 300);
    size_t n;
    uint32_t *ids = enc(t, sample, strlen(sample), &n);
    assert_true(n < strlen(sample) * 3 / 4); /* the merges compress their own text */
    free(ids);
    assert_roundtrip(t, sample, strlen(sample));
    static const char odd[] = "\x00\xff\xfe caf\xc3\xa9 \xe2\x82 \xf0\x9f\x98\x80  \t\n\x80's <|endoftext|>";
    assert_roundtrip(t, odd, sizeof odd - 1);
    /* Bytes that are not UTF-8 are a piece of their own: "ab\x80cd" is
     * encode("ab"), the byte, encode("cd"). */
    size_t n1, n2, n3;
    uint32_t *a = enc(t, "ab", 2, &n1), *c = enc(t, "cd", 2, &n2), *all = enc(t, "ab\x80" "cd", 5, &n3);
    assert_int_equal(n3, n1 + 1 + n2);
    assert_memory_equal(all, a, n1 * sizeof *a);
    assert_memory_equal(all + n1 + 1, c, n2 * sizeof *c);
    const char *b;
    size_t len;
    assert_int_equal(attn_tokenizer_token_bytes(t, all[n1], &b, &len), ATTN_OK);
    assert_true(len == 1 && (unsigned char)b[0] == 0x80);
    free(a), free(c), free(all);
    attn_tokenizer_free(t);
}

/* "<|endoftext|>" is text unless asked for. */
static void test_special(void **state)
{
    (void)state;
    attn_tokenizer *t = learn(sample, 300);
    const uint32_t eot = (uint32_t)attn_tokenizer_vocab_size(t) - 1;
    size_t n;
    uint32_t *ids = enc(t, "a<|endoftext|>b", 15, &n);
    assert_true(n > 3);
    for (size_t i = 0; i < n; i++) assert_true(ids[i] != eot);
    free(ids);
    assert_int_equal(attn_bpe_set_special(t, 1), ATTN_OK);
    ids = enc(t, "a<|endoftext|><|endoftext|>b<|endoftext", 39, &n);
    assert_true(n >= 5);
    assert_int_equal(ids[1], eot);
    assert_int_equal(ids[2], eot);
    for (size_t i = 4; i < n; i++) assert_true(ids[i] != eot);
    free(ids);
    attn_tokenizer_free(t);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

/* Written as encoder.json + vocab.bpe and as attn's one JSON file, read
 * back to the same tokenizer. */
static void test_files(void **state)
{
    (void)state;
    attn_tokenizer *t = learn("ab ab ab abc", 300), *u = NULL, *v = NULL;
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/bpe_files", test_tmpdir());
    assert_int_equal(mkdir(dir, 0777), 0);
    assert_int_equal(attn_bpe_tokenizer_save_dir(t, dir), ATTN_OK);
    snprintf(path, sizeof path, "%s/vocab.bpe", dir);
    assert_string_equal(slurp(path), "#version: 0.2\na b\n\xc4\xa0 ab\n"); /* Ġ is U+0120 */
    snprintf(path, sizeof path, "%s/encoder.json", dir);
    cJSON *root = cJSON_Parse(slurp(path));
    assert_true(cJSON_IsObject(root));
    assert_int_equal(cJSON_GetArraySize(root), 259);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(root, "\xc4\xa0" "ab")->valueint, 257);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(root, "\"")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(root, "\xc4\x80")->valueint, 188); /* byte 0 */
    cJSON_Delete(root);
    assert_int_equal(attn_bpe_tokenizer_load(&u, dir), ATTN_OK);
    snprintf(path, sizeof path, "%s/tok.json", dir);
    assert_int_equal(attn_tokenizer_save(t, path), ATTN_OK);
    assert_int_equal(attn_tokenizer_load(&v, path), ATTN_OK);
    assert_true(attn_tokenizer_is_bpe(v));
    static const char text[] = "ab abc ab  x\xff";
    size_t n0, n1, n2;
    uint32_t *a = enc(t, text, sizeof text - 1, &n0), *b = enc(u, text, sizeof text - 1, &n1),
             *c = enc(v, text, sizeof text - 1, &n2);
    assert_true(n0 == n1 && n0 == n2);
    assert_memory_equal(a, b, n0 * sizeof *a);
    assert_memory_equal(a, c, n0 * sizeof *a);
    free(a), free(b), free(c);
    attn_tokenizer_free(t), attn_tokenizer_free(u), attn_tokenizer_free(v);
}

/* With GPT-2's own files (make gpt2-vocab): known ids. */
static void test_gpt2_known(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/vocab.bpe", ATTN_GPT2_VOCAB);
    FILE *f = fopen(path, "rb");
    if (!f) {
        const char *ci = getenv("CI");
        if (ci && (!strcmp(ci, "true") || !strcmp(ci, "1")))
            fail_msg("%s is missing: run 'make gpt2-vocab'", path);
        printf("SKIP: GPT-2's tokenizer files are not in %s (run 'make gpt2-vocab')\n", ATTN_GPT2_VOCAB);
        skip();
    }
    fclose(f);
    attn_tokenizer *t = NULL;
    assert_int_equal(attn_bpe_tokenizer_load(&t, ATTN_GPT2_VOCAB), ATTN_OK);
    assert_int_equal(attn_tokenizer_vocab_size(t), 50257);
    size_t n;
    uint32_t *ids = enc(t, "Hello world", 11, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 15496);
    assert_int_equal(ids[1], 995);
    free(ids);
    assert_int_equal(attn_bpe_set_special(t, 1), ATTN_OK);
    ids = enc(t, " <|endoftext|>", 14, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 220);
    assert_int_equal(ids[1], 50256);
    free(ids);
    attn_tokenizer_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learn_by_hand), cmocka_unit_test(test_learn_roundtrip),
        cmocka_unit_test(test_special),       cmocka_unit_test(test_files),
        cmocka_unit_test(test_gpt2_known),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
