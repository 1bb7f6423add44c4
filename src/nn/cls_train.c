/* cls_train.c - training the encoder classifier: epochs of shuffled,
 * length-bucketed batches, AdamW with warm-up and cosine decay (attn/train.h),
 * the token embedding updated row-sparsely (lazy Adam on the rows a batch
 * used), evaluation (accuracy, macro-F1) on validation, early stopping that keeps
 * the best weights, checkpoints and exact resume. Progress goes to a
 * callback; nothing is printed. The batch order of an epoch depends only on
 * (seed, epoch), so a resumed run sees the same batches. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attn/classify.h"
#include "attn/ops.h"
#include "attn/ops_nn.h"
#include "cls_internal.h"
#include "encoder_int.h"

#ifdef ATTN_HAVE_OPENMP
#include <omp.h>
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const attn_cls_info *attn_cls_trainer_info(const attn_cls_trainer *t) { return t ? &t->info : NULL; }
attn_encoder *attn_cls_trainer_model(attn_cls_trainer *t) { return t ? t->e : NULL; }
const attn_tokenizer *attn_cls_trainer_tokenizer(const attn_cls_trainer *t) { return t ? t->tok : NULL; }

void attn_cls_trainer_free(attn_cls_trainer *t)
{
    if (!t) return;
    cls_dist_free(t);
    attn_adamw_free(t->opt);
    attn_encoder_free(t->e);
    for (int p = 0; p < CLS_PARTS - 1; p++) attn_encoder_free(t->part[p]);
    attn_tokenizer_free(t->tok);
    for (int i = 0; i < 3; i++) attn_cls_split_free(&t->split[i]), attn_cls_tokens_free(&t->data[i]);
    attn_cls_info_free(&t->info);
    free(t->best_from);
    free(t->x), free(t->lens), free(t->y), free(t->order), free(t->batch_start), free(t->pred), free(t->keys);
    free(t);
}

static size_t len_of(const attn_cls_tokens *d, size_t i) { return d->offset[i + 1] - d->offset[i]; }

/* Reads the three splits, labels them, tokenizes them, allocates buffers. */
attn_status cls_prepare(attn_cls_trainer *t, const char *data_dir, int build)
{
    static const char *const names[3] = {"train.tsv", "valid.tsv", "test.tsv"};
    attn_status st = ATTN_OK;
    char path[4096];
    for (int i = 0; i < 3 && !st; i++) {
        snprintf(path, sizeof path, "%s/%s", data_dir, names[i]);
        st = attn_cls_split_read(&t->split[i], path);
    }
    attn_cls_info *in = &t->info;
    if (!st && build) {
        st = attn_cls_labels_of(&t->split[0], &in->labels, &in->n_labels);
        if (!st && in->n_labels < 2)
            st = attn_error(ATTN_E_FORMAT, "%s/train.tsv: only one label ('%s'); a classifier needs two or more",
                            data_dir, in->labels[0]);
        if (!st)
            st = attn_word_tokenizer_build(&t->tok, (const char *const *)t->split[0].text,
                                           t->split[0].n, in->opts.min_count);
        if (!st) {
            in->model.vocab_size = attn_tokenizer_vocab_size(t->tok);
            in->model.classes = in->n_labels;
        }
    }
    for (int i = 0; i < 3 && !st; i++) {
        snprintf(path, sizeof path, "%s/%s", data_dir, names[i]);
        st = attn_cls_split_label(&t->split[i], (const char *const *)in->labels, in->n_labels, path);
        if (!st) st = attn_cls_tokenize(&t->data[i], &t->split[i], t->tok, in->model.context);
    }
    if (st) return st;
    in->n_train = t->data[0].n, in->n_valid = t->data[1].n, in->n_test = t->data[2].n;
    in->mean_words = (double)t->data[0].words / (double)t->data[0].n;
    const size_t B = in->train.batch, T = in->model.context;
    in->steps_per_epoch = (in->n_train + B - 1) / B;
    size_t most = in->n_train;
    for (int i = 1; i < 3; i++) most = t->data[i].n > most ? t->data[i].n : most;
    t->x = malloc(B * T * sizeof *t->x), t->lens = malloc(B * sizeof *t->lens);
    t->y = malloc(B * sizeof *t->y), t->order = malloc(most * sizeof *t->order);
    t->batch_start = malloc((in->steps_per_epoch + 1) * sizeof *t->batch_start);
    t->pred = malloc(most * sizeof *t->pred), t->keys = malloc(most * sizeof *t->keys);
    t->epoch_ready = (size_t)-1;
    if (!t->x || !t->lens || !t->y || !t->order || !t->batch_start || !t->pred || !t->keys)
        return attn_error(ATTN_E_NOMEM, "cannot allocate batches");
    return ATTN_OK;
}

attn_status cls_make_optimizer(attn_cls_trainer *t)
{
    const attn_train_config *c = &t->info.train;
    attn_adamw_config ac = {c->beta1, c->beta2, c->eps, c->weight_decay};
    return attn_adamw_create(&t->opt, attn_encoder_params(t->e), attn_encoder_param_count(t->e), &ac);
}

attn_status attn_cls_trainer_create(attn_cls_trainer **out, const attn_encoder_config *m,
                                    const attn_train_config *c, const attn_cls_opts *o,
                                    const char *data_dir)
{
    if (!out || !m || !c || !o || !data_dir)
        return attn_error(ATTN_E_INVALID, "attn_cls_trainer_create: NULL argument");
    *out = NULL;
    attn_cls_trainer *t = calloc(1, sizeof *t);
    if (!t) return attn_error(ATTN_E_NOMEM, "cannot allocate a trainer");
    t->info.model = *m, t->info.train = *c, t->info.opts = *o;
    if (!t->info.opts.min_count) t->info.opts.min_count = 1;
    attn_status st = attn_train_config_check(c);
    if (!st && !(o->dropout >= 0.0f && o->dropout < 1.0f))
        st = attn_error(ATTN_E_INVALID, "dropout must be in [0, 1), got %g", (double)o->dropout);
    if (!st && !(o->label_smoothing >= 0.0f && o->label_smoothing < 1.0f))
        st = attn_error(ATTN_E_INVALID, "label smoothing must be in [0, 1), got %g", (double)o->label_smoothing);
    if (!st) st = cls_prepare(t, data_dir, 1);
    if (!st && (t->data[0].n > 0xFFFFFFFFu || t->data[1].n > 0xFFFFFFFFu || t->data[2].n > 0xFFFFFFFFu))
        st = attn_error(ATTN_E_INVALID, "too many examples (at most 2^32 per split)");
    if (!st) st = attn_encoder_config_check(&t->info.model);
    attn_train_config *tc = &t->info.train;
    if (!st && o->epochs) tc->iters = o->epochs * t->info.steps_per_epoch;
    if (!st && !tc->eval_every) tc->eval_every = t->info.steps_per_epoch;
    if (!st) st = attn_encoder_create(&t->e, &t->info.model, tc->batch);
    if (!st) st = attn_encoder_init(t->e, tc->seed);
    if (!st) st = cls_make_optimizer(t);
    if (!st) st = cls_checkpoint_name_run(t);
    if (st) {
        attn_cls_trainer_free(t);
        return st;
    }
    *out = t;
    return ATTN_OK;
}

attn_status attn_cls_trainer_resume(attn_cls_trainer **out, const char *dir, const char *data_dir,
                                    size_t iters)
{
    if (!out || !dir || !data_dir) return attn_error(ATTN_E_INVALID, "attn_cls_trainer_resume: NULL");
    *out = NULL;
    attn_cls_trainer *t = calloc(1, sizeof *t);
    if (!t) return attn_error(ATTN_E_NOMEM, "cannot allocate a trainer");
    char *opath = NULL;
    attn_status st = cls_checkpoint_read(t, dir, &opath);
    if (!st && iters) t->info.train.iters = iters;
    if (!st) st = attn_train_config_check(&t->info.train);
    if (!st && access(opath, F_OK) != 0)
        st = attn_error(ATTN_E_FORMAT, "%s: no optim.safetensors: this checkpoint cannot be resumed", dir);
    if (!st) st = cls_make_optimizer(t);
    if (!st) st = cls_checkpoint_read_optim(t, opath);
    if (!st) st = cls_prepare(t, data_dir, 0);
    free(opath);
    if (st) {
        attn_cls_trainer_free(t);
        return st;
    }
    *out = t;
    return ATTN_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts idx[0..n) by length, longest first, ties by index: deterministic. */
static void sort_by_length(attn_cls_trainer *t, const attn_cls_tokens *d, size_t *idx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        t->keys[i] = ((uint64_t)(0xFFFFFFFFu - (uint32_t)len_of(d, idx[i])) << 32) | (uint64_t)idx[i];
    qsort(t->keys, n, sizeof *t->keys, cmp_u64);
    for (size_t i = 0; i < n; i++) idx[i] = (size_t)(t->keys[i] & 0xFFFFFFFFu);
}

/* The batches of epoch ep: a permutation from (seed, ep), sorted by length
 * within chunks of 32 batches (little padding), then the batches shuffled. */
static void plan_epoch(attn_cls_trainer *t, size_t ep)
{
    if (t->epoch_ready == ep) return;
    const attn_cls_tokens *d = &t->data[0];
    const size_t n = d->n, B = t->info.train.batch, S = t->info.steps_per_epoch;
    attn_rng r;
    attn_rng_seed(&r, t->info.train.seed ^ (0xD1B54A32D192ED03ull * (ep + 1)));
    for (size_t i = 0; i < n; i++) t->order[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = attn_rng_below(&r, i), tmp = t->order[i - 1];
        t->order[i - 1] = t->order[j], t->order[j] = tmp;
    }
    const size_t chunk = 32 * B;
    for (size_t s = 0; s < n; s += chunk) sort_by_length(t, d, t->order + s, s + chunk < n ? chunk : n - s);
    for (size_t b = 0; b < S; b++) t->batch_start[b] = b * B;
    for (size_t b = S; b > 1; b--) {
        size_t j = attn_rng_below(&r, b), tmp = t->batch_start[b - 1];
        t->batch_start[b - 1] = t->batch_start[j], t->batch_start[j] = tmp;
    }
    t->epoch_ready = ep;
}

/* Fills x, lens, y with examples idx[0..n) of d; returns the padded length. */
static size_t fill(attn_cls_trainer *t, const attn_cls_tokens *d, const size_t *idx, size_t n,
                   size_t *tokens)
{
    size_t T = 1, sum = 0;
    for (size_t b = 0; b < n; b++) {
        size_t l = len_of(d, idx[b]);
        T = l > T ? l : T;
    }
    for (size_t b = 0; b < n; b++) {
        size_t i = idx[b], l = len_of(d, i);
        memcpy(t->x + b * T, d->ids + d->offset[i], l * sizeof *t->x);
        for (size_t j = l; j < T; j++) t->x[b * T + j] = ATTN_WORD_PAD;
        t->lens[b] = l, t->y[b] = d->label[i];
        sum += l;
    }
    if (tokens) *tokens = sum;
    return T;
}

attn_status attn_cls_trainer_evaluate(attn_cls_trainer *t, attn_cls_which which,
                                      attn_cls_metrics *m, size_t *confusion)
{
    if (!t || !m || which > ATTN_CLS_TEST) return attn_error(ATTN_E_INVALID, "attn_cls_trainer_evaluate: bad argument");
    const attn_cls_tokens *d = &t->data[which];
    const size_t B = t->info.train.batch, K = t->info.model.classes, n = d->n;
    for (size_t i = 0; i < n; i++) t->order[i] = i;
    sort_by_length(t, d, t->order, n); /* batches with little padding */
    double loss = 0.0;
    attn_status st = attn_encoder_set_dropout(t->e, 0.0f, 0); /* evaluation: none */
    if (!st) st = attn_encoder_set_label_smoothing(t->e, 0.0f); /* the plain cross-entropy */
    if (t->has_dist) memset(t->pred, 0, n * sizeof *t->pred);
    for (size_t s = 0; s < n && !st; s += B) {
        size_t nb = s + B < n ? B : n - s, lo, hi;
        size_t T = fill(t, d, t->order + s, nb, NULL);
        cls_dist_rows(t, nb, &lo, &hi); /* data parallel: this rank's examples */
        if (hi == lo) continue;
        double l = 0.0;
        st = attn_encoder_forward(t->e, t->x + lo * T, t->lens + lo, t->y + lo, hi - lo, T, &l, NULL);
        if (st) break;
        loss += l * (double)(hi - lo);
        const float *z = attn_encoder_logits(t->e);
        for (size_t b = 0; b < hi - lo; b++) {
            uint32_t best = 0;
            for (size_t k = 1; k < K; k++)
                if (z[b * K + k] > z[b * K + best]) best = (uint32_t)k;
            t->pred[t->order[s + lo + b]] = best;
        }
    }
    t->epoch_ready = (size_t)-1; /* order was reused */
    if (!st) st = cls_dist_predictions(t, n, &loss);
    if (st) return st;
    attn_cls_score(m, t->pred, d->label, n, K, confusion);
    m->loss = loss / (double)n;
    return ATTN_OK;
}

attn_status attn_cls_trainer_baselines(attn_cls_trainer *t, attn_cls_which which,
                                       attn_cls_metrics *majority, attn_cls_metrics *bow,
                                       const attn_bow_opts *o)
{
    if (!t || which > ATTN_CLS_TEST) return attn_error(ATTN_E_INVALID, "attn_cls_trainer_baselines: bad argument");
    const size_t K = t->info.model.classes;
    const attn_cls_tokens *d = &t->data[which];
    if (majority) {
        uint32_t c = attn_majority_class(t->data[0].label, t->data[0].n, K);
        for (size_t i = 0; i < d->n; i++) t->pred[i] = c;
        attn_cls_score(majority, t->pred, d->label, d->n, K, NULL);
    }
    if (!bow) return ATTN_OK;
    attn_bow_opts bo = o ? *o : attn_bow_defaults();
    attn_bow m;
    attn_status st = attn_bow_train(&m, &t->data[0], &t->data[1], t->info.model.vocab_size, K, &bo);
    if (st) return st;
    attn_bow_predict(&m, d, t->pred);
    attn_cls_score(bow, t->pred, d->label, d->n, K, NULL);
    attn_bow_free(&m);
    return ATTN_OK;
}

/* Forward and backward of examples [a, b) of the nb in the batch (padded to
 * T) on e, its gradients weighted by their share; *loss: its share of the
 * batch's mean loss. Dropout masks from (seed, step) and the example's place
 * in the batch: a resumed run, any number of ranks or parts, drops the same. */
static attn_status part_step(attn_cls_trainer *t, attn_encoder *e, size_t a, size_t b, size_t nb,
                             size_t T, double *loss)
{
    const attn_cls_info *in = &t->info;
    *loss = 0.0;
    if (e != t->e) attn_encoder_zero_grad(e);
    if (b == a) return ATTN_OK;
    if (e != t->e) nn_encoder_copy_weights(e, t->e, t->x + a * T, (b - a) * T);
    attn_status st = attn_encoder_set_dropout(e, in->opts.dropout, attn_dropout_key(in->train.seed, in->step, 0));
    if (!st) st = attn_encoder_set_dropout_row(e, a);
    if (!st) st = attn_encoder_set_label_smoothing(e, in->opts.label_smoothing);
    if (!st) st = attn_encoder_forward(e, t->x + a * T, t->lens + a, t->y + a, b - a, T, loss, NULL);
    if (!st) st = attn_encoder_backward(e, (float)(b - a) / (float)nb);
    *loss *= (double)(b - a) / (double)nb;
    if (!st) st = attn_encoder_set_dropout(e, 0.0f, 0);
    if (!st) st = attn_encoder_set_dropout_row(e, 0);
    if (!st) st = attn_encoder_set_label_smoothing(e, 0.0f);
    return st;
}

/* A step's examples [lo, hi) in CLS_PARTS parts of about equal tokens: the
 * first on t->e, the others on t->part[] (the same weights), whose
 * gradients are then added into t->e's in order. Two threads run the parts
 * side by side, each alone in its ops: a step is about a hundred small
 * parallel regions, each costing both threads a wait, so parts on one
 * thread each beat one batch on two; and a part's activations stay in the
 * core's cache. More threads: each part on half of them; one thread: the
 * parts in turn. The sums are the same either way, so the threads change
 * no bit.
 * *loss: the batch's mean loss (this rank's share). */
static attn_status step_parts(attn_cls_trainer *t, size_t lo, size_t hi, size_t nb, size_t T,
                              double *loss)
{
    attn_encoder *e[CLS_PARTS] = {t->e};
    for (int p = 1; p < CLS_PARTS; p++) {
        if (!t->part[p - 1]) {
            attn_status st = attn_encoder_create(&t->part[p - 1], &t->info.model, t->info.train.batch);
            if (st) return st;
        }
        e[p] = t->part[p - 1];
    }
    size_t all = 0, from[CLS_PARTS], to[CLS_PARTS];
    for (size_t i = lo; i < hi; i++) all += t->lens[i];
    size_t at = lo, sum = 0;
    for (int p = 0; p < CLS_PARTS; p++) {
        from[p] = at;
        /* up to the p+1'th share of the tokens, at least one example while some are left */
        const size_t goal = all * (size_t)(p + 1) / CLS_PARTS;
        while (at < hi && (p == CLS_PARTS - 1 || sum + t->lens[at] <= goal || at == from[p])) sum += t->lens[at++];
        to[p] = at;
    }
    attn_status st[CLS_PARTS];
    double l[CLS_PARTS];
    for (int p = 0; p < CLS_PARTS; p++) st[p] = ATTN_OK, l[p] = 0.0;
#ifdef ATTN_HAVE_OPENMP
    const int threads = omp_get_max_threads();
    if (threads >= 2 && !omp_in_parallel()) {
        char why[CLS_PARTS][256]; /* a part's error message: attn_last_error is per thread */
        /* more than two threads: each part's ops on its share of them, a
         * nested team (the levels allowed given back after) */
        const int levels = omp_get_max_active_levels();
        if (threads > 2 && levels < 2) omp_set_max_active_levels(2);
#pragma omp parallel num_threads(2)
        {
            const int me = omp_get_thread_num();
            omp_set_num_threads(me ? threads / 2 : threads - threads / 2);
            for (int p = me; p < CLS_PARTS; p += 2)
                if ((st[p] = part_step(t, e[p], from[p], to[p], nb, T, &l[p])))
                    snprintf(why[p], sizeof why[p], "%s", attn_last_error());
        }
        if (threads > 2 && levels < 2) omp_set_max_active_levels(levels);
        for (int p = 0; p < CLS_PARTS; p++)
            if (st[p]) return attn_error(st[p], "%s", why[p]);
    } else
#endif
    {
        for (int p = 0; p < CLS_PARTS; p++)
            if ((st[p] = part_step(t, e[p], from[p], to[p], nb, T, &l[p]))) return st[p];
    }
    double total = l[0];
    for (int p = 1; p < CLS_PARTS; p++) nn_encoder_add_grads(t->e, e[p]), total += l[p];
    *loss = total;
    return ATTN_OK;
}

static attn_status run_steps(attn_cls_trainer *t, const char *out_dir, size_t stop_at,
                             const volatile sig_atomic_t *stop, attn_cls_progress_fn cb,
                             void *user, int *stopped)
{
    attn_cls_info *in = &t->info;
    const attn_train_config *c = &in->train;
    const size_t B = c->batch, S = in->steps_per_epoch, n = t->data[0].n;
    const double start = now_s();
    attn_status st = ATTN_OK;
    int early = 0;
    size_t saved = (size_t)-1; /* the step last checkpointed in this call */
    while (!st && in->step < c->iters) {
        int halt = (stop && *stop) || (stop_at && in->step >= stop_at);
        if ((st = cls_dist_halt(t, &halt))) break;
        if (halt) {
            early = 1;
            break;
        }
        if (in->opts.patience && in->bad_evals >= in->opts.patience) {
            early = 2;
            break;
        }
        const double t0 = now_s();
        const size_t ep = in->step / S, at = t->batch_start[(plan_epoch(t, ep), in->step % S)];
        const size_t nb = at + B <= n ? B : n - at;
        size_t tokens = 0;
        const size_t T = fill(t, &t->data[0], t->order + at, nb, &tokens);
        attn_encoder_zero_grad(t->e);
        cls_dist_zero_rows(t);
        double loss = 0.0;
        size_t lo, hi; /* data parallel: this rank's examples, weighted by their share */
        cls_dist_rows(t, nb, &lo, &hi);
        st = step_parts(t, lo, hi, nb, T, &loss);
        /* The token embedding is updated row-sparsely: only the rows this
         * batch used (clipping reads only those rows too). */
        size_t n_rows = 0;
        const uint32_t *rows = NULL;
        if (!st) st = cls_dist_reduce(t, nb, T, &loss, &rows, &n_rows);
        if (st) break;
        if ((st = attn_adamw_set_rows(t->opt, 0, rows, n_rows))) break;
        attn_cls_event e;
        memset(&e, 0, sizeof e);
        e.base.grad_norm = attn_adamw_clip_grad_norm(t->opt, c->grad_clip);
        e.base.lr = attn_lr_at(c, in->step);
        if ((st = attn_adamw_step(t->opt, (float)e.base.lr))) break;
        in->step++;
        const double t1 = now_s();
        e.base.step = in->step, e.base.iters = c->iters, e.base.train_loss = loss;
        e.base.ms_per_iter = 1e3 * (t1 - t0);
        e.base.tokens_per_s = (double)tokens / (t1 - t0);
        e.base.val_loss = e.base.eval_train_loss = NAN;
        e.val_accuracy = e.val_f1 = NAN;
        e.epoch = ep + 1;
        if (!isfinite(loss)) {
            st = attn_error(ATTN_E_INTERNAL, "the training loss became %g at step %zu (lower --lr?)",
                            loss, in->step);
            break;
        }
        int save_best = 0;
        if ((c->eval_every && in->step % c->eval_every == 0) || in->step == c->iters) {
            attn_cls_metrics vm;
            st = attn_cls_trainer_evaluate(t, ATTN_CLS_VALID, &vm, NULL);
            if (st) break;
            e.base.evaluated = 1;
            e.base.val_loss = vm.loss, e.val_accuracy = vm.accuracy, e.val_f1 = vm.macro_f1;
            if (!in->best_step || vm.accuracy > in->best_accuracy) {
                in->best_step = in->step, in->best_accuracy = vm.accuracy, in->best_f1 = vm.macro_f1;
                in->bad_evals = 0;
                save_best = e.improved = 1;
            } else {
                in->bad_evals++;
            }
        }
        if (save_best || (c->checkpoint_every && in->step % c->checkpoint_every == 0 && in->step < c->iters)) {
            st = cls_dist_save(t, out_dir, save_best);
            e.base.checkpointed = 1, saved = in->step;
        }
        e.base.elapsed_s = now_s() - start;
        if (!st && cb && cb(&e, user)) {
            early = in->step < c->iters;
            break;
        }
    }
    if (!st && !early && in->opts.patience && in->bad_evals >= in->opts.patience && in->step < c->iters)
        early = 2;
    if (!st && saved != in->step) st = cls_dist_save(t, out_dir, 0);
    if (stopped) *stopped = early;
    return st;
}

attn_status attn_cls_trainer_run(attn_cls_trainer *t, const char *out_dir, size_t stop_at,
                                 const volatile sig_atomic_t *stop, attn_cls_progress_fn cb,
                                 void *user, int *stopped)
{
    if (!t || !out_dir) return attn_error(ATTN_E_INVALID, "attn_cls_trainer_run: NULL argument");
    if (stopped) *stopped = 0;
    /* the run's precision for its products, the caller's given back after */
    const attn_precision prev =
        attn_gemm_set_precision(t->info.train.precision ? ATTN_PRECISION_BF16 : ATTN_PRECISION_FP32);
    attn_status st = run_steps(t, out_dir, stop_at, stop, cb, user, stopped);
    attn_gemm_set_precision(prev);
    return st;
}

attn_status attn_cls_predict(attn_encoder *e, const attn_tokenizer *tok, const char *text,
                             float *probs, uint32_t **ids_out, size_t *n_out, const attn_op_ctx *ctx)
{
    if (!e || !tok || !text || !probs) return attn_error(ATTN_E_INVALID, "attn_cls_predict: NULL");
    const attn_encoder_config *c = attn_encoder_get_config(e);
    uint32_t *w = NULL;
    size_t n = 0;
    attn_status st = attn_tokenizer_encode(tok, text, strlen(text), "text", &w, &n);
    if (st) return st;
    if (n > c->context - 1) n = c->context - 1;
    uint32_t *ids = malloc((n + 1) * sizeof *ids);
    if (!ids) {
        free(w);
        return attn_error(ATTN_E_NOMEM, "out of memory");
    }
    ids[0] = ATTN_WORD_CLS;
    if (n) memcpy(ids + 1, w, n * sizeof *ids);
    free(w);
    size_t len = n + 1;
    st = attn_encoder_forward(e, ids, &len, NULL, 1, len, NULL, ctx);
    /* the reference softmax: in double, the probabilities printed */
    if (!st) st = attn_softmax_ref(probs, attn_encoder_logits(e), 1, c->classes);
    if (!st && ids_out) *ids_out = ids, ids = NULL;
    if (!st && n_out) *n_out = len;
    free(ids);
    return st;
}
