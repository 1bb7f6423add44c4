/* test_core.c - tensors, views, the arena, the trace and error messages. */
#include "test_support.h"

#include <stdint.h>
#include <string.h>

#include "attn/attn.h"

static void test_tensor_owned_and_views(void **state)
{
    (void)state;
    attn_tensor t, row, r2;
    size_t shape[3] = {2, 3, 4};
    assert_int_equal(attn_tensor_create(&t, 3, shape), ATTN_OK);
    assert_int_equal(t.numel, 24);
    assert_true(t.owned);
    for (size_t i = 0; i < t.numel; i++) {
        assert_true(t.data[i] == 0.0f); /* zero-filled */
        t.data[i] = (float)i;
    }
    assert_int_equal(attn_tensor_index(&row, &t, 1), ATTN_OK);
    assert_int_equal(row.ndim, 2);
    assert_int_equal(row.shape[0], 3);
    assert_int_equal(row.shape[1], 4);
    assert_false(row.owned);
    assert_true(row.data[0] == 12.0f); /* t[1][0][0] */
    size_t flat[2] = {4, 3};
    assert_int_equal(attn_tensor_reshape(&r2, &row, 2, flat), ATTN_OK);
    assert_true(ATTN_AT2(&r2, 1, 0) == 15.0f);
    size_t bad[2] = {5, 3};
    assert_int_equal(attn_tensor_reshape(&r2, &row, 2, bad), ATTN_E_INVALID);
    assert_non_null(strstr(attn_last_error(), "reshape"));
    assert_int_equal(attn_tensor_index(&row, &t, 2), ATTN_E_INVALID);
    attn_tensor_free(&row); /* borrowed: frees nothing */
    attn_tensor c;
    assert_int_equal(attn_tensor_clone(&c, &t), ATTN_OK);
    assert_true(c.data != t.data && c.data[23] == 23.0f);
    attn_tensor_free(&c);
    attn_tensor_free(&t);
    assert_null(t.data);
}

static void test_tensor_limits(void **state)
{
    (void)state;
    attn_tensor t;
    size_t five[5] = {1, 1, 1, 1, 1};
    assert_int_equal(attn_tensor_create(&t, 5, five), ATTN_E_INVALID);
    size_t huge[2] = {SIZE_MAX / 2, 4};
    assert_int_equal(attn_tensor_create(&t, 2, huge), ATTN_E_NOMEM);
    assert_non_null(strstr(attn_last_error(), "overflow"));
    /* A view of caller memory. */
    float buf[6] = {1, 2, 3, 4, 5, 6};
    size_t s[2] = {2, 3};
    assert_int_equal(attn_tensor_view(&t, buf, 2, s), ATTN_OK);
    assert_true(ATTN_AT2(&t, 1, 2) == 6.0f);
    assert_int_equal(attn_tensor_view(&t, NULL, 2, s), ATTN_E_INVALID);
}

static void test_arena(void **state)
{
    (void)state;
    attn_arena *a = NULL;
    assert_int_equal(attn_arena_create(&a, 1000), ATTN_OK);
    attn_tensor x, y, z;
    size_t s1[2] = {3, 5}, s2[1] = {100}, s3[1] = {1000};
    assert_int_equal(attn_arena_tensor(a, &x, 2, s1), ATTN_OK);
    assert_int_equal(attn_arena_tensor(a, &y, 1, s2), ATTN_OK);
    assert_int_equal((uintptr_t)x.data % 64, 0);
    assert_int_equal((uintptr_t)y.data % 64, 0);
    assert_true(y.data >= x.data + 15); /* no overlap */
    assert_int_equal(attn_arena_tensor(a, &z, 1, s3), ATTN_E_NOMEM);
    assert_non_null(strstr(attn_last_error(), "arena full"));
    assert_true(attn_arena_used(a) <= attn_arena_capacity(a));
    attn_arena_reset(a);
    assert_int_equal(attn_arena_used(a), 0);
    assert_int_equal(attn_arena_tensor(a, &z, 1, s2), ATTN_OK);
    assert_true(z.data == x.data); /* memory reused after reset */
    attn_arena_free(a);
}

/* A filter keeps the matching names only; recording others succeeds. */
static void test_trace_filter(void **state)
{
    (void)state;
    attn_trace *t = NULL;
    assert_int_equal(attn_trace_create(&t), ATTN_OK);
    float m[2] = {1, 2};
    size_t s[2] = {1, 2};
    const char *pat[] = {"layer*.head*.attention", "compare.*"};
    assert_int_equal(attn_trace_set_filter(t, 2, pat), ATTN_OK);
    static const char *const kept[][2] = {{"layer0.head1", "attention"}, {"layer11.head0", "attention"},
                                          {"compare", "cosine"}};
    static const char *const dropped[][2] = {{"layer0.head1", "scores"}, {"layer0", "attention"},
                                             {NULL, "attention"}, {"layer0.head1.attention", "x"},
                                             {"xlayer0.head1", "attention2"}};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(attn_trace_record(t, kept[i][0], kept[i][1], m, 2, s, NULL, NULL), ATTN_OK);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(attn_trace_record(t, dropped[i][0], dropped[i][1], m, 2, s, NULL, NULL), ATTN_OK);
    assert_int_equal(attn_trace_count(t), 3);
    assert_non_null(attn_trace_get(t, "layer11.head0.attention"));
    assert_non_null(attn_trace_get(t, "compare.cosine"));
    assert_null(attn_trace_get(t, "layer0.head1.scores"));
    assert_int_equal(attn_trace_set_filter(t, 0, NULL), ATTN_OK); /* everything again */
    assert_int_equal(attn_trace_record(t, "layer0", "scores", m, 2, s, NULL, NULL), ATTN_OK);
    assert_int_equal(attn_trace_count(t), 4);
    assert_int_equal(attn_trace_set_filter(t, 1, NULL), ATTN_E_INVALID);
    attn_trace_free(t);
}

static void test_trace_entries_and_labels(void **state)
{
    (void)state;
    attn_trace *t = NULL;
    assert_int_equal(attn_trace_create(&t), ATTN_OK);
    float m[4] = {1, 2, 3, 4};
    size_t s[2] = {2, 2};
    assert_int_equal(attn_trace_record(t, "layer0", "scores", m, 2, s, "query", "key"), ATTN_OK);
    assert_int_equal(attn_trace_record(t, NULL, "x", m, 2, s, NULL, NULL), ATTN_OK);
    m[0] = 9; /* the trace keeps a copy */
    const attn_tensor *e = attn_trace_get(t, "layer0.scores");
    assert_non_null(e);
    assert_true(e->data[0] == 1.0f);
    assert_null(attn_trace_get(t, "scores"));
    /* Recording a name again replaces the entry. */
    assert_int_equal(attn_trace_record(t, "layer0", "scores", m, 2, s, "query", "key"), ATTN_OK);
    assert_int_equal(attn_trace_count(t), 2);
    assert_true(attn_trace_get(t, "layer0.scores")->data[0] == 9.0f);
    attn_trace_entry ent;
    assert_int_equal(attn_trace_entry_at(t, 0, &ent), ATTN_OK);
    assert_string_equal(ent.name, "layer0.scores");
    assert_string_equal(ent.row_axis, "query");
    assert_int_equal(attn_trace_entry_at(t, 2, &ent), ATTN_E_NOTFOUND);

    const char *labels[2] = {"cat", "mouse"};
    assert_int_equal(attn_trace_set_labels(t, "query", 2, labels), ATTN_OK);
    size_t n = 0;
    const char *const *got = attn_trace_labels(t, "query", &n);
    assert_int_equal(n, 2);
    assert_string_equal(got[1], "mouse");
    assert_null(attn_trace_labels(t, "key", &n));
    assert_int_equal(n, 0);
    attn_trace_free(t);
}

static void test_error_messages(void **state)
{
    (void)state;
    attn_clear_error();
    assert_string_equal(attn_last_error(), "");
    assert_int_equal(attn_error(ATTN_E_FORMAT, "%s:%d: bad", "f.csv", 3), ATTN_E_FORMAT);
    assert_string_equal(attn_last_error(), "f.csv:3: bad");
    assert_string_equal(attn_status_str(ATTN_E_NOMEM), "out of memory");
    /* a prefix naming the file, the lower layer's message intact */
    attn_error(ATTN_E_INVALID, "width 15 is not divisible by heads 2");
    assert_int_equal(attn_error_prefix(ATTN_E_FORMAT, "%s: ", "D/config.json"), ATTN_E_FORMAT);
    assert_string_equal(attn_last_error(), "D/config.json: width 15 is not divisible by heads 2");
    /* the old message as an argument too (it is copied before formatting) */
    attn_error_prefix(ATTN_E_FORMAT, "[%s] ", attn_last_error());
    assert_string_equal(attn_last_error(), "[D/config.json: width 15 is not divisible by heads 2] "
                                           "D/config.json: width 15 is not divisible by heads 2");
}

/* The workspace: pieces aligned and apart, a reservation no larger than the
 * block keeps it, one not counting a piece refuses it, products that
 * overflow are errors. */
static void test_workspace(void **state)
{
    (void)state;
    attn_workspace w = {0};
    size_t total = 0;
    assert_int_equal(attn_workspace_add(&total, "t", 3, 5), ATTN_OK);  /* 15 -> 16 */
    assert_int_equal(attn_workspace_add(&total, "t", 1, 17), ATTN_OK); /* 17 -> 32 */
    assert_int_equal(total, 48);
    assert_int_equal(attn_workspace_reserve(&w, total), ATTN_OK);
    float *a = attn_workspace_take(&w, 3, 5), *b = attn_workspace_take(&w, 1, 17);
    assert_non_null(a), assert_non_null(b);
    assert_int_equal((uintptr_t)a % 64, 0), assert_int_equal((uintptr_t)b % 64, 0);
    assert_ptr_equal(b, a + 16);
    assert_null(attn_workspace_take(&w, 1, 1)); /* not counted */
    float *base = w.base;
    assert_int_equal(attn_workspace_reserve(&w, 16), ATTN_OK);
    assert_ptr_equal(w.base, base); /* kept, pieces forgotten */
    assert_ptr_equal(attn_workspace_take(&w, 2, 2), base);
    assert_int_equal(attn_workspace_add(&total, "huge", SIZE_MAX / 2, 3), ATTN_E_NOMEM);
    assert_string_equal(attn_last_error(), "huge: 9223372036854775807 x 3 elements overflow size_t");
    size_t p = 0;
    assert_int_equal(attn_size_mul("m", (size_t)1 << 40, (size_t)1 << 30, &p), ATTN_E_NOMEM);
    assert_int_equal(attn_size_mul("m", (size_t)1 << 20, (size_t)1 << 20, &p), ATTN_OK);
    assert_int_equal(p, (size_t)1 << 40);
    attn_workspace_free(&w);
    assert_null(w.base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensor_owned_and_views),
        cmocka_unit_test(test_tensor_limits),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_workspace),
        cmocka_unit_test(test_trace_entries_and_labels),
        cmocka_unit_test(test_trace_filter),
        cmocka_unit_test(test_error_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
