/* test_demo.c - the built-in example makes the article's point, asserted
 * from the library's own results (the same calls `attn demo` makes). */
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

#include "attn/attn.h"

static size_t dim_index(const attn_embeddings *e, const char *name)
{
    for (size_t j = 0; j < e->n_dims; j++)
        if (strcmp(e->dims[j], name) == 0) return j;
    fail_msg("no dimension '%s'", name);
    return 0;
}

/* Runs sentence i; returns mouse's output row in out (n_dims floats). */
static void mouse_output(size_t i, float *out, float *in, attn_embeddings *vocab)
{
    attn_embeddings x;
    assert_int_equal(attn_embeddings_lookup(&x, vocab, attn_seed_sentence(i)), ATTN_OK);
    float *o = malloc(x.n_tokens * x.n_dims * sizeof(float));
    assert_non_null(o);
    assert_int_equal(attn_self_attention(o, &x, NULL, NULL), ATTN_OK);
    long row = attn_embeddings_find(&x, attn_seed_focus_word());
    assert_true(row >= 0);
    memcpy(out, o + (size_t)row * x.n_dims, x.n_dims * sizeof(float));
    memcpy(in, x.data + (size_t)row * x.n_dims, x.n_dims * sizeof(float));
    free(o);
    attn_embeddings_free(&x);
}

static void test_mouse_claims(void **state)
{
    (void)state;
    attn_embeddings vocab;
    assert_int_equal(attn_seed_vocabulary(&vocab), ATTN_OK);
    assert_int_equal(attn_seed_sentence_count(), 2);
    assert_non_null(strstr(attn_seed_sentence(0), "cat"));
    assert_non_null(strstr(attn_seed_sentence(1), "keyboard"));
    size_t animal = dim_index(&vocab, "animal"), tech = dim_index(&vocab, "tech");
    float cat_out[8], key_out[8], cat_in[8], key_in[8];
    assert_true(vocab.n_dims <= 8);
    mouse_output(0, cat_out, cat_in, &vocab);
    mouse_output(1, key_out, key_in, &vocab);
    /* One identical input vector, ambiguous: as much animal as tech. */
    assert_memory_equal(cat_in, key_in, vocab.n_dims * sizeof(float));
    assert_true(cat_in[animal] == cat_in[tech]);
    /* Next to cat: more animal than tech. Next to keyboard: the reverse. */
    assert_true(cat_out[animal] > cat_out[tech] + 0.1f);
    assert_true(key_out[tech] > key_out[animal] + 0.1f);

    /* The demo's closing sentence reads the same from the trace. */
    attn_embeddings x;
    attn_trace *t;
    char dom[64];
    assert_int_equal(attn_embeddings_lookup(&x, &vocab, attn_seed_sentence(0)), ATTN_OK);
    assert_int_equal(attn_trace_create(&t), ATTN_OK);
    assert_int_equal(attn_self_attention(NULL, &x, NULL, t), ATTN_OK);
    long row = attn_embeddings_find(&x, "mouse");
    assert_true(attn_dominant_dimension(t, "output", (size_t)row, dom, sizeof dom));
    assert_string_equal(dom, "animal");
    assert_true(attn_dominant_dimension(t, "embeddings", (size_t)row, dom, sizeof dom));
    assert_string_equal(dom, "animal = tech");
    attn_trace_free(t);
    attn_embeddings_free(&x);
    attn_embeddings_free(&vocab);
}

static void test_lookup_unknown_word(void **state)
{
    (void)state;
    attn_embeddings vocab, x;
    assert_int_equal(attn_seed_vocabulary(&vocab), ATTN_OK);
    assert_int_equal(attn_embeddings_lookup(&x, &vocab, "cat and dog"), ATTN_E_INVALID);
    assert_non_null(strstr(attn_last_error(), "'dog'"));
    assert_int_equal(attn_embeddings_lookup(&x, &vocab, "   "), ATTN_E_INVALID);
    attn_embeddings_free(&vocab);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mouse_claims),
        cmocka_unit_test(test_lookup_unknown_word),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
