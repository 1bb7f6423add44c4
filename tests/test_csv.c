/* test_csv.c - the embeddings CSV reader: what it accepts, and the exact
 * position and wording of what it refuses. */
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

static attn_status parse(attn_embeddings *e, const char *text)
{
    return attn_embeddings_parse_csv(e, text, strlen(text), "t.csv");
}

static void test_accepts_good_input(void **state)
{
    (void)state;
    attn_embeddings e;
    const char *text = "\xEF\xBB\xBFtoken, animal ,tech\r\n"
                       "cat,2,0\r\n"
                       "\r\n"
                       "\"a,b\",-1.5e-1,  3 \r\n"
                       "\"say \"\"hi\"\"\",0,1";
    assert_int_equal(parse(&e, text), ATTN_OK);
    assert_int_equal(e.n_tokens, 3);
    assert_int_equal(e.n_dims, 2);
    assert_string_equal(e.dims[0], "animal");
    assert_string_equal(e.tokens[1], "a,b");
    assert_string_equal(e.tokens[2], "say \"hi\"");
    assert_float_equal(e.data[2], -0.15f, 1e-7);
    assert_float_equal(e.data[3], 3.0f, 0);
    attn_embeddings_free(&e);
}

/* Each bad input: the status and the exact "file:line:col: ..." prefix. */
static void test_refuses_bad_input(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *prefix;
        const char *words;
    } cases[] = {
        {"", "t.csv:1:1: ", "empty"},
        {"\n\n  \n", "t.csv:1:1: ", "empty"},
        {"token\ncat\n", "t.csv:1:2: ", "no dimensions"},
        {"word,a\ncat,1\n", "t.csv:1:1: ", "'token'"},
        {"token,a,b\ncat,1\n", "t.csv:2:3: ", "expected 3 cells"},
        {"token,a,b\ncat,1,2,3\n", "t.csv:2:4: ", "found 4"},
        {"token,a,b\ncat,1,2\ndog,1,x\n", "t.csv:3:3: ", "'x'"},
        {"token,a\ncat,nan\n", "t.csv:2:2: ", "finite"},
        {"token,a\ncat,inf\n", "t.csv:2:2: ", "finite"},
        {"token,a\ncat,1e39\n", "t.csv:2:2: ", "float32"},
        {"token,a\ncat,\n", "t.csv:2:2: ", "empty cell"},
        {"token,a,b,a\n", "t.csv:1:4: ", "duplicate dimension name 'a'"},
        {"token,a,,b\n", "t.csv:1:3: ", "empty dimension"},
        {"token,a\n", "t.csv:", "no token rows"},
        {"token,a\n\"cat,1\n", "t.csv:2:1: ", "unterminated"},
        {"token,a\n,1\n", "t.csv:2:1: ", "empty token"},
        {"token,a\nca\"t,1\n", "t.csv:2:1: ", "quote"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        attn_embeddings e;
        attn_status st = parse(&e, cases[i].text);
        if (st != ATTN_E_FORMAT) fail_msg("case %zu: status %d, expected a format error", i, st);
        const char *msg = attn_last_error();
        if (strncmp(msg, cases[i].prefix, strlen(cases[i].prefix)) != 0 ||
            !strstr(msg, cases[i].words) || strchr(msg, '\n'))
            fail_msg("case %zu: message '%s', expected '%s...%s' on one line", i, msg,
                     cases[i].prefix, cases[i].words);
        assert_null(e.tokens); /* nothing half-built is left behind */
        assert_null(e.data);
    }
}

static void test_row_limit(void **state)
{
    (void)state;
    size_t n = ATTN_CSV_MAX_ROWS + 1, cap = 32 + n * 16;
    char *text = malloc(cap), *p = text;
    assert_non_null(text);
    p += sprintf(p, "token,x\n");
    for (size_t i = 0; i < n; i++) p += sprintf(p, "t%zu,%zu\n", i, i);
    attn_embeddings e;
    /* The limit itself is fine... */
    assert_int_equal(attn_embeddings_parse_csv(&e, text, (size_t)(strstr(text, "t4096,") - text),
                                               "big.csv"),
                     ATTN_OK);
    assert_int_equal(e.n_tokens, ATTN_CSV_MAX_ROWS);
    attn_embeddings_free(&e);
    /* ...one more row is not, and the error points at it. */
    assert_int_equal(attn_embeddings_parse_csv(&e, text, strlen(text), "big.csv"), ATTN_E_FORMAT);
    assert_non_null(strstr(attn_last_error(), "big.csv:4098:1: more than 4096"));
    free(text);
}

static void test_file_errors(void **state)
{
    (void)state;
    attn_embeddings e;
    assert_int_equal(attn_embeddings_read_csv(&e, "/nonexistent/x.csv"), ATTN_E_IO);
    assert_non_null(strstr(attn_last_error(), "/nonexistent/x.csv: cannot open"));
    assert_int_equal(attn_embeddings_read_csv(&e, test_tmpdir()), ATTN_E_IO);
    assert_non_null(strstr(attn_last_error(), "cannot read"));
    const char *path = write_tmp("ok.csv", "token,a,b\ncat,1,2\n");
    assert_int_equal(attn_embeddings_read_csv(&e, path), ATTN_OK);
    assert_int_equal(e.n_tokens, 1);
    attn_embeddings_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_good_input),
        cmocka_unit_test(test_refuses_bad_input),
        cmocka_unit_test(test_row_limit),
        cmocka_unit_test(test_file_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
