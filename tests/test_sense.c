/* test_sense.c - `attn demo --learn`'s claims, from the library: learned
 * attention makes "mouse" look at its context word and tells its sense. */
#include "test_support.h"

#include <string.h>

#include "attn/attn.h"
#include "attn/sense.h"

typedef struct losses {
    double first, last;
    size_t calls;
} losses;

static void record(const attn_sense_progress *p, void *user)
{
    losses *l = user;
    if (p->epoch == 1) l->first = p->loss;
    l->last = p->loss;
    l->calls++;
}

/* Attention of "mouse" on `context` in `sentence`, and the predicted sense. */
static double attention_on(attn_sense *task, const char *sentence, const char *context, int *sense)
{
    attn_trace *t = NULL;
    assert_int_equal(attn_trace_create(&t), ATTN_OK);
    assert_int_equal(attn_sense_run(task, sentence, t, NULL, sense), ATTN_OK);
    const attn_tensor *a = attn_trace_get(t, "head0.attention");
    assert_non_null(a);
    size_t n = 0;
    const char *const *tok = attn_trace_labels(t, "token", &n);
    size_t row = n, col = n;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(tok[i], "mouse") == 0) row = i;
        if (strcmp(tok[i], context) == 0) col = i;
    }
    assert_true(row < n && col < n);
    double w = a->data[row * a->shape[1] + col];
    attn_trace_free(t);
    return w;
}

static void test_learning_tells_the_sense(void **state)
{
    (void)state;
    attn_sense *task = NULL;
    attn_sense_opts o = attn_sense_defaults();
    assert_int_equal(attn_sense_create(&task, &o), ATTN_OK);
    assert_true(attn_sense_count(task, 0) > 100 && attn_sense_count(task, 1) > 40);
    int sense;
    /* Before: near-uniform attention, chance-level accuracy. */
    assert_true(attention_on(task, "cat and mouse are friends", "cat", &sense) < 0.5);
    assert_true(attn_sense_accuracy(task, 1) < 0.6);

    losses l = {0, 0, 0};
    assert_int_equal(attn_sense_train(task, record, &l), ATTN_OK);
    assert_int_equal(l.calls, o.epochs);
    assert_true(l.last < 0.25 * l.first); /* the loss falls */
    assert_true(attn_sense_accuracy(task, 1) >= 0.9); /* on sentences never trained on */

    /* After: mouse looks at its context word, and reads the right sense. */
    assert_true(attention_on(task, "cat and mouse are friends", "cat", &sense) > 0.5);
    assert_string_equal(attn_sense_name(sense), "animal");
    assert_true(attention_on(task, "keyboard and mouse are useful", "keyboard", &sense) > 0.5);
    assert_string_equal(attn_sense_name(sense), "tech");
    attn_sense_free(task);
}

static void test_same_seed_same_weights(void **state)
{
    (void)state;
    attn_sense_opts o = attn_sense_defaults();
    o.epochs = 3;
    attn_sense *a = NULL, *b = NULL;
    assert_int_equal(attn_sense_create(&a, &o), ATTN_OK);
    assert_int_equal(attn_sense_create(&b, &o), ATTN_OK);
    assert_int_equal(attn_sense_train(a, NULL, NULL), ATTN_OK);
    assert_int_equal(attn_sense_train(b, NULL, NULL), ATTN_OK);
    size_t na, nb;
    float *pa = attn_mha_params(attn_sense_layer(a), &na), *pb = attn_mha_params(attn_sense_layer(b), &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(pa, pb, na * sizeof(float));
    attn_sense_free(a);
    attn_sense_free(b);
    o.lr = 0;
    assert_int_equal(attn_sense_create(&a, &o), ATTN_E_INVALID);
}

/* The CLI: attn demo --learn prints the story; bad combinations are usage errors. */
static void test_cli_demo_learn(void **state)
{
    (void)state;
    run_result r = run_cmd("'%s' demo --learn --seed 3", attn_bin());
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    static const char *const expected[] = {"Before learning", "epoch   1/40", "epoch  40/40",
                                           "After learning", "Held-out accuracy",
                                           "\"cat and mouse are friends\"", "read as animal",
                                           "read as tech", "d_v != d"};
    for (size_t i = 0; i < sizeof expected / sizeof *expected; i++)
        if (!strstr(r.out, expected[i])) fail_msg("no '%s' in:\n%s", expected[i], r.out);
    run_result_free(&r);
    static const char *const bad[] = {"--learn --json", "--learn --epochs 0", "--epochs 5",
                                      "--learn --seed -1", "--learn --seed x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = run_cmd("'%s' demo %s", attn_bin(), bad[i]);
        if (r.status != 2 || r.out[0] || !strstr(r.err, "usage: attn demo"))
            fail_msg("demo %s: status %d, stdout '%s', stderr '%s'", bad[i], r.status, r.out, r.err);
        run_result_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learning_tells_the_sense),
        cmocka_unit_test(test_same_seed_same_weights),
        cmocka_unit_test(test_cli_demo_learn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
