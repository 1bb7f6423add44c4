/* test_cli_mha_bad.c - `attn mha` on bad input, run as the real program.
 *
 * One small valid setup (weights, query, key, value) is made once; each case
 * replaces some of its files by a bad one (a tensor of the wrong rank, width
 * or batch, a mask of the wrong shape or dtype, weights with a tensor missing
 * or of the wrong shape, a safetensors file corrupted byte by byte) or adds
 * bad options, and expects exit 2, nothing on stdout and one line on stderr
 * that names the file and says what was expected or found. The output
 * directory must stay empty through every failing run, and an existing output
 * is left as it was.
 */
#include "cli_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn/attn.h"
#include "attn/mha.h"
#include "attn/mha_io.h"

/* ---- the valid setup --------------------------------------------------------------- */

/* W (E = 4, H = 2, packed, num_heads in the metadata), Q (2, 3, 4), K and V
 * (2, 5, 4); and an empty output directory. */
static struct base {
    int ready;
    char w[PATH_LEN], q[PATH_LEN], k[PATH_LEN], v[PATH_LEN];
    char outdir[PATH_LEN], out[PATH_LEN];
} B;

static void base_files(void)
{
    if (B.ready) return;
    attn_mha_config cfg = attn_mha_default_config(4, 2);
    attn_mha *m = NULL;
    if (attn_mha_create(&m, &cfg) != ATTN_OK) fail_msg("attn_mha_create: %s", attn_last_error());
    assert_int_equal(attn_mha_init(m, 42), ATTN_OK);
    tmp_path(B.w, "base-w.safetensors");
    if (attn_mha_save_safetensors(m, B.w) != ATTN_OK)
        fail_msg("attn_mha_save_safetensors: %s", attn_last_error());
    attn_mha_free(m);
    static const struct { const char *file, *name; size_t s; uint32_t seed; } in[3] = {
        {"base-q.safetensors", "query", 3, 1}, {"base-k.safetensors", "key", 5, 2},
        {"base-v.safetensors", "value", 5, 3}};
    char *paths[3] = {B.q, B.k, B.v};
    for (int i = 0; i < 3; i++) {
        attn_tensor t = random_tensor(3, 2, in[i].s, 4, 1, in[i].seed);
        tmp_path(paths[i], in[i].file);
        write_f32(paths[i], in[i].name, &t);
        attn_tensor_free(&t);
    }
    tmp_dir(B.outdir, "bad-out");
    snprintf(B.out, sizeof B.out, "%.400s/o.safetensors", B.outdir);
    B.ready = 1;

    /* The setup itself works. */
    char args[ARGS_LEN], ok_out[PATH_LEN];
    tmp_path(ok_out, "base-ok.out.safetensors");
    snprintf(args, sizeof args, "mha --weights '%s' --query '%s' --key '%s' --value '%s' --out '%s'",
             B.w, B.q, B.k, B.v, ok_out);
    free(run_ok(args));
    attn_safetensors *o = open_st(ok_out);
    attn_st_info info;
    assert_int_equal(attn_safetensors_info(o, "attn_weights", &info), ATTN_OK);
    assert_int_equal(info.ndim, 4);
    assert_int_equal(info.shape[0], 2);
    assert_int_equal(info.shape[1], 2);
    assert_int_equal(info.shape[2], 3);
    assert_int_equal(info.shape[3], 5);
    attn_safetensors_close(o);
}

static void expect_outdir_empty(void)
{
    char *listing = list_dir(B.outdir);
    if (listing[0]) fail_msg("a failed run left files in %s:\n%s", B.outdir, listing);
    free(listing);
}

/* `--weights W --query Q --key K --value V <extra> --out O` with the given
 * replacements (NULL: the base file). */
static void base_args(char *args, const char *w, const char *q, const char *k, const char *v,
                      const char *extra)
{
    snprintf(args, ARGS_LEN, "--weights '%s' --query '%s' --key '%s' --value '%s' %s --out '%s'",
             w ? w : B.w, q ? q : B.q, k ? k : B.k, v ? v : B.v, extra ? extra : "", B.out);
}

/* ---- the table: a bad file in one or two places --------------------------------------
 * Slots: 'w' weights, 'q' query, 'k' key, 'v' value, 'm' --attn-mask,
 * 'p' --key-padding-mask. */

typedef enum {
    BF_NONE,    /* (no file: an unused entry) */
    BF_TENSOR,  /* a random tensor: F32 through the library, BOOL / U8 by hand */
    BF_ST,      /* a safetensors header by hand, then data_len bytes of data */
    BF_BYTES,   /* data_len bytes of data, nothing else */
    BF_MISSING, /* a path where nothing is */
    BF_DIR      /* a directory */
} bad_kind;

typedef struct bad_file {
    bad_kind kind;
    char slot;
    const char *file; /* under the temporary directory */
    const char *dtype;
    int ndim;
    size_t d[4];
    uint32_t seed;
    const char *header;
    const void *data; /* NULL: zeros */
    size_t data_len;
} bad_file;

typedef struct bad_case {
    bad_file files[2];  /* slot 0: unused */
    const char *extra;  /* options, or NULL */
    char names;         /* the slot whose file the message must name */
    const char *also;   /* slots whose files it must name too, or NULL */
    const char *frags[6]; /* NULL-terminated */
} bad_case;

static void write_bad_file(const bad_file *f, char *path)
{
    static const char *const names[] = {"weights", "query", "key", "value", "mask", "kpm"};
    tmp_path(path, f->file);
    void *zeros = calloc(f->data_len ? f->data_len : 1, 1);
    assert_non_null(zeros);
    const void *data = f->data ? f->data : zeros;
    if (f->kind == BF_ST) write_st_bytes(path, f->header, data, f->data_len);
    if (f->kind == BF_BYTES) write_bytes(path, data, f->data_len);
    if (f->kind == BF_DIR) tmp_dir(path, f->file);
    free(zeros);
    if (f->kind != BF_TENSOR) return;
    attn_tensor t = random_tensor(f->ndim, f->d[0], f->d[1], f->d[2], f->d[3], f->seed);
    if (strcmp(f->dtype, "F32") == 0) write_f32(path, names[strchr("wqkvmp", f->slot) - "wqkvmp"], &t);
    else write_mask_bytes(path, f->dtype, &t);
    attn_tensor_free(&t);
}

static void run_bad_case(const bad_case *c)
{
    char paths[6][PATH_LEN] = {{0}}, extra[3 * PATH_LEN], args[ARGS_LEN];
    static const char slots[] = "wqkvmp";
    for (int i = 0; i < 2 && c->files[i].kind != BF_NONE; i++)
        write_bad_file(&c->files[i], paths[strchr(slots, c->files[i].slot) - slots]);
    const char *base[6] = {B.w, B.q, B.k, B.v, NULL, NULL};
    const char *path[6];
    for (int i = 0; i < 6; i++) path[i] = paths[i][0] ? paths[i] : base[i];
    snprintf(extra, sizeof extra, "%s", c->extra ? c->extra : "");
    if (path[4]) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " --attn-mask '%s'", path[4]);
    if (path[5])
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " --key-padding-mask '%s'", path[5]);
    base_args(args, paths[0][0] ? paths[0] : NULL, paths[1][0] ? paths[1] : NULL,
              paths[2][0] ? paths[2] : NULL, paths[3][0] ? paths[3] : NULL, extra);
    const char *frags[12];
    size_t n = 0;
    for (const char *s = c->also; s && *s; s++) frags[n++] = path[strchr(slots, *s) - slots];
    for (size_t i = 0; i < 6 && c->frags[i]; i++) frags[n++] = c->frags[i];
    frags[n] = NULL;
    expect_bad_frags("mha", args, path[strchr(slots, c->names) - slots], frags);
    expect_outdir_empty();
}

#define F32(slot, file, nd, a, b, c_, d_, seed) {BF_TENSOR, slot, file, "F32", nd, {a, b, c_, d_}, seed, NULL, NULL, 0}
#define MASK(slot, file, dt, nd, a, b, c_, d_, seed) \
    {BF_TENSOR, slot, file, dt, nd, {a, b, c_, d_}, seed, NULL, NULL, 0}
#define ST(slot, file, header, data, len) {BF_ST, slot, file, NULL, 0, {0}, 0, header, data, len}
#define BYTES(slot, file, data, len) {BF_BYTES, slot, file, NULL, 0, {0}, 0, NULL, data, len}
#define MISSING(slot, file) {BF_MISSING, slot, file, NULL, 0, {0}, 0, NULL, NULL, 0}
#define DIRECTORY(slot, file) {BF_DIR, slot, file, NULL, 0, {0}, 0, NULL, NULL, 0}
#define NOFILE {BF_NONE, 0, NULL, NULL, 0, {0}, 0, NULL, NULL, 0}

static const float D3[3] = {1, 2, 3};
/* A header length of 1000 in a 16-byte file. */
static const unsigned char HLEN_PAST_END[16] = {0xE8, 0x03, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};

static const bad_case BAD_CASES[] = {
    /* --num-heads that does not divide E, nor one larger than E. */
    {{NOFILE, NOFILE}, "--num-heads 3", 'w', NULL, {"divisible", "3"}},
    {{NOFILE, NOFILE}, "--num-heads 8", 'w', NULL, {"divisible"}},
    /* Query rank 4 and 1; a key of rank 4 likewise names the key file. */
    {{F32('q', "rank4-q.safetensors", 4, 1, 2, 3, 4, 5), NOFILE}, NULL, 'q', NULL, {"[1, 2, 3, 4]", "2-D", "3-D"}},
    {{F32('q', "rank1-q.safetensors", 1, 4, 1, 1, 1, 6), NOFILE}, NULL, 'q', NULL, {"[4]", "2-D"}},
    {{F32('k', "rank4-k.safetensors", 4, 2, 5, 4, 1, 7), NOFILE}, NULL, 'k', NULL, {"[2, 5, 4, 1]"}},
    /* A query of the wrong width (batched, unbatched); a key or value. */
    {{F32('q', "dim5-q.safetensors", 3, 2, 3, 5, 1, 8), NOFILE}, NULL, 'q', "w", {"embedding dimension 4", "found 5"}},
    {{F32('q', "dim5-unbatched-q.safetensors", 2, 3, 5, 1, 1, 9), NOFILE}, NULL, 'q', NULL,
     {"embedding dimension 4", "found 5"}},
    {{F32('k', "dim3-kv.safetensors", 3, 2, 5, 3, 1, 10), NOFILE}, NULL, 'k', NULL, {"key dimension 4", "found 3"}},
    {{F32('v', "dim3-kv.safetensors", 3, 2, 5, 3, 1, 10), NOFILE}, NULL, 'v', NULL, {"value dimension 4", "found 3"}},
    /* Key and value of different S; of a different N than the query; of
     * different N from each other. */
    {{F32('v', "s6-v.safetensors", 3, 2, 6, 4, 1, 11), NOFILE}, NULL, 'v', "k", {"[2, 5, 4]", "[2, 6, 4]"}},
    {{F32('k', "n3-k.safetensors", 3, 3, 5, 4, 1, 12), F32('v', "n3-v.safetensors", 3, 3, 5, 4, 1, 13)}, NULL, 'k',
     "v", {"[3, 5, 4]", "N = 2"}},
    {{F32('v', "n3-v.safetensors", 3, 3, 5, 4, 1, 13), NOFILE}, NULL, 'v', "k", {NULL}},
    /* attn_mask: (L, S) = (3, 5) or (N*H, L, S) = (4, 3, 5) expected; 3-D with
     * N instead of N*H; a bool mask transposed. */
    {{F32('m', "mask-3x4.safetensors", 2, 3, 4, 1, 1, 14), NOFILE}, NULL, 'm', NULL,
     {"attn_mask", "[3, 4]", "[3, 5]", "[4, 3, 5]"}},
    {{F32('m', "mask-2x3x5.safetensors", 3, 2, 3, 5, 1, 15), NOFILE}, NULL, 'm', NULL, {"attn_mask", "[2, 3, 5]"}},
    {{MASK('m', "mask-bool-5x3.safetensors", "BOOL", 2, 5, 3, 1, 1, 16), NOFILE}, NULL, 'm', NULL, {"[5, 3]"}},
    /* Masks of an integer dtype. */
    {{ST('m', "mask-i32.safetensors", "{\"mask\":{\"dtype\":\"I32\",\"shape\":[3,5],\"data_offsets\":[0,60]}}", NULL, 60),
      NOFILE}, NULL, 'm', NULL, {"I32", "bool", "float"}},
    {{ST('p', "kpm-i64.safetensors", "{\"kpm\":{\"dtype\":\"I64\",\"shape\":[2,5],\"data_offsets\":[0,80]}}", NULL, 80),
      NOFILE}, NULL, 'p', NULL, {"I64", "bool", "float"}},
    /* key_padding_mask (N, S) = (2, 5) expected. */
    {{F32('p', "kpm-2x4.safetensors", 2, 2, 4, 1, 1, 17), NOFILE}, NULL, 'p', NULL,
     {"key_padding_mask", "[2, 5]", "[2, 4]"}},
    {{MASK('p', "kpm-2x5x1.safetensors", "U8", 3, 2, 5, 1, 1, 18), NOFILE}, NULL, 'p', NULL,
     {"key_padding_mask", "[2, 5, 1]"}},
    /* Corrupt files, byte by byte. */
    {{ST('q', "offsets-past-end.safetensors",
          "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", D3, 4), NOFILE}, NULL, 'q', NULL,
     {"8", "4 bytes"}},
    {{ST('q', "overlap.safetensors",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", D3, 12), NOFILE}, NULL, 'q', NULL,
     {"overlap"}},
    {{ST('q', "gap.safetensors",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", D3, 12), NOFILE}, NULL, 'q', NULL,
     {"gap"}},
    {{ST('q', "duplicate.safetensors",
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
          "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", D3, 8), NOFILE}, NULL, 'q', NULL,
     {"duplicate", "'a'"}},
    {{ST('q', "unknown-dtype.safetensors", "{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", D3, 4),
      NOFILE}, NULL, 'q', NULL, {"dtype", "F33"}},
    {{ST('q', "short-range.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", D3, 12),
      NOFILE}, NULL, 'q', NULL, {"12 bytes", "16"}},
    {{ST('q', "bad-json.safetensors", "{\"a\":{\"dtype\":\"F32\",", NULL, 0), NOFILE}, NULL, 'q', NULL, {"JSON"}},
    {{ST('q', "array.safetensors", "[1,2,3]", NULL, 0), NOFILE}, NULL, 'q', NULL, {"object", "array"}},
    {{BYTES('q', "hlen-past-end.safetensors", HLEN_PAST_END, 16), NOFILE}, NULL, 'q', NULL, {"1000", "past the end"}},
    {{BYTES('q', "empty.safetensors", "", 0), NOFILE}, NULL, 'q', NULL, {"0 bytes"}},
    {{BYTES('q', "three.safetensors", "abc", 3), NOFILE}, NULL, 'q', NULL, {"3 bytes"}},
    /* Not there; a directory. */
    {{MISSING('q', "no-such-query.safetensors"), NOFILE}, NULL, 'q', NULL, {"open"}},
    {{DIRECTORY('q', "a-directory.safetensors"), NOFILE}, NULL, 'q', NULL, {"regular file"}},
    /* Missing and corrupt weights files. */
    {{MISSING('w', "no-such-weights.safetensors"), NOFILE}, NULL, 'w', NULL, {NULL}},
    {{ST('w', "corrupt-weights.safetensors", "{\"in_proj_weight\":", NULL, 0), NOFILE}, NULL, 'w', NULL, {"JSON"}},
};

static void bad_files(void **state)
{
    (void)state;
    base_files();
    for (size_t i = 0; i < sizeof BAD_CASES / sizeof *BAD_CASES; i++) run_bad_case(&BAD_CASES[i]);
}

/* ---- weights with a tensor missing or of the wrong shape ------------------------------- */

/* A weights file from named tensors (the base layer's, changed). */
static void bad_weights_file(const char *file, const char *drop, const char *replace,
                             const attn_tensor *with, char *path)
{
    attn_safetensors *st = open_st(B.w);
    attn_tensor t[8];
    attn_st_named named[8];
    size_t n = 0;
    for (size_t i = 0; i < attn_safetensors_count(st); i++) {
        attn_st_info info;
        assert_int_equal(attn_safetensors_info_at(st, i, &info), ATTN_OK);
        if (drop && strcmp(info.name, drop) == 0) continue;
        named[n].name = info.name;
        if (replace && strcmp(info.name, replace) == 0) {
            named[n].tensor = with;
            t[n].data = NULL;
            t[n].owned = 0;
        } else {
            read_tensor(st, info.name, &t[n]);
            named[n].tensor = &t[n];
        }
        n++;
    }
    tmp_path(path, file);
    static const char *const keys[] = {"num_heads"}, *const vals[] = {"2"};
    if (attn_safetensors_write(path, named, n, keys, vals, 1) != ATTN_OK)
        fail_msg("attn_safetensors_write: %s", attn_last_error());
    for (size_t i = 0; i < n; i++)
        if (named[i].tensor == &t[i]) attn_tensor_free(&t[i]);
    attn_safetensors_close(st);
}

typedef struct bad_weights_case {
    const char *file, *drop, *replace; /* drop or replace a tensor of the base weights */
    int ndim;
    size_t d0, d1;
    uint32_t seed;
    const char *frags[4]; /* NULL-terminated */
} bad_weights_case;

static void bad_weights(void **state)
{
    (void)state;
    base_files();
    static const bad_weights_case cases[] = {
        {"no-out-proj.safetensors", "out_proj.weight", NULL, 0, 0, 0, 0, {"out_proj.weight"}},
        /* out_proj.weight (4, 3): 3 columns, 4 expected. */
        {"out-proj-4x3.safetensors", NULL, "out_proj.weight", 2, 4, 3, 19, {"out_proj.weight", "3"}},
        {"out-proj-1d.safetensors", NULL, "out_proj.weight", 1, 16, 1, 20, {"out_proj.weight", "[16]"}},
        /* in_proj_weight of the wrong shape (5 rows, not 3 x 4). */
        {"in-proj-5x4.safetensors", NULL, "in_proj_weight", 2, 5, 4, 21, {"in_proj_weight"}},
        /* out_proj.bias of the wrong length. */
        {"out-bias-3.safetensors", NULL, "out_proj.bias", 1, 3, 1, 22, {"out_proj.bias", "[3]", "[4]"}},
        /* No projection at all. */
        {"no-in-proj.safetensors", "in_proj_weight", NULL, 0, 0, 0, 0, {"in_proj_weight"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const bad_weights_case *c = &cases[i];
        char w[PATH_LEN], args[ARGS_LEN];
        attn_tensor bad = {0};
        if (c->replace) bad = random_tensor(c->ndim, c->d0, c->d1, 1, 1, c->seed);
        bad_weights_file(c->file, c->drop, c->replace, c->replace ? &bad : NULL, w);
        if (c->replace) attn_tensor_free(&bad);
        base_args(args, w, NULL, NULL, NULL, NULL);
        expect_bad_frags("mha", args, w, c->frags);
        expect_outdir_empty();
    }
}

/* ---- the rest: files of two tensors, options, empty sizes, the output path ------------- */

/* A bad query file: its path and the mentions. */
#define EXPECT_BAD_QUERY(qpath, ...)                                   \
    do {                                                               \
        char a_[ARGS_LEN];                                             \
        base_args(a_, NULL, qpath, NULL, NULL, NULL);                  \
        expect_bad("mha", a_, qpath, __VA_ARGS__, (const char *)NULL); \
        expect_outdir_empty();                                         \
    } while (0)

static void bad_two_tensors(void **state)
{
    (void)state;
    base_files();
    char q[PATH_LEN];
    attn_tensor a = random_tensor(3, 2, 3, 4, 1, 23), b = random_tensor(3, 2, 3, 4, 1, 24);
    attn_st_named named[2] = {{"a", &a}, {"b", &b}};
    tmp_path(q, "two-tensors.safetensors");
    if (attn_safetensors_write(q, named, 2, NULL, NULL, 0) != ATTN_OK)
        fail_msg("attn_safetensors_write: %s", attn_last_error());
    attn_tensor_free(&a);
    attn_tensor_free(&b);
    EXPECT_BAD_QUERY(q, "exactly one tensor", "2");
    /* No tensor at all. */
    tmp_path(q, "no-tensors.safetensors");
    write_st_bytes(q, "{}", NULL, 0);
    EXPECT_BAD_QUERY(q, "exactly one tensor", "0");
    /* The rule holds for masks too. */
    char args[ARGS_LEN], extra[PATH_LEN + 32];
    tmp_path(q, "two-tensors.safetensors");
    snprintf(extra, sizeof extra, "--attn-mask '%s'", q);
    base_args(args, NULL, NULL, NULL, NULL, extra);
    expect_bad("mha", args, q, "exactly one tensor", (const char *)NULL);
    expect_outdir_empty();
}

static void bad_heads_usage(void **state)
{
    (void)state;
    base_files();
    char args[ARGS_LEN];
    static const char *const bad[] = {"--num-heads 0", "--num-heads -2", "--num-heads abc",
                                      "--num-heads 2x", "--num-heads ''"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        base_args(args, NULL, NULL, NULL, NULL, bad[i]);
        expect_usage("mha", args, "--num-heads");
        expect_outdir_empty();
    }
}

/* L = 0 or S = 0: either a (degenerate) result, or bad input that names the file. */
static void bad_empty_sizes(void **state)
{
    (void)state;
    base_files();
    char q[PATH_LEN], k[PATH_LEN], v[PATH_LEN], args[ARGS_LEN], cmd[ARGS_LEN + 600];
    tmp_path(q, "empty-L-q.safetensors");
    write_st_bytes(q, "{\"q\":{\"dtype\":\"F32\",\"shape\":[2,0,4],\"data_offsets\":[0,0]}}",
                   NULL, 0);
    tmp_path(k, "empty-S-k.safetensors");
    write_st_bytes(k, "{\"k\":{\"dtype\":\"F32\",\"shape\":[2,0,4],\"data_offsets\":[0,0]}}",
                   NULL, 0);
    tmp_path(v, "empty-S-v.safetensors");
    write_st_bytes(v, "{\"v\":{\"dtype\":\"F32\",\"shape\":[2,0,4],\"data_offsets\":[0,0]}}",
                   NULL, 0);
    for (int which = 0; which < 2; which++) {
        const char *bad = which == 0 ? q : k;
        base_args(args, NULL, which == 0 ? q : NULL, which == 1 ? k : NULL,
                  which == 1 ? v : NULL, NULL);
        char full[ARGS_LEN + 8];
        snprintf(full, sizeof full, "mha %s", args);
        run_result r = run_attn(cmd, sizeof cmd, full);
        if (r.status == 0) {
            /* Accepted: then the output has the shapes that follow. */
            run_result_free(&r);
            attn_safetensors *o = open_st(B.out);
            attn_st_info info;
            attn_status st = attn_safetensors_info(o, "attn_weights", &info);
            attn_safetensors_close(o);
            unlink(B.out); /* the other tests want the directory empty */
            assert_int_equal(st, ATTN_OK);
            assert_int_equal(info.ndim, 4);
            assert_int_equal(info.shape[2], which == 0 ? 0 : 3);
            assert_int_equal(info.shape[3], which == 0 ? 5 : 0);
        } else {
            run_status(cmd, &r, 2);
            run_check(!r.out[0], &r, "%s: expected an empty stdout, got:\n%s", cmd, r.out);
            run_check(count_lines(r.err) == 1, &r,
                      "%s: expected exactly one line on stderr, got:\n%s", cmd, r.err);
            run_check(strstr(r.err, bad) != NULL, &r,
                      "%s: expected the message to name the empty file %s, got:\n%s", cmd, bad,
                      r.err);
            run_result_free(&r);
            expect_outdir_empty();
        }
    }
}

static void bad_usage(void **state)
{
    (void)state;
    base_files();
    char args[ARGS_LEN];
    snprintf(args, sizeof args, "--query '%s' --out '%s'", B.q, B.out);
    expect_usage("mha", args, "--weights");
    snprintf(args, sizeof args, "--weights '%s' --out '%s'", B.w, B.out);
    expect_usage("mha", args, "--query");
    snprintf(args, sizeof args, "--weights '%s' --query '%s'", B.w, B.q);
    expect_usage("mha", args, "--out");
    snprintf(args, sizeof args, "--weights '%s' --query '%s' --key '%s' --out '%s'", B.w, B.q,
             B.k, B.out);
    expect_usage("mha", args, "--value");
    snprintf(args, sizeof args, "--weights '%s' --query '%s' --value '%s' --out '%s'", B.w, B.q,
             B.v, B.out);
    expect_usage("mha", args, "--key");
    base_args(args, NULL, NULL, NULL, NULL, "--bogus");
    expect_usage("mha", args, "--bogus");
    base_args(args, NULL, NULL, NULL, NULL, "extra-argument");
    expect_usage("mha", args, "extra-argument");
    snprintf(args, sizeof args, "--weights '%s' --query '%s' --out", B.w, B.q);
    expect_usage("mha", args, "--out");
    expect_usage("mha", "", NULL);
    snprintf(args, sizeof args, "--weights '%s' --query '%s' --out ''", B.w, B.q);
    expect_bad("mha", args, NULL, "empty", (const char *)NULL);
    expect_outdir_empty();
}

/* The output path: a missing directory, a directory, and no partial file. */
static void bad_output_path(void **state)
{
    (void)state;
    base_files();
    char out[PATH_LEN], missing[PATH_LEN], args[ARGS_LEN];
    tmp_path(missing, "no-such-dir");
    snprintf(out, sizeof out, "%.400s/o.safetensors", missing);
    snprintf(args, sizeof args, "--weights '%s' --query '%s' --out '%s'", B.w, B.q, out);
    char *before = list_dir(test_tmpdir());
    expect_bad("mha", args, out, (const char *)NULL);
    assert_false(file_exists(missing));
    char *after = list_dir(test_tmpdir());
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* The output path is a directory. */
    snprintf(args, sizeof args, "--weights '%s' --query '%s' --out '%s'", B.w, B.q, B.outdir);
    expect_bad("mha", args, B.outdir, "directory", (const char *)NULL);
    expect_outdir_empty();

    /* The directory exists, the computation fails later (bad query): no
     * output, no temporary file, nothing else changed. */
    char dir[PATH_LEN], q[PATH_LEN], keep[PATH_LEN];
    tmp_dir(dir, "late-failure");
    snprintf(keep, sizeof keep, "%.400s/keep.txt", dir);
    write_bytes(keep, "keep\n", 5);
    snprintf(out, sizeof out, "%.400s/O.safetensors", dir);
    attn_tensor t = random_tensor(3, 2, 3, 7, 1, 25);
    tmp_path(q, "late-failure-q.safetensors");
    write_f32(q, "query", &t);
    attn_tensor_free(&t);
    before = list_dir(dir);
    snprintf(args, sizeof args, "--weights '%s' --query '%s' --out '%s'", B.w, q, out);
    expect_bad("mha", args, q, (const char *)NULL);
    after = list_dir(dir);
    assert_string_equal(before, after);
    expect_lacks(dir, after, "O.safetensors");
    expect_lacks(dir, after, ".tmp-");
    free(before);
    free(after);

    /* An existing output is left as it was by a failing run. */
    write_bytes(out, "old contents\n", 13);
    expect_bad("mha", args, q, (const char *)NULL);
    char *text = read_text(out);
    assert_non_null(text);
    assert_string_equal(text, "old contents\n");
    free(text);
    after = list_dir(dir);
    assert_string_equal(after, "O.safetensors\nkeep.txt\n");
    free(after);

    /* ... and replaced by a successful one, leaving nothing else. */
    snprintf(args, sizeof args, "mha --weights '%s' --query '%s' --out '%s'", B.w, B.q, out);
    free(run_ok(args));
    attn_safetensors *o = open_st(out);
    assert_int_equal(attn_safetensors_count(o), 2);
    attn_safetensors_close(o);
    after = list_dir(dir);
    assert_string_equal(after, "O.safetensors\nkeep.txt\n");
    free(after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_files),      cmocka_unit_test(bad_weights),
        cmocka_unit_test(bad_two_tensors), cmocka_unit_test(bad_heads_usage),
        cmocka_unit_test(bad_empty_sizes), cmocka_unit_test(bad_usage),
        cmocka_unit_test(bad_output_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL); /* test_support removes the tmpdir */
}
