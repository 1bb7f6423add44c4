/* test_safetensors_dtype.c - bit-exact conversion of every dtype the reader
 * takes (F16 for all 65536 values, BF16, F64, integers, BOOL) to float32. */
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

/* ---- dtype conversion ----------------------------------------------------- */

/* An independent F16 decoder, in double arithmetic (exact for halves). */
static float half_reference(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    double v;
    if (exp == 0) v = ldexp(mant, -24);
    else if (exp == 31) v = mant ? NAN : INFINITY;
    else v = ldexp(mant + 1024, exp - 25);
    return (float)(sign ? -v : v);
}

static void test_f16_all_values(void **state)
{
    (void)state;
    size_t dlen = 65536 * 2;
    unsigned char *data = malloc(dlen);
    assert_non_null(data);
    for (size_t i = 0; i < 65536; i++) {
        data[2 * i] = (unsigned char)i;
        data[2 * i + 1] = (unsigned char)(i >> 8);
    }
    char header[128];
    snprintf(header, sizeof header,
             "{\"h\":{\"dtype\":\"F16\",\"shape\":[65536],\"data_offsets\":[0,%zu]}}", dlen);
    size_t size;
    unsigned char *buf = make_st(header, data, dlen, &size);
    attn_safetensors *st;
    assert_int_equal(attn_safetensors_open_memory(&st, buf, size, "h.safetensors"), ATTN_OK);
    attn_tensor t;
    assert_int_equal(attn_safetensors_read(st, "h", &t), ATTN_OK);
    for (uint32_t i = 0; i < 65536; i++) {
        uint32_t got = bits_of(t.data[i]);
        uint32_t exp = ((i >> 10) & 0x1F) == 31 && (i & 0x3FF)
                           ? (uint32_t)(i & 0x8000) << 16 | 0x7F800000u | (i & 0x3FF) << 13
                           : bits_of(half_reference((uint16_t)i));
        if (got != exp) fail_msg("F16 0x%04x: got 0x%08x, expected 0x%08x", i, got, exp);
    }
    attn_tensor_free(&t);
    attn_safetensors_close(st);
    free(buf);
    free(data);
}

/* One tensor `name` of `dtype` with `n` elements from raw bytes. */
static void read_one(const char *dtype, const void *bytes, size_t nbytes, size_t n,
                     attn_tensor *out)
{
    char header[160];
    snprintf(header, sizeof header,
             "{\"t\":{\"dtype\":\"%s\",\"shape\":[%zu],\"data_offsets\":[0,%zu]}}", dtype, n,
             nbytes);
    size_t size;
    unsigned char *buf = make_st(header, bytes, nbytes, &size);
    attn_safetensors *st;
    if (attn_safetensors_open_memory(&st, buf, size, "d.safetensors") != ATTN_OK)
        fail_msg("%s: %s", dtype, attn_last_error());
    assert_int_equal(attn_safetensors_read(st, "t", out), ATTN_OK);
    assert_int_equal(out->numel, n);
    attn_safetensors_close(st);
    free(buf);
}

static void expect_bits(const attn_tensor *t, const uint32_t *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (bits_of(t->data[i]) != want[i])
            fail_msg("%s[%zu]: got 0x%08x (%g), expected 0x%08x", what, i, bits_of(t->data[i]),
                     t->data[i], want[i]);
}

static void test_dtype_conversion(void **state)
{
    (void)state;
    attn_tensor t;

    /* F16: 1, -2, inf, -inf, 2^-24 (smallest subnormal), largest subnormal,
     * 65504, -0, a quiet NaN with a payload. */
    const unsigned char f16[] = {0x00, 0x3C, 0x00, 0xC0, 0x00, 0x7C, 0x00, 0xFC, 0x01, 0x00,
                                 0xFF, 0x03, 0xFF, 0x7B, 0x00, 0x80, 0x01, 0x7E};
    const uint32_t f16_want[] = {0x3F800000, 0xC0000000, 0x7F800000, 0xFF800000, 0x33800000,
                                 0x387FC000, 0x477FE000, 0x80000000, 0x7FC02000};
    read_one("F16", f16, sizeof f16, 9, &t);
    expect_bits(&t, f16_want, 9, "F16");
    assert_true(t.data[4] == ldexpf(1.0f, -24));
    attn_tensor_free(&t);

    /* BF16 is the top half of a float32, NaN payloads and subnormals too. */
    const unsigned char bf16[] = {0x80, 0x3F, 0x40, 0xC0, 0x80, 0x7F, 0x01, 0x00, 0xC1, 0x7F};
    const uint32_t bf16_want[] = {0x3F800000, 0xC0400000, 0x7F800000, 0x00010000, 0x7FC10000};
    read_one("BF16", bf16, sizeof bf16, 5, &t);
    expect_bits(&t, bf16_want, 5, "BF16");
    attn_tensor_free(&t);

    /* F64 rounds to nearest, ties to even; too large becomes inf. */
    const double f64[] = {0.1, -2.5, 1e300, 1.0 + 0x1p-24, 1.0 + 3 * 0x1p-24, 1e-50};
    unsigned char f64b[sizeof f64];
    for (size_t i = 0; i < 6; i++) {
        uint64_t u;
        memcpy(&u, &f64[i], 8);
        for (int k = 0; k < 8; k++) f64b[8 * i + k] = (unsigned char)(u >> (8 * k));
    }
    const uint32_t f64_want[] = {0x3DCCCCCD, 0xC0200000, 0x7F800000, 0x3F800000, 0x3F800002, 0};
    read_one("F64", f64b, sizeof f64b, 6, &t);
    expect_bits(&t, f64_want, 6, "F64");
    attn_tensor_free(&t);

    const unsigned char boolean[] = {1, 0, 1, 0, 2};
    read_one("BOOL", boolean, 5, 5, &t);
    assert_memory_equal(t.data, ((float[]){1, 0, 1, 0, 1}), 5 * sizeof(float));
    attn_tensor_free(&t);

    const unsigned char u8[] = {0, 255, 7};
    read_one("U8", u8, 3, 3, &t);
    assert_memory_equal(t.data, ((float[]){0, 255, 7}), 3 * sizeof(float));
    attn_tensor_free(&t);

    const unsigned char i8[] = {0x80, 0x7F, 0xFF};
    read_one("I8", i8, 3, 3, &t);
    assert_memory_equal(t.data, ((float[]){-128, 127, -1}), 3 * sizeof(float));
    attn_tensor_free(&t);

    const unsigned char i16[] = {0x00, 0x80, 0xFE, 0xFF}, u16[] = {0xFF, 0xFF, 0x34, 0x12};
    read_one("I16", i16, 4, 2, &t);
    assert_memory_equal(t.data, ((float[]){-32768, -2}), 2 * sizeof(float));
    attn_tensor_free(&t);
    read_one("U16", u16, 4, 2, &t);
    assert_memory_equal(t.data, ((float[]){65535, 0x1234}), 2 * sizeof(float));
    attn_tensor_free(&t);

    const unsigned char i32[] = {0, 0, 0, 0x80, 5, 0, 0, 0}, u32[] = {0xFF, 0xFF, 0xFF, 0xFF};
    read_one("I32", i32, 8, 2, &t);
    assert_memory_equal(t.data, ((float[]){-2147483648.0f, 5}), 2 * sizeof(float));
    attn_tensor_free(&t);
    read_one("U32", u32, 4, 1, &t);
    assert_true(t.data[0] == 4294967296.0f);
    attn_tensor_free(&t);

    const unsigned char i64[] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                 0, 0, 0, 0, 0, 1, 0, 0};
    const unsigned char u64[] = {0, 0, 0, 0, 0, 0, 0, 0x80};
    read_one("I64", i64, 16, 2, &t);
    assert_memory_equal(t.data, ((float[]){-1, 1099511627776.0f}), 2 * sizeof(float));
    attn_tensor_free(&t);
    read_one("U64", u64, 8, 1, &t);
    assert_true(t.data[0] == 9223372036854775808.0f);
    attn_tensor_free(&t);

    /* float8: e5m2 is a truncated half; e4m3fn has bias 7 and no inf. */
    const unsigned char e5m2[] = {0x3C, 0x7C, 0xC0, 0x01};
    read_one("F8_E5M2", e5m2, 4, 4, &t);
    assert_memory_equal(t.data, ((float[]){1, INFINITY, -2, 0x1p-16f}), 4 * sizeof(float));
    attn_tensor_free(&t);
    const unsigned char e4m3[] = {0x38, 0x7E, 0x01, 0xB8, 0x7F};
    read_one("F8_E4M3", e4m3, 5, 5, &t);
    assert_memory_equal(t.data, ((float[]){1, 448, 0x1p-9f, -1}), 4 * sizeof(float));
    assert_true(isnan(t.data[4]));
    attn_tensor_free(&t);
}

static void test_dtype_names(void **state)
{
    (void)state;
    assert_string_equal(attn_dtype_name(ATTN_DTYPE_BF16), "BF16");
    assert_string_equal(attn_dtype_name(ATTN_DTYPE_F8_E4M3), "F8_E4M3");
    assert_int_equal(attn_dtype_size(ATTN_DTYPE_F64), 8);
    assert_int_equal(attn_dtype_size(ATTN_DTYPE_BOOL), 1);
    assert_int_equal(attn_dtype_size(ATTN_DTYPE_BF16), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_all_values),
        cmocka_unit_test(test_dtype_conversion),
        cmocka_unit_test(test_dtype_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
