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
 * in the checkpoint directory every model shares (ckpt_dir.h): a save is
 * committed as one (best.safetensors, when not rewritten, is carried over
 * from the state before), and each file records the run and step it belongs
 * to, so a checkpoint is never half-written or mixed. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attn/fileio.h"
#include "attn/train_config.h"
#include "ckpt_dir.h"
#include "cls_internal.h"

#define VERSION 1

void attn_cls_info_free(attn_cls_info *info)
{
    if (!info) return;
    attn_cls_labels_free(info->labels, info->n_labels);
    info->labels = NULL, info->n_labels = 0;
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
        if (in->run[0]) cJSON_AddStringToObject(root, "run", in->run);
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

attn_status cls_checkpoint_name_run(attn_cls_trainer *t)
{
    attn_cls_info at0 = t->info; /* the configuration as the run starts */
    at0.step = at0.best_step = at0.bad_evals = 0, at0.best_accuracy = at0.best_f1 = 0;
    at0.run[0] = '\0';
    char *text = config_text(&at0);
    if (!text) return attn_error(ATTN_E_NOMEM, "out of memory");
    ckpt_hash h;
    ckpt_hash_init(&h, CLS_FORMAT);
    ckpt_hash_add(&h, text, strlen(text));
    free(text);
    for (int i = 0; i < 3; i++) {
        const attn_cls_split *sp = &t->split[i];
        ckpt_hash_add(&h, &i, 0); /* a mark between the splits */
        for (size_t j = 0; j < sp->n; j++) {
            ckpt_hash_add(&h, sp->label_name[j], strlen(sp->label_name[j]));
            ckpt_hash_add(&h, sp->text[j], strlen(sp->text[j]));
        }
    }
    ckpt_hash_hex(&h, t->info.run);
    return ATTN_OK;
}

attn_status cls_checkpoint_save(attn_cls_trainer *t, const char *dir, int best)
{
    static const char *const names[5] = {"config.json", "vocab.json", "model.safetensors",
                                         "optim.safetensors", "best.safetensors"};
    const attn_cls_info *in = &t->info;
    /* best.safetensors in every state once there is a best */
    const size_t nfiles = best || in->best_step ? 5 : 4;
    char *path[5] = {0};
    ckpt_txn w;
    attn_status st = ckpt_begin(&w, dir);
    if (st) return st;
    st = ckpt_paths(w.tmp, names, nfiles, path);
    char *text = st ? NULL : config_text(in);
    if (!st) st = text ? ckpt_text_write(path[0], text) : attn_error(ATTN_E_NOMEM, "out of memory");
    free(text);
    const attn_param_ref *p = attn_encoder_params(t->e);
    const size_t n = attn_encoder_param_count(t->e);
    const ckpt_stamp stamp = {CLS_FORMAT, in->run, in->step}, best_stamp = {CLS_FORMAT, in->run, in->best_step};
    if (!st) st = attn_tokenizer_save(t->tok, path[1]);
    if (!st) st = ckpt_params_write(path[2], &stamp, p, n);
    attn_rng rng;
    attn_rng_seed(&rng, in->train.seed); /* batches depend on (seed, epoch) only */
    if (!st) st = ckpt_optim_write(path[3], &stamp, p, n, t->opt, &rng);
    if (!st && best) st = ckpt_params_write(path[4], &best_stamp, p, n);
    else if (!st && nfiles == 5) st = ckpt_carry(&w, t->best_from ? t->best_from : dir, names[4]);
    st = ckpt_commit(&w, st, in->step, names, nfiles);
    for (size_t i = 0; i < nfiles; i++) free(path[i]);
    if (!st && nfiles == 5 && (!t->best_from || strcmp(t->best_from, dir))) {
        free(t->best_from);
        if (!(t->best_from = strdup(dir))) st = attn_error(ATTN_E_NOMEM, "out of memory");
    }
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
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(root, "train");
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "classify");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(root, "labels");
    const cJSON *best = cJSON_GetObjectItemCaseSensitive(root, "best");
    st = ckpt_config_head(root, path, CLS_FORMAT, " (not a classifier checkpoint)", VERSION, &in->step, in->run);
    if (!st && (!cJSON_IsObject(m) || !cJSON_IsObject(tr) || !cJSON_IsObject(o) || !cJSON_IsArray(labels) ||
             !cJSON_IsObject(best)))
        st = attn_error(ATTN_E_FORMAT, "%s: \"model\", \"train\", \"classify\", \"labels\" and \"best\" are required", path);
    if (!st && (get_size(best, "step", &in->best_step) ||
                get_size(best, "bad_evals", &in->bad_evals)))
        st = attn_error(ATTN_E_FORMAT, "%s: a size is missing or not a whole number >= 0", path);
    if (!st) {
        /* "model", "train" and "classify" through the trainer's table; keys
         * absent stay 0 ("dropout": checkpoints before it had none) */
        static const char *const ignore[] = {"format", "version", "step", "run", "labels", "best", NULL};
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

/* config.json and vocab.json of a state, and an encoder for max_batch rows. */
static attn_status load_common(const char *state, size_t max_batch, attn_cls_info *in,
                               attn_encoder **e, attn_tokenizer **tok)
{
    char *cpath = ckpt_path(state, "config.json"), *vpath = ckpt_path(state, "vocab.json"), *text = NULL;
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

/* The weights file `name` of dir's committed state, at `step`. */
static attn_status read_weights(const char *dir, const char *name, const attn_cls_info *in,
                                size_t step, attn_encoder *e)
{
    char *state = NULL, *path = NULL;
    attn_status st = ckpt_state(dir, &state);
    if (!st && !(path = ckpt_path(state, name))) st = attn_error(ATTN_E_NOMEM, "out of memory");
    const ckpt_stamp stamp = {CLS_FORMAT, in->run, step};
    if (!st) st = ckpt_params_read(path, &stamp, attn_encoder_params(e), attn_encoder_param_count(e), 1);
    free(state), free(path);
    return st;
}

attn_status attn_cls_model_load(const char *dir, size_t max_batch, attn_cls_info *info,
                                attn_encoder **e, attn_tokenizer **tok)
{
    if (!dir || !info || !e || !tok) return attn_error(ATTN_E_INVALID, "attn_cls_model_load: NULL");
    *e = NULL, *tok = NULL;
    char *state = NULL;
    attn_status st = ckpt_state(dir, &state);
    if (!st) st = load_common(state, max_batch, info, e, tok);
    free(state);
    if (st) return st;
    int best = info->best_step > 0;
    st = read_weights(dir, best ? "best.safetensors" : "model.safetensors", info,
                      best ? info->best_step : info->step, *e);
    if (st) {
        attn_encoder_free(*e), *e = NULL;
        attn_tokenizer_free(*tok), *tok = NULL;
        attn_cls_info_free(info);
    }
    return st;
}

attn_status cls_checkpoint_read_best(attn_cls_trainer *t, const char *dir)
{
    return read_weights(dir, "best.safetensors", &t->info, t->info.best_step, t->e);
}

attn_status cls_checkpoint_read(attn_cls_trainer *t, const char *dir, char **optim_path)
{
    *optim_path = NULL;
    char *state = NULL, *mpath = NULL;
    attn_status st = ckpt_state(dir, &state);
    if (!st) st = load_common(state, 0, &t->info, &t->e, &t->tok);
    if (!st) {
        mpath = ckpt_path(state, "model.safetensors"), *optim_path = ckpt_path(state, "optim.safetensors");
        t->best_from = strdup(dir);
        if (!mpath || !*optim_path || !t->best_from) st = attn_error(ATTN_E_NOMEM, "out of memory");
    }
    const ckpt_stamp stamp = {CLS_FORMAT, t->info.run, t->info.step};
    if (!st)
        st = ckpt_params_read(mpath, &stamp, attn_encoder_params(t->e), attn_encoder_param_count(t->e), 1);
    free(state), free(mpath);
    return st;
}

attn_status cls_checkpoint_read_optim(attn_cls_trainer *t, const char *optim_path)
{
    const ckpt_stamp stamp = {CLS_FORMAT, t->info.run, t->info.step};
    attn_rng rng;
    return ckpt_optim_read(optim_path, &stamp, attn_encoder_params(t->e), attn_encoder_param_count(t->e),
                           t->opt, &rng);
}
