/* test_classify.c - the classification pieces in the library: CRC-32 and
 * the WordNet split, data.noun parsing (a synthetic file in WordNet's format,
 * with malformed lines), the word tokenizer, metrics, the baselines on a
 * separable set, the encoder's gradients against finite differences, key
 * padding (padding a batch does not change the other examples' logits), and
 * the row-sparse embedding update (AdamW's lazy rows, the encoder's rows),
 * and dropout (the op's masks, its backward, the encoder's gradients with it). */
#include "test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/classify.h"
#include "attn/ops_nn.h"
#include "attn/rng.h"
#include "attn/train.h"
#include "attn/wordnet.h"

static void test_crc32(void **state)
{
    (void)state;
    assert_int_equal(attn_crc32("123456789", 9), 0xCBF43926u);
    assert_int_equal(attn_crc32("", 0), 0u);
    assert_int_equal(attn_crc32("a", 1), 0xE8B7BE43u);
    assert_int_equal(attn_crc32("The quick brown fox jumps over the lazy dog", 43), 0x414FA339u);
    /* the split: crc32 mod 10, 0 test, 1 valid, else train */
    const char *offs[] = {"00001740", "00001930", "00002137", "02084071", "03793489"};
    for (size_t i = 0; i < 5; i++) {
        uint32_t r = attn_crc32(offs[i], 8) % 10;
        attn_split want = r == 0 ? ATTN_SPLIT_TEST : r == 1 ? ATTN_SPLIT_VALID : ATTN_SPLIT_TRAIN;
        assert_int_equal(attn_wordnet_split(offs[i], 8), want);
    }
    assert_string_equal(attn_lexname(3), "noun.Tops");
    assert_string_equal(attn_lexname(5), "noun.animal");
    assert_string_equal(attn_lexname(6), "noun.artifact");
    assert_string_equal(attn_lexname(28), "noun.time");
    assert_string_equal(attn_lexname(44), "adj.ppl");
    assert_null(attn_lexname(45));
    assert_null(attn_lexname(-1));
}

/* Synthetic data.noun lines in WordNet's format. */
static const char *licence = "  1 This software and database is being provided to you, the LICENSEE, by  \n"
                             "  2 Princeton University under the following license.  \n";
static const char *synsets =
    "02330245 05 n 02 mouse 0 house_mouse 0 002 @ 02329401 n 0000 ~ 02330582 n 0000 | any of numerous small rodents; \"a mouse ran by\"  \n"
    "03793489 06 n 02 mouse 0 computer_mouse 0 001 @ 03282933 n 0000 | a hand-operated electronic device that controls the cursor  \n"
    "07609840 13 n 01 apple_pie 0 000 | pie made with apples  \n"
    "00001740 03 n 01 entity 0 000 | that which is perceived or known  \n";

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void test_wordnet_build(void **state)
{
    (void)state;
    char text[4096];
    snprintf(text, sizeof text, "%s%s", licence, synsets);
    const char *src = write_tmp("data.noun", text);
    char out[600];
    snprintf(out, sizeof out, "%s", test_tmpdir());
    attn_wordnet_stats s;
    assert_int_equal(attn_wordnet_build(src, out, &s), ATTN_OK);
    assert_int_equal(s.synsets, 4);
    assert_int_equal(s.classes, 4);
    assert_int_equal(s.split[0] + s.split[1] + s.split[2], 4);
    /* every line lands in the split its offset's CRC says, with its text */
    const char *want[4][3] = {
        {"02330245", "noun.animal", "mouse, house mouse: any of numerous small rodents; \"a mouse ran by\""},
        {"03793489", "noun.artifact", "mouse, computer mouse: a hand-operated electronic device that controls the cursor"},
        {"07609840", "noun.food", "apple pie: pie made with apples"},
        {"00001740", "noun.Tops", "entity: that which is perceived or known"}};
    const char *files[3] = {"train.tsv", "valid.tsv", "test.tsv"};
    char *content[3];
    for (int i = 0; i < 3; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        content[i] = read_all(p);
        assert_non_null(content[i]);
    }
    for (int k = 0; k < 4; k++) {
        char line[512];
        snprintf(line, sizeof line, "%s\t%s\n", want[k][1], want[k][2]);
        attn_split sp = attn_wordnet_split(want[k][0], 8);
        if (!strstr(content[sp], line)) fail_msg("%s not in %s: %s", line, files[sp], content[sp]);
    }
    for (int i = 0; i < 3; i++) free(content[i]);
}

static void expect_format(const char *body, const char *needle)
{
    char text[4096];
    snprintf(text, sizeof text, "%s%s", licence, body);
    const char *src = write_tmp("bad.noun", text);
    attn_wordnet_stats s;
    attn_status st = attn_wordnet_build(src, test_tmpdir(), &s);
    if (st != ATTN_E_FORMAT || !strstr(attn_last_error(), needle))
        fail_msg("expected a format error with '%s', got %d: %s", needle, st, attn_last_error());
}

static void test_wordnet_errors(void **state)
{
    (void)state;
    /* the file names line 4 (two licence lines, one good synset, then the bad one) */
    expect_format("07609840 13 n 01 apple_pie 0 000 | pie made with apples  \n"
                  "0760984x 13 n 01 pie 0 000 | a dish  \n", "bad.noun:4: expected an 8-digit synset offset");
    expect_format("07609840 13 n 01 apple_pie 0 001 @ 0760 n 0000 | pie  \n", ":3: expected a pointer's 8-digit");
    expect_format("07609840 13 n 02 apple_pie 0 000 | pie  \n", ":3: expected a 1-hex-digit lex_id");
    expect_format("07609840 13 n 01 apple_pie 0 000 pie  \n", ":3: expected '|' before the gloss");
    expect_format("07609840 13 n 01 apple_pie 0 000 |   \n", ":3: expected a gloss");
    expect_format("07609840 31 n 01 run 0 000 | go fast  \n", ":3: lexicographer file 31 is not a noun file");
    expect_format("07609840 13 v 01 bake 0 000 | cook  \n", ":3: expected synset type 'n'");
    expect_format("", "no synsets");
    /* a failed build leaves nothing behind */
    run_result r = run_cmd("ls -A '%s' | grep -c 'tmp-' || true", test_tmpdir());
    assert_string_equal(r.out, "0\n");
    run_result_free(&r);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope/data.noun", test_tmpdir());
    attn_wordnet_stats s;
    assert_int_equal(attn_wordnet_build(missing, test_tmpdir(), &s), ATTN_E_NOTFOUND);
    assert_non_null(strstr(attn_last_error(), "install wordnet-base"));
}

static void test_word_tokenizer(void **state)
{
    (void)state;
    const char *texts[] = {"The cat sat; the CAT ran!", "a dog, the dog's bone (2 bones)", "café au lait"};
    attn_tokenizer *t = NULL;
    assert_int_equal(attn_word_tokenizer_build(&t, texts, 3, 2), ATTN_OK);
    /* the (5), cat (2), dog (2): counts first, then byte order */
    assert_int_equal(attn_tokenizer_vocab_size(t), 6);
    const char *b;
    size_t len;
    const char *want[] = {"[PAD]", "[CLS]", "[UNK]", "the", "cat", "dog"};
    for (uint32_t i = 0; i < 6; i++) {
        assert_int_equal(attn_tokenizer_token_bytes(t, i, &b, &len), ATTN_OK);
        assert_int_equal(len, strlen(want[i]));
        assert_memory_equal(b, want[i], len);
    }
    uint32_t *ids = NULL;
    size_t n = 0;
    const char *s = "THE Dog-cat, zebra 42";
    assert_int_equal(attn_tokenizer_encode(t, s, strlen(s), "s", &ids, &n), ATTN_OK);
    uint32_t expect[] = {3, 5, 4, ATTN_WORD_UNK, ATTN_WORD_UNK};
    assert_int_equal(n, 5);
    assert_memory_equal(ids, expect, sizeof expect);
    free(ids);
    assert_int_equal(attn_tokenizer_encode(t, "", 0, "s", &ids, &n), ATTN_OK);
    assert_int_equal(n, 0);
    free(ids);
    /* saved and loaded through the interface: the same ids */
    char path[600];
    snprintf(path, sizeof path, "%s/vocab.json", test_tmpdir());
    assert_int_equal(attn_tokenizer_save(t, path), ATTN_OK);
    attn_tokenizer *u = NULL;
    assert_int_equal(attn_tokenizer_load(&u, path), ATTN_OK);
    assert_int_equal(attn_tokenizer_vocab_size(u), 6);
    assert_int_equal(attn_tokenizer_encode(u, s, strlen(s), "s", &ids, &n), ATTN_OK);
    assert_memory_equal(ids, expect, sizeof expect);
    free(ids);
    attn_tokenizer_free(u);
    /* min count 1 keeps every word; UTF-8 bytes stay inside words */
    attn_tokenizer_free(t);
    assert_int_equal(attn_word_tokenizer_build(&t, texts, 3, 1), ATTN_OK);
    assert_int_equal(attn_tokenizer_encode(t, "CAFÉ café", strlen("CAFÉ café"), "s", &ids, &n), ATTN_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], ATTN_WORD_UNK); /* only ASCII is lower-cased */
    assert_true(ids[1] > ATTN_WORD_UNK);
    free(ids);
    attn_tokenizer_free(t);
    /* a bad vocabulary file */
    const char *bad = write_tmp("badvocab.json", "{\"type\": \"word\", \"tokens\": [\"[PAD]\", \"x\", \"[UNK]\"]}");
    assert_int_equal(attn_tokenizer_load(&u, bad), ATTN_E_FORMAT);
    assert_non_null(strstr(attn_last_error(), "[CLS]"));
}

static void test_metrics(void **state)
{
    (void)state;
    uint32_t gold[] = {0, 0, 1, 1, 2, 2}, pred[] = {0, 1, 1, 1, 2, 0};
    attn_cls_metrics m;
    size_t conf[9];
    attn_cls_score(&m, pred, gold, 6, 3, conf);
    assert_true(fabs(m.accuracy - 4.0 / 6.0) < 1e-12);
    /* F1: class 0 tp1 fp1 fn1 -> 0.5; class 1 tp2 fp1 fn0 -> 0.8; class 2 tp1 fp0 fn1 -> 2/3 */
    assert_true(fabs(m.macro_f1 - (0.5 + 0.8 + 2.0 / 3.0) / 3.0) < 1e-12);
    size_t want[9] = {1, 1, 0, 0, 2, 0, 1, 0, 1};
    assert_memory_equal(conf, want, sizeof want);
    double f1[4];
    attn_cls_f1_per_class(f1, conf, 3);
    assert_true(fabs(f1[0] - 0.5) < 1e-12 && fabs(f1[1] - 0.8) < 1e-12 && fabs(f1[2] - 2.0 / 3.0) < 1e-12);
    size_t absent[16] = {2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}; /* classes 1-3 absent */
    attn_cls_f1_per_class(f1, absent, 4);
    assert_true(f1[0] == 1.0 && f1[1] == 0.0 && f1[3] == 0.0);
    assert_int_equal(attn_majority_class(gold + 1, 5, 3), 1);
}

/* ---- a separable set ------------------------------------------------------------- */

static const char *const words[3][4] = {{"cat", "dog", "owl", "horse"},
                                        {"screen", "cable", "laptop", "keyboard"},
                                        {"bread", "cheese", "apple", "soup"}};
static const char *const fillers[] = {"the", "a", "small", "with", "and", "of"};

static void make_split(attn_cls_split *s, char ***labels_out, size_t n, attn_rng *r)
{
    static const char *const names[3] = {"animal", "artifact", "food"};
    memset(s, 0, sizeof *s);
    s->n = n;
    s->text = calloc(n, sizeof *s->text), s->label_name = calloc(n, sizeof *s->label_name);
    s->label = calloc(n, sizeof *s->label);
    s->storage = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t c = attn_rng_below(r, 3);
        char *t = malloc(128);
        snprintf(t, 128, "%s %s %s %s", fillers[attn_rng_below(r, 6)], words[c][attn_rng_below(r, 4)],
                 fillers[attn_rng_below(r, 6)], fillers[attn_rng_below(r, 6)]);
        s->text[i] = t, s->label_name[i] = (char *)names[c], s->label[i] = (uint32_t)c;
    }
    if (labels_out) *labels_out = NULL;
}

static void free_split(attn_cls_split *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->text[i]);
    free(s->text), free(s->label_name), free(s->label);
}

static void test_baselines(void **state)
{
    (void)state;
    attn_rng r;
    attn_rng_seed(&r, 5);
    attn_cls_split tr, va;
    make_split(&tr, NULL, 300, &r);
    make_split(&va, NULL, 60, &r);
    attn_tokenizer *tok = NULL;
    assert_int_equal(attn_word_tokenizer_build(&tok, (const char *const *)tr.text, tr.n, 2), ATTN_OK);
    attn_cls_tokens a, b;
    assert_int_equal(attn_cls_tokenize(&a, &tr, tok, 16), ATTN_OK);
    assert_int_equal(attn_cls_tokenize(&b, &va, tok, 16), ATTN_OK);
    assert_int_equal(a.ids[a.offset[0]], ATTN_WORD_CLS);
    assert_int_equal(a.offset[1] - a.offset[0], 5);
    attn_bow m;
    attn_bow_opts o = attn_bow_defaults();
    o.epochs = 3;
    assert_int_equal(attn_bow_train(&m, &a, &b, attn_tokenizer_vocab_size(tok), 3, &o), ATTN_OK);
    uint32_t *pred = malloc(b.n * sizeof *pred);
    attn_bow_predict(&m, &b, pred);
    attn_cls_metrics met;
    attn_cls_score(&met, pred, b.label, b.n, 3, NULL);
    assert_true(met.accuracy == 1.0);
    assert_true(met.macro_f1 == 1.0);
    free(pred);
    attn_bow_free(&m);
    attn_cls_tokens_free(&a), attn_cls_tokens_free(&b);
    attn_tokenizer_free(tok);
    free_split(&tr), free_split(&va);
}

/* ---- the encoder -------------------------------------------------------------------- */

static attn_encoder *tiny(attn_pooling pool, size_t batch)
{
    attn_encoder_config c = {10, 6, 2, 2, 8, 3, 1, pool};
    attn_encoder *e = NULL;
    assert_int_equal(attn_encoder_create(&e, &c, batch), ATTN_OK);
    assert_int_equal(attn_encoder_init(e, 7), ATTN_OK);
    attn_rng r;
    attn_rng_seed(&r, 11);
    const attn_param_ref *p = attn_encoder_params(e);
    for (size_t i = 0; i < attn_encoder_param_count(e); i++) /* large enough to matter */
        for (size_t j = 0; j < p[i].numel; j++) p[i].data[j] += (float)(attn_rng_uniform(&r) - 0.5) * 0.8f;
    return e;
}

/* The central difference of the loss of the batch ids (3, 6) in element j of
 * parameter *q, held against the gradient of the last backward (q->grad[j]). */
static void check_grad_at(attn_encoder *e, const attn_param_ref *q, size_t j, const uint32_t *ids,
                          const size_t *lens, const uint32_t *labels, const char *what)
{
    const double h = 1e-2;
    const float keep = q->data[j];
    double lp = 0, lm = 0;
    q->data[j] = (float)(keep + h);
    assert_int_equal(attn_encoder_forward(e, ids, lens, labels, 3, 6, &lp, NULL), ATTN_OK);
    q->data[j] = (float)(keep - h);
    assert_int_equal(attn_encoder_forward(e, ids, lens, labels, 3, 6, &lm, NULL), ATTN_OK);
    q->data[j] = keep;
    const float num = (float)((lp - lm) / (2 * h));
    char full[160];
    snprintf(full, sizeof full, "%s[%zu]%s", q->name, j, what);
    assert_close_f32(&q->grad[j], &num, 1, 2e-3, 3e-2, full);
}

static void grad_check(attn_pooling pool)
{
    attn_encoder *e = tiny(pool, 3);
    const uint32_t ids[3 * 6] = {1, 4, 5, 6, 7, 3, 1, 9, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0};
    const size_t lens[3] = {6, 3, 1};
    const uint32_t labels[3] = {2, 0, 1};
    double loss = 0;
    attn_encoder_zero_grad(e);
    assert_int_equal(attn_encoder_forward(e, ids, lens, labels, 3, 6, &loss, NULL), ATTN_OK);
    assert_int_equal(attn_encoder_backward(e, 1.0f), ATTN_OK);
    const attn_param_ref *p = attn_encoder_params(e);
    attn_rng r;
    attn_rng_seed(&r, 3);
    size_t checked = 0;
    for (size_t i = 0; i < attn_encoder_param_count(e); i++) {
        for (size_t k = 0; k < 5; k++) {
            size_t j = attn_rng_below(&r, p[i].numel);
            if (!strcmp(p[i].name, "wte.weight") && k == 0) j = 0; /* [PAD]: no gradient */
            check_grad_at(e, &p[i], j, ids, lens, labels, pool ? " (cls pooling)" : " (mean pooling)");
            checked++;
        }
    }
    assert_true(checked >= 5 * 20);
    /* [PAD]'s embedding never reaches the loss */
    for (size_t j = 0; j < 8; j++) assert_true(p[0].grad[j] == 0.0f);
    attn_encoder_free(e);
}

static void test_encoder_grad_mean(void **state)
{
    (void)state;
    grad_check(ATTN_POOL_MEAN);
}

static void test_encoder_grad_cls(void **state)
{
    (void)state;
    grad_check(ATTN_POOL_CLS);
}

static void test_key_padding(void **state)
{
    (void)state;
    for (int pool = 0; pool < 2; pool++) {
        attn_encoder *e = tiny((attn_pooling)pool, 3);
        /* B alone, unpadded */
        const uint32_t b_ids[3] = {1, 9, 4};
        size_t len = 3;
        assert_int_equal(attn_encoder_forward(e, b_ids, &len, NULL, 1, 3, NULL, NULL), ATTN_OK);
        float alone[3];
        memcpy(alone, attn_encoder_logits(e), sizeof alone);
        /* in a batch with a longer example, padded with [PAD] ... and with other ids */
        for (int junk = 0; junk < 2; junk++) {
            uint32_t pad = junk ? 7 : ATTN_WORD_PAD;
            const uint32_t ids[3 * 6] = {1, 4, 5, 6, 7, 3, 1, 9, 4, pad, pad, pad, 1, 2, pad, pad, pad, pad};
            const size_t lens[3] = {6, 3, 2};
            assert_int_equal(attn_encoder_forward(e, ids, lens, NULL, 3, 6, NULL, NULL), ATTN_OK);
            assert_close_f32(attn_encoder_logits(e) + 3, alone, 3, 1e-5, 1e-4, "padded logits");
        }
        /* bad lengths are errors, not reads past the row */
        size_t zero = 0, big = 7;
        assert_int_equal(attn_encoder_forward(e, b_ids, &zero, NULL, 1, 3, NULL, NULL), ATTN_E_INVALID);
        assert_int_equal(attn_encoder_forward(e, b_ids, &big, NULL, 1, 3, NULL, NULL), ATTN_E_INVALID);
        uint32_t bad_label = 3;
        assert_int_equal(attn_encoder_forward(e, b_ids, &len, &bad_label, 1, 3, NULL, NULL), ATTN_E_INVALID);
        attn_encoder_free(e);
    }
    attn_encoder_config c = {10, 6, 1, 3, 8, 3, 1, ATTN_POOL_MEAN};
    assert_int_equal(attn_encoder_config_check(&c), ATTN_E_INVALID);
    assert_non_null(strstr(attn_last_error(), "not divisible"));
}

/* ---- row-sparse AdamW ------------------------------------------------------------------- */

enum { SP_ROWS = 6, SP_COLS = 5 };

typedef struct sparse_model {
    float w[SP_ROWS * SP_COLS], gw[SP_ROWS * SP_COLS], b[3], gb[3];
    attn_param_ref p[2];
} sparse_model;

static void sparse_model_init(sparse_model *m)
{
    attn_rng r;
    attn_rng_seed(&r, 5);
    attn_rng_fill_normal(&r, m->w, SP_ROWS * SP_COLS, 0.0f, 1.0f);
    attn_rng_fill_normal(&r, m->b, 3, 0.0f, 1.0f);
    attn_param_ref w = {"w", m->w, m->gw, SP_ROWS * SP_COLS, 2, {SP_ROWS, SP_COLS}, 1};
    attn_param_ref b = {"b", m->b, m->gb, 3, 1, {3, 1}, 0};
    m->p[0] = w, m->p[1] = b;
}

/* Gradients of step s; rows of w outside `rows` (NULL: all) are zero. */
static void sparse_grads(sparse_model *m, int s, const uint32_t *rows, size_t n)
{
    attn_rng r;
    attn_rng_seed(&r, 100 + (uint64_t)s);
    attn_rng_fill_normal(&r, m->gw, SP_ROWS * SP_COLS, 0.0f, 3.0f);
    attn_rng_fill_normal(&r, m->gb, 3, 0.0f, 3.0f);
    for (size_t i = 0; rows && i < SP_ROWS; i++) {
        int touched = 0;
        for (size_t k = 0; k < n; k++) touched |= rows[k] == i;
        if (!touched) memset(m->gw + i * SP_COLS, 0, SP_COLS * sizeof(float));
    }
}

static void test_adamw_sparse_rows(void **state)
{
    (void)state;
    const attn_adamw_config ac = {0.9f, 0.99f, 1e-8f, 0.1f};
    static const uint32_t all[SP_ROWS] = {0, 1, 2, 3, 4, 5}, some[2] = {1, 4};
    sparse_model d, s;
    sparse_model_init(&d), sparse_model_init(&s);
    attn_adamw *od = NULL, *os = NULL;
    assert_int_equal(attn_adamw_create(&od, d.p, 2, &ac), ATTN_OK);
    assert_int_equal(attn_adamw_create(&os, s.p, 2, &ac), ATTN_OK);
    /* every row given: the dense step bit for bit, clipping included */
    for (int k = 0; k < 3; k++) {
        sparse_grads(&d, k, NULL, 0), sparse_grads(&s, k, NULL, 0);
        assert_int_equal(attn_adamw_set_rows(os, 0, all, SP_ROWS), ATTN_OK);
        double nd = attn_clip_grad_norm(d.p, 2, 1.0f), ns = attn_adamw_clip_grad_norm(os, 1.0f);
        assert_true(nd == ns && nd > 1.0);
        assert_memory_equal(d.gw, s.gw, sizeof d.gw);
        assert_int_equal(attn_adamw_step(od, 1e-2f), ATTN_OK);
        assert_int_equal(attn_adamw_step(os, 1e-2f), ATTN_OK);
        assert_memory_equal(d.w, s.w, sizeof d.w);
        assert_memory_equal(d.b, s.b, sizeof d.b);
    }
    /* two rows touched: those take the dense update (same history), the
     * others keep weights and moments (lazy Adam) where dense AdamW moves them */
    float w0[SP_ROWS * SP_COLS], m0[SP_ROWS * SP_COLS], v0[SP_ROWS * SP_COLS], *m, *v;
    memcpy(w0, s.w, sizeof w0);
    attn_adamw_moments(os, 0, &m, &v);
    memcpy(m0, m, sizeof m0), memcpy(v0, v, sizeof v0);
    for (int k = 3; k < 6; k++) {
        sparse_grads(&d, k, some, 2), sparse_grads(&s, k, some, 2);
        assert_int_equal(attn_adamw_set_rows(os, 0, some, 2), ATTN_OK);
        double nd = attn_clip_grad_norm(d.p, 2, 1.0f), ns = attn_adamw_clip_grad_norm(os, 1.0f);
        assert_true(nd == ns);
        assert_int_equal(attn_adamw_step(od, 1e-2f), ATTN_OK);
        assert_int_equal(attn_adamw_step(os, 1e-2f), ATTN_OK);
    }
    for (size_t i = 0; i < SP_ROWS; i++) {
        const size_t at = i * SP_COLS, bytes = SP_COLS * sizeof(float);
        if (i == 1 || i == 4) {
            assert_memory_equal(d.w + at, s.w + at, bytes);
        } else {
            assert_memory_equal(w0 + at, s.w + at, bytes);
            assert_memory_equal(m0 + at, m + at, bytes);
            assert_memory_equal(v0 + at, v + at, bytes);
            assert_memory_not_equal(w0 + at, d.w + at, bytes);
        }
    }
    assert_memory_equal(d.b, s.b, sizeof d.b); /* dense parameters as before */
    /* rows NULL: dense again */
    assert_int_equal(attn_adamw_set_rows(os, 0, NULL, 0), ATTN_OK);
    sparse_grads(&s, 9, NULL, 0);
    memcpy(w0, s.w, sizeof w0);
    assert_int_equal(attn_adamw_step(os, 1e-2f), ATTN_OK);
    for (size_t i = 0; i < SP_ROWS; i++) assert_true(s.w[i * SP_COLS] != w0[i * SP_COLS]);
    /* rows must be distinct, ascending, in range; only matrices */
    static const uint32_t unsorted[2] = {4, 1}, twice[2] = {1, 1}, out[1] = {SP_ROWS};
    assert_int_equal(attn_adamw_set_rows(os, 0, unsorted, 2), ATTN_E_INVALID);
    assert_int_equal(attn_adamw_set_rows(os, 0, twice, 2), ATTN_E_INVALID);
    assert_int_equal(attn_adamw_set_rows(os, 0, out, 1), ATTN_E_INVALID);
    assert_int_equal(attn_adamw_set_rows(os, 1, some, 1), ATTN_E_INVALID);
    assert_non_null(strstr(attn_last_error(), "not a matrix"));
    attn_adamw_free(od), attn_adamw_free(os);
}

static void test_encoder_grad_rows(void **state)
{
    (void)state;
    attn_encoder *e = tiny(ATTN_POOL_MEAN, 3);
    const attn_param_ref *p = attn_encoder_params(e);
    assert_string_equal(p[0].name, "wte.weight");
    assert_int_equal(p[0].decay, 0);
    const uint32_t ids[3 * 6] = {1, 4, 5, 6, 7, 3, 1, 9, 2, 0, 0, 0, 1, 5, 0, 0, 0, 0};
    const uint32_t ids2[2 * 3] = {1, 8, 8, 1, 2, 0};
    const size_t lens[3] = {6, 3, 2}, lens2[2] = {3, 2};
    const uint32_t labels[3] = {2, 0, 1};
    double loss = 0;
    size_t n = 0;
    for (int round = 0; round < 2; round++) { /* zero_grad leaves every gradient zero */
        attn_encoder_zero_grad(e);
        for (size_t i = 0; i < attn_encoder_param_count(e); i++)
            for (size_t j = 0; j < p[i].numel; j++) assert_true(p[i].grad[j] == 0.0f);
        assert_non_null(attn_encoder_grad_rows(e, &n));
        assert_int_equal(n, 0);
        assert_int_equal(attn_encoder_forward(e, ids, lens, labels, 3, 6, &loss, NULL), ATTN_OK);
        assert_int_equal(attn_encoder_backward(e, 1.0f), ATTN_OK);
        /* accumulation: a second backward adds its ids */
        assert_int_equal(attn_encoder_forward(e, ids2, lens2, labels, 2, 3, &loss, NULL), ATTN_OK);
        assert_int_equal(attn_encoder_backward(e, 1.0f), ATTN_OK);
        const uint32_t *rows = attn_encoder_grad_rows(e, &n);
        static const uint32_t want[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
        assert_int_equal(n, 10);
        assert_memory_equal(rows, want, sizeof want);
    }
    attn_encoder_zero_grad(e);
    assert_int_equal(attn_encoder_forward(e, ids2, lens2, labels, 2, 3, &loss, NULL), ATTN_OK);
    assert_int_equal(attn_encoder_backward(e, 1.0f), ATTN_OK);
    const uint32_t *rows = attn_encoder_grad_rows(e, &n);
    static const uint32_t want2[] = {0, 1, 2, 8};
    assert_int_equal(n, 4);
    assert_memory_equal(rows, want2, sizeof want2);
    const size_t C = p[0].shape[1];
    for (size_t r = 0; r < p[0].shape[0]; r++) { /* nothing outside those rows */
        int touched = r == 0 || r == 1 || r == 2 || r == 8;
        float sum = 0.0f;
        for (size_t j = 0; j < C; j++) sum += fabsf(p[0].grad[r * C + j]);
        if (!touched) assert_true(sum == 0.0f);
        else if (r == 1 || r == 8) assert_true(sum > 0.0f);
    }
    attn_encoder_zero_grad(e);
    for (size_t j = 0; j < p[0].numel; j++) assert_true(p[0].grad[j] == 0.0f);
    attn_encoder_free(e);
}

/* ---- dropout ---------------------------------------------------------------------------- */

static void test_dropout_op(void **state)
{
    (void)state;
    enum { N = 100000 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *y2 = malloc(N * sizeof *y2);
    float *dy = malloc(N * sizeof *dy), *dx = malloc(N * sizeof *dx);
    assert_true(x && y && y2 && dy && dx);
    attn_rng r;
    attn_rng_seed(&r, 9);
    attn_rng_fill_normal(&r, x, N, 0.0f, 1.0f);
    attn_rng_fill_normal(&r, dy, N, 0.0f, 1.0f);
    for (size_t i = 0; i < N; i++) x[i] += x[i] == 0.0f; /* no zeros: a 0 output means dropped */
    const uint64_t key = attn_dropout_key(1337, 42, 3);
    /* p = 0: the identity, bit for bit, forward and backward (accumulating) */
    assert_int_equal(attn_dropout_forward(y, x, N, 0.0f, key, NULL), ATTN_OK);
    assert_memory_equal(y, x, N * sizeof *x);
    memset(dx, 0, N * sizeof *dx);
    assert_int_equal(attn_dropout_backward(dx, dy, N, 0.0f, key), ATTN_OK);
    assert_memory_equal(dx, dy, N * sizeof *dx);
    const float ps[3] = {0.1f, 0.5f, 0.9f};
    for (int k = 0; k < 3; k++) {
        const float p = ps[k], scale = 1.0f / (1.0f - p);
        assert_int_equal(attn_dropout_forward(y, x, N, p, key, NULL), ATTN_OK);
        size_t dropped = 0, runs = 0;
        for (size_t i = 0; i < N; i++) {
            if (y[i] == 0.0f) dropped++;
            else assert_true(y[i] == x[i] * scale); /* inverted scaling */
            if (i && (y[i] == 0.0f) != (y[i - 1] == 0.0f)) runs++;
        }
        /* binomial: 5 standard deviations */
        const double sd = sqrt((double)N * p * (1.0 - p));
        assert_true(fabs((double)dropped - (double)N * p) < 5.0 * sd);
        /* neighbours independent: changes between i-1 and i happen 2p(1-p) of the time */
        assert_true(fabs((double)runs - 2.0 * N * p * (1.0 - p)) < 5.0 * sqrt(2.0 * N * p * (1.0 - p)));
        /* deterministic; another key, another mask */
        assert_int_equal(attn_dropout_forward(y2, x, N, p, key, NULL), ATTN_OK);
        assert_memory_equal(y, y2, N * sizeof *y);
        assert_int_equal(attn_dropout_forward(y2, x, N, p, attn_dropout_key(1337, 43, 3), NULL), ATTN_OK);
        assert_memory_not_equal(y, y2, N * sizeof *y);
        /* in place */
        memcpy(y2, x, N * sizeof *x);
        assert_int_equal(attn_dropout_forward(y2, y2, N, p, key, NULL), ATTN_OK);
        assert_memory_equal(y, y2, N * sizeof *y);
        /* backward: d_x += mask · d_y · scale, the forward's mask */
        for (size_t i = 0; i < N; i++) dx[i] = 1.0f;
        assert_int_equal(attn_dropout_backward(dx, dy, N, p, key), ATTN_OK);
        for (size_t i = 0; i < N; i++) {
            const float want = 1.0f + (y[i] != 0.0f ? dy[i] * scale : 0.0f);
            if (dx[i] != want) fail_msg("p %g: d_x[%zu] = %g, want %g", (double)p, i, (double)dx[i], (double)want);
        }
    }
    /* a slice from element 1000 with attn_dropout_key_at drops what the whole does */
    assert_int_equal(attn_dropout_forward(y, x, N, 0.5f, key, NULL), ATTN_OK);
    assert_int_equal(attn_dropout_forward(y2, x + 1000, N - 1000, 0.5f, attn_dropout_key_at(key, 1000), NULL), ATTN_OK);
    assert_memory_equal(y + 1000, y2, (N - 1000) * sizeof *y);
    assert_int_equal(attn_dropout_forward(y2, x + 1000, N - 1000, 0.5f, key, NULL), ATTN_OK);
    assert_memory_not_equal(y + 1000, y2, (N - 1000) * sizeof *y);
    assert_true(attn_dropout_key_at(key, 0) == key);
    assert_int_equal(attn_dropout_forward(y, x, N, 1.0f, key, NULL), ATTN_E_INVALID);
    assert_int_equal(attn_dropout_forward(y, x, N, -0.1f, key, NULL), ATTN_E_INVALID);
    assert_true(attn_dropout_key(1, 2, 3) != attn_dropout_key(1, 2, 4));
    assert_true(attn_dropout_key(1, 2, 3) != attn_dropout_key(1, 3, 3));
    assert_true(attn_dropout_key(1, 2, 3) != attn_dropout_key(2, 2, 3));
    free(x), free(y), free(y2), free(dy), free(dx);
}

/* The flag-keeping forward and its backward against the hashing pair they
 * replace in training: the same bits (the backward's on a zeroed d_x, some
 * of whose d_y are -0: 0 + -0 is +0). */
static void test_dropout_mask(void **state)
{
    (void)state;
    enum { N = 300001 }; /* past the threads' threshold, not a whole number of chunks */
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *y2 = malloc(N * sizeof *y2);
    float *dy = malloc(N * sizeof *dy), *dx = malloc(N * sizeof *dx), *dx2 = malloc(N * sizeof *dx2);
    uint8_t *mask = malloc(N);
    assert_true(x && y && y2 && dy && dx && dx2 && mask);
    attn_rng r;
    attn_rng_seed(&r, 11);
    attn_rng_fill_normal(&r, x, N, 0.0f, 1.0f);
    attn_rng_fill_normal(&r, dy, N, 0.0f, 1.0f);
    for (size_t i = 0; i < N; i += 7) dy[i] = -0.0f;
    const uint64_t key = attn_dropout_key(5, 6, 7);
    const float ps[3] = {0.0f, 0.1f, 0.5f};
    for (int k = 0; k < 3; k++) {
        const float p = ps[k];
        assert_int_equal(attn_dropout_forward(y, x, N, p, key, NULL), ATTN_OK);
        memset(mask, 7, N);
        assert_int_equal(attn_dropout_forward_mask(y2, mask, x, N, p, key), ATTN_OK);
        assert_memory_equal(y, y2, N * sizeof *y);
        size_t kept = 0;
        for (size_t i = 0; i < N; i++) {
            assert_true(mask[i] <= 1);
            kept += mask[i];
            if (!mask[i]) assert_true(y[i] == 0.0f);
        }
        if (p == 0.0f) assert_int_equal(kept, N);
        else assert_true(fabs((double)(N - kept) - (double)N * p) < 5.0 * sqrt((double)N * p * (1.0 - p)));
        memset(dx, 0, N * sizeof *dx);
        assert_int_equal(attn_dropout_backward(dx, dy, N, p, key), ATTN_OK);
        for (size_t i = 0; i < N; i++) dx2[i] = 3.0f; /* written, not added */
        assert_int_equal(attn_dropout_backward_mask(dx2, dy, mask, N, p), ATTN_OK);
        assert_memory_equal(dx, dx2, N * sizeof *dx);
        /* in place */
        memcpy(dx2, dy, N * sizeof *dy);
        assert_int_equal(attn_dropout_backward_mask(dx2, dx2, mask, N, p), ATTN_OK);
        assert_memory_equal(dx, dx2, N * sizeof *dx);
    }
    assert_int_equal(attn_dropout_forward_mask(y, NULL, x, N, 0.1f, key), ATTN_E_INVALID);
    assert_int_equal(attn_dropout_backward_mask(dx, dy, NULL, N, 0.1f), ATTN_E_INVALID);
    assert_int_equal(attn_dropout_backward_mask(dx, dy, mask, N, 1.0f), ATTN_E_INVALID);
    free(x), free(y), free(y2), free(dy), free(dx), free(dx2), free(mask);
}

static void test_encoder_dropout(void **state)
{
    (void)state;
    attn_encoder *e = tiny(ATTN_POOL_MEAN, 3);
    const uint32_t ids[3 * 6] = {1, 4, 5, 6, 7, 3, 1, 9, 2, 0, 0, 0, 1, 5, 0, 0, 0, 0};
    const size_t lens[3] = {6, 3, 2};
    const uint32_t labels[3] = {2, 0, 1};
    double l0 = 0, l1 = 0, l2 = 0;
    float z0[9];
    /* p = 0 is no dropout at all, bit for bit */
    assert_int_equal(attn_encoder_forward(e, ids, lens, labels, 3, 6, &l0, NULL), ATTN_OK);
    memcpy(z0, attn_encoder_logits(e), sizeof z0);
    assert_int_equal(attn_encoder_set_dropout(e, 0.0f, 77), ATTN_OK);
    assert_int_equal(attn_encoder_forward(e, ids, lens, labels, 3, 6, &l1, NULL), ATTN_OK);
    assert_memory_equal(z0, attn_encoder_logits(e), sizeof z0);
    /* p > 0 changes the output, the same way for the same key */
    const uint64_t key = attn_dropout_key(7, 5, 0);
    assert_int_equal(attn_encoder_set_dropout(e, 0.3f, key), ATTN_OK);
    assert_int_equal(attn_encoder_forward(e, ids, lens, labels, 3, 6, &l1, NULL), ATTN_OK);
    assert_int_equal(attn_encoder_forward(e, ids, lens, labels, 3, 6, &l2, NULL), ATTN_OK);
    assert_true(l1 == l2 && l1 != l0);
    assert_int_equal(attn_encoder_set_dropout(e, 1.0f, key), ATTN_E_INVALID);
    /* data parallel: examples 1..2 alone, told they start at example 1, drop
     * what the whole batch drops (the same logits; without the row, others) */
    float z1[9];
    memcpy(z1, attn_encoder_logits(e), sizeof z1);
    assert_int_equal(attn_encoder_set_dropout_row(e, 1), ATTN_OK);
    assert_int_equal(attn_encoder_forward(e, ids + 6, lens + 1, labels + 1, 2, 6, &l2, NULL), ATTN_OK);
    for (size_t i = 0; i < 6; i++) assert_float_equal(attn_encoder_logits(e)[i], z1[3 + i], 1e-6);
    assert_int_equal(attn_encoder_set_dropout_row(e, 0), ATTN_OK);
    assert_int_equal(attn_encoder_forward(e, ids + 6, lens + 1, labels + 1, 2, 6, &l2, NULL), ATTN_OK);
    double diff = 0;
    for (size_t i = 0; i < 6; i++) diff += fabs(attn_encoder_logits(e)[i] - z1[3 + i]);
    assert_true(diff > 1e-4);
    /* the backward through the masks, against finite differences at that key */
    attn_encoder_zero_grad(e);
    assert_int_equal(attn_encoder_forward(e, ids, lens, labels, 3, 6, &l1, NULL), ATTN_OK);
    assert_int_equal(attn_encoder_backward(e, 1.0f), ATTN_OK);
    const attn_param_ref *p = attn_encoder_params(e);
    attn_rng r;
    attn_rng_seed(&r, 4);
    for (size_t i = 0; i < attn_encoder_param_count(e); i++)
        for (size_t k = 0; k < 4; k++) {
            size_t j = attn_rng_below(&r, p[i].numel);
            check_grad_at(e, &p[i], j, ids, lens, labels, " with dropout");
        }
    attn_encoder_free(e);
}

static void test_encoder_label_smoothing(void **state)
{
    (void)state;
    attn_encoder *e = tiny(ATTN_POOL_CLS, 3);
    const uint32_t ids[3 * 6] = {1, 4, 5, 6, 7, 3, 1, 9, 2, 0, 0, 0, 1, 5, 0, 0, 0, 0};
    const size_t lens[3] = {6, 3, 2};
    const uint32_t labels[3] = {2, 0, 1};
    const float eps = 0.2f;
    double l = 0;
    assert_int_equal(attn_encoder_set_label_smoothing(e, 1.0f), ATTN_E_INVALID);
    assert_int_equal(attn_encoder_set_label_smoothing(e, eps), ATTN_OK);
    attn_encoder_zero_grad(e);
    assert_int_equal(attn_encoder_forward(e, ids, lens, labels, 3, 6, &l, NULL), ATTN_OK);
    /* torch: mean over rows of (1-ε)·(−log p_y) + ε·mean_k(−log p_k) */
    const float *z = attn_encoder_logits(e);
    double want = 0.0;
    for (size_t b = 0; b < 3; b++) {
        double sum = 0.0, all = 0.0;
        for (size_t k = 0; k < 3; k++) sum += exp((double)z[b * 3 + k]);
        for (size_t k = 0; k < 3; k++) all += log(sum) - z[b * 3 + k];
        want += (1.0 - eps) * (log(sum) - z[b * 3 + labels[b]]) + eps * all / 3.0;
    }
    assert_true(fabs(l - want / 3.0) < 1e-6);
    assert_int_equal(attn_encoder_backward(e, 1.0f), ATTN_OK);
    const attn_param_ref *p = attn_encoder_params(e);
    const size_t n = attn_encoder_param_count(e);
    for (size_t i = n - 2; i < n; i++) /* the head's weight and bias */
        for (size_t j = 0; j < p[i].numel; j += 5) check_grad_at(e, &p[i], j, ids, lens, labels, "");
    attn_encoder_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32),          cmocka_unit_test(test_wordnet_build),
        cmocka_unit_test(test_wordnet_errors), cmocka_unit_test(test_word_tokenizer),
        cmocka_unit_test(test_metrics),        cmocka_unit_test(test_baselines),
        cmocka_unit_test(test_encoder_grad_mean), cmocka_unit_test(test_encoder_grad_cls),
        cmocka_unit_test(test_key_padding),    cmocka_unit_test(test_adamw_sparse_rows),
        cmocka_unit_test(test_encoder_grad_rows), cmocka_unit_test(test_dropout_op),
        cmocka_unit_test(test_dropout_mask),
        cmocka_unit_test(test_encoder_dropout), cmocka_unit_test(test_encoder_label_smoothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
