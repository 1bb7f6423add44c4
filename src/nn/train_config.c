/* train_config.c - the trainers' hyperparameter tables and what reads and
 * writes them (attn/train_config.h). */
#include "attn/train_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/classify.h"
#include "attn/train.h"

#define BIG 9007199254740992.0 /* 2^53: whole numbers a double holds exactly */
#define M24 16777216.0         /* the models' size limit, 2^24 */

/* ---- the tables ------------------------------------------------------------------ */

#define GM(f) 0, offsetof(attn_gpt_config, f)
#define EM(f) 0, offsetof(attn_encoder_config, f)
#define TR(f) 1, offsetof(attn_train_config, f)
#define CO(f) 2, offsetof(attn_cls_opts, f)
#define OPEN_LO ATTN_HP_LO_OPEN
#define OPEN_HI ATTN_HP_HI_OPEN
#define OPEN (ATTN_HP_LO_OPEN | ATTN_HP_HI_OPEN)

/* Both trainers': the products of the linear layers (attn_gemm_set_precision). */
#define PRECISION                                                                                 \
    {"precision", ATTN_HP_CHOICE, TR(precision), 0, 0, 1, 0, "fp32|bf16", "training", \
     "the products of the linear layers: bf16 rounds\ntheir inputs (fp32 sums, fp32 weights kept)"}

static const attn_hparam gpt[] = {
    {"layers", ATTN_HP_SIZE, GM(layers), 4, 1, 4096, 0, "N", "model", "blocks"},
    {"heads", ATTN_HP_SIZE, GM(heads), 4, 1, M24, 0, "N", "model", "attention heads"},
    {"width", ATTN_HP_SIZE, GM(width), 128, 1, 65536, 0, "N", "model", "embedding width, divisible by heads"},
    {"context", ATTN_HP_SIZE, GM(context), 64, 1, M24, 0, "N", "model", "context length in tokens"},
    {"bias", ATTN_HP_BOOL, GM(bias), 0, 0, 1, 0, NULL, "model", "biases in linear layers and layer norms"},
    {"vocab_size", ATTN_HP_SIZE, GM(vocab_size), 0, 0, M24, ATTN_HP_DATA, "N", "model", "from the data"},
    {"batch", ATTN_HP_SIZE, TR(batch), 12, 1, 1048576, 0, "N", "training", "sequences per micro-batch"},
    {"accum", ATTN_HP_SIZE, TR(accum), 1, 1, 1048576, 0, "N", "training",
     "micro-batches per step (gradient accumulation)"},
    {"iters", ATTN_HP_SIZE, TR(iters), 2000, 1, BIG, ATTN_HP_RESUMABLE, "N", "training",
     "optimizer steps (may be raised when resuming)"},
    {"lr", ATTN_HP_FLOAT, TR(lr), 1e-3, 0, INFINITY, OPEN, "X", "training", "peak learning rate"},
    {"min_lr", ATTN_HP_FLOAT, TR(min_lr), 1e-4, 0, INFINITY, OPEN_HI, "X", "training",
     "learning rate at the end of the cosine decay"},
    {"warmup", ATTN_HP_SIZE, TR(warmup), 100, 0, BIG, 0, "N", "training", "linear warm-up steps"},
    {"decay_iters", ATTN_HP_SIZE, TR(decay_iters), 0, 0, BIG, 0, "N", "training",
     "step where the decay reaches min-lr, 0 = iters"},
    {"weight_decay", ATTN_HP_FLOAT, TR(weight_decay), 0.1, 0, INFINITY, OPEN_HI, "X", "training",
     "AdamW weight decay of matrices"},
    {"beta1", ATTN_HP_FLOAT, TR(beta1), 0.9, 0, 1, OPEN_HI, "X", "training", "AdamW beta1"},
    {"beta2", ATTN_HP_FLOAT, TR(beta2), 0.99, 0, 1, OPEN_HI, "X", "training", "AdamW beta2"},
    {"eps", ATTN_HP_FLOAT, TR(eps), 1e-8, 0, INFINITY, OPEN, "X", "training", "AdamW epsilon"},
    {"grad_clip", ATTN_HP_FLOAT, TR(grad_clip), 1.0, 0, INFINITY, OPEN_HI, "X", "training",
     "clip the global gradient norm to X, 0 = off"},
    {"val_fraction", ATTN_HP_FLOAT, TR(val_fraction), 0.1, 0, 1, OPEN, "X", "training",
     "share of the text held out for validation"},
    {"seed", ATTN_HP_U64, TR(seed), 1337, 0, BIG, 0, "N", "training",
     "seed of initialisation and batch sampling"},
    PRECISION,
    {"eval_every", ATTN_HP_SIZE, TR(eval_every), 250, 0, BIG, 0, "N", "progress and checkpoints",
     "validation loss every N steps, and at the end"},
    {"eval_iters", ATTN_HP_SIZE, TR(eval_iters), 20, 0, BIG, 0, "N", "progress and checkpoints",
     "batches per evaluation, 0 = the whole split,\nin order"},
    {"checkpoint_every", ATTN_HP_SIZE, TR(checkpoint_every), 0, 0, BIG, ATTN_HP_RESUMABLE, "N",
     "progress and checkpoints", "also write a checkpoint every N steps,\n0 = only at the end"},
};

static const attn_hparam cls[] = {
    {"layers", ATTN_HP_SIZE, EM(layers), 2, 1, 4096, 0, "N", "model", "encoder blocks"},
    {"heads", ATTN_HP_SIZE, EM(heads), 4, 1, M24, 0, "N", "model", "attention heads"},
    {"width", ATTN_HP_SIZE, EM(width), 128, 1, 65536, 0, "N", "model", "embedding width, divisible by heads"},
    {"context", ATTN_HP_SIZE, EM(context), 128, 2, M24, 0, "N", "model", "most tokens per text, [CLS] included"},
    {"pooling", ATTN_HP_CHOICE, EM(pooling), ATTN_POOL_MEAN, 0, 1, 0, "mean|cls", "model",
     "mean (of the tokens) or cls (the [CLS] token)"},
    {"bias", ATTN_HP_BOOL, EM(bias), 1, 0, 1, 0, NULL, "model", "biases in linear layers and layer norms"},
    {"min_count", ATTN_HP_SIZE, CO(min_count), 2, 1, BIG, 0, "N", "model",
     "vocabulary: words seen at least N times in train"},
    {"vocab_size", ATTN_HP_SIZE, EM(vocab_size), 0, 0, M24, ATTN_HP_DATA, "N", "model", "from the data"},
    {"classes", ATTN_HP_SIZE, EM(classes), 0, 0, M24, ATTN_HP_DATA, "N", "model", "from the data"},
    {"epochs", ATTN_HP_SIZE, CO(epochs), 4, 0, BIG, 0, "N", "training",
     "passes over train (--iters N counts steps instead)"},
    {"iters", ATTN_HP_SIZE, TR(iters), 1, 1, BIG, ATTN_HP_RESUMABLE, "N", "training",
     "optimizer steps instead of epochs (may be raised\nwhen resuming; default: from the epochs)"},
    {"patience", ATTN_HP_SIZE, CO(patience), 2, 0, BIG, 0, "N", "training",
     "stop after N evaluations without a better validation\naccuracy, 0 = never"},
    {"batch", ATTN_HP_SIZE, TR(batch), 64, 1, 1048576, 0, "N", "training", "texts per step"},
    {"lr", ATTN_HP_FLOAT, TR(lr), 1e-3, 0, INFINITY, OPEN, "X", "training", "peak learning rate"},
    {"min_lr", ATTN_HP_FLOAT, TR(min_lr), 1e-4, 0, INFINITY, OPEN_HI, "X", "training",
     "final learning rate, at most lr"},
    {"warmup", ATTN_HP_SIZE, TR(warmup), 100, 0, BIG, 0, "N", "training", "linear warm-up steps"},
    {"decay_iters", ATTN_HP_SIZE, TR(decay_iters), 0, 0, BIG, 0, "N", "training",
     "step where the cosine decay reaches min-lr,\n0 = iters"},
    {"weight_decay", ATTN_HP_FLOAT, TR(weight_decay), 0.01, 0, INFINITY, OPEN_HI, "X", "training",
     "AdamW weight decay of matrices, not of the token\nembedding (updated row-sparsely)"},
    {"beta1", ATTN_HP_FLOAT, TR(beta1), 0.9, 0, 1, OPEN_HI, "X", "training", "AdamW beta1"},
    {"beta2", ATTN_HP_FLOAT, TR(beta2), 0.999, 0, 1, OPEN_HI, "X", "training", "AdamW beta2"},
    {"eps", ATTN_HP_FLOAT, TR(eps), 1e-8, 0, INFINITY, OPEN, "X", "training", "AdamW epsilon"},
    {"grad_clip", ATTN_HP_FLOAT, TR(grad_clip), 1.0, 0, INFINITY, OPEN_HI, "X", "training",
     "clip the global gradient norm, 0 = off"},
    {"dropout", ATTN_HP_FLOAT, CO(dropout), 0.1, 0, 1, OPEN_HI, "P", "training",
     "dropout after the embeddings and on each block's\nattention and MLP outputs while training, 0 = off"},
    {"label_smoothing", ATTN_HP_FLOAT, CO(label_smoothing), 0.1, 0, 1, OPEN_HI, "E", "training",
     "train on (1-E)·one-hot + E/classes targets"},
    {"seed", ATTN_HP_U64, TR(seed), 1337, 0, BIG, 0, "N", "training", "initialisation and batch order"},
    PRECISION,
    {"eval_every", ATTN_HP_SIZE, TR(eval_every), 0, 0, BIG, 0, "N", "progress and checkpoints",
     "validate every N steps and at the end,\n0 = at the end of every epoch"},
    {"checkpoint_every", ATTN_HP_SIZE, TR(checkpoint_every), 0, 0, BIG, ATTN_HP_RESUMABLE, "N",
     "progress and checkpoints", "also write a checkpoint every N steps,\n0 = only at the end"},
    /* attn_train_config fields the classifier does not use, kept in config.json */
    {"accum", ATTN_HP_SIZE, TR(accum), 1, 1, 1048576, ATTN_HP_HIDDEN, "N", "training", ""},
    {"eval_iters", ATTN_HP_SIZE, TR(eval_iters), 20, 0, BIG, ATTN_HP_HIDDEN, "N", "training", ""},
    {"val_fraction", ATTN_HP_FLOAT, TR(val_fraction), 0.1, 0, 1, OPEN | ATTN_HP_HIDDEN, "X", "training", ""},
};

static const char *const gpt_parts[] = {"model", "train"};
static const char *const cls_parts[] = {"model", "train", "classify"};

const attn_hparams *attn_gpt_hparams(void)
{
    static const attn_hparams h = {"gpt", gpt, sizeof gpt / sizeof *gpt, 2, gpt_parts};
    return &h;
}

const attn_hparams *attn_cls_hparams(void)
{
    static const attn_hparams h = {"classify", cls, sizeof cls / sizeof *cls, 3, cls_parts};
    return &h;
}

/* ---- one value ------------------------------------------------------------------- */

static void *field(const attn_hparam *p, void *const *parts) { return (char *)parts[p->part] + p->offset; }

/* The index of `s` (len bytes) among "a|b|c", or -1. */
static int choice_index(const char *choices, const char *s, size_t len)
{
    int i = 0;
    for (const char *c = choices; *c; i++) {
        size_t n = strcspn(c, "|");
        if (n == len && !strncmp(c, s, len)) return i;
        c += n + (c[n] == '|');
    }
    return -1;
}

static int in_range(const attn_hparam *p, double v)
{
    if (p->flags & ATTN_HP_LO_OPEN ? !(v > p->lo) : !(v >= p->lo)) return 0;
    if (p->flags & ATTN_HP_HI_OPEN ? !(v < p->hi) : !(v <= p->hi)) return 0;
    return 1;
}

/* Stores v (already of the entry's type); 0, or -1 when out of range. */
static int store(const attn_hparam *p, void *const *parts, double v)
{
    void *at = field(p, parts);
    switch (p->type) {
    case ATTN_HP_FLOAT:
        if (!isfinite((float)v) || !in_range(p, (double)(float)v)) return -1;
        *(float *)at = (float)v;
        return 0;
    case ATTN_HP_BOOL:
    case ATTN_HP_CHOICE:
        if (!in_range(p, v)) return -1;
        *(int *)at = (int)v;
        return 0;
    default:
        if (v != floor(v) || !in_range(p, v)) return -1;
        if (p->type == ATTN_HP_U64) *(uint64_t *)at = (uint64_t)v;
        else *(size_t *)at = (size_t)v;
        return 0;
    }
}

static double load(const attn_hparam *p, void *const *parts)
{
    const void *at = field(p, parts);
    switch (p->type) {
    case ATTN_HP_FLOAT: return *(const float *)at;
    case ATTN_HP_BOOL:
    case ATTN_HP_CHOICE: return *(const int *)at;
    case ATTN_HP_U64: return (double)*(const uint64_t *)at;
    default: return (double)*(const size_t *)at;
    }
}

char *attn_float_shortest(char *buf, size_t n, float v)
{
    /* 9 significant digits always round-trip a float; most values need fewer. */
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v && (float)strtod(buf, NULL) == v) break;
    }
    return buf;
}

static void bound(char *buf, size_t n, const attn_hparam *p, double v)
{
    if (isinf(v)) snprintf(buf, n, "inf");
    else if (p->type == ATTN_HP_FLOAT) attn_float_shortest(buf, n, (float)v);
    else snprintf(buf, n, "%.0f", v);
}

char *attn_hparam_expects(const attn_hparam *p, char *buf, size_t n)
{
    char lo[32], hi[32];
    bound(lo, sizeof lo, p, p->lo), bound(hi, sizeof hi, p, p->hi);
    const char *what = p->type == ATTN_HP_FLOAT ? "a number" : "an integer";
    if (p->type == ATTN_HP_CHOICE) snprintf(buf, n, "one of %s", p->arg);
    else if (p->type == ATTN_HP_BOOL) snprintf(buf, n, "true or false");
    else if (isinf(p->hi) || p->hi >= BIG)
        snprintf(buf, n, "%s %s %s", what, p->flags & ATTN_HP_LO_OPEN ? ">" : ">=", lo);
    else
        snprintf(buf, n, "%s in %c%s, %s%c", what, p->flags & ATTN_HP_LO_OPEN ? '(' : '[', lo, hi,
                 p->flags & ATTN_HP_HI_OPEN ? ')' : ']');
    return buf;
}

/* The flag spelling of a key: min_lr -> min-lr. */
char *attn_hparam_flag(const attn_hparam *p, char *buf, size_t n)
{
    snprintf(buf, n, "%s", p->name);
    for (char *c = buf; *c; c++)
        if (*c == '_') *c = '-';
    return buf;
}

attn_status attn_hparam_parse(const attn_hparam *p, void *const *parts, const char *text)
{
    char flag[64], want[96];
    attn_hparam_flag(p, flag, sizeof flag);
    double v = NAN;
    if (p->type == ATTN_HP_CHOICE) {
        v = choice_index(p->arg, text, strlen(text));
    } else if (p->type == ATTN_HP_BOOL) {
        v = !strcmp(text, "true") || !strcmp(text, "1") ? 1 : !strcmp(text, "false") || !strcmp(text, "0") ? 0 : -1;
    } else {
        char *end;
        v = strtod(text, &end);
        if (end == text || *end || (p->type != ATTN_HP_FLOAT && strspn(text, "0123456789") != strlen(text)))
            v = NAN;
    }
    if (!(v >= 0 || p->type == ATTN_HP_FLOAT) || isnan(v) || store(p, parts, v))
        return attn_error(ATTN_E_INVALID, "--%s: expected %s, found '%s'", flag, attn_hparam_expects(p, want, sizeof want),
                          text);
    return ATTN_OK;
}

char *attn_hparam_format(const attn_hparam *p, void *const *parts, char *buf, size_t n)
{
    double v = load(p, parts);
    if (p->type == ATTN_HP_FLOAT) return attn_float_shortest(buf, n, (float)v);
    if (p->type == ATTN_HP_BOOL) snprintf(buf, n, "%s", v ? "true" : "false");
    else if (p->type == ATTN_HP_CHOICE) {
        const char *c = p->arg;
        for (int i = 0; i < (int)v && strchr(c, '|'); i++) c = strchr(c, '|') + 1;
        snprintf(buf, n, "\"%.*s\"", (int)strcspn(c, "|"), c);
    } else snprintf(buf, n, "%.0f", v);
    return buf;
}

/* ---- the whole table ------------------------------------------------------------- */

void attn_hparams_defaults(const attn_hparams *h, void *const *parts)
{
    for (size_t i = 0; i < h->n; i++) store(&h->p[i], parts, h->p[i].def);
}

const attn_hparam *attn_hparam_find(const attn_hparams *h, const char *name)
{
    char flag[64];
    for (size_t i = 0; i < h->n; i++) {
        attn_hparam_flag(&h->p[i], flag, sizeof flag);
        if (!strcmp(h->p[i].name, name) || !strcmp(flag, name)) return &h->p[i];
    }
    return NULL;
}

attn_status attn_hparams_check(const attn_hparams *h, void *const *parts)
{
    char want[96];
    for (size_t i = 0; i < h->n; i++) {
        const attn_hparam *p = &h->p[i];
        if (p->flags & ATTN_HP_DATA) continue;
        if (!in_range(p, load(p, parts)))
            return attn_error(ATTN_E_INVALID, "%s must be %s", p->name, attn_hparam_expects(p, want, sizeof want));
    }
    return ATTN_OK;
}

static attn_status set_json(const attn_hparams *h, void *const *parts, const cJSON *it, const char *what)
{
    const attn_hparam *p = NULL;
    for (size_t i = 0; i < h->n && !p; i++)
        if (!strcmp(h->p[i].name, it->string)) p = &h->p[i];
    if (!p) return attn_error(ATTN_E_FORMAT, "%s: unknown key \"%s\"", what, it->string);
    double v = NAN;
    if (p->type == ATTN_HP_BOOL && (cJSON_IsBool(it) || cJSON_IsNumber(it)))
        v = cJSON_IsTrue(it) || (cJSON_IsNumber(it) && it->valuedouble != 0);
    else if (p->type == ATTN_HP_CHOICE && cJSON_IsString(it))
        v = choice_index(p->arg, it->valuestring, strlen(it->valuestring));
    else if (p->type != ATTN_HP_BOOL && p->type != ATTN_HP_CHOICE && cJSON_IsNumber(it))
        v = it->valuedouble;
    char want[96];
    if (isnan(v) || store(p, parts, v))
        return attn_error(ATTN_E_FORMAT, "%s: \"%s\" must be %s", what, p->name,
                          attn_hparam_expects(p, want, sizeof want));
    return ATTN_OK;
}

attn_status attn_hparams_from_json(const attn_hparams *h, void *const *parts, const char *json,
                                   const char *what, const char *const *ignore)
{
    if (!h || !parts || !json || !what) return attn_error(ATTN_E_INVALID, "attn_hparams_from_json: NULL");
    cJSON *root = cJSON_Parse(json);
    attn_status st = cJSON_IsObject(root) ? ATTN_OK : attn_error(ATTN_E_FORMAT, "%s: not a JSON object", what);
    const cJSON *it, *top = st ? NULL : root;
    cJSON_ArrayForEach(it, top)
    {
        int group = 0, skip = 0;
        for (size_t i = 0; i < h->n_parts; i++) group |= cJSON_IsObject(it) && !strcmp(it->string, h->part_names[i]);
        for (size_t i = 0; ignore && ignore[i]; i++) skip |= !strcmp(it->string, ignore[i]);
        if (group) {
            const cJSON *kv;
            cJSON_ArrayForEach(kv, it) if (!st) st = set_json(h, parts, kv, what);
        } else if (!skip) {
            st = set_json(h, parts, it, what);
        }
        if (st) break;
    }
    cJSON_Delete(root);
    return st;
}

attn_status attn_hparams_to_json(const attn_hparams *h, void *const *parts, char **json)
{
    if (!h || !parts || !json) return attn_error(ATTN_E_INVALID, "attn_hparams_to_json: NULL");
    *json = NULL;
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    for (size_t k = 0; ok && k < h->n_parts; k++) {
        cJSON *obj = cJSON_AddObjectToObject(root, h->part_names[k]);
        ok = obj != NULL;
        for (size_t i = 0; ok && i < h->n; i++) {
            char num[64];
            if (h->p[i].part == (int)k)
                ok = cJSON_AddRawToObject(obj, h->p[i].name, attn_hparam_format(&h->p[i], parts, num, sizeof num)) != NULL;
        }
    }
    if (ok) *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return *json ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
}
