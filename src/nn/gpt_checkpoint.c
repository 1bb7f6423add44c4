/* gpt_checkpoint.c - GPT configuration as JSON, and checkpoints: config.json,
 * model.safetensors, vocab.json, optim.safetensors (see attn/train.h).
 *
 * Saving writes every file under a pending name first (each one atomically:
 * temporary file, fsync, rename) and renames them into place only when all
 * are complete; a failure before that removes the pending files and leaves the
 * previous checkpoint as it was. */
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

#define FORMAT "attn-gpt"
#define VERSION 1

/* ---- configuration: the table of attn/train_config.h ------------------------------ */

attn_status attn_train_config_from_json(const char *text, const char *what, attn_gpt_config *m,
                                        attn_train_config *t)
{
    if (!text || !m || !t) return attn_error(ATTN_E_INVALID, "attn_train_config_from_json: NULL");
    /* Either flat keys, or "model" and "train" objects (a checkpoint's config.json). */
    static const char *const ignore[] = {"format", "version", "step", NULL};
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

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static const char *file_names[4] = {"config.json", "vocab.json", "model.safetensors",
                                    "optim.safetensors"};

static attn_status save_safetensors(const char *path, const attn_param_ref *p, size_t n,
                                    float *const *datas, const char *const *mk,
                                    const char *const *mv, size_t n_meta)
{
    attn_st_named *named = calloc(n, sizeof *named);
    attn_tensor *ts = calloc(n, sizeof *ts);
    attn_status st = named && ts ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < n; i++) {
        size_t shape[2] = {p[i].shape[0], p[i].shape[1]};
        st = attn_tensor_view(&ts[i], datas ? datas[i] : p[i].data, p[i].ndim, shape);
        named[i].name = p[i].name, named[i].tensor = &ts[i];
    }
    if (!st) st = attn_safetensors_write(path, named, n, mk, mv, n_meta);
    free(named), free(ts);
    return st;
}

attn_status attn_optim_write(const char *path, const char *format, size_t step_n,
                             const attn_param_ref *p, size_t n, attn_adamw *opt,
                             const attn_rng *rng_state)
{
    if (!path || !format || !p || !opt || !rng_state)
        return attn_error(ATTN_E_INVALID, "attn_optim_write: NULL");
    attn_status st = ATTN_OK;
    char step[32];
    snprintf(step, sizeof step, "%zu", step_n);
    {
        char rng[4 * 17 + 4], adam[32];
        snprintf(rng, sizeof rng, "%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64,
                 rng_state->s[0], rng_state->s[1], rng_state->s[2], rng_state->s[3]);
        snprintf(adam, sizeof adam, "%zu", attn_adamw_steps(opt));
        const char *mk[4] = {"format", "step", "rng", "adam_steps"}, *mv[4] = {format, step, rng, adam};
        float **ms = malloc(n * sizeof *ms), **vs = malloc(n * sizeof *vs);
        if (!ms || !vs) st = attn_error(ATTN_E_NOMEM, "out of memory");
        for (size_t i = 0; !st && i < n; i++) attn_adamw_moments(opt, i, &ms[i], &vs[i]);
        /* One file: m.<name> then v.<name>, through two writes into a combined list. */
        if (!st) {
            attn_param_ref *both = malloc(2 * n * sizeof *both);
            float **datas = malloc(2 * n * sizeof *datas);
            char **nm = calloc(2 * n, sizeof *nm);
            if (!both || !datas || !nm) st = attn_error(ATTN_E_NOMEM, "out of memory");
            for (size_t i = 0; !st && i < 2 * n; i++) {
                both[i] = p[i % n];
                size_t len = strlen(p[i % n].name) + 3;
                if (!(nm[i] = malloc(len))) {
                    st = attn_error(ATTN_E_NOMEM, "out of memory");
                    break;
                }
                snprintf(nm[i], len, "%c.%s", i < n ? 'm' : 'v', p[i % n].name);
                both[i].name = nm[i];
                datas[i] = i < n ? ms[i] : vs[i - n];
            }
            if (!st) st = save_safetensors(path, both, 2 * n, datas, mk, mv, 4);
            if (nm)
                for (size_t i = 0; i < 2 * n; i++) free(nm[i]);
            free(nm), free(both), free(datas);
        }
        free(ms), free(vs);
    }
    return st;
}

attn_status attn_params_write(const char *path, const char *format, size_t step_n,
                              const attn_param_ref *p, size_t n)
{
    if (!path || !format || !p) return attn_error(ATTN_E_INVALID, "attn_params_write: NULL");
    char step[32];
    snprintf(step, sizeof step, "%zu", step_n);
    const char *mk[2] = {"format", "step"}, *mv[2] = {format, step};
    return save_safetensors(path, p, n, NULL, mk, mv, 2);
}

attn_status attn_files_commit(attn_status st, const char *const *pending, const char *const *final,
                              size_t n)
{
    for (size_t i = 0; !st && i < n; i++)
        if (rename(pending[i], final[i]) != 0)
            st = attn_error(ATTN_E_IO, "%s: cannot rename into place: %s", final[i], strerror(errno));
    for (size_t i = 0; st && i < n; i++)
        if (pending[i]) unlink(pending[i]);
    return st;
}

attn_status attn_checkpoint_save(const char *dir, const attn_checkpoint *info, attn_gpt *g,
                                 const attn_tokenizer *tok, attn_adamw *opt)
{
    if (!dir || !info || !g || !tok) return attn_error(ATTN_E_INVALID, "attn_checkpoint_save: NULL");
    char *pending[4] = {0}, *final[4] = {0};
    const size_t nfiles = opt ? 4 : 3;
    attn_status st = ATTN_OK;
    for (size_t i = 0; i < nfiles && !st; i++) {
        char tmp[64];
        snprintf(tmp, sizeof tmp, ".%s.pending", file_names[i]);
        pending[i] = join(dir, tmp), final[i] = join(dir, file_names[i]);
        if (!pending[i] || !final[i]) st = attn_error(ATTN_E_NOMEM, "out of memory");
    }
    /* config.json */
    if (!st) {
        cJSON *root = config_json(info);
        char *text = root ? cJSON_Print(root) : NULL;
        attn_atomic_file af;
        if (!text) st = attn_error(ATTN_E_NOMEM, "out of memory");
        if (!st) st = attn_atomic_open(&af, pending[0]);
        if (!st) {
            fputs(text, af.f);
            fputc('\n', af.f);
            st = attn_atomic_commit(&af);
        }
        cJSON_Delete(root), free(text);
    }
    if (!st) st = attn_tokenizer_save(tok, pending[1]);
    const attn_param_ref *p = attn_gpt_params(g);
    const size_t n = attn_gpt_param_count(g);
    if (!st) st = attn_params_write(pending[2], FORMAT, info->step, p, n);
    if (!st && opt) st = attn_optim_write(pending[3], FORMAT, info->step, p, n, opt, &info->rng);
    /* All written and synced: put them in place. */
    st = attn_files_commit(st, (const char *const *)pending, (const char *const *)final, nfiles);
    for (size_t i = 0; i < nfiles; i++) free(pending[i]), free(final[i]);
    return st;
}

/* ---- loading -------------------------------------------------------------- */

static attn_status load_tensor(attn_safetensors *sf, const char *path, const char *name,
                               const attn_param_ref *p, float *dst)
{
    attn_st_info info;
    attn_status st = attn_safetensors_info(sf, name, &info);
    if (st) return attn_error(ATTN_E_FORMAT, "%s: tensor '%s' is missing", path, name);
    int same = info.ndim == p->ndim && info.shape[0] == p->shape[0] &&
               (p->ndim == 1 || info.shape[1] == p->shape[1]);
    if (!same) {
        char got[96] = "[";
        for (int d = 0; d < info.ndim && d < 4; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%zu", d ? ", " : "", info.shape[d]);
        strcat(got, "]");
        if (p->ndim == 2)
            return attn_error(ATTN_E_FORMAT,
                              "%s: tensor '%s' has shape %s, but the configuration needs [%zu, %zu] "
                              "(a checkpoint of another architecture?)",
                              path, name, got, p->shape[0], p->shape[1]);
        return attn_error(ATTN_E_FORMAT,
                          "%s: tensor '%s' has shape %s, but the configuration needs [%zu] (a "
                          "checkpoint of another architecture?)",
                          path, name, got, p->shape[0]);
    }
    attn_tensor t = {0};
    st = attn_safetensors_read(sf, name, &t);
    if (!st) memcpy(dst, t.data, p->numel * sizeof(float));
    attn_tensor_free(&t);
    return st;
}

static attn_status load_params(attn_safetensors *sf, const char *path, const attn_param_ref *p,
                               size_t n, int strict)
{
    attn_status st = ATTN_OK;
    for (size_t i = 0; !st && i < n; i++) st = load_tensor(sf, path, p[i].name, &p[i], p[i].data);
    if (!st && strict && attn_safetensors_count(sf) != n) {
        attn_st_info info;
        for (size_t i = 0; i < attn_safetensors_count(sf); i++) {
            if (attn_safetensors_info_at(sf, i, &info)) break;
            size_t j = 0;
            while (j < n && strcmp(p[j].name, info.name)) j++;
            if (j == n) {
                st = attn_error(ATTN_E_FORMAT,
                                "%s: unexpected tensor '%s' (a checkpoint of another architecture?)",
                                path, info.name);
                break;
            }
        }
    }
    return st;
}

attn_status attn_gpt_load_safetensors(attn_gpt *g, const char *path, int strict)
{
    if (!g || !path) return attn_error(ATTN_E_INVALID, "attn_gpt_load_safetensors: NULL");
    attn_safetensors *sf = NULL;
    attn_status st = attn_safetensors_open(&sf, path);
    if (st) return st;
    st = load_params(sf, path, attn_gpt_params(g), attn_gpt_param_count(g), strict);
    attn_safetensors_close(sf);
    return st;
}

static attn_status step_of(attn_safetensors *sf, const char *path, const char *format, size_t want)
{
    const char *fmt = attn_safetensors_metadata(sf, "format");
    const char *step = attn_safetensors_metadata(sf, "step");
    if (!fmt || strcmp(fmt, format))
        return attn_error(ATTN_E_FORMAT, "%s: not an %s checkpoint (metadata format is not \"%s\")",
                          path, format, format);
    char want_s[32];
    snprintf(want_s, sizeof want_s, "%zu", want);
    if (!step || strcmp(step, want_s))
        return attn_error(ATTN_E_FORMAT,
                          "%s: written at step %s, but config.json says step %zu (an incomplete "
                          "checkpoint)",
                          path, step ? step : "(none)", want);
    return ATTN_OK;
}

attn_status attn_checkpoint_load(const char *dir, size_t max_batch, attn_checkpoint *info,
                                 attn_gpt **g, attn_tokenizer **tok)
{
    if (!dir || !info || !g || !tok) return attn_error(ATTN_E_INVALID, "attn_checkpoint_load: NULL");
    *g = NULL, *tok = NULL;
    memset(info, 0, sizeof *info);
    info->train = attn_train_defaults();
    char *cpath = join(dir, "config.json"), *vpath = join(dir, "vocab.json");
    char *mpath = join(dir, "model.safetensors"), *opath = join(dir, "optim.safetensors");
    char *text = NULL;
    cJSON *root = NULL;
    attn_status st = cpath && vpath && mpath && opath ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    if (!st) st = attn_read_text_file(cpath, (size_t)1 << 24, &text, NULL);
    if (!st) {
        root = cJSON_Parse(text);
        const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
        const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
        const cJSON *step = cJSON_GetObjectItemCaseSensitive(root, "step");
        if (!cJSON_IsObject(root)) st = attn_error(ATTN_E_FORMAT, "%s: not a JSON object", cpath);
        else if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, FORMAT))
            st = attn_error(ATTN_E_FORMAT, "%s: \"format\" is not \"%s\"", cpath, FORMAT);
        else if (!cJSON_IsNumber(ver) || ver->valuedouble != VERSION)
            st = attn_error(ATTN_E_FORMAT, "%s: unsupported \"version\" (this attn reads %d)", cpath, VERSION);
        else if (!cJSON_IsNumber(step) || step->valuedouble < 0 || step->valuedouble != floor(step->valuedouble))
            st = attn_error(ATTN_E_FORMAT, "%s: \"step\" must be a whole number", cpath);
        else
            info->step = (size_t)step->valuedouble;
    }
    if (!st) st = attn_train_config_from_json(text, cpath, &info->model, &info->train);
    if (!st) {
        st = attn_gpt_config_check(&info->model);
        if (st) st = attn_error_prefix(ATTN_E_FORMAT, "%s: ", cpath);
    }
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
    if (!st) {
        attn_safetensors *sf = NULL;
        st = attn_safetensors_open(&sf, mpath);
        if (!st) st = step_of(sf, mpath, FORMAT, info->step);
        attn_safetensors_close(sf);
    }
    if (!st) st = attn_gpt_load_safetensors(*g, mpath, 1);
    if (!st) info->has_optim = access(opath, F_OK) == 0;
    if (st) {
        attn_gpt_free(*g), *g = NULL;
        attn_tokenizer_free(*tok), *tok = NULL;
    }
    cJSON_Delete(root);
    free(text), free(cpath), free(vpath), free(mpath), free(opath);
    return st;
}

attn_status attn_params_read(const char *path, const char *format, size_t step,
                             const attn_param_ref *p, size_t n, int strict)
{
    if (!path || !format || !p) return attn_error(ATTN_E_INVALID, "attn_params_read: NULL");
    attn_safetensors *sf = NULL;
    attn_status st = attn_safetensors_open(&sf, path);
    if (!st) st = step_of(sf, path, format, step);
    if (!st) st = load_params(sf, path, p, n, strict);
    attn_safetensors_close(sf);
    return st;
}

attn_status attn_optim_read(const char *path, const char *format, size_t step,
                            const attn_param_ref *p, size_t n, attn_adamw *opt, attn_rng *rng_out)
{
    if (!path || !format || !p || !opt || !rng_out)
        return attn_error(ATTN_E_INVALID, "attn_optim_read: NULL");
    attn_safetensors *sf = NULL;
    attn_status st = attn_safetensors_open(&sf, path);
    if (!st) st = step_of(sf, path, format, step);
    const char *adam = st ? NULL : attn_safetensors_metadata(sf, "adam_steps");
    char *end = NULL;
    unsigned long long steps = adam ? strtoull(adam, &end, 10) : 0;
    if (!st && (!adam || *end))
        st = attn_error(ATTN_E_FORMAT, "%s: metadata \"adam_steps\" missing or not a number", path);
    const char *rng = st ? NULL : attn_safetensors_metadata(sf, "rng");
    if (!st) {
        uint64_t r[4];
        if (!rng || sscanf(rng, "%16" SCNx64 ",%16" SCNx64 ",%16" SCNx64 ",%16" SCNx64, &r[0], &r[1],
                           &r[2], &r[3]) != 4 || strlen(rng) != 67)
            st = attn_error(ATTN_E_FORMAT, "%s: metadata \"rng\" missing or malformed", path);
        else
            memcpy(rng_out->s, r, sizeof r);
    }
    char name[160];
    for (size_t i = 0; !st && i < n; i++) {
        float *m, *v;
        attn_adamw_moments(opt, i, &m, &v);
        snprintf(name, sizeof name, "m.%s", p[i].name);
        st = load_tensor(sf, path, name, &p[i], m);
        snprintf(name, sizeof name, "v.%s", p[i].name);
        if (!st) st = load_tensor(sf, path, name, &p[i], v);
    }
    if (!st) attn_adamw_set_steps(opt, (size_t)steps);
    attn_safetensors_close(sf);
    return st;
}

attn_status attn_checkpoint_load_optim(const char *dir, attn_checkpoint *info, attn_gpt *g,
                                       attn_adamw *opt)
{
    char *path = join(dir, "optim.safetensors");
    if (!path) return attn_error(ATTN_E_NOMEM, "out of memory");
    attn_status st = attn_optim_read(path, FORMAT, info->step, attn_gpt_params(g),
                                     attn_gpt_param_count(g), opt, &info->rng);
    free(path);
    return st;
}
