/* gpt_checkpoint.c - GPT configuration as JSON, and checkpoints: config.json,
 * model.safetensors, vocab.json, optim.safetensors (see attn/train.h), in the
 * checkpoint directory every model shares (ckpt_dir.h): a save is committed
 * as one, and each file records the run and step it belongs to. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attn/fileio.h"
#include "attn/safetensors.h"
#include "attn/train.h"
#include "attn/train_config.h"
#include "ckpt_dir.h"

#define FORMAT "attn-gpt"
#define VERSION 1

/* ---- configuration: the table of attn/train_config.h ------------------------------ */

attn_status attn_train_config_from_json(const char *text, const char *what, attn_gpt_config *m,
                                        attn_train_config *t)
{
    if (!text || !m || !t) return attn_error(ATTN_E_INVALID, "attn_train_config_from_json: NULL");
    /* Either flat keys, or "model" and "train" objects (a checkpoint's config.json). */
    static const char *const ignore[] = {"format", "version", "step", "run", NULL};
    void *const parts[2] = {m, t};
    return attn_hparams_from_json(attn_gpt_hparams(), parts, text, what, ignore);
}

static cJSON *config_json(const attn_checkpoint *info)
{
    void *const parts[2] = {(void *)&info->model, (void *)&info->train};
    char *text = NULL;
    if (attn_hparams_to_json(attn_gpt_hparams(), parts, &text)) return NULL;
    cJSON *cfg = cJSON_Parse(text), *root = cJSON_CreateObject();
    free(text);
    cJSON *m = cfg ? cJSON_DetachItemFromObject(cfg, "model") : NULL;
    cJSON *t = cfg ? cJSON_DetachItemFromObject(cfg, "train") : NULL;
    cJSON_Delete(cfg);
    if (!root || !m || !t) {
        cJSON_Delete(root), cJSON_Delete(m), cJSON_Delete(t);
        return NULL;
    }
    cJSON_AddStringToObject(root, "format", FORMAT);
    cJSON_AddNumberToObject(root, "version", VERSION);
    cJSON_AddNumberToObject(root, "step", (double)info->step);
    if (info->run[0]) cJSON_AddStringToObject(root, "run", info->run);
    cJSON_AddItemToObject(root, "model", m);
    cJSON_AddItemToObject(root, "train", t);
    return root;
}

attn_status attn_train_config_to_json(const attn_train_config *t, char **json)
{
    if (!t || !json) return attn_error(ATTN_E_INVALID, "attn_train_config_to_json: NULL");
    attn_checkpoint info;
    memset(&info, 0, sizeof info);
    info.train = *t;
    cJSON *root = config_json(&info);
    cJSON *train = root ? cJSON_DetachItemFromObject(root, "train") : NULL;
    *json = train ? cJSON_PrintUnformatted(train) : NULL;
    cJSON_Delete(root), cJSON_Delete(train);
    return *json ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
}

/* ---- files ------------------------------------------------------------------- */

static const char *const file_names[4] = {"config.json", "vocab.json", "model.safetensors",
                                          "optim.safetensors"};

attn_status gpt_checkpoint_name_run(attn_checkpoint *info, const char *text, size_t len)
{
    attn_checkpoint at0 = *info; /* the configuration as the run starts */
    at0.step = 0, at0.run[0] = '\0';
    cJSON *root = config_json(&at0);
    char *cfg = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!cfg) return attn_error(ATTN_E_NOMEM, "out of memory");
    ckpt_hash h;
    ckpt_hash_init(&h, FORMAT);
    ckpt_hash_add(&h, cfg, strlen(cfg));
    ckpt_hash_add(&h, text, len);
    ckpt_hash_hex(&h, info->run);
    free(cfg);
    return ATTN_OK;
}

attn_status attn_checkpoint_save(const char *dir, const attn_checkpoint *info, attn_gpt *g,
                                 const attn_tokenizer *tok, attn_adamw *opt)
{
    if (!dir || !info || !g || !tok) return attn_error(ATTN_E_INVALID, "attn_checkpoint_save: NULL");
    ckpt_txn w;
    attn_status st = ckpt_begin(&w, dir);
    if (st) return st;
    const size_t nfiles = opt ? 4 : 3;
    char *path[4] = {0};
    st = ckpt_paths(w.tmp, file_names, nfiles, path);
    if (!st) {
        cJSON *root = config_json(info);
        char *text = root ? cJSON_Print(root) : NULL;
        st = text ? ckpt_text_write(path[0], text) : attn_error(ATTN_E_NOMEM, "out of memory");
        cJSON_Delete(root), free(text);
    }
    if (!st) st = attn_tokenizer_save(tok, path[1]);
    const attn_param_ref *p = attn_gpt_params(g);
    const size_t n = attn_gpt_param_count(g);
    const ckpt_stamp stamp = {FORMAT, info->run, info->step};
    if (!st) st = ckpt_params_write(path[2], &stamp, p, n);
    if (!st && opt) st = ckpt_optim_write(path[3], &stamp, p, n, opt, &info->rng);
    st = ckpt_commit(&w, st, info->step, file_names, nfiles);
    for (size_t i = 0; i < nfiles; i++) free(path[i]);
    return st;
}

/* ---- loading -------------------------------------------------------------- */

attn_status attn_gpt_load_safetensors(attn_gpt *g, const char *path, int strict)
{
    if (!g || !path) return attn_error(ATTN_E_INVALID, "attn_gpt_load_safetensors: NULL");
    return ckpt_params_read(path, NULL, attn_gpt_params(g), attn_gpt_param_count(g), strict);
}

/* config.json of a state: format, version, step, run, configuration. */
static attn_status read_config(const char *cpath, attn_checkpoint *info)
{
    char *text = NULL;
    attn_status st = attn_read_text_file(cpath, (size_t)1 << 24, &text, NULL);
    if (st) return st;
    cJSON *root = cJSON_Parse(text);
    st = ckpt_config_head(root, cpath, FORMAT, "", VERSION, &info->step, info->run);
    if (!st) st = attn_train_config_from_json(text, cpath, &info->model, &info->train);
    if (!st) {
        st = attn_gpt_config_check(&info->model);
        if (st) st = attn_error_prefix(ATTN_E_FORMAT, "%s: ", cpath);
    }
    cJSON_Delete(root);
    free(text);
    return st;
}

attn_status attn_checkpoint_load(const char *dir, size_t max_batch, attn_checkpoint *info,
                                 attn_gpt **g, attn_tokenizer **tok)
{
    if (!dir || !info || !g || !tok) return attn_error(ATTN_E_INVALID, "attn_checkpoint_load: NULL");
    *g = NULL, *tok = NULL;
    memset(info, 0, sizeof *info);
    info->train = attn_train_defaults();
    char *state = NULL, *cpath = NULL, *vpath = NULL, *mpath = NULL, *opath = NULL;
    attn_status st = ckpt_state(dir, &state);
    if (!st) {
        cpath = ckpt_path(state, "config.json"), vpath = ckpt_path(state, "vocab.json");
        mpath = ckpt_path(state, "model.safetensors"), opath = ckpt_path(state, "optim.safetensors");
        if (!cpath || !vpath || !mpath || !opath) st = attn_error(ATTN_E_NOMEM, "out of memory");
    }
    if (!st) st = read_config(cpath, info);
    if (!st) st = attn_tokenizer_load(tok, vpath);
    if (!st && attn_tokenizer_vocab_size(*tok) != info->model.vocab_size)
        st = attn_error(ATTN_E_FORMAT, "%s: %zu tokens, but %s says vocab_size %zu", vpath,
                        attn_tokenizer_vocab_size(*tok), cpath, info->model.vocab_size);
    if (!st) st = attn_gpt_create(g, &info->model, max_batch ? max_batch : info->train.batch);
    if (st == ATTN_E_NOMEM) { /* sizes that pass the checks but cannot be had: bad input */
        char why[256];
        snprintf(why, sizeof why, "%s", attn_last_error());
        const attn_gpt_config *m = &info->model;
        st = attn_error(ATTN_E_FORMAT,
                        "%s: a model of %zu layers, width %zu, context %zu and vocabulary %zu "
                        "(batch %zu) does not fit in memory (%s)",
                        cpath, m->layers, m->width, m->context, m->vocab_size,
                        max_batch ? max_batch : info->train.batch, why);
    }
    const ckpt_stamp stamp = {FORMAT, info->run, info->step};
    if (!st) st = ckpt_params_read(mpath, &stamp, attn_gpt_params(*g), attn_gpt_param_count(*g), 1);
    if (!st) info->has_optim = access(opath, F_OK) == 0;
    if (st) {
        attn_gpt_free(*g), *g = NULL;
        attn_tokenizer_free(*tok), *tok = NULL;
    }
    free(state), free(cpath), free(vpath), free(mpath), free(opath);
    return st;
}

attn_status attn_checkpoint_load_optim(const char *dir, attn_checkpoint *info, attn_gpt *g,
                                       attn_adamw *opt)
{
    if (!dir || !info || !g || !opt) return attn_error(ATTN_E_INVALID, "attn_checkpoint_load_optim: NULL");
    char *state = NULL, *path = NULL;
    attn_status st = ckpt_state(dir, &state);
    if (!st && !(path = ckpt_path(state, "optim.safetensors"))) st = attn_error(ATTN_E_NOMEM, "out of memory");
    const ckpt_stamp stamp = {FORMAT, info->run, info->step};
    if (!st) st = ckpt_optim_read(path, &stamp, attn_gpt_params(g), attn_gpt_param_count(g), opt, &info->rng);
    free(state), free(path);
    return st;
}
