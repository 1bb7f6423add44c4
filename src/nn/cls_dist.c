/* cls_dist.c - the classifier trainer's data parallelism (the hooks of
 * attn_train_dist; the trainer knows no MPI). Every rank plans and fills the
 * whole global batch, padded to its longest text, and computes on its slice
 * of examples; dropout masks are indexed by the example's place in the
 * global batch (attn_encoder_set_dropout_row), so any number of ranks drops
 * the same elements. The token embedding's row-sparse gradient is summed as
 * the rows the whole batch used, packed; the other gradients whole. */
#include <stdlib.h>
#include <string.h>

#include "ckpt_dir.h"
#include "cls_internal.h"

attn_status attn_cls_trainer_set_dist(attn_cls_trainer *t, const attn_train_dist *d)
{
    if (!t || !d || d->ranks < 1 || d->rank < 0 || d->rank >= d->ranks || !d->sum_grads || !d->sum)
        return attn_error(ATTN_E_INVALID, "attn_cls_trainer_set_dist: bad argument");
    const attn_cls_info *in = &t->info;
    const size_t V = in->model.vocab_size, C = in->model.width;
    const size_t BT = in->train.batch * in->model.context, rows = BT < V ? BT : V;
    size_t most = in->n_train;
    most = in->n_valid > most ? in->n_valid : most;
    most = in->n_test > most ? in->n_test : most;
    const size_t n = attn_encoder_param_count(t->e);
    free(t->dist_mark), free(t->dist_rows), free(t->dist_buf), free(t->dist_sum), free(t->dist_refs);
    t->dist_mark = calloc(V, 1), t->dist_rows = malloc(rows * sizeof *t->dist_rows);
    t->dist_buf = malloc(rows * C * sizeof *t->dist_buf);
    t->dist_sum = malloc((most + 1) * sizeof *t->dist_sum);
    t->dist_refs = malloc(n * sizeof *t->dist_refs);
    t->dist_n_rows = 0;
    if (!t->dist_mark || !t->dist_rows || !t->dist_buf || !t->dist_sum || !t->dist_refs)
        return attn_error(ATTN_E_NOMEM, "cannot allocate the data-parallel buffers");
    memcpy(t->dist_refs, attn_encoder_params(t->e), n * sizeof *t->dist_refs);
    t->dist = *d, t->has_dist = 1;
    return ATTN_OK;
}

void cls_dist_free(attn_cls_trainer *t)
{
    if (t->has_dist && t->dist.release) t->dist.release(t->dist.user);
    free(t->dist_mark), free(t->dist_rows), free(t->dist_buf), free(t->dist_sum), free(t->dist_refs);
}

uint64_t attn_cls_trainer_fingerprint(const attn_cls_trainer *t)
{
    if (!t) return 0;
    const attn_cls_info *in = &t->info;
    ckpt_hash h;
    ckpt_hash_init(&h, CLS_FORMAT);
    char *json = NULL;
    if (!attn_train_config_to_json(&in->train, &json)) ckpt_hash_add(&h, json, strlen(json));
    free(json);
    const attn_encoder_config *m = &in->model;
    const uint64_t sizes[10] = {m->vocab_size, m->context, m->layers, m->heads, m->width, m->classes,
                                (uint64_t)m->bias, (uint64_t)m->pooling, in->step, in->best_step};
    ckpt_hash_add(&h, sizes, sizeof sizes);
    const float opts[2] = {in->opts.dropout, in->opts.label_smoothing};
    ckpt_hash_add(&h, opts, sizeof opts);
    ckpt_hash_add(&h, in->run, strlen(in->run));
    for (int i = 0; i < 3; i++) {
        const attn_cls_tokens *d = &t->data[i];
        ckpt_hash_add(&h, d->ids, d->offset[d->n] * sizeof *d->ids);
        ckpt_hash_add(&h, d->label, d->n * sizeof *d->label);
    }
    return h.h;
}

void cls_dist_rows(const attn_cls_trainer *t, size_t nb, size_t *lo, size_t *hi)
{
    const size_t K = t->has_dist ? (size_t)t->dist.ranks : 1, r = t->has_dist ? (size_t)t->dist.rank : 0;
    *lo = nb * r / K, *hi = nb * (r + 1) / K;
}

attn_status cls_dist_sum(attn_cls_trainer *t, double *v, size_t n)
{
    return t->has_dist ? t->dist.sum(t->dist.user, v, n) : ATTN_OK;
}

/* The ranks stop together, at the step the first of them asks to (a signal
 * that reached one rank, or ranks started with different --stop-at). */
attn_status cls_dist_halt(attn_cls_trainer *t, int *halt)
{
    double h = *halt;
    attn_status st = cls_dist_sum(t, &h, 1);
    *halt = h > 0;
    return st;
}

void cls_dist_zero_rows(attn_cls_trainer *t)
{
    if (!t->has_dist) return;
    /* rows other ranks used hold their summed gradient here too: the
     * encoder's zero_grad knows only this rank's */
    const size_t C = t->info.model.width;
    float *g = attn_encoder_params(t->e)[0].grad;
    for (size_t r = 0; r < t->dist_n_rows; r++) memset(g + (size_t)t->dist_rows[r] * C, 0, C * sizeof *g);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

attn_status cls_dist_reduce(attn_cls_trainer *t, size_t nb, size_t T, double *loss,
                            const uint32_t **rows, size_t *n_rows)
{
    if (!t->has_dist) {
        *rows = attn_encoder_grad_rows(t->e, n_rows);
        return ATTN_OK;
    }
    /* the rows of the whole batch (padding included, as the encoder counts):
     * the union of every rank's, in ascending order, as one process has them */
    size_t n = 0;
    for (size_t i = 0; i < nb * T; i++)
        if (!t->dist_mark[t->x[i]]) t->dist_mark[t->x[i]] = 1, t->dist_rows[n++] = t->x[i];
    for (size_t i = 0; i < n; i++) t->dist_mark[t->dist_rows[i]] = 0;
    qsort(t->dist_rows, n, sizeof *t->dist_rows, cmp_u32);
    t->dist_n_rows = n;
    const size_t C = t->info.model.width, np = attn_encoder_param_count(t->e);
    float *g = attn_encoder_params(t->e)[0].grad;
    for (size_t r = 0; r < n; r++) memcpy(t->dist_buf + r * C, g + (size_t)t->dist_rows[r] * C, C * sizeof *g);
    attn_param_ref *packed = &t->dist_refs[0];
    packed->grad = t->dist_buf, packed->numel = n * C, packed->shape[0] = n;
    attn_status st = t->dist.sum_grads(t->dist.user, t->dist_refs, np);
    if (!st) st = t->dist.sum(t->dist.user, loss, 1);
    if (st) return st;
    for (size_t r = 0; r < n; r++) memcpy(g + (size_t)t->dist_rows[r] * C, t->dist_buf + r * C, C * sizeof *g);
    *rows = t->dist_rows, *n_rows = n;
    return ATTN_OK;
}

attn_status cls_dist_predictions(attn_cls_trainer *t, size_t n, double *loss)
{
    if (!t->has_dist) return ATTN_OK;
    /* every prediction came from one rank, the others left 0 */
    double *v = t->dist_sum;
    v[0] = *loss;
    for (size_t i = 0; i < n; i++) v[1 + i] = (double)t->pred[i];
    attn_status st = t->dist.sum(t->dist.user, v, n + 1);
    if (st) return st;
    *loss = v[0];
    for (size_t i = 0; i < n; i++) t->pred[i] = (uint32_t)v[1 + i];
    return ATTN_OK;
}

attn_status cls_dist_agree(attn_cls_trainer *t, attn_status st, const char *what)
{
    if (!t->has_dist) return st;
    double failed = st != ATTN_OK;
    attn_status sum = t->dist.sum(t->dist.user, &failed, 1);
    if (st || sum) return st ? st : sum;
    return failed > 0 ? attn_error(ATTN_E_IO, "rank 0 could not %s", what) : ATTN_OK;
}

attn_status cls_dist_save(attn_cls_trainer *t, const char *dir, int best)
{
    attn_status st = ATTN_OK;
    if (!t->has_dist || t->dist.rank == 0) st = cls_checkpoint_save(t, dir, best);
    return cls_dist_agree(t, st, "write the checkpoint");
}

attn_status cls_dist_from_rank0(attn_cls_trainer *t)
{
    /* x + 0 + 0 ... is x exactly: a sum is a broadcast */
    const size_t n = attn_encoder_param_count(t->e);
    const attn_param_ref *p = attn_encoder_params(t->e);
    for (size_t i = 0; i < n; i++) {
        t->dist_refs[i] = p[i];
        t->dist_refs[i].grad = p[i].data;
        if (t->dist.rank != 0) memset(p[i].data, 0, p[i].numel * sizeof(float));
    }
    attn_status st = t->dist.sum_grads(t->dist.user, t->dist_refs, n);
    memcpy(t->dist_refs, p, n * sizeof *p);
    return st;
}

/* Here rather than beside the checkpoint code: under data parallelism the
 * weights come from rank 0 (cls_checkpoint.c calls no trainer code). */
attn_status attn_cls_trainer_load_best(attn_cls_trainer *t, const char *dir)
{
    if (!t || !dir) return attn_error(ATTN_E_INVALID, "attn_cls_trainer_load_best: NULL");
    if (!t->info.best_step) return ATTN_OK; /* never evaluated: the current weights */
    if (!t->has_dist) return cls_checkpoint_read_best(t, dir);
    /* data parallel: rank 0 wrote them, and only its file system may have them */
    attn_status st = t->dist.rank ? ATTN_OK : cls_checkpoint_read_best(t, dir);
    st = cls_dist_agree(t, st, "read the best weights");
    return st ? st : cls_dist_from_rank0(t);
}
