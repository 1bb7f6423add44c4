/* test_safetensors.c - the safetensors reader and writer: round trips, the
 * writer's exact bytes and refusals, and a fixture made by an independent
 * (Python) writer. Dtype conversion: test_safetensors_dtype.c; malformed files
 * and the atomic file writer: test_safetensors_bad.c. */
#include "st_check.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attn/fileio.h"
#include "attn/safetensors.h"

/* ---- writer + reader round trip ------------------------------------------ */

static void test_round_trip(void **state)
{
    (void)state;
    float wdata[6] = {1.5f, -2.0f, 0.0f, -0.0f, INFINITY, 1e-45f /* subnormal */};
    float bdata[3] = {3.0f, NAN, -INFINITY};
    float sdata[1] = {7.5f};
    float x4data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    attn_tensor w, b, s, e, x4;
    assert_int_equal(attn_tensor_view(&w, wdata, 2, (size_t[]){2, 3}), ATTN_OK);
    assert_int_equal(attn_tensor_view(&b, bdata, 1, (size_t[]){3}), ATTN_OK);
    assert_int_equal(attn_tensor_view(&s, sdata, 0, NULL), ATTN_OK);
    assert_int_equal(attn_tensor_view(&e, NULL, 2, (size_t[]){0, 4}), ATTN_OK);
    assert_int_equal(attn_tensor_view(&x4, x4data, 4, (size_t[]){2, 1, 2, 2}), ATTN_OK);
    attn_st_named list[] = {
        {"layer.w", &w}, {"layer.b", &b}, {"scalar", &s}, {"empty", &e}, {"x4", &x4}};
    const char *keys[] = {"format", "note"};
    const char *vals[] = {"pt", "quote \" backslash \\ newline \n tab \t caf\xC3\xA9"};
    const char *dir = fresh_dir("rt");
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(attn_safetensors_write(path, list, 5, keys, vals, 2), ATTN_OK);
    assert_int_equal(count_dir_entries(dir), 1); /* no temporary file left */

    /* Header length is a multiple of 8, so the data is 8-aligned. */
    size_t fsize;
    char *raw = read_all(path, &fsize);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | (unsigned char)raw[i];
    assert_int_equal(hlen % 8, 0);
    assert_int_equal(fsize, 8 + hlen + (6 + 3 + 1 + 0 + 8) * 4);
    free(raw);

    attn_safetensors *st;
    assert_int_equal(attn_safetensors_open(&st, path), ATTN_OK);
    assert_int_equal(attn_safetensors_count(st), 5);
    const char *order[] = {"layer.w", "layer.b", "scalar", "empty", "x4"};
    size_t at = 0;
    for (size_t i = 0; i < 5; i++) {
        attn_st_info info;
        assert_int_equal(attn_safetensors_info_at(st, i, &info), ATTN_OK);
        assert_string_equal(info.name, order[i]);
        assert_int_equal(info.dtype, ATTN_DTYPE_F32);
        assert_int_equal(info.begin, at);
        at = info.end;
    }
    assert_int_equal(attn_safetensors_info_at(st, 5, &(attn_st_info){0}), ATTN_E_INVALID);
    assert_int_equal(attn_safetensors_metadata_count(st), 2);
    assert_string_equal(attn_safetensors_metadata(st, "format"), "pt");
    assert_string_equal(attn_safetensors_metadata(st, "note"), vals[1]);
    assert_null(attn_safetensors_metadata(st, "absent"));
    const char *k, *v;
    assert_int_equal(attn_safetensors_metadata_at(st, 1, &k, &v), ATTN_OK);
    assert_string_equal(k, "note");
    assert_int_equal(attn_safetensors_metadata_at(st, 2, &k, &v), ATTN_E_INVALID);

    attn_tensor t;
    assert_int_equal(attn_safetensors_read(st, "layer.w", &t), ATTN_OK);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[0], 2);
    assert_int_equal(t.shape[1], 3);
    for (size_t i = 0; i < 6; i++) assert_int_equal(bits_of(t.data[i]), bits_of(wdata[i]));
    attn_tensor_free(&t);
    assert_int_equal(attn_safetensors_read(st, "layer.b", &t), ATTN_OK);
    for (size_t i = 0; i < 3; i++) assert_int_equal(bits_of(t.data[i]), bits_of(bdata[i]));
    attn_tensor_free(&t);
    assert_int_equal(attn_safetensors_read(st, "scalar", &t), ATTN_OK);
    assert_int_equal(t.ndim, 0);
    assert_int_equal(t.numel, 1);
    assert_true(t.data[0] == 7.5f);
    attn_tensor_free(&t);
    assert_int_equal(attn_safetensors_read(st, "empty", &t), ATTN_OK);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[0], 0);
    assert_int_equal(t.shape[1], 4);
    assert_int_equal(t.numel, 0);
    attn_tensor_free(&t);
    assert_int_equal(attn_safetensors_read(st, "x4", &t), ATTN_OK);
    assert_int_equal(t.ndim, 4);
    assert_memory_equal(t.data, x4data, sizeof x4data);
    attn_tensor_free(&t);
    attn_safetensors_close(st);
}

/* The exact bytes of a one-tensor file: compact JSON, space padding, LE data. */
static void test_writer_exact_bytes(void **state)
{
    (void)state;
    float one = 1.0f;
    attn_tensor t;
    assert_int_equal(attn_tensor_view(&t, &one, 1, (size_t[]){1}), ATTN_OK);
    attn_st_named list[] = {{"a", &t}};
    const char *dir = fresh_dir("exact");
    char path[600];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    assert_int_equal(attn_safetensors_write(path, list, 1, NULL, NULL, 0), ATTN_OK);
    const char json[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    size_t jlen = sizeof json - 1, plen = (jlen + 7) / 8 * 8;
    unsigned char want[128] = {(unsigned char)plen};
    memcpy(want + 8, json, jlen);
    memset(want + 8 + jlen, ' ', plen - jlen);
    memcpy(want + 8 + plen, "\x00\x00\x80\x3f", 4);
    size_t n;
    char *got = read_all(path, &n);
    assert_int_equal(n, 8 + plen + 4);
    assert_memory_equal(got, want, n);
    free(got);

    /* No tensors at all is a valid (empty) file. */
    snprintf(path, sizeof path, "%s/none.safetensors", dir);
    assert_int_equal(attn_safetensors_write(path, NULL, 0, NULL, NULL, 0), ATTN_OK);
    attn_safetensors *st;
    assert_int_equal(attn_safetensors_open(&st, path), ATTN_OK);
    assert_int_equal(attn_safetensors_count(st), 0);
    attn_safetensors_close(st);
}

static void test_writer_refuses(void **state)
{
    (void)state;
    float x[2] = {1, 2};
    attn_tensor t;
    assert_int_equal(attn_tensor_view(&t, x, 1, (size_t[]){2}), ATTN_OK);
    const char *dir = fresh_dir("wref");
    char path[600];
    snprintf(path, sizeof path, "%s/out.safetensors", dir);

    attn_st_named dup[] = {{"a", &t}, {"b", &t}, {"a", &t}};
    assert_int_equal(attn_safetensors_write(path, dup, 3, NULL, NULL, 0), ATTN_E_INVALID);
    assert_msg_has("duplicate tensor name 'a'");
    assert_one_line(path);

    attn_st_named reserved[] = {{"__metadata__", &t}};
    assert_int_equal(attn_safetensors_write(path, reserved, 1, NULL, NULL, 0), ATTN_E_INVALID);
    assert_msg_has("reserved");

    attn_st_named unnamed[] = {{"", &t}};
    assert_int_equal(attn_safetensors_write(path, unnamed, 1, NULL, NULL, 0), ATTN_E_INVALID);
    attn_st_named null_tensor[] = {{"a", NULL}};
    assert_int_equal(attn_safetensors_write(path, null_tensor, 1, NULL, NULL, 0), ATTN_E_INVALID);
    attn_st_named bad_utf8[] = {{"\xff", &t}};
    assert_int_equal(attn_safetensors_write(path, bad_utf8, 1, NULL, NULL, 0), ATTN_E_INVALID);
    assert_msg_has("UTF-8");

    attn_st_named ok[] = {{"a", &t}};
    const char *keys[] = {"k", "k"}, *vals[] = {"1", "2"};
    assert_int_equal(attn_safetensors_write(path, ok, 1, keys, vals, 2), ATTN_E_INVALID);
    assert_msg_has("duplicate metadata key 'k'");

    attn_tensor broken = t;
    broken.numel = 5; /* inconsistent with the shape */
    attn_st_named bl[] = {{"a", &broken}};
    assert_int_equal(attn_safetensors_write(path, bl, 1, NULL, NULL, 0), ATTN_E_INVALID);

    /* Nothing of any refused write is left on disk. */
    assert_int_equal(count_dir_entries(dir), 0);

    char missing[700];
    snprintf(missing, sizeof missing, "%s/no-such-dir/out.safetensors", dir);
    assert_int_equal(attn_safetensors_write(missing, ok, 1, NULL, NULL, 0), ATTN_E_IO);
    assert_msg_has("cannot create a file in");
    assert_int_equal(count_dir_entries(dir), 0);
}

/* ---- the Python-made fixture ---------------------------------------------- */

static void test_python_fixture(void **state)
{
    (void)state;
    const char *path = ATTN_TEST_FIXTURES "/safetensors/mixed.safetensors";
    attn_safetensors *st;
    if (attn_safetensors_open(&st, path) != ATTN_OK) fail_msg("%s", attn_last_error());
    assert_int_equal(attn_safetensors_count(st), 7);
    assert_string_equal(attn_safetensors_metadata(st, "format"), "pt");
    assert_string_equal(attn_safetensors_metadata(st, "source"), "gen_safetensors_fixture.py");

    /* File order is offset order, not the (sorted) JSON order. */
    const char *order[] = {"f32", "f16", "bf16", "f64", "mask", "scalar", "empty"};
    for (size_t i = 0; i < 7; i++) {
        attn_st_info info;
        assert_int_equal(attn_safetensors_info_at(st, i, &info), ATTN_OK);
        assert_string_equal(info.name, order[i]);
    }
    attn_st_info info;
    assert_int_equal(attn_safetensors_info(st, "f64", &info), ATTN_OK);
    assert_int_equal(info.dtype, ATTN_DTYPE_F64);
    assert_int_equal(info.begin, 42); /* unaligned on purpose */
    assert_int_equal(info.end, 66);

    attn_tensor t;
    assert_int_equal(attn_safetensors_read(st, "f32", &t), ATTN_OK);
    assert_int_equal(t.shape[0], 2);
    assert_int_equal(t.shape[1], 3);
    assert_memory_equal(t.data, ((float[]){0, 1, -2.5f, 3.25f, 1e-3f, 65504}), 6 * sizeof(float));
    attn_tensor_free(&t);
    assert_int_equal(attn_safetensors_read(st, "f16", &t), ATTN_OK);
    assert_memory_equal(t.data, ((float[]){1, -2, INFINITY, 0x1p-24f, 0.333251953125f}),
                        5 * sizeof(float));
    attn_tensor_free(&t);
    assert_int_equal(attn_safetensors_read(st, "bf16", &t), ATTN_OK);
    assert_memory_equal(t.data, ((float[]){1, -3.5f, 0.15625f, 256}), 4 * sizeof(float));
    attn_tensor_free(&t);
    assert_int_equal(attn_safetensors_read(st, "f64", &t), ATTN_OK);
    assert_memory_equal(t.data, ((float[]){0.1f, -INFINITY, 3}), 3 * sizeof(float));
    attn_tensor_free(&t);
    assert_int_equal(attn_safetensors_read(st, "mask", &t), ATTN_OK);
    assert_memory_equal(t.data, ((float[]){1, 0, 0, 1}), 4 * sizeof(float));
    attn_tensor_free(&t);
    assert_int_equal(attn_safetensors_read(st, "scalar", &t), ATTN_OK);
    assert_int_equal(t.ndim, 0);
    assert_true(t.data[0] == 42.0f);
    attn_tensor_free(&t);
    assert_int_equal(attn_safetensors_read(st, "empty", &t), ATTN_OK);
    assert_int_equal(t.numel, 0);
    assert_int_equal(t.shape[1], 3);
    attn_tensor_free(&t);
    attn_safetensors_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_writer_exact_bytes),
        cmocka_unit_test(test_writer_refuses),
        cmocka_unit_test(test_python_fixture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
