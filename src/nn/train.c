/* train.c - the training loop: batches, gradient accumulation, clipping,
 * AdamW with warm-up and cosine decay, evaluation, checkpoints, resume.
 * Progress goes to a callback; nothing is printed. Every buffer is made
 * before the loop: a step allocates nothing of its own. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn/ops.h"
#include "attn/train.h"
#include "ckpt_dir.h"

struct attn_trainer {
    attn_checkpoint info;
    attn_gpt *g;
    attn_tokenizer *tok;
    attn_adamw *opt;
    uint32_t *tokens;
    size_t n_train, n_val;
    uint32_t *x, *y;
    attn_train_dist dist; /* data parallel (attn_trainer_set_dist) when has_dist */
    int has_dist;
};

attn_tokenizer *attn_trainer_tokenizer(attn_trainer *t) { return t ? t->tok : NULL; }
const attn_checkpoint *attn_trainer_info(const attn_trainer *t) { return t ? &t->info : NULL; }
attn_gpt *attn_trainer_model(attn_trainer *t) { return t ? t->g : NULL; }

void attn_trainer_free(attn_trainer *t)
{
    if (!t) return;
    if (t->has_dist && t->dist.release) t->dist.release(t->dist.user);
    attn_adamw_free(t->opt);
    attn_gpt_free(t->g);
    attn_tokenizer_free(t->tok);
    free(t->tokens), free(t->x), free(t->y);
    free(t);
}

attn_status attn_trainer_set_dist(attn_trainer *t, const attn_train_dist *d)
{
    if (!t || !d || d->ranks < 1 || d->rank < 0 || d->rank >= d->ranks || !d->sum_grads || !d->sum)
        return attn_error(ATTN_E_INVALID, "attn_trainer_set_dist: bad argument");
    if (t->info.train.batch % (size_t)d->ranks)
        return attn_error(ATTN_E_INVALID, "the global batch of %zu sequences does not divide among %d "
                          "ranks (--batch is the global batch: make it a multiple of the ranks)",
                          t->info.train.batch, d->ranks);
    t->dist = *d, t->has_dist = 1;
    return ATTN_OK;
}

/* This rank's rows [lo, hi) of a batch of b (all of them without dist). */
static void dist_rows(const attn_trainer *t, size_t b, size_t *lo, size_t *hi)
{
    const size_t K = t->has_dist ? (size_t)t->dist.ranks : 1, r = t->has_dist ? (size_t)t->dist.rank : 0;
    *lo = b * r / K, *hi = b * (r + 1) / K;
}

static attn_status grads_ready(void *user, size_t first, size_t n)
{
    attn_trainer *t = user;
    return t->dist.grads_ready(t->dist.user, attn_gpt_params(t->g) + first, n);
}

static attn_status dist_sum(attn_trainer *t, double *v, size_t n)
{
    return t->has_dist ? t->dist.sum(t->dist.user, v, n) : ATTN_OK;
}

/* Data parallel: the ranks stop together, at the step the first of them
 * asks to (a signal that reached one rank, or ranks started with different
 * --stop-at), so every rank leaves the same checkpoint behind instead of the
 * others waiting for the one that left. */
static attn_status dist_halt(attn_trainer *t, int *halt)
{
    double h = *halt;
    attn_status st = dist_sum(t, &h, 1);
    *halt = h > 0;
    return st;
}

/* Only rank 0 writes: every rank learns from it whether `what` worked. */
static attn_status agree(attn_trainer *t, attn_status st, const char *what, const char *dir)
{
    if (!t->has_dist) return st;
    double failed = st != ATTN_OK;
    attn_status sum = dist_sum(t, &failed, 1);
    if (st || sum) return st ? st : sum;
    return failed > 0 ? attn_error(ATTN_E_IO, "rank 0 could not %s %s", what, dir) : ATTN_OK;
}

static attn_status save(attn_trainer *t, const char *dir)
{
    attn_status st = ATTN_OK;
    if (!t->has_dist || t->dist.rank == 0) st = attn_checkpoint_save(dir, &t->info, t->g, t->tok, t->opt);
    return agree(t, st, "write the checkpoint in", dir);
}

/* One writer per checkpoint directory, checked before the first step. */
static attn_status lock_out(attn_trainer *t, const char *dir)
{
    attn_status st = !t->has_dist || t->dist.rank == 0 ? ckpt_lock(dir, 0) : ATTN_OK;
    return agree(t, st, "lock", dir);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Encodes the text, splits it, allocates the batch buffers. */
static attn_status prepare(attn_trainer *t, const char *text, size_t len, const char *what)
{
    size_t n = 0;
    attn_status st = attn_tokenizer_encode(t->tok, text, len, what, &t->tokens, &n);
    if (st) return st;
    const attn_train_config *c = &t->info.train;
    const size_t T = t->info.model.context;
    t->n_train = (size_t)((double)n * (1.0 - (double)c->val_fraction));
    t->n_val = n - t->n_train;
    if (t->n_train <= T || t->n_val <= T)
        return attn_error(ATTN_E_FORMAT,
                          "%s: %zu tokens are too few: the training part (%zu) and the validation "
                          "part (%zu, %g of the text) each need more than the context of %zu",
                          what, n, t->n_train, t->n_val, (double)c->val_fraction, T);
    t->x = malloc(c->batch * T * sizeof *t->x);
    t->y = malloc(c->batch * T * sizeof *t->y);
    if (!t->x || !t->y) return attn_error(ATTN_E_NOMEM, "cannot allocate batches");
    return ATTN_OK;
}

static attn_status make_optimizer(attn_trainer *t)
{
    const attn_train_config *c = &t->info.train;
    attn_adamw_config ac = {c->beta1, c->beta2, c->eps, c->weight_decay};
    return attn_adamw_create(&t->opt, attn_gpt_params(t->g), attn_gpt_param_count(t->g), &ac);
}

attn_status attn_trainer_create(attn_trainer **out, const attn_gpt_config *m,
                                const attn_train_config *c, attn_tokenizer *tok, const char *text,
                                size_t len, const char *what)
{
    if (!out || !m || !c || !tok || !text) {
        attn_tokenizer_free(tok);
        return attn_error(ATTN_E_INVALID, "attn_trainer_create: NULL argument");
    }
    *out = NULL;
    attn_trainer *t = calloc(1, sizeof *t);
    if (!t) {
        attn_tokenizer_free(tok);
        return attn_error(ATTN_E_NOMEM, "cannot allocate a trainer");
    }
    t->tok = tok;
    t->info.model = *m;
    t->info.model.vocab_size = attn_tokenizer_vocab_size(tok);
    t->info.train = *c;
    t->info.has_optim = 1;
    attn_rng_seed(&t->info.rng, c->seed);
    attn_status st = attn_gpt_config_check(&t->info.model);
    if (!st) st = attn_train_config_check(c);
    if (!st) st = prepare(t, text, len, what);
    if (!st) st = attn_gpt_create(&t->g, &t->info.model, c->batch);
    if (!st) st = attn_gpt_init(t->g, c->seed);
    if (!st) st = make_optimizer(t);
    if (!st) st = gpt_checkpoint_name_run(&t->info, text, len);
    if (st) {
        attn_trainer_free(t);
        return st;
    }
    *out = t;
    return ATTN_OK;
}

attn_status attn_trainer_resume(attn_trainer **out, const char *dir, const char *text, size_t len,
                                const char *what, size_t iters)
{
    if (!out || !dir || !text) return attn_error(ATTN_E_INVALID, "attn_trainer_resume: NULL argument");
    *out = NULL;
    attn_trainer *t = calloc(1, sizeof *t);
    if (!t) return attn_error(ATTN_E_NOMEM, "cannot allocate a trainer");
    attn_status st = attn_checkpoint_load(dir, 0, &t->info, &t->g, &t->tok);
    if (!st && iters) t->info.train.iters = iters;
    if (!st) st = attn_train_config_check(&t->info.train);
    if (!st && !t->info.has_optim)
        st = attn_error(ATTN_E_FORMAT, "%s: no optim.safetensors: this checkpoint cannot be resumed", dir);
    if (!st) st = make_optimizer(t);
    if (!st) st = attn_checkpoint_load_optim(dir, &t->info, t->g, t->opt);
    if (!st) st = prepare(t, text, len, what);
    if (st) {
        attn_trainer_free(t);
        return st;
    }
    *out = t;
    return ATTN_OK;
}

/* Mean loss over every window of the split: consecutive, non-overlapping
 * windows of T inputs (the last partial one dropped), B at a time, weighted
 * by tokens. Deterministic, so runs and implementations compare without the
 * sampling noise of a few random batches. */
static attn_status evaluate_whole(attn_trainer *t, const uint32_t *data, size_t n, double *loss)
{
    const size_t T = t->info.model.context, B = t->info.train.batch;
    if (n < T + 1) return attn_error(ATTN_E_INVALID, "evaluation: the split is shorter than one context");
    const size_t windows = (n - 1) / T;
    double sum = 0.0;
    for (size_t w = 0; w < windows; w += B) {
        const size_t b = windows - w < B ? windows - w : B;
        for (size_t i = 0; i < b; i++) {
            const uint32_t *src = data + (w + i) * T;
            memcpy(t->x + i * T, src, T * sizeof *src);
            memcpy(t->y + i * T, src + 1, T * sizeof *src);
        }
        double l = 0.0;
        size_t lo, hi;
        dist_rows(t, b, &lo, &hi);
        if (hi == lo) continue;
        attn_status st = attn_gpt_forward(t->g, t->x + lo * T, t->y + lo * T, hi - lo, T, &l, NULL);
        if (st) return st;
        sum += l * (double)(hi - lo);
    }
    attn_status st = dist_sum(t, &sum, 1);
    *loss = sum / (double)windows;
    return st;
}

attn_status attn_trainer_evaluate(attn_trainer *t, int val, double *loss)
{
    if (!t || !loss) return attn_error(ATTN_E_INVALID, "attn_trainer_evaluate: NULL");
    const attn_train_config *c = &t->info.train;
    const size_t T = t->info.model.context;
    const uint32_t *data = val ? t->tokens + t->n_train : t->tokens;
    const size_t n = val ? t->n_val : t->n_train;
    if (c->eval_iters == 0) return evaluate_whole(t, data, n, loss);
    attn_rng r;
    attn_rng_seed(&r, c->seed ^ (0x9E3779B97F4A7C15ull * (t->info.step + 1)) ^ (uint64_t)val);
    double sum = 0.0;
    attn_status st = ATTN_OK;
    size_t lo, hi;
    dist_rows(t, c->batch, &lo, &hi);
    for (size_t i = 0; !st && i < c->eval_iters; i++) {
        double l = 0.0;
        st = attn_sample_batch(t->x, t->y, data, n, c->batch, T, &r);
        if (!st) st = attn_gpt_forward(t->g, t->x + lo * T, t->y + lo * T, hi - lo, T, &l, NULL);
        sum += t->has_dist ? l * (double)(hi - lo) / (double)c->batch : l;
    }
    if (!st) st = dist_sum(t, &sum, 1);
    *loss = sum / (double)c->eval_iters;
    return st;
}

static attn_status run_steps(attn_trainer *t, const char *out_dir, size_t stop_at,
                             const volatile sig_atomic_t *stop, attn_train_progress_fn cb,
                             void *user, int *stopped)
{
    const attn_train_config *c = &t->info.train;
    const size_t T = t->info.model.context, B = c->batch;
    const attn_param_ref *params = attn_gpt_params(t->g);
    const size_t n_params = attn_gpt_param_count(t->g);
    const double start = now_s();
    attn_status st = lock_out(t, out_dir);
    int early = 0;
    size_t saved = (size_t)-1; /* the step last checkpointed in this call */
    while (!st && t->info.step < c->iters) {
        int halt = (stop && *stop) || (stop_at && t->info.step >= stop_at);
        if ((st = dist_halt(t, &halt))) break;
        if (halt) {
            early = 1;
            break;
        }
        const double t0 = now_s();
        attn_gpt_zero_grad(t->g);
        double loss = 0.0;
        /* data parallel: every rank draws the whole batch, computes on its
         * rows, and the gradients (scaled by 1/K) are summed */
        size_t lo, hi;
        dist_rows(t, B, &lo, &hi);
        const size_t K = B / (hi - lo);
        for (size_t a = 0; !st && a < c->accum; a++) {
            double l = 0.0;
            st = attn_sample_batch(t->x, t->y, t->tokens, t->n_train, B, T, &t->info.rng);
            if (!st) st = attn_gpt_forward(t->g, t->x + lo * T, t->y + lo * T, hi - lo, T, &l, NULL);
            /* the last micro-batch's backward hands each layer's final
             * gradients to the sum as it leaves the layer */
            const int hook = t->has_dist && t->dist.grads_ready && a + 1 == c->accum;
            if (hook) attn_gpt_set_backward_hook(t->g, grads_ready, t);
            if (!st) st = attn_gpt_backward(t->g, 1.0f / (float)(c->accum * K));
            if (hook) attn_gpt_set_backward_hook(t->g, NULL, NULL);
            loss += l / (double)(c->accum * K);
        }
        if (!st && t->has_dist) st = t->dist.sum_grads(t->dist.user, params, n_params);
        if (!st) st = dist_sum(t, &loss, 1);
        if (st) break;
        attn_train_event e;
        memset(&e, 0, sizeof e);
        e.grad_norm = attn_clip_grad_norm(params, n_params, c->grad_clip);
        e.lr = attn_lr_at(c, t->info.step);
        if ((st = attn_adamw_step(t->opt, (float)e.lr))) break;
        t->info.step++;
        const double t1 = now_s();
        e.step = t->info.step, e.iters = c->iters, e.train_loss = loss;
        e.ms_per_iter = 1e3 * (t1 - t0);
        e.tokens_per_s = (double)(B * T * c->accum) / (t1 - t0);
        e.val_loss = e.eval_train_loss = NAN;
        if (!isfinite(loss)) {
            st = attn_error(ATTN_E_INTERNAL, "the training loss became %g at step %zu (lower --lr?)",
                            loss, e.step);
            break;
        }
        if ((c->eval_every && e.step % c->eval_every == 0) || e.step == c->iters) {
            st = attn_trainer_evaluate(t, 1, &e.val_loss);
            if (!st) st = attn_trainer_evaluate(t, 0, &e.eval_train_loss);
            e.evaluated = 1;
        }
        if (!st && c->checkpoint_every && e.step % c->checkpoint_every == 0 && e.step < c->iters) {
            st = save(t, out_dir);
            e.checkpointed = 1, saved = e.step;
        }
        e.elapsed_s = now_s() - start;
        if (!st && cb && cb(&e, user)) {
            early = t->info.step < c->iters;
            break;
        }
    }
    if (!st && saved != t->info.step) st = save(t, out_dir);
    if (stopped) *stopped = early;
    return st;
}

attn_status attn_trainer_run(attn_trainer *t, const char *out_dir, size_t stop_at,
                             const volatile sig_atomic_t *stop, attn_train_progress_fn cb,
                             void *user, int *stopped)
{
    if (!t || !out_dir) return attn_error(ATTN_E_INVALID, "attn_trainer_run: NULL argument");
    if (stopped) *stopped = 0;
    /* the run's precision for its products, the caller's given back after */
    const attn_precision prev =
        attn_gemm_set_precision(t->info.train.precision ? ATTN_PRECISION_BF16 : ATTN_PRECISION_FP32);
    attn_status st = run_steps(t, out_dir, stop_at, stop, cb, user, stopped);
    attn_gemm_set_precision(prev);
    return st;
}
