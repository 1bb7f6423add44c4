/* test_json_writer.c - the explain documents' streaming JSON writer
 * (src/explain/json_writer.c, internal): its layout is cJSON_Print's, byte
 * for byte, and a document nested past JW_MAX_DEPTH is reported as an error
 * rather than written past the writer's per-level counts. */
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_writer.h"

/* The bytes written to a memory stream by fill(w) between jw_begin/jw_end,
 * and jw_end's status. */
static attn_status write_doc(void (*fill)(jw *), char **text)
{
    size_t n = 0;
    FILE *f = open_memstream(text, &n);
    assert_non_null(f);
    jw w;
    assert_int_equal(jw_begin(&w, f), ATTN_OK);
    fill(&w);
    attn_status st = jw_end(&w);
    assert_int_equal(fclose(f), 0);
    return st;
}

static void small_doc(jw *w)
{
    jw_string(w, "name", "a \"b\"");
    jw_open_array(w, "xs");
    jw_number(w, 1.5f);
    jw_number(w, -2.0f);
    jw_close_array(w);
    jw_open_object(w, "o");
    jw_string(w, "k", "v");
    jw_close_object(w);
}

/* The same document built by cJSON and printed by cJSON_Print. */
static void test_layout_is_cjson_print(void **state)
{
    (void)state;
    char *text = NULL;
    assert_int_equal(write_doc(small_doc, &text), ATTN_OK);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "name", "a \"b\"");
    cJSON *xs = cJSON_AddArrayToObject(root, "xs");
    cJSON_AddItemToArray(xs, cJSON_CreateNumber(1.5));
    cJSON_AddItemToArray(xs, cJSON_CreateNumber(-2.0));
    cJSON *o = cJSON_AddObjectToObject(root, "o");
    cJSON_AddStringToObject(o, "k", "v");
    char *want = cJSON_Print(root);
    assert_non_null(want);
    assert_int_equal(strlen(text), strlen(want) + 1); /* jw_end adds a newline */
    assert_memory_equal(text, want, strlen(want));
    free(want);
    cJSON_Delete(root);
    free(text);
}

/* Arrays nested n deep inside the root object (depth n + 1). */
static int nest_n;
static void nested(jw *w)
{
    for (int i = 0; i < nest_n; i++) jw_open_array(w, i ? NULL : "a");
    jw_number(w, 7.0f);
    for (int i = 0; i < nest_n; i++) jw_close_array(w);
}

static void test_depth_limit(void **state)
{
    (void)state;
    char *text = NULL;
    nest_n = JW_MAX_DEPTH - 1; /* the deepest allowed: root + 7 arrays */
    assert_int_equal(write_doc(nested, &text), ATTN_OK);
    cJSON *back = cJSON_Parse(text);
    assert_non_null(back);
    cJSON_Delete(back);
    free(text);

    nest_n = JW_MAX_DEPTH + 3; /* past it: an error, and no write out of bounds */
    assert_int_equal(write_doc(nested, &text), ATTN_E_INTERNAL);
    assert_non_null(strstr(attn_last_error(), "deeper than"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_is_cjson_print),
        cmocka_unit_test(test_depth_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
