/* test_first_hour.c - the rough edges a new user hit in the first hour
 * (issue 16), each through the real binary or the real files: the quick
 * start builds and installs only what it says, usage errors are two lines,
 * training never silently replaces a checkpoint, --help names every option,
 * bad paths and empty texts are named as such, the safetensors script works
 * with numpy alone, the README's program is the example, the classifier's
 * rate is readable and config.json holds the numbers as given. */
#include "test_support.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/safetensors.h"

#define SRC ATTN_TEST_FIXTURES "/../.."
#define GPT_TINY "--layers 1 --heads 2 --width 16 --context 16 --batch 4 --eval-every 5 --eval-iters 1 --warmup 2"
#define CLS_TINY "--layers 1 --heads 2 --width 16 --context 12 --batch 16 --warmup 5 --min-count 1"

static char text_path[600], cls_data[600], cls_model[600], *cls_out;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    for (size_t got; (got = fread(s + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            s = realloc(s, cap *= 2);
            assert_non_null(s);
        }
    }
    fclose(f);
    s[n] = 0;
    return s;
}

static void write_split(const char *name, size_t n, unsigned seed)
{
    static const char *const words[3][4] = {{"cat", "dog", "owl", "horse"},
                                            {"screen", "cable", "laptop", "keyboard"},
                                            {"bread", "cheese", "apple", "soup"}};
    static const char *const labels[3] = {"noun.animal", "noun.artifact", "noun.food"};
    char path[700];
    snprintf(path, sizeof path, "%s/%s", cls_data, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned c = (seed >> 16) % 3, w = (seed >> 8) % 4;
        fprintf(f, "%s\tthe %s and a %s\n", labels[c], words[c][w], words[c][(w + 1) % 4]);
    }
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    static char text[4000];
    size_t n = 0;
    for (unsigned i = 0; n + 30 < sizeof text; i++) n += (size_t)sprintf(text + n, "%s", i % 3 ? "the cat sat. " : "a dog ran to me! ");
    snprintf(text_path, sizeof text_path, "%s", write_tmp("text.txt", text));
    snprintf(cls_data, sizeof cls_data, "%s/data", test_tmpdir());
    snprintf(cls_model, sizeof cls_model, "%s/cls", test_tmpdir());
    run_result r = run_cmd("mkdir -p '%s'", cls_data);
    run_result_free(&r);
    write_split("train.tsv", 200, 1), write_split("valid.tsv", 30, 2), write_split("test.tsv", 30, 3);
    r = run_cmd("'%s' train --task classify --data '%s' --out '%s' " CLS_TINY " --epochs 2 --log-every 1 "
                "--dropout 0.1 --weight-decay 0.01 --no-baselines",
                attn_bin(), cls_data, cls_model);
    if (r.status != 0) fail_msg("train --task classify failed: %s", r.err);
    cls_out = r.out, r.out = NULL;
    run_result_free(&r);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(cls_out);
    return 0;
}

/* (1) `make demo` installs the build's packages only and builds the tool only;
 * the README's quick start names exactly what each command installs. */
static void test_make_demo_builds_only_the_tool(void **state)
{
    (void)state;
    run_result r = run_cmd("make -n -C '%s' demo BUILD='%s/demo-build' 2>&1", SRC, test_tmpdir());
    assert_int_equal(r.status, 0);
    const char *want[] = {"deps.sh build", "-DATTN_BUILD_TESTS=OFF", "--target attn", "attn demo"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(r.out, want[i])) fail_msg("make -n demo: no '%s' in:\n%s", want[i], r.out);
    if (strstr(r.out, "deps.sh test") || strstr(r.out, "cmocka")) fail_msg("make demo needs cmocka:\n%s", r.out);
    run_result_free(&r);
    /* the packages of each set, as scripts/deps.sh has them, in the README */
    r = run_cmd("sed -n 's/^build_pkgs=\"\\(.*\\)\"$/\\1/p' '%s/scripts/deps.sh'", SRC);
    assert_int_equal(r.status, 0);
    char *nl = strchr(r.out, '\n');
    if (nl) *nl = 0;
    assert_non_null(strstr(r.out, "libxlsxwriter-dev"));
    char *readme = slurp(SRC "/README.md"), row[256];
    snprintf(row, sizeof row, "| `make demo` | `%s` |", r.out);
    if (!strstr(readme, row)) fail_msg("README: no row '%s'", row);
    snprintf(row, sizeof row, "| `make test` | `%s libcmocka-dev` |", r.out);
    if (!strstr(readme, row)) fail_msg("README: no row '%s'", row);
    free(readme);
    run_result_free(&r);
}

/* (2) A usage error: the message, then one line pointing to the command's --help. */
static void test_usage_error_is_two_lines(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"demo --bogus", "attn demo --help"},
        {"demo --temperature 0", "attn demo --help"},
        {"explain --bogus", "attn explain --help"},
        {"mha --bogus", "attn mha --help"},
        {"bench attention --bogus", "attn bench --help"},
        {"train --bogus", "attn train --help"},
        {"train --data x.txt", "attn train --help"},
        {"train --task classify --bogus", "attn train --task classify --help"},
        {"generate --bogus", "attn generate --help"},
        {"data wordnet --bogus", "attn data --help"},
        {"classify --bogus", "attn classify --help"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run_result r = run_cmd("'%s' %s", attn_bin(), cases[i][0]);
        const char *nl = strchr(r.err, '\n');
        if (r.status != 2 || r.out[0] || count_lines(r.err) != 2 || strncmp(r.err, "attn ", 5) ||
            !nl || !strstr(nl, cases[i][1]))
            fail_msg("attn %s: expected exit 2 and two lines, the second naming '%s'; got %d:\n%s",
                     cases[i][0], cases[i][1], r.status, r.err);
        run_result_free(&r);
    }
}

static int config_step(const char *dir)
{
    char path[1500];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text = slurp(path);
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(root, "step");
    assert_true(cJSON_IsNumber(step));
    int s = (int)step->valuedouble;
    cJSON_Delete(root);
    return s;
}

/* (3) --out DIR holding a checkpoint is refused (naming --resume and --force)
 * and left as it was; --force replaces it. */
static void test_out_refuses_a_checkpoint(void **state)
{
    (void)state;
    char dir[700];
    snprintf(dir, sizeof dir, "%s/gpt", test_tmpdir());
    run_result r = run_cmd("'%s' train --data '%s' " GPT_TINY " --iters 5 --out '%s'", attn_bin(), text_path, dir);
    if (r.status) fail_msg("train: %s", r.err);
    run_result_free(&r);
    const char *again[2][2] = {{"train --data", text_path}, {"train --task classify --data", cls_data}};
    const char *dirs[2] = {dir, cls_model};
    for (int k = 0; k < 2; k++) {
        int before = config_step(dirs[k]);
        r = run_cmd("'%s' %s '%s' %s --iters 2 --out '%s'", attn_bin(), again[k][0], again[k][1],
                    k ? CLS_TINY : GPT_TINY, dirs[k]);
        if (r.status != 2 || r.out[0] || count_lines(r.err) != 1 || !strstr(r.err, "--resume") ||
            !strstr(r.err, "--force") || !strstr(r.err, dirs[k]))
            fail_msg("train into a checkpoint: expected exit 2 naming --resume and --force, got %d:\n%s%s",
                     r.status, r.out, r.err);
        run_result_free(&r);
        assert_int_equal(config_step(dirs[k]), before);
    }
    r = run_cmd("'%s' train --data '%s' " GPT_TINY " --iters 2 --out '%s' --force", attn_bin(), text_path, dir);
    if (r.status) fail_msg("train --force: %s", r.err);
    run_result_free(&r);
    assert_int_equal(config_step(dir), 2);
}

/* (4) --help names every option the command accepts: --task among them. */
static void test_train_help_names_task(void **state)
{
    (void)state;
    run_result r = run_cmd("'%s' train --help", attn_bin());
    assert_int_equal(r.status, 0);
    if (!strstr(r.out, "  --task lm|classify") || !strstr(r.out, "  --force"))
        fail_msg("attn train --help: no --task or --force line:\n%s", r.out);
    run_result_free(&r);
    r = run_cmd("'%s' train --task lm --help", attn_bin());
    assert_int_equal(r.status, 0);
    run_result_free(&r);
}

/* (5) An explicit --source that cannot be read is named, not "not installed". */
static void test_wordnet_source_is_named(void **state)
{
    (void)state;
    run_result r = run_cmd("'%s' data wordnet --source /nonexistent/data.noun --out '%s/wn'", attn_bin(), test_tmpdir());
    if (r.status != 2 || r.out[0] || count_lines(r.err) != 1 ||
        !strstr(r.err, "/nonexistent/data.noun: cannot read") || strstr(r.err, "installed"))
        fail_msg("expected one line naming the path, got %d:\n%s", r.status, r.err);
    run_result_free(&r);
}

/* (6) An empty text is bad input; unknown words are counted, on stderr and in --json. */
static void test_classify_empty_and_unknown(void **state)
{
    (void)state;
    static const char *const empty[] = {"''", "'   '"};
    for (size_t i = 0; i < 2; i++) {
        run_result r = run_cmd("'%s' classify --model '%s' --text %s", attn_bin(), cls_model, empty[i]);
        if (r.status != 2 || r.out[0] || count_lines(r.err) != 1 || !strstr(r.err, "no words"))
            fail_msg("classify --text %s: expected exit 2, got %d:\n%s%s", empty[i], r.status, r.out, r.err);
        run_result_free(&r);
    }
    run_result r = run_cmd("'%s' classify --model '%s' --text 'zzzz qqqq'", attn_bin(), cls_model);
    if (r.status != 0 || !strstr(r.err, "2 of 2 words unknown") || !strstr(r.out, "noun."))
        fail_msg("unknown words: got %d:\n%s%s", r.status, r.out, r.err);
    run_result_free(&r);
    r = run_cmd("'%s' classify --model '%s' --json --top 2 --text 'zzzz cat'", attn_bin(), cls_model);
    assert_int_equal(r.status, 0);
    cJSON *j = cJSON_Parse(r.out);
    if (!j) fail_msg("--json: not JSON:\n%s", r.out);
    assert_int_equal((int)cJSON_GetObjectItem(j, "words")->valuedouble, 2);
    assert_int_equal((int)cJSON_GetObjectItem(j, "unknown")->valuedouble, 1);
    assert_string_equal(cJSON_GetObjectItem(j, "text")->valuestring, "zzzz cat");
    const cJSON *top = cJSON_GetObjectItem(j, "top");
    assert_int_equal(cJSON_GetArraySize(top), 2);
    double p0 = cJSON_GetObjectItem(cJSON_GetArrayItem(top, 0), "p")->valuedouble;
    double p1 = cJSON_GetObjectItem(cJSON_GetArrayItem(top, 1), "p")->valuedouble;
    assert_true(p0 >= p1 && p0 <= 1 && p1 > 0);
    assert_non_null(strstr(r.err, "1 of 2 words unknown"));
    cJSON_Delete(j);
    run_result_free(&r);
}

/* (7) scripts/npz_to_safetensors.py with numpy alone, read by the library. */
static void test_npz_script(void **state)
{
    (void)state;
    run_result r = run_cmd("/usr/bin/python3 -c 'import numpy' 2>&1");
    int have = r.status == 0;
    run_result_free(&r);
    if (!have) skip(); /* CI installs python3-numpy */
    const char *t = test_tmpdir();
    r = run_cmd("cd '%s' && /usr/bin/python3 -c \"import numpy as np; np.savez('w.npz', "
                "**{'in_proj.weight': np.arange(6, dtype=np.float32).reshape(2, 3) / 4, "
                "'mask': np.array([True, False, True]), 'h': np.array([1.5, -2], dtype=np.float16), "
                "'i': np.array([3, -4], dtype=np.int64)})\" && "
                "/usr/bin/python3 '%s/scripts/npz_to_safetensors.py' w.npz w.safetensors",
                t, SRC);
    if (r.status) fail_msg("npz_to_safetensors: %s%s", r.out, r.err);
    run_result_free(&r);
    char path[1500];
    snprintf(path, sizeof path, "%s/w.safetensors", t);
    attn_safetensors *st = NULL;
    if (attn_safetensors_open(&st, path)) fail_msg("%s", attn_last_error());
    assert_int_equal(attn_safetensors_count(st), 4);
    static const struct { const char *name; int ndim; size_t rows; float v[6]; } want[] = {
        {"in_proj.weight", 2, 2, {0, 0.25f, 0.5f, 0.75f, 1, 1.25f}},
        {"mask", 1, 3, {1, 0, 1}}, {"h", 1, 2, {1.5f, -2}}, {"i", 1, 2, {3, -4}}};
    for (size_t k = 0; k < 4; k++) {
        attn_tensor x = fixture_tensor(st, path, want[k].name);
        assert_int_equal(x.ndim, want[k].ndim);
        assert_int_equal(x.shape[0], want[k].rows);
        assert_close_f32(x.data, want[k].v, x.numel, 0, 0, want[k].name);
        attn_tensor_free(&x);
    }
    attn_safetensors_close(st);
}

/* (8) The README's library program is examples/hello_attention.c, verbatim. */
static void test_readme_program_is_the_example(void **state)
{
    (void)state;
    char *readme = slurp(SRC "/README.md"), *ex = slurp(SRC "/examples/hello_attention.c");
    char *block = malloc(strlen(ex) + 16);
    assert_non_null(block);
    sprintf(block, "```c\n%s```", ex);
    if (!strstr(readme, block)) fail_msg("README.md has no ```c block equal to examples/hello_attention.c");
    free(block), free(readme), free(ex);
}

/* (9) The classifier's progress: a texts/s rate averaged over a window,
 * consistent with the ms/step beside it, and a line saying why steps vary. */
static void test_classifier_rate(void **state)
{
    (void)state;
    if (!strstr(cls_out, "similar length") || strstr(cls_out, "tok/s"))
        fail_msg("progress lines:\n%s", cls_out);
    /* 200 texts per epoch, in the steps per epoch the header names */
    const char *spe = strstr(cls_out, " steps per epoch");
    assert_non_null(spe);
    while (spe[-1] != ' ') spe--;
    const double steps = atof(spe);
    assert_true(steps >= 13 && steps <= 20); /* ceil(200 / 16) and a few partial buckets */
    size_t lines = 0;
    for (const char *p = cls_out; (p = strstr(p, "\nstep ")); p++) {
        double rate, ms;
        const char *at = strstr(p, "texts/s");
        assert_non_null(at);
        while (at > p && at[-1] == ' ') at--;
        while (at > p && at[-1] != ' ') at--;
        if (sscanf(at, "%lf texts/s %lf ms/step", &rate, &ms) != 2) fail_msg("cannot read: %.120s", p);
        assert_true(ms > 0);
        /* ms/step is printed to 0.1, the rate to 1 */
        const double hi = 200.0 / steps * 1000.0 / (ms - 0.05), lo = 200.0 / steps * 1000.0 / (ms + 0.05);
        if (rate < lo - 0.5 || rate > hi + 0.5)
            fail_msg("rate %g texts/s at %g ms/step, expected %g..%g", rate, ms, lo, hi);
        lines++;
    }
    assert_true(lines >= 20);
}

/* The number text after "key": in a JSON text. */
static void number_of(const char *json, const char *key, char *out, size_t n)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (!p) fail_msg("no %s in:\n%s", pat, json);
    p += strlen(pat);
    p += strspn(p, " \t");
    size_t len = strcspn(p, ",}\n\r \t");
    snprintf(out, n, "%.*s", (int)len, p);
}

/* (10) config.json holds the numbers as given, not float32 noise. */
static void test_config_json_numbers_as_given(void **state)
{
    (void)state;
    char dir[700], path[1500], num[64];
    snprintf(dir, sizeof dir, "%s/given", test_tmpdir());
    run_result r = run_cmd("'%s' train --data '%s' " GPT_TINY " --iters 2 --lr 3e-3 --min-lr 1e-4 "
                           "--beta2 0.95 --val-fraction 0.3 --out '%s'",
                           attn_bin(), text_path, dir);
    if (r.status) fail_msg("train: %s", r.err);
    run_result_free(&r);
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *cfg = slurp(path);
    static const char *const gpt[][2] = {{"lr", "0.003"}, {"min_lr", "0.0001"}, {"beta1", "0.9"},
                                        {"beta2", "0.95"}, {"eps", "1e-08"}, {"weight_decay", "0.1"},
                                        {"val_fraction", "0.3"}, {"grad_clip", "1"}};
    for (size_t i = 0; i < sizeof gpt / sizeof *gpt; i++) {
        number_of(cfg, gpt[i][0], num, sizeof num);
        if (strcmp(num, gpt[i][1])) fail_msg("config.json: %s is %s, expected %s", gpt[i][0], num, gpt[i][1]);
    }
    free(cfg);
    snprintf(path, sizeof path, "%s/config.json", cls_model);
    cfg = slurp(path);
    static const char *const cls[][2] = {{"dropout", "0.1"}, {"weight_decay", "0.01"}, {"lr", "0.001"},
                                        {"beta2", "0.999"}, {"label_smoothing", "0.1"}};
    for (size_t i = 0; i < sizeof cls / sizeof *cls; i++) {
        number_of(cfg, cls[i][0], num, sizeof num);
        if (strcmp(num, cls[i][1])) fail_msg("config.json: %s is %s, expected %s", cls[i][0], num, cls[i][1]);
    }
    free(cfg);
    /* and it reads back to the same run: resuming goes on from step 2 */
    r = run_cmd("'%s' train --data '%s' --resume '%s' --iters 3", attn_bin(), text_path, dir);
    if (r.status || !strstr(r.out, "resuming at step 2 of 3")) fail_msg("resume: %s%s", r.out, r.err);
    run_result_free(&r);
}

/* (11) explain --help: the --weights line lists the file outputs, and the
 * note after them is not indented as part of --xlsx. */
static void test_explain_help(void **state)
{
    (void)state;
    run_result r = run_cmd("'%s' explain --help", attn_bin());
    assert_int_equal(r.status, 0);
    const char *w = strstr(r.out, "--weights W.safetensors");
    const char *end = w ? strstr(w, "\n\n") : NULL;
    if (!w || !end) fail_msg("no --weights usage in:\n%s", r.out);
    char syn[600];
    snprintf(syn, sizeof syn, "%.*s", (int)(end - w), w);
    if (!strstr(syn, "--html FILE") || !strstr(syn, "--xlsx FILE"))
        fail_msg("the --weights usage omits the file outputs:\n%s", syn);
    if (!strstr(r.out, "\n  With --html, --svg, --csv or --xlsx, stdout lists the files written.\n"))
        fail_msg("the note after --xlsx:\n%s", r.out);
    run_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make_demo_builds_only_the_tool),
        cmocka_unit_test(test_usage_error_is_two_lines),
        cmocka_unit_test(test_out_refuses_a_checkpoint),
        cmocka_unit_test(test_train_help_names_task),
        cmocka_unit_test(test_wordnet_source_is_named),
        cmocka_unit_test(test_classify_empty_and_unknown),
        cmocka_unit_test(test_npz_script),
        cmocka_unit_test(test_readme_program_is_the_example),
        cmocka_unit_test(test_classifier_rate),
        cmocka_unit_test(test_config_json_numbers_as_given),
        cmocka_unit_test(test_explain_help),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
