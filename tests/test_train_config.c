/* test_train_config.c - the trainers' hyperparameter tables
 * (attn/train_config.h): defaults as the library's, JSON both ways, the
 * shortest float text, range errors, and the CLI's --help and --config
 * driven by them. */
#include "test_support.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "attn/classify.h"
#include "attn/train.h"
#include "attn/train_config.h"

static void test_gpt_defaults_are_the_librarys(void **state)
{
    (void)state;
    attn_gpt_config m;
    attn_train_config t;
    memset(&m, 0xff, sizeof m), memset(&t, 0xff, sizeof t);
    void *const parts[2] = {&m, &t};
    attn_hparams_defaults(attn_gpt_hparams(), parts);
    attn_gpt_config m0 = attn_gpt_defaults();
    attn_train_config t0 = attn_train_defaults();
    assert_true(m.vocab_size == m0.vocab_size && m.context == m0.context && m.layers == m0.layers &&
                m.heads == m0.heads && m.width == m0.width && m.bias == m0.bias);
    /* every field (8 sizes, 8 floats, a u64, an int), not the padding after */
    assert_memory_equal(&t, &t0, offsetof(attn_train_config, precision) + sizeof t.precision);
    assert_int_equal(attn_hparams_check(attn_gpt_hparams(), parts), ATTN_OK);
}

static void test_float_shortest(void **state)
{
    (void)state;
    static const struct { float v; const char *s; } cases[] = {
        {1e-3f, "0.001"}, {1e-4f, "0.0001"}, {0.1f, "0.1"}, {0.99f, "0.99"}, {1e-8f, "1e-08"},
        {1.0f, "1"}, {3e-3f, "0.003"}, {1.0f / 3.0f, "0.33333334"}, {16777216.0f, "16777216"}};
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_string_equal(attn_float_shortest(buf, sizeof buf, cases[i].v), cases[i].s);
    /* every text reads back as the same float, for many floats */
    unsigned x = 12345;
    for (int i = 0; i < 20000; i++) {
        x = x * 1664525u + 1013904223u;
        float v;
        unsigned bits = x & 0x7f7fffffu; /* finite, positive */
        memcpy(&v, &bits, sizeof v);
        attn_float_shortest(buf, sizeof buf, v);
        if (strtof(buf, NULL) != v) fail_msg("%s does not read back as %.9g", buf, (double)v);
    }
}

/* Every entry set away from its default survives to_json -> from_json. */
static void test_json_round_trip(void **state)
{
    (void)state;
    const attn_hparams *h = attn_cls_hparams();
    attn_encoder_config m;
    attn_train_config t;
    attn_cls_opts o;
    memset(&m, 0, sizeof m), memset(&t, 0, sizeof t), memset(&o, 0, sizeof o);
    void *const parts[3] = {&m, &t, &o};
    attn_hparams_defaults(h, parts);
    assert_int_equal(m.layers, 2), assert_int_equal(m.bias, 1), assert_int_equal(o.min_count, 2);
    assert_true(o.dropout == 0.1f && t.beta2 == 0.999f && t.weight_decay == 0.01f);
    assert_int_equal(attn_hparam_parse(attn_hparam_find(h, "pooling"), parts, "cls"), ATTN_OK);
    assert_int_equal(attn_hparam_parse(attn_hparam_find(h, "label-smoothing"), parts, "0.25"), ATTN_OK);
    assert_int_equal(attn_hparam_parse(attn_hparam_find(h, "seed"), parts, "42"), ATTN_OK);
    assert_int_equal(attn_hparam_parse(attn_hparam_find(h, "bias"), parts, "false"), ATTN_OK);
    m.vocab_size = 77, m.classes = 5;
    char *json = NULL;
    assert_int_equal(attn_hparams_to_json(h, parts, &json), ATTN_OK);
    assert_non_null(strstr(json, "\"pooling\":\"cls\""));
    assert_non_null(strstr(json, "\"label_smoothing\":0.25"));
    assert_non_null(strstr(json, "\"beta2\":0.999,"));
    attn_encoder_config m2;
    attn_train_config t2;
    attn_cls_opts o2;
    memset(&m2, 0, sizeof m2), memset(&t2, 0, sizeof t2), memset(&o2, 0, sizeof o2);
    void *const parts2[3] = {&m2, &t2, &o2};
    assert_int_equal(attn_hparams_from_json(h, parts2, json, "x", NULL), ATTN_OK);
    assert_memory_equal(&m, &m2, sizeof m);
    assert_memory_equal(&t, &t2, sizeof t);
    assert_memory_equal(&o, &o2, sizeof o);
    free(json);
}

static void test_errors_name_the_key_and_range(void **state)
{
    (void)state;
    const attn_hparams *h = attn_cls_hparams();
    attn_encoder_config m;
    attn_train_config t;
    attn_cls_opts o;
    void *const parts[3] = {&m, &t, &o};
    attn_hparams_defaults(h, parts);
    static const char *const bad[][3] = {
        {"dropout", "1", "--dropout: expected a number in [0, 1), found '1'"},
        {"lr", "0", "--lr: expected a number > 0, found '0'"},
        {"layers", "0", "--layers: expected an integer in [1, 4096], found '0'"},
        {"batch", "-3", "--batch: expected an integer in [1, 1048576], found '-3'"},
        {"seed", "1.5", "--seed: expected an integer >= 0, found '1.5'"},
        {"pooling", "max", "--pooling: expected one of mean|cls, found 'max'"},
        {"min_lr", "nan", "--min-lr: expected a number >= 0, found 'nan'"},
        {"beta2", "1e40", "--beta2: expected a number in [0, 1), found '1e40'"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(attn_hparam_parse(attn_hparam_find(h, bad[i][0]), parts, bad[i][1]), ATTN_E_INVALID);
        assert_string_equal(attn_last_error(), bad[i][2]);
    }
    assert_true(o.dropout == 0.1f && t.lr == 1e-3f && m.layers == 2); /* unchanged */
    assert_int_equal(attn_hparams_from_json(h, parts, "{\"dropout\": 2}", "c.json", NULL), ATTN_E_FORMAT);
    assert_string_equal(attn_last_error(), "c.json: \"dropout\" must be a number in [0, 1)");
    assert_int_equal(attn_hparams_from_json(h, parts, "{\"model\": {\"depth\": 2}}", "c.json", NULL), ATTN_E_FORMAT);
    assert_string_equal(attn_last_error(), "c.json: unknown key \"depth\"");
    assert_int_equal(attn_hparams_from_json(h, parts, "{\"pooling\": 1}", "c.json", NULL), ATTN_E_FORMAT);
}

/* --help lists every flag of the table, and --config takes every key. */
static void test_cli_help_and_config(void **state)
{
    (void)state;
    const attn_hparams *tables[2] = {attn_gpt_hparams(), attn_cls_hparams()};
    const char *cmds[2] = {"train", "train --task classify"};
    for (int k = 0; k < 2; k++) {
        run_result r = run_cmd("'%s' %s --help", attn_bin(), cmds[k]);
        assert_int_equal(r.status, 0);
        for (size_t i = 0; i < tables[k]->n; i++) {
            const attn_hparam *p = &tables[k]->p[i];
            char name[40], flag[64];
            snprintf(flag, sizeof flag, "  --%s", attn_hparam_flag(p, name, sizeof name));
            int listed = strstr(r.out, flag) != NULL;
            if (listed != !(p->flags & (ATTN_HP_DATA | ATTN_HP_HIDDEN)))
                fail_msg("attn %s --help: %s %s", cmds[k], flag, listed ? "listed" : "missing");
        }
        run_result_free(&r);
    }
    /* a classifier --config, then a flag over it */
    const char *dir = test_tmpdir();
    run_result r = run_cmd("mkdir -p '%s/d' && cd '%s/d' && for s in train valid test; do "
                           "for i in 1 2 3 4 5 6 7 8; do printf 'a\\tcat dog\\nb\\tsoup bread\\n'; done > $s.tsv; done",
                           dir, dir);
    run_result_free(&r);
    const char *cfg = write_tmp("cls.json", "{\"model\": {\"layers\": 1, \"heads\": 2, \"width\": 8, \"context\": 6,"
                                            " \"pooling\": \"cls\"}, \"min_count\": 1, \"batch\": 4,"
                                            " \"label_smoothing\": 0.2, \"lr\": 0.003}");
    r = run_cmd("'%s' train --task classify --data '%s/d' --out '%s/c' --config '%s' --epochs 1 --lr 5e-3 --no-baselines --precision bf16",
                attn_bin(), dir, dir, cfg);
    if (r.status) fail_msg("train --config: %s", r.err);
    run_result_free(&r);
    char path[1200];
    snprintf(path, sizeof path, "%s/c/config.json", dir);
    r = run_cmd("cat '%s'", path);
    cJSON *root = cJSON_Parse(r.out);
    assert_non_null(root);
    const cJSON *m = cJSON_GetObjectItem(root, "model"), *t = cJSON_GetObjectItem(root, "train"),
                *o = cJSON_GetObjectItem(root, "classify");
    assert_int_equal((int)cJSON_GetObjectItem(m, "width")->valuedouble, 8);
    assert_string_equal(cJSON_GetObjectItem(m, "pooling")->valuestring, "cls");
    assert_int_equal((int)cJSON_GetObjectItem(t, "batch")->valuedouble, 4);
    assert_string_equal(cJSON_GetObjectItem(t, "precision")->valuestring, "bf16");
    assert_true(cJSON_GetObjectItem(t, "lr")->valuedouble == 0.005); /* the flag wins */
    assert_true(cJSON_GetObjectItem(o, "label_smoothing")->valuedouble == 0.2);
    cJSON_Delete(root);
    run_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt_defaults_are_the_librarys),
        cmocka_unit_test(test_float_shortest),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_errors_name_the_key_and_range),
        cmocka_unit_test(test_cli_help_and_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
