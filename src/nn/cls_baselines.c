/* cls_baselines.c - classification metrics and the two baselines: the
 * majority class and a bag-of-words logistic regression (AdaGrad SGD on
 * binary word features, the epoch with the best validation accuracy kept). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/classify.h"
#include "attn/rng.h"

void attn_cls_score(attn_cls_metrics *m, const uint32_t *pred, const uint32_t *gold, size_t n,
                    size_t k, size_t *confusion)
{
    memset(m, 0, sizeof *m);
    m->n = n, m->loss = NAN;
    size_t *tp = calloc(3 * (k ? k : 1), sizeof *tp);
    if (!tp) return;
    size_t *fp = tp + k, *fn = tp + 2 * k, right = 0;
    if (confusion) memset(confusion, 0, k * k * sizeof *confusion);
    for (size_t i = 0; i < n; i++) {
        if (pred[i] >= k || gold[i] >= k) continue;
        if (confusion) confusion[gold[i] * k + pred[i]]++;
        if (pred[i] == gold[i]) right++, tp[gold[i]]++;
        else fp[pred[i]]++, fn[gold[i]]++;
    }
    double f1 = 0.0;
    size_t classes = 0;
    for (size_t c = 0; c < k; c++) {
        if (!tp[c] && !fp[c] && !fn[c]) continue; /* absent from gold and predictions */
        classes++;
        f1 += 2.0 * (double)tp[c] / (double)(2 * tp[c] + fp[c] + fn[c]);
    }
    m->accuracy = n ? (double)right / (double)n : 0.0;
    m->macro_f1 = classes ? f1 / (double)classes : 0.0;
    free(tp);
}

void attn_cls_f1_per_class(double *f1, const size_t *confusion, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        size_t tp = confusion[i * k + i], fp = 0, fn = 0;
        for (size_t j = 0; j < k; j++)
            if (j != i) fp += confusion[j * k + i], fn += confusion[i * k + j];
        f1[i] = tp + fp + fn ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : 0.0;
    }
}

uint32_t attn_majority_class(const uint32_t *labels, size_t n, size_t k)
{
    size_t *count = calloc(k ? k : 1, sizeof *count);
    if (!count) return 0;
    for (size_t i = 0; i < n; i++)
        if (labels[i] < k) count[labels[i]]++;
    uint32_t best = 0;
    for (size_t c = 1; c < k; c++)
        if (count[c] > count[best]) best = (uint32_t)c;
    free(count);
    return best;
}

attn_bow_opts attn_bow_defaults(void)
{
    attn_bow_opts o = {10, 0.2f, 1e-6f, 1337}; /* lr tuned on validation (0.05 .. 1) */
    return o;
}

void attn_bow_free(attn_bow *m)
{
    if (!m) return;
    free(m->w), free(m->b);
    memset(m, 0, sizeof *m);
}

/* The distinct feature ids of example i (ids >= 2: [UNK] and words), into f. */
static size_t features(const attn_cls_tokens *t, size_t i, size_t vocab, uint32_t *f,
                       uint8_t *seen)
{
    size_t n = 0;
    for (size_t j = t->offset[i]; j < t->offset[i + 1]; j++) {
        uint32_t id = t->ids[j];
        if (id < ATTN_WORD_UNK || id >= vocab || seen[id]) continue;
        seen[id] = 1, f[n++] = id;
    }
    for (size_t j = 0; j < n; j++) seen[f[j]] = 0;
    return n;
}

void attn_bow_logits(const attn_bow *m, const uint32_t *ids, size_t n, float *out)
{
    const size_t K = m->classes;
    memcpy(out, m->b, K * sizeof *out);
    for (size_t j = 0; j < n; j++) {
        uint32_t id = ids[j];
        if (id < ATTN_WORD_UNK || id >= m->vocab) continue;
        int dup = 0;
        for (size_t q = 0; q < j && !dup; q++) dup = ids[q] == id;
        if (dup) continue;
        const float *w = m->w + (size_t)id * K;
        for (size_t c = 0; c < K; c++) out[c] += w[c];
    }
}

static uint32_t argmax(const float *x, size_t n)
{
    uint32_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = (uint32_t)i;
    return b;
}

void attn_bow_predict(const attn_bow *m, const attn_cls_tokens *t, uint32_t *pred)
{
    float *z = malloc(m->classes * sizeof *z);
    if (!z) return;
    for (size_t i = 0; i < t->n; i++) {
        attn_bow_logits(m, t->ids + t->offset[i], t->offset[i + 1] - t->offset[i], z);
        pred[i] = argmax(z, m->classes);
    }
    free(z);
}

attn_status attn_bow_train(attn_bow *m, const attn_cls_tokens *train, const attn_cls_tokens *valid,
                           size_t vocab, size_t classes, const attn_bow_opts *o)
{
    if (!m || !train || !valid || !o || !vocab || classes < 2 || !o->epochs)
        return attn_error(ATTN_E_INVALID, "attn_bow_train: bad argument");
    memset(m, 0, sizeof *m);
    const size_t K = classes, W = vocab * K;
    m->vocab = vocab, m->classes = classes;
    m->w = calloc(W, sizeof *m->w), m->b = calloc(K, sizeof *m->b);
    float *gw = calloc(W, sizeof *gw), *gb = calloc(K, sizeof *gb);
    float *best_w = malloc(W * sizeof *best_w), *best_b = malloc(K * sizeof *best_b);
    float *z = malloc(K * sizeof *z);
    uint32_t *f = malloc((train->offset[train->n] + 1) * sizeof *f);
    uint8_t *seen = calloc(vocab, 1);
    size_t *order = malloc((train->n + 1) * sizeof *order);
    uint32_t *pred = malloc((valid->n + 1) * sizeof *pred);
    attn_status st = ATTN_OK;
    if (!m->w || !m->b || !gw || !gb || !best_w || !best_b || !z || !f || !seen || !order || !pred)
        st = attn_error(ATTN_E_NOMEM, "out of memory for the bag-of-words model");
    attn_rng r;
    attn_rng_seed(&r, o->seed);
    double best = -1.0;
    const float eps = 1e-8f;
    for (size_t ep = 0; !st && ep < o->epochs; ep++) {
        for (size_t i = 0; i < train->n; i++) order[i] = i;
        for (size_t i = train->n; i > 1; i--) {
            size_t j = attn_rng_below(&r, i), tmp = order[i - 1];
            order[i - 1] = order[j], order[j] = tmp;
        }
        for (size_t q = 0; q < train->n; q++) {
            size_t i = order[q];
            size_t nf = features(train, i, vocab, f, seen);
            memcpy(z, m->b, K * sizeof *z);
            for (size_t j = 0; j < nf; j++) {
                const float *w = m->w + (size_t)f[j] * K;
                for (size_t c = 0; c < K; c++) z[c] += w[c];
            }
            attn_softmax_forward(z, z, 1, K, NULL); /* K > 0 was checked: cannot fail */
            for (size_t c = 0; c < K; c++) {
                float g = z[c] - (c == train->label[i] ? 1.0f : 0.0f);
                gb[c] += g * g;
                m->b[c] -= o->lr * g / sqrtf(gb[c] + eps);
                for (size_t j = 0; j < nf; j++) {
                    size_t at = (size_t)f[j] * K + c;
                    float gj = g + o->l2 * m->w[at];
                    gw[at] += gj * gj;
                    m->w[at] -= o->lr * gj / sqrtf(gw[at] + eps);
                }
            }
        }
        attn_bow_predict(m, valid, pred);
        attn_cls_metrics vm;
        attn_cls_score(&vm, pred, valid->label, valid->n, K, NULL);
        if (vm.accuracy > best) {
            best = vm.accuracy;
            memcpy(best_w, m->w, W * sizeof *best_w), memcpy(best_b, m->b, K * sizeof *best_b);
        }
    }
    if (!st) memcpy(m->w, best_w, W * sizeof *best_w), memcpy(m->b, best_b, K * sizeof *best_b);
    free(gw), free(gb), free(best_w), free(best_b), free(z), free(f), free(seen), free(order), free(pred);
    if (st) attn_bow_free(m);
    return st;
}
