/* sense.c - learning to tell "mouse" the animal from "mouse" the device.
 *
 * Data: sentences made from templates and context words of either sense.
 * Embeddings are random per word (seeded), with a shared direction for each
 * sense among its context words; "mouse" is given both directions equally, so
 * its own vector cannot tell. Plain objects ("table") leave the sense
 * unclear. Model: one attention head (d = 8, d_k = 4, d_v = 3) whose out_proj
 * reads the head output at "mouse" into three logits (animal, tech, unclear).
 * Training: Adam on the softmax cross-entropy, with the layer's own backward
 * pass. */
#include "attn/sense.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn/embeddings.h"
#include "attn/rng.h"
#include "attn/selfattn.h"
#include "attn/train.h"

#define DIM 8
#define WORD "mouse"

static const char *const animal_words[] = {"cat", "dog", "cheese", "trap", "hole",
                                           "tail", "barn", "owl", "snake", "hawk"};
static const char *const tech_words[] = {"keyboard", "screen", "click", "cable", "laptop",
                                         "usb", "scroll", "monitor", "cursor", "wireless"};
static const char *const plain_words[] = {"table", "box", "house", "floor", "bag",
                                          "room", "door", "chair", "desk", "bed"};
static const char *const neutral_words[] = {"the", "a", "and", "are", "is", "friends",
                                            "useful", "near", "with", "small", "my", WORD};
/* W = a context word; "friends" and "useful" appear with both senses, so the
 * model cannot learn the sense from them. */
static const char *const templates[] = {
    "W and mouse are friends", "W and mouse are useful", "the W and the mouse",
    "a mouse near the W",      "the mouse with a W",     "my W and my mouse",
    "the small mouse and the W", "W mouse",              "mouse near W",
    "the W is near a mouse",
};
#define N_CTX (sizeof animal_words / sizeof *animal_words)
#define N_TEMPLATES (sizeof templates / sizeof *templates)

typedef struct sentence {
    attn_embeddings x;
    size_t pos;  /* index of the word */
    int sense;   /* 0 animal, 1 tech, 2 unclear */
    int split;   /* 0 training, 1 held out */
} sentence;

struct attn_sense {
    attn_sense_opts opts;
    attn_embeddings vocab;
    sentence *s;
    size_t n;
    attn_mha *mha;
    attn_mha_cache *cache;
    attn_param_ref all; /* the layer's parameters as one flat table entry */
    attn_adamw *opt;
    attn_rng rng;
};

attn_sense_opts attn_sense_defaults(void)
{
    attn_sense_opts o = {1, 40, 8, 0.02f};
    return o;
}

const char *attn_sense_word(void) { return WORD; }
const char *attn_sense_name(int sense)
{
    return sense == 0 ? "animal" : sense == 1 ? "tech" : "unclear";
}
attn_mha *attn_sense_layer(attn_sense *t) { return t ? t->mha : NULL; }

static attn_status build_vocab(attn_sense *t)
{
    enum { NA = N_CTX, NT = N_CTX, NP = N_CTX, NN = sizeof neutral_words / sizeof *neutral_words };
    const size_t n = NA + NT + NP + NN;
    const char *words[NA + NT + NP + NN], *dims[DIM];
    char dim_names[DIM][8];
    float data[(NA + NT + NP + NN) * DIM], dir_a[DIM], dir_t[DIM], dir_n[DIM];
    for (size_t j = 0; j < DIM; j++) {
        snprintf(dim_names[j], sizeof dim_names[j], "e%zu", j);
        dims[j] = dim_names[j];
    }
    attn_rng_fill_normal(&t->rng, dir_a, DIM, 0, 1.0f / sqrtf(DIM));
    attn_rng_fill_normal(&t->rng, dir_t, DIM, 0, 1.0f / sqrtf(DIM));
    attn_rng_fill_normal(&t->rng, dir_n, DIM, 0, 1.0f / sqrtf(DIM));
    for (size_t i = 0; i < n; i++) {
        words[i] = i < NA            ? animal_words[i]
                   : i < NA + NT      ? tech_words[i - NA]
                   : i < NA + NT + NP ? plain_words[i - NA - NT]
                                      : neutral_words[i - NA - NT - NP];
        float *row = data + i * DIM;
        attn_rng_fill_normal(&t->rng, row, DIM, 0, 0.5f);
        int is_word = strcmp(words[i], WORD) == 0;
        /* Context nouns share a "thing" direction (so that attention can find
         * them) plus their sense's direction; plain objects have none. */
        for (size_t j = 0; j < DIM; j++) {
            if (i < NA + NT + NP) row[j] += 1.5f * dir_n[j];
            if (i < NA) row[j] += 1.5f * dir_a[j];
            else if (i < NA + NT) row[j] += 1.5f * dir_t[j];
            else if (is_word) row[j] += 1.0f * (dir_a[j] + dir_t[j]);
        }
    }
    return attn_embeddings_from_arrays(&t->vocab, n, words, DIM, dims, data);
}

/* "W ..." with W replaced by `ctx`. */
static void fill_template(char *out, size_t n, const char *tpl, const char *ctx)
{
    size_t len = 0;
    for (const char *p = tpl; *p && len + 1 < n; p++) {
        if (*p == 'W' && (p == tpl || p[-1] == ' ') && (p[1] == ' ' || !p[1])) {
            len += (size_t)snprintf(out + len, n - len, "%s", ctx);
            if (len >= n) len = n - 1;
        } else {
            out[len++] = *p;
        }
    }
    out[len] = '\0';
}

static attn_status build_sentences(attn_sense *t)
{
    t->n = ATTN_SENSE_CLASSES * N_CTX * N_TEMPLATES;
    t->s = calloc(t->n, sizeof *t->s);
    if (!t->s) return attn_error(ATTN_E_NOMEM, "cannot allocate sentences");
    size_t k = 0;
    const char *const *ctx[ATTN_SENSE_CLASSES] = {animal_words, tech_words, plain_words};
    for (int sense = 0; sense < ATTN_SENSE_CLASSES; sense++)
        for (size_t c = 0; c < N_CTX; c++)
            for (size_t i = 0; i < N_TEMPLATES; i++, k++) {
                char text[128];
                fill_template(text, sizeof text, templates[i], ctx[sense][c]);
                sentence *s = &t->s[k];
                attn_status st = attn_embeddings_lookup(&s->x, &t->vocab, text);
                if (st) return st;
                s->pos = (size_t)attn_embeddings_find(&s->x, WORD);
                s->sense = sense;
                s->split = attn_rng_uniform(&t->rng) < 0.25; /* a quarter held out */
            }
    return ATTN_OK;
}

attn_status attn_sense_create(attn_sense **out, const attn_sense_opts *opts)
{
    if (!out) return attn_error(ATTN_E_INVALID, "attn_sense_create: NULL");
    *out = NULL;
    attn_sense *t = calloc(1, sizeof *t);
    if (!t) return attn_error(ATTN_E_NOMEM, "cannot allocate the sense task");
    t->opts = opts ? *opts : attn_sense_defaults();
    if (!t->opts.epochs || !t->opts.batch || !(t->opts.lr > 0) || !isfinite(t->opts.lr)) {
        free(t);
        return attn_error(ATTN_E_INVALID, "sense task: epochs, batch and lr must be > 0");
    }
    attn_rng_seed(&t->rng, t->opts.seed);
    attn_mha_config c = attn_mha_default_config(DIM, 1);
    c.head_dim = 4;    /* d_k */
    c.v_head_dim = 3;  /* d_v != d: V projects to another width */
    c.out_dim = ATTN_SENSE_CLASSES; /* out_proj: the read-out to one logit per class */
    size_t np = 0;
    attn_status st = build_vocab(t);
    if (!st) st = build_sentences(t);
    if (!st) st = attn_mha_create(&t->mha, &c);
    if (!st) st = attn_mha_init(t->mha, t->opts.seed);
    if (!st) st = attn_mha_cache_create(&t->cache);
    if (!st) {
        /* Adam (AdamW without decay) on the flat parameters, torch's defaults */
        t->all.name = "mha";
        t->all.data = attn_mha_params(t->mha, &np);
        t->all.grad = attn_mha_grads(t->mha, &np);
        t->all.numel = np, t->all.ndim = 1, t->all.shape[0] = np, t->all.shape[1] = 1;
        attn_adamw_config ac = {0.9f, 0.999f, 1e-8f, 0.0f};
        st = attn_adamw_create(&t->opt, &t->all, 1, &ac);
    }
    if (st) {
        attn_sense_free(t);
        return st;
    }
    *out = t;
    return ATTN_OK;
}

void attn_sense_free(attn_sense *t)
{
    if (!t) return;
    for (size_t i = 0; t->s && i < t->n; i++) attn_embeddings_free(&t->s[i].x);
    free(t->s);
    attn_embeddings_free(&t->vocab);
    attn_mha_cache_free(t->cache);
    attn_mha_free(t->mha);
    attn_adamw_free(t->opt);
    free(t);
}

size_t attn_sense_count(const attn_sense *t, int split)
{
    size_t n = 0;
    for (size_t i = 0; t && i < t->n; i++) n += t->s[i].split == split;
    return n;
}

#define MAX_TOKENS 16

/* Class probabilities from the logits at the word (the library's softmax,
 * in double: attn_softmax_ref); returns the argmax. */
static int softmax3(const float *z, double *p)
{
    float q[ATTN_SENSE_CLASSES];
    int best = 0;
    attn_softmax_ref(q, z, 1, ATTN_SENSE_CLASSES); /* sizes fixed: cannot fail */
    for (int c = 0; c < ATTN_SENSE_CLASSES; c++) {
        p[c] = q[c];
        if (z[c] > z[best]) best = c;
    }
    return best;
}

/* Class probabilities at the word, the activations kept in the cache when asked. */
static attn_status classify(attn_sense *t, const sentence *s, int keep, float *out_buf, double *p,
                            int *best)
{
    attn_mha_inputs in;
    memset(&in, 0, sizeof in);
    in.batch = 1, in.tgt_len = s->x.n_tokens, in.src_len = s->x.n_tokens;
    in.query = in.key = in.value = s->x.data;
    attn_status st = attn_mha_forward(t->mha, out_buf, NULL, 0, &in, keep ? t->cache : NULL, NULL);
    if (!st) *best = softmax3(out_buf + s->pos * ATTN_SENSE_CLASSES, p);
    return st;
}

double attn_sense_accuracy(attn_sense *t, int split)
{
    size_t right = 0, n = 0;
    float out[MAX_TOKENS * ATTN_SENSE_CLASSES];
    for (size_t i = 0; t && i < t->n; i++) {
        const sentence *s = &t->s[i];
        double p[ATTN_SENSE_CLASSES];
        int best;
        if (s->split != split || classify(t, s, 0, out, p, &best)) continue;
        right += best == s->sense;
        n++;
    }
    return n ? (double)right / (double)n : 0.0;
}

attn_status attn_sense_train(attn_sense *t, attn_sense_callback cb, void *user)
{
    if (!t) return attn_error(ATTN_E_INVALID, "attn_sense_train: NULL");
    size_t *order = malloc(t->n * sizeof *order), n_train = 0;
    if (!order) return attn_error(ATTN_E_NOMEM, "cannot allocate the training order");
    for (size_t i = 0; i < t->n; i++)
        if (t->s[i].split == 0) order[n_train++] = i;
    float out[MAX_TOKENS * ATTN_SENSE_CLASSES], d_out[MAX_TOKENS * ATTN_SENSE_CLASSES];
    attn_status st = ATTN_OK;
    for (size_t epoch = 0; !st && epoch < t->opts.epochs; epoch++) {
        for (size_t i = n_train; i > 1; i--) { /* Fisher-Yates shuffle */
            size_t j = attn_rng_below(&t->rng, i), tmp = order[i - 1];
            order[i - 1] = order[j], order[j] = tmp;
        }
        double loss = 0;
        size_t right = 0;
        for (size_t b = 0; !st && b < n_train; b += t->opts.batch) {
            size_t end = b + t->opts.batch < n_train ? b + t->opts.batch : n_train;
            attn_mha_zero_grad(t->mha);
            for (size_t k = b; !st && k < end; k++) {
                const sentence *s = &t->s[order[k]];
                attn_mha_inputs in;
                double p[ATTN_SENSE_CLASSES];
                int best;
                if ((st = classify(t, s, 1, out, p, &best))) break;
                loss += -log(p[s->sense] + 1e-12);
                right += best == s->sense;
                memset(d_out, 0, sizeof d_out);
                for (int c = 0; c < ATTN_SENSE_CLASSES; c++) /* d(cross-entropy)/d(logit) */
                    d_out[s->pos * ATTN_SENSE_CLASSES + c] =
                        (float)((p[c] - (c == s->sense)) / (double)(end - b));
                memset(&in, 0, sizeof in);
                in.batch = 1, in.tgt_len = s->x.n_tokens, in.src_len = s->x.n_tokens;
                in.query = in.key = in.value = s->x.data;
                st = attn_mha_backward(t->mha, NULL, NULL, NULL, d_out, &in, t->cache);
            }
            if (!st) st = attn_adamw_step(t->opt, (float)t->opts.lr);
        }
        if (!st && cb) {
            attn_sense_progress pr = {epoch + 1, t->opts.epochs, loss / (double)n_train,
                                      (double)right / (double)n_train, attn_sense_accuracy(t, 1)};
            cb(&pr, user);
        }
    }
    free(order);
    return st;
}

attn_status attn_sense_run(attn_sense *t, const char *text, attn_trace *trace,
                           double probs[ATTN_SENSE_CLASSES], int *sense)
{
    if (!t || !text) return attn_error(ATTN_E_INVALID, "attn_sense_run: NULL");
    attn_embeddings x;
    attn_status st = attn_embeddings_lookup(&x, &t->vocab, text);
    if (st) return st;
    long pos = attn_embeddings_find(&x, WORD);
    float *out = malloc(x.n_tokens * ATTN_SENSE_CLASSES * sizeof(float));
    if (pos < 0) st = attn_error(ATTN_E_INVALID, "'%s' has no '%s'", text, WORD);
    else if (!out) st = attn_error(ATTN_E_NOMEM, "out of memory");
    if (!st) st = attn_mha_self_attention(out, t->mha, &x, NULL, trace);
    if (!st) {
        double p[ATTN_SENSE_CLASSES];
        int best = softmax3(out + (size_t)pos * ATTN_SENSE_CLASSES, p);
        if (probs) memcpy(probs, p, sizeof p);
        if (sense) *sense = best;
    }
    free(out);
    attn_embeddings_free(&x);
    return st;
}
