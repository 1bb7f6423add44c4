/* test_safetensors_bad.c - every malformed safetensors file the reader
 * refuses, each with its status and the words of its one-line message; file
 * errors; and the atomic file writer (commit, abort, failures). */
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

/* ---- refusals --------------------------------------------------------------- */

#define T(name, dtype, shape, b, e) \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" b "," e "]}"

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
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_malformed_framing),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_missing_tensor_and_rank),
        cmocka_unit_test(test_atomic_commit_and_abort),
        cmocka_unit_test(test_atomic_open_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
