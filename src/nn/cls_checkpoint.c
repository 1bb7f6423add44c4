/* cls_checkpoint.c - the encoder classifier's checkpoints. A directory holds
 *   config.json        {"format": "attn-encoder", "version": 1, "step": N,
 *                       "model": {...}, "train": {...}, "classify": {epochs,
 *                       patience, min_count, dropout, label_smoothing},
 *                       "labels": [...], "best": {"step", "accuracy", "f1",
 *                       "bad_evals"}}
 *   model.safetensors  the latest weights (metadata format, step)
 *   best.safetensors   the weights of the best validation accuracy (step = best.step)
 *   vocab.json         the word tokenizer
 *   optim.safetensors  AdamW moments
 * written under pending names and renamed into place together (attn/train.h's
 * shared checkpoint files), so a checkpoint is never half-written or mixed. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attn/fileio.h"
#include "attn/train_config.h"
#include "cls_internal.h"

#define VERSION 1

void attn_cls_info_free(attn_cls_info *info)
{
    if (!info) return;
    attn_cls_labels_free(info->labels, info->n_labels);
    info->labels = NULL, info->n_labels = 0;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *config_text(const attn_cls_info *in)
{
    char *hp = NULL;
    void *const parts[3] = {(void *)&in->model, (void *)&in->train, (void *)&in->opts};
    if (attn_hparams_to_json(attn_cls_hparams(), parts, &hp)) return NULL;
    cJSON *cfg = cJSON_Parse(hp), *root = cJSON_CreateObject();
    cJSON *labels = cJSON_CreateArray(), *best = cJSON_CreateObject();
    free(hp);
    char *text = NULL;
    if (cfg && root && labels && best) {
        cJSON_AddStringToObject(root, "format", CLS_FORMAT);
        cJSON_AddNumberToObject(root, "version", VERSION);
        cJSON_AddNumberToObject(root, "step", (double)in->step);
        static const char *const groups[3] = {"model", "train", "classify"};
        for (size_t i = 0; i < 3; i++) cJSON_AddItemToObject(root, groups[i], cJSON_DetachItemFromObject(cfg, groups[i]));
        for (size_t i = 0; i < in->n_labels; i++)
            cJSON_AddItemToArray(labels, cJSON_CreateString(in->labels[i]));
        cJSON_AddNumberToObject(best, "step", (double)in->best_step);
        cJSON_AddNumberToObject(best, "accuracy", isfinite(in->best_accuracy) ? in->best_accuracy : 0);
        cJSON_AddNumberToObject(best, "f1", isfinite(in->best_f1) ? in->best_f1 : 0);
        cJSON_AddNumberToObject(best, "bad_evals", (double)in->bad_evals);
        cJSON_AddItemToObject(root, "labels", labels), labels = NULL;
        cJSON_AddItemToObject(root, "best", best), best = NULL;
        text = cJSON_Print(root);
    }
    cJSON_Delete(cfg), cJSON_Delete(root), cJSON_Delete(labels), cJSON_Delete(best);
    return text;
}

attn_status cls_checkpoint_save(attn_cls_trainer *t, const char *dir, int best)
{
    static const char *const names[5] = {"config.json", "vocab.json", "model.safetensors",
                                         "optim.safetensors", "best.safetensors"};
    const size_t nfiles = best ? 5 : 4;
    char *pending[5] = {0}, *final[5] = {0};
    attn_status st = ATTN_OK;
    for (size_t i = 0; i < nfiles && !st; i++) {
        char tmp[64];
        snprintf(tmp, sizeof tmp, ".%s.pending", names[i]);
        pending[i] = join(dir, tmp), final[i] = join(dir, names[i]);
        if (!pending[i] || !final[i]) st = attn_error(ATTN_E_NOMEM, "out of memory");
    }
    const attn_cls_info *in = &t->info;
    char *text = st ? NULL : config_text(in);
    if (!st && !text) st = attn_error(ATTN_E_NOMEM, "out of memory");
    attn_atomic_file af;
    if (!st) st = attn_atomic_open(&af, pending[0]);
    if (!st) {
        fputs(text, af.f);
        fputc('\n', af.f);
        st = attn_atomic_commit(&af);
    }
    free(text);
    const attn_param_ref *p = attn_encoder_params(t->e);
    const size_t n = attn_encoder_param_count(t->e);
    if (!st) st = attn_tokenizer_save(t->tok, pending[1]);
    if (!st) st = attn_params_write(pending[2], CLS_FORMAT, in->step, p, n);
    attn_rng rng;
    attn_rng_seed(&rng, in->train.seed); /* batches depend on (seed, epoch) only */
    if (!st) st = attn_optim_write(pending[3], CLS_FORMAT, in->step, p, n, t->opt, &rng);
    if (!st && best) st = attn_params_write(pending[4], CLS_FORMAT, in->best_step, p, n);
    st = attn_files_commit(st, (const char *const *)pending, (const char *const *)final, nfiles);
    for (size_t i = 0; i < nfiles; i++) free(pending[i]), free(final[i]);
    return st;
}

/* ---- loading -------------------------------------------------------------------- */

static int get_size(const cJSON *obj, const char *key, size_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != floor(v->valuedouble) ||
        v->valuedouble > 9007199254740992.0)
        return -1;
    *out = (size_t)v->valuedouble;
    return 0;
}

static attn_status parse_config(const char *text, const char *path, attn_cls_info *in)
{
    memset(in, 0, sizeof *in);
    in->train = attn_train_defaults();
    cJSON *root = cJSON_Parse(text);
    attn_status st = ATTN_OK;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(root, "train");
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "classify");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(root, "labels");
    const cJSON *best = cJSON_GetObjectItemCaseSensitive(root, "best");
    if (!cJSON_IsObject(root)) st = attn_error(ATTN_E_FORMAT, "%s: not a JSON object", path);
    else if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, CLS_FORMAT))
        st = attn_error(ATTN_E_FORMAT, "%s: \"format\" is not \"%s\" (not a classifier checkpoint)", path, CLS_FORMAT);
    else if (!cJSON_IsNumber(ver) || ver->valuedouble != VERSION)
        st = attn_error(ATTN_E_FORMAT, "%s: unsupported \"version\" (this attn reads %d)", path, VERSION);
    else if (!cJSON_IsObject(m) || !cJSON_IsObject(tr) || !cJSON_IsObject(o) || !cJSON_IsArray(labels) ||
             !cJSON_IsObject(best))
        st = attn_error(ATTN_E_FORMAT, "%s: \"model\", \"train\", \"classify\", \"labels\" and \"best\" are required", path);
    if (!st && (get_size(root, "step", &in->step) || get_size(best, "step", &in->best_step) ||
                get_size(best, "bad_evals", &in->bad_evals)))
        st = attn_error(ATTN_E_FORMAT, "%s: a size is missing or not a whole number >= 0", path);
    if (!st) {
        /* "model", "train" and "classify" through the trainer's table; keys
         * absent stay 0 ("dropout": checkpoints before it had none) */
        static const char *const ignore[] = {"format", "version", "step", "labels", "best", NULL};
        void *const parts[3] = {&in->model, &in->train, &in->opts};
        st = attn_hparams_from_json(attn_cls_hparams(), parts, text, path, ignore);
        const cJSON *acc = cJSON_GetObjectItemCaseSensitive(best, "accuracy");
        const cJSON *f1 = cJSON_GetObjectItemCaseSensitive(best, "f1");
        in->best_accuracy = cJSON_IsNumber(acc) ? acc->valuedouble : 0;
        in->best_f1 = cJSON_IsNumber(f1) ? f1->valuedouble : 0;
    }
    if (!st) {
        size_t n = (size_t)cJSON_GetArraySize(labels);
        in->labels = calloc(n ? n : 1, sizeof *in->labels);
        if (!in->labels) st = attn_error(ATTN_E_NOMEM, "out of memory");
        const cJSON *it;
        cJSON_ArrayForEach(it, labels)
        {
            if (st) break;
            const char *s = cJSON_GetStringValue(it);
            if (!s || (in->n_labels && strcmp(in->labels[in->n_labels - 1], s) >= 0))
                st = attn_error(ATTN_E_FORMAT, "%s: \"labels\" must be distinct strings in sorted order", path);
            else if (!(in->labels[in->n_labels++] = strdup(s))) st = attn_error(ATTN_E_NOMEM, "out of memory");
        }
        if (!st && in->n_labels != in->model.classes)
            st = attn_error(ATTN_E_FORMAT, "%s: %zu labels, but \"classes\" is %zu", path, in->n_labels, in->model.classes);
    }
    if (!st) {
        st = attn_encoder_config_check(&in->model);
        if (st) st = attn_error_prefix(ATTN_E_FORMAT, "%s: ", path);
    }
    cJSON_Delete(root);
    if (st) attn_cls_info_free(in);
    return st;
}

/* config.json and vocab.json of dir, and an encoder for max_batch rows. */
static attn_status load_common(const char *dir, size_t max_batch, attn_cls_info *in,
                               attn_encoder **e, attn_tokenizer **tok)
{
    char *cpath = join(dir, "config.json"), *vpath = join(dir, "vocab.json"), *text = NULL;
    attn_status st = cpath && vpath ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    if (!st) st = attn_read_text_file(cpath, (size_t)1 << 24, &text, NULL);
    if (!st) st = parse_config(text, cpath, in);
    int parsed = !st;
    if (!st) st = attn_tokenizer_load(tok, vpath);
    if (!st && attn_tokenizer_vocab_size(*tok) != in->model.vocab_size)
        st = attn_error(ATTN_E_FORMAT, "%s: %zu tokens, but %s says vocab_size %zu", vpath,
                        attn_tokenizer_vocab_size(*tok), cpath, in->model.vocab_size);
    if (!st) st = attn_encoder_create(e, &in->model, max_batch ? max_batch : in->train.batch);
    if (st == ATTN_E_NOMEM && parsed) { /* sizes that pass the checks but cannot be had */
        char why[256];
        snprintf(why, sizeof why, "%s", attn_last_error());
        const attn_encoder_config *c = &in->model;
        st = attn_error(ATTN_E_FORMAT,
                        "%s: a model of %zu layers, width %zu, context %zu, vocabulary %zu and "
                        "%zu classes does not fit in memory (%s)",
                        cpath, c->layers, c->width, c->context, c->vocab_size, c->classes, why);
    }
    if (st) {
        attn_tokenizer_free(*tok), *tok = NULL;
        if (parsed) attn_cls_info_free(in);
    }
    free(text), free(cpath), free(vpath);
    return st;
}

attn_status attn_cls_model_load(const char *dir, size_t max_batch, attn_cls_info *info,
                                attn_encoder **e, attn_tokenizer **tok)
{
    if (!dir || !info || !e || !tok) return attn_error(ATTN_E_INVALID, "attn_cls_model_load: NULL");
    *e = NULL, *tok = NULL;
    attn_status st = load_common(dir, max_batch, info, e, tok);
    if (st) return st;
    int best = info->best_step > 0;
    char *path = join(dir, best ? "best.safetensors" : "model.safetensors");
    st = path ? attn_params_read(path, CLS_FORMAT, best ? info->best_step : info->step,
                                 attn_encoder_params(*e), attn_encoder_param_count(*e), 1)
              : attn_error(ATTN_E_NOMEM, "out of memory");
    free(path);
    if (st) {
        attn_encoder_free(*e), *e = NULL;
        attn_tokenizer_free(*tok), *tok = NULL;
        attn_cls_info_free(info);
    }
    return st;
}

attn_status attn_cls_trainer_load_best(attn_cls_trainer *t, const char *dir)
{
    if (!t || !dir) return attn_error(ATTN_E_INVALID, "attn_cls_trainer_load_best: NULL");
    if (!t->info.best_step) return ATTN_OK; /* never evaluated: the current weights */
    char *path = join(dir, "best.safetensors");
    attn_status st = path ? attn_params_read(path, CLS_FORMAT, t->info.best_step, attn_encoder_params(t->e),
                                             attn_encoder_param_count(t->e), 1)
                          : attn_error(ATTN_E_NOMEM, "out of memory");
    free(path);
    return st;
}

attn_status attn_cls_trainer_resume(attn_cls_trainer **out, const char *dir, const char *data_dir,
                                    size_t iters)
{
    if (!out || !dir || !data_dir) return attn_error(ATTN_E_INVALID, "attn_cls_trainer_resume: NULL");
    *out = NULL;
    attn_cls_trainer *t = calloc(1, sizeof *t);
    if (!t) return attn_error(ATTN_E_NOMEM, "cannot allocate a trainer");
    attn_status st = load_common(dir, 0, &t->info, &t->e, &t->tok);
    char *mpath = st ? NULL : join(dir, "model.safetensors");
    char *opath = st ? NULL : join(dir, "optim.safetensors");
    if (!st && (!mpath || !opath)) st = attn_error(ATTN_E_NOMEM, "out of memory");
    const attn_param_ref *p = st ? NULL : attn_encoder_params(t->e);
    const size_t n = st ? 0 : attn_encoder_param_count(t->e);
    if (!st) st = attn_params_read(mpath, CLS_FORMAT, t->info.step, p, n, 1);
    if (!st && iters) t->info.train.iters = iters;
    if (!st) st = attn_train_config_check(&t->info.train);
    if (!st && access(opath, F_OK) != 0)
        st = attn_error(ATTN_E_FORMAT, "%s: no optim.safetensors: this checkpoint cannot be resumed", dir);
    if (!st) st = cls_make_optimizer(t);
    attn_rng rng;
    if (!st) st = attn_optim_read(opath, CLS_FORMAT, t->info.step, p, n, t->opt, &rng);
    if (!st) st = cls_prepare(t, data_dir, 0);
    free(mpath), free(opath);
    if (st) {
        attn_cls_trainer_free(t);
        return st;
    }
    *out = t;
    return ATTN_OK;
}
