/* test_safetensors.c - the safetensors reader and writer and the atomic file
 * writer: round trips, bit-exact dtype conversion, a fixture made by an
 * independent (Python) writer, and every malformed file the reader refuses,
 * each with its status and the words of its one-line message. */
#include "test_support.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attn/fileio.h"
#include "attn/safetensors.h"

/* ---- helpers ------------------------------------------------------------- */

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* 8-byte little-endian length, the header as given, then the data. */
static unsigned char *make_st(const char *header, const void *data, size_t dlen, size_t *size)
{
    size_t hlen = strlen(header);
    unsigned char *b = malloc(8 + hlen + dlen + 1);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(b + 8, header, hlen);
    if (dlen) memcpy(b + 8 + hlen, data, dlen);
    *size = 8 + hlen + dlen;
    return b;
}

/* The message is one line that starts with the file name. */
static void assert_one_line(const char *file)
{
    const char *msg = attn_last_error();
    if (strchr(msg, '\n')) fail_msg("message has a newline: %s", msg);
    if (strncmp(msg, file, strlen(file)) != 0 || msg[strlen(file)] != ':')
        fail_msg("message does not start with '%s:': %s", file, msg);
}

static void assert_msg_has(const char *words)
{
    if (!strstr(attn_last_error(), words))
        fail_msg("expected '%s' in: %s", words, attn_last_error());
}

/* Opens one header + zero-filled data as "w.safetensors" and expects a failure. */
static void expect_refused(const char *header, size_t dlen, attn_status want, const char *words)
{
    unsigned char *zeros = calloc(dlen + 1, 1);
    size_t size;
    unsigned char *buf = make_st(header, zeros, dlen, &size);
    attn_safetensors *st = (attn_safetensors *)1;
    attn_status got = attn_safetensors_open_memory(&st, buf, size, "w.safetensors");
    if (got != want)
        fail_msg("header %s: status %d (%s), expected %d", header, got, attn_last_error(), want);
    assert_null(st);
    assert_one_line("w.safetensors");
    assert_msg_has(words);
    free(buf);
    free(zeros);
}

static size_t count_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* A fresh empty directory under the test tmpdir. */
static const char *fresh_dir(const char *name)
{
    static char paths[4][512];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, 512, "%.300s/%.100s", test_tmpdir(), name);
    assert_int_equal(mkdir(p, 0755), 0);
    return p;
}

static char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *b = malloc(1 << 16);
    assert_non_null(b);
    *n = fread(b, 1, 1 << 16, f);
    fclose(f);
    return b;
}

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

/* ---- refusals --------------------------------------------------------------- */

#define T(name, dtype, shape, b, e) \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" b "," e "]}"

static void test_malformed_headers(void **state)
{
    (void)state;
    static const struct {
        const char *header;
        size_t dlen;
        const char *words;
    } cases[] = {
        /* JSON itself */
        {"{\"a\":", 0, "header is not valid JSON near byte 5"},
        {"{} x", 0, "header is not valid JSON near byte 3"},
        {"", 0, "header is not valid JSON near byte 0"},
        {"{\"\xff\":1}", 0, "header is not valid UTF-8 at byte 2"},
        {"{\"\xc0\xaf\":1}", 0, "not valid UTF-8"}, /* overlong '/' */
        {"[1,2]", 0, "header must be a JSON object, found an array"},
        {"\"str\"", 0, "header must be a JSON object, found a string"},
        /* an entry */
        {"{\"x\":3}", 0, "tensor 'x': expected an object"},
        {"{\"x\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'x': missing \"dtype\""},
        {"{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor 'x': missing \"shape\""},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor 'x': missing \"data_offsets\""},
        {"{\"x\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "tensor 'x': duplicate key \"dtype\""},
        {"{\"x\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "tensor 'x': \"dtype\" must be a string, found 4"},
        {"{" T("x", "F4", "[1]", "0", "4") "}", 4, "tensor 'x': unknown dtype 'F4'"},
        {"{" T("x", "f32", "[1]", "0", "4") "}", 4, "unknown dtype 'f32'"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8,
         "tensor 'x': \"shape\" must be an array, found a string"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{}}}", 4,
         "tensor 'x': \"data_offsets\" must be an array [begin, end], found an object"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
         "\"data_offsets\" must be an array [begin, end], found 1 values"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4, "found 3 values"},
        /* numbers */
        {"{" T("x", "F32", "[-1]", "0", "4") "}", 4,
         "tensor 'x': shape[0] must be a non-negative integer <= 2^53, found -1"},
        {"{" T("x", "F32", "[2,1.5]", "0", "4") "}", 4, "shape[1] must be a non-negative integer"},
        {"{" T("x", "F32", "[9007199254740994]", "0", "4") "}", 4, "found 9007199254740994"},
        {"{" T("x", "F32", "[1e400]", "0", "4") "}", 4, "found inf"},
        {"{" T("x", "F32", "[\"2\"]", "0", "8") "}", 8, "shape[0] must be a non-negative integer"},
        {"{" T("x", "F32", "[true]", "0", "8") "}", 8, "found a boolean"},
        {"{" T("x", "F32", "[1]", "-4", "0") "}", 4,
         "tensor 'x': data_offsets begin must be a non-negative integer <= 2^53, found -4"},
        {"{" T("x", "F32", "[1]", "0", "4.5") "}", 4, "data_offsets end must be a non-negative"},
        {"{" T("x", "F32", "[1]", "0", "null") "}", 4, "data_offsets end must be"},
        {"{" T("x", "U8", "[4294967296,4294967296]", "0", "4") "}", 4,
         "tensor 'x': shape [4294967296, 4294967296] overflows the element count"},
        {"{" T("x", "F64", "[2147483648,2147483648]", "0", "4") "}", 4,
         "shape [2147483648, 2147483648] of F64 overflows the byte count"},
        {"{" T("x", "F32", "[1,2,1,1,1,1,1,1,1]", "0", "8") "}", 8,
         "shape has 9 dimensions, more than the 8 supported"},
        /* ranges */
        {"{" T("x", "F32", "[1]", "8", "4") "}", 8,
         "tensor 'x': data_offsets [8, 4]: begin is past end"},
        {"{" T("x", "F32", "[2,2]", "0", "12") "}", 12,
         "tensor 'x': data_offsets [0, 12] hold 12 bytes, but shape [2, 2] of F32 needs 16"},
        {"{" T("x", "F16", "[]", "0", "4") "}", 4, "hold 4 bytes, but shape [] of F16 needs 2"},
        {"{" T("x", "F32", "[0]", "0", "4") "}", 4, "hold 4 bytes, but shape [0] of F32 needs 0"},
        {"{" T("a", "F32", "[1]", "0", "4") "," T("b", "F32", "[1]", "8", "12") "}", 12,
         "tensor 'b': data_offsets [8, 12] leave a gap of 4 bytes after tensor 'a' [0, 4]"},
        {"{" T("b", "F32", "[2]", "4", "12") "," T("a", "F32", "[2]", "0", "8") "}", 12,
         "tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]"},
        {"{" T("a", "F32", "[2]", "0", "8") "," T("b", "F32", "[2]", "0", "8") "}", 8,
         "tensor 'b': data_offsets [0, 8] overlap tensor 'a' [0, 8]"},
        {"{" T("a", "F32", "[1]", "4", "8") "}", 8,
         "tensor 'a': data_offsets [4, 8] do not begin at 0"},
        {"{" T("a", "F32", "[1]", "0", "4") "}", 8,
         "the tensors end at byte 4 of the data buffer, but it holds 8 bytes"},
        {"{" T("a", "F32", "[2]", "0", "8") "}", 4,
         "the tensors end at byte 8 of the data buffer, but it holds 4 bytes"},
        {"{}", 4, "the tensors end at byte 0 of the data buffer, but it holds 4 bytes"},
        /* names and metadata */
        {"{" T("a", "F32", "[1]", "0", "4") "," T("a", "F32", "[1]", "0", "4") "}", 4,
         "duplicate tensor name 'a'"},
        {"{\"__metadata__\":\"x\"}", 0,
         "\"__metadata__\" must be an object of strings, found a string"},
        {"{\"__metadata__\":[]}", 0, "must be an object of strings, found an array"},
        {"{\"__metadata__\":{\"k\":1}}", 0,
         "\"__metadata__\" value of 'k' must be a string, found 1"},
        {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate \"__metadata__\" key 'k'"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate \"__metadata__\" entry"},
        /* a name with a newline is shown without it: the message stays one line */
        {"{\"a\\nb\":3}", 0, "tensor 'a?b': expected an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_refused(cases[i].header, cases[i].dlen, ATTN_E_FORMAT, cases[i].words);
}

/* Failures of the framing itself, before any JSON. */
static void test_malformed_framing(void **state)
{
    (void)state;
    attn_safetensors *st;
    const unsigned char tiny[5] = {1, 0, 0, 0, 0};
    assert_int_equal(attn_safetensors_open_memory(&st, tiny, 5, "w.safetensors"), ATTN_E_FORMAT);
    assert_one_line("w.safetensors");
    assert_msg_has("file is 5 bytes, too short for the 8-byte header length");
    assert_int_equal(attn_safetensors_open_memory(&st, NULL, 0, "w.safetensors"), ATTN_E_FORMAT);
    assert_msg_has("file is 0 bytes");

    /* N = 100,000,001 */
    unsigned char big[16] = {0x01, 0xE1, 0xF5, 0x05};
    assert_int_equal(attn_safetensors_open_memory(&st, big, 16, "w.safetensors"), ATTN_E_FORMAT);
    assert_one_line("w.safetensors");
    assert_msg_has("header length 100000001 is over the limit of 100000000 bytes");
    /* N = 2^64 - 1 must not wrap anything. */
    memset(big, 0xFF, 8);
    assert_int_equal(attn_safetensors_open_memory(&st, big, 16, "w.safetensors"), ATTN_E_FORMAT);
    assert_msg_has("over the limit");

    unsigned char past[28] = {100};
    memcpy(past + 8, "{}", 2);
    assert_int_equal(attn_safetensors_open_memory(&st, past, 28, "w.safetensors"), ATTN_E_FORMAT);
    assert_one_line("w.safetensors");
    assert_msg_has("header length 100 runs past the end of the file (size 28)");

    /* A NUL inside the header (strlen-based make_st cannot build this). */
    unsigned char nul[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', 0, ' ', ' ', ' ', ' ', ' '};
    assert_int_equal(attn_safetensors_open_memory(&st, nul, 16, "w.safetensors"), ATTN_E_FORMAT);
    assert_msg_has("header is not valid JSON near byte 2 (file offset 10)");

    /* Spaces after the JSON are padding, and fine. */
    unsigned char padded[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    assert_int_equal(attn_safetensors_open_memory(&st, padded, 16, "w.safetensors"), ATTN_OK);
    attn_safetensors_close(st);
}

static void test_file_errors(void **state)
{
    (void)state;
    attn_safetensors *st;
    char path[600];
    snprintf(path, sizeof path, "%s/absent.safetensors", test_tmpdir());
    assert_int_equal(attn_safetensors_open(&st, path), ATTN_E_IO);
    assert_null(st);
    assert_one_line(path);
    assert_msg_has("cannot open: No such file or directory");

    assert_int_equal(attn_safetensors_open(&st, test_tmpdir()), ATTN_E_IO);
    assert_msg_has("not a regular file");

    const char *shortf = write_tmp("short.safetensors", "abc");
    assert_int_equal(attn_safetensors_open(&st, shortf), ATTN_E_FORMAT);
    assert_one_line(shortf);
    assert_msg_has("file is 3 bytes, too short");
    const char *emptyf = write_tmp("empty.safetensors", "");
    assert_int_equal(attn_safetensors_open(&st, emptyf), ATTN_E_FORMAT);
    assert_msg_has("file is 0 bytes");

    /* A malformed file read from disk names the path. */
    char badf[600];
    snprintf(badf, sizeof badf, "%s/bad.safetensors", test_tmpdir());
    FILE *f = fopen(badf, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite("\x02\0\0\0\0\0\0\0[]", 1, 10, f), 10);
    fclose(f);
    assert_int_equal(attn_safetensors_open(&st, badf), ATTN_E_FORMAT);
    assert_one_line(badf);
    assert_msg_has("header must be a JSON object");
}

static void test_missing_tensor_and_rank(void **state)
{
    (void)state;
    const char *header = "{" T("x5", "F32", "[1,1,1,1,2]", "0", "8") "}";
    size_t size;
    unsigned char *buf = make_st(header, "\0\0\x80\x3f\0\0\0\x40", 8, &size);
    attn_safetensors *st;
    assert_int_equal(attn_safetensors_open_memory(&st, buf, size, "w.safetensors"), ATTN_OK);
    attn_tensor t;
    attn_st_info info;
    assert_int_equal(attn_safetensors_read(st, "out_proj.weight", &t), ATTN_E_NOTFOUND);
    assert_string_equal(attn_last_error(), "w.safetensors: no tensor 'out_proj.weight'");
    assert_null(t.data);
    assert_int_equal(attn_safetensors_info(st, "out_proj.weight", &info), ATTN_E_NOTFOUND);
    assert_string_equal(attn_last_error(), "w.safetensors: no tensor 'out_proj.weight'");

    /* A rank-5 tensor is a valid file, but does not fit an attn_tensor. */
    assert_int_equal(attn_safetensors_info(st, "x5", &info), ATTN_OK);
    assert_int_equal(info.ndim, 5);
    assert_int_equal(info.shape[4], 2);
    assert_int_equal(attn_safetensors_read(st, "x5", &t), ATTN_E_INVALID);
    assert_one_line("w.safetensors");
    assert_msg_has("tensor 'x5': rank 5");
    attn_safetensors_close(st);
    free(buf);

    /* Opening in memory without a name still gives a usable message. */
    buf = make_st("[]", NULL, 0, &size);
    assert_int_equal(attn_safetensors_open_memory(&st, buf, size, NULL), ATTN_E_FORMAT);
    assert_one_line("<memory>");
    free(buf);
    assert_int_equal(attn_safetensors_open_memory(&st, NULL, 8, "x"), ATTN_E_INVALID);
}

/* ---- atomic writes ---------------------------------------------------------- */

static void test_atomic_commit_and_abort(void **state)
{
    (void)state;
    const char *dir = fresh_dir("atomic");
    char path[600];
    snprintf(path, sizeof path, "%s/x.bin", dir);

    attn_atomic_file af;
    assert_int_equal(attn_atomic_open(&af, path), ATTN_OK);
    assert_non_null(af.f);
    /* The temporary file is beside the target, and the target not yet there. */
    assert_int_equal(strncmp(af.tmp_path, dir, strlen(dir)), 0);
    assert_int_equal(access(af.tmp_path, F_OK), 0);
    assert_int_equal(access(path, F_OK), -1);
    fputs("half", af.f);
    attn_atomic_abort(&af);
    assert_null(af.f);
    assert_int_equal(count_dir_entries(dir), 0);
    attn_atomic_abort(&af); /* twice is harmless */

    /* Commit replaces an existing file whole, keeping its permissions. */
    FILE *old = fopen(path, "w");
    assert_non_null(old);
    fputs("old", old);
    fclose(old);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(attn_atomic_open(&af, path), ATTN_OK);
    fputs("new contents", af.f);
    assert_int_equal(attn_atomic_commit(&af), ATTN_OK);
    attn_atomic_abort(&af); /* safe after commit */
    size_t n;
    char *got = read_all(path, &n);
    assert_int_equal(n, 12);
    assert_memory_equal(got, "new contents", 12);
    free(got);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0640);
    assert_int_equal(count_dir_entries(dir), 1);

    /* A new file gets the usual 0666 & ~umask, not mkstemp's 0600. */
    mode_t old_mask = umask(022);
    char path2[700];
    snprintf(path2, sizeof path2, "%s/y.bin", dir);
    assert_int_equal(attn_atomic_open(&af, path2), ATTN_OK);
    assert_int_equal(attn_atomic_commit(&af), ATTN_OK);
    umask(old_mask);
    assert_int_equal(stat(path2, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    assert_int_equal(count_dir_entries(dir), 2);

    /* A commit that cannot rename (the target is a directory) fails with
     * ATTN_E_IO and removes its temporary file. */
    char sub[700];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(attn_atomic_open(&af, sub), ATTN_OK);
    fputs("data", af.f);
    assert_int_equal(attn_atomic_commit(&af), ATTN_E_IO);
    assert_one_line(sub);
    assert_msg_has("cannot rename");
    assert_int_equal(count_dir_entries(dir), 3); /* x.bin, y.bin, sub */
    assert_int_equal(count_dir_entries(sub), 0);
    assert_int_equal(attn_atomic_commit(&af), ATTN_E_INVALID); /* not open any more */
}

static void test_atomic_open_failures(void **state)
{
    (void)state;
    attn_atomic_file af;
    /* A relative path in a directory that does not exist. */
    const char *rel = "attn-test-no-such-dir-7f3a/x.bin";
    assert_int_equal(attn_atomic_open(&af, rel), ATTN_E_IO);
    assert_string_equal(attn_last_error(), "attn-test-no-such-dir-7f3a/x.bin: cannot create a file "
                                           "in 'attn-test-no-such-dir-7f3a': No such file or "
                                           "directory");
    assert_null(af.f);
    assert_null(af.tmp_path);
    assert_int_equal(access("attn-test-no-such-dir-7f3a", F_OK), -1);

    const char *dir = fresh_dir("openfail");
    char path[700];
    snprintf(path, sizeof path, "%s/missing/x.bin", dir);
    assert_int_equal(attn_atomic_open(&af, path), ATTN_E_IO);
    assert_one_line(path);
    assert_msg_has("/missing': No such file or directory");

    /* The "directory" is a regular file. */
    snprintf(path, sizeof path, "%s/file", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/file/x.bin", dir);
    assert_int_equal(attn_atomic_open(&af, path), ATTN_E_IO);
    assert_msg_has("Not a directory");

    /* A path that names a directory, not a file. */
    snprintf(path, sizeof path, "%s/", dir);
    assert_int_equal(attn_atomic_open(&af, path), ATTN_E_IO);
    assert_int_equal(attn_atomic_open(&af, ""), ATTN_E_INVALID);
    assert_int_equal(attn_atomic_open(&af, NULL), ATTN_E_INVALID);

    /* A directory without write permission (root ignores modes: skip then). */
    if (geteuid() != 0) {
        char ro[700];
        snprintf(ro, sizeof ro, "%s/ro", dir);
        assert_int_equal(mkdir(ro, 0555), 0);
        snprintf(path, sizeof path, "%.600s/x.bin", ro);
        assert_int_equal(attn_atomic_open(&af, path), ATTN_E_IO);
        assert_msg_has("Permission denied");
        assert_int_equal(count_dir_entries(ro), 0);
        chmod(ro, 0755);
    }
    /* Failed opens leave nothing behind ("file" is ours, "ro" too). */
    assert_int_equal(count_dir_entries(dir), geteuid() != 0 ? 2 : 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_writer_exact_bytes),
        cmocka_unit_test(test_writer_refuses),
        cmocka_unit_test(test_f16_all_values),
        cmocka_unit_test(test_dtype_conversion),
        cmocka_unit_test(test_dtype_names),
        cmocka_unit_test(test_python_fixture),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_malformed_framing),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_missing_tensor_and_rank),
        cmocka_unit_test(test_atomic_commit_and_abort),
        cmocka_unit_test(test_atomic_open_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
