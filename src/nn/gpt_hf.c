/* gpt_hf.c - GPT-2 checkpoints in Hugging Face's layout, both ways.
 *
 * A folder of config.json and model.safetensors as transformers'
 * GPT2LMHeadModel saves it. attn's GPT is GPT-2's math (pre-norm blocks,
 * tanh GELU, tied head, LayerNorm eps 1e-5), so loading is renaming and
 * transposing: GPT-2's Conv1D layers store the weight (in, out), attn's
 * linear layers (out, in). Names may carry the "transformer." prefix;
 * lm_head.weight, when present, must be the tied copy of wte; the buffers
 * attn.bias / attn.masked_bias are ignored. F32, F16 and BF16 tensors are
 * converted to float once, while loading.
 *
 * attn's decoders are written the same way (F32, no prefix, no lm_head). A
 * model without biases gets zero biases, which transformers needs, and
 * "attn_bias": false in config.json, by which attn loads it back as it was.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attn/fileio.h"
#include "attn/gpt_hf.h"
#include "attn/safetensors.h"

#define NAME_MAX_LEN 160

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), n = strlen(name);
    char *p = malloc(a + n + 2);
    if (p) memcpy(p, dir, a), p[a] = '/', memcpy(p + a + 1, name, n + 1);
    return p;
}

/* GPT-2's name of an attn parameter, and whether the weight is transposed. */
static void hf_name(const char *attn_name, char *out, size_t cap, int *transpose)
{
    static const char *const map[][2] = {{"attn.in_proj_weight", "attn.c_attn.weight"},
                                         {"attn.in_proj_bias", "attn.c_attn.bias"},
                                         {"attn.out_proj.", "attn.c_proj."}};
    snprintf(out, cap, "%s", attn_name);
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        char *at = strstr(out, map[i][0]);
        if (at) {
            char tail[NAME_MAX_LEN];
            snprintf(tail, sizeof tail, "%s", at + strlen(map[i][0]));
            snprintf(at, cap - (size_t)(at - out), "%s%s", map[i][1], tail);
        }
    }
    *transpose = !strncmp(out, "h.", 2) && strstr(out, ".weight") && !strstr(out, ".ln_");
}

/* ---- config.json ------------------------------------------------------------------ */

static attn_status cfg_size(const cJSON *root, const char *key, const char *alt, const char *path,
                            size_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v && alt) v = cJSON_GetObjectItemCaseSensitive(root, alt);
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 1e9 ||
        v->valuedouble != floor(v->valuedouble))
        return attn_error(ATTN_E_FORMAT, "%s: \"%s\": expected an integer >= 1", path, key);
    *out = (size_t)v->valuedouble;
    return ATTN_OK;
}

/* GPT-2 and nothing else: the architecture, the activation, the epsilon. */
static attn_status check_gpt2(const cJSON *root, const char *path)
{
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "model_type"));
    const char *first = cJSON_IsArray(arch) ? cJSON_GetStringValue(cJSON_GetArrayItem(arch, 0)) : NULL;
    if (type ? strcmp(type, "gpt2") != 0 : !first || strncmp(first, "GPT2", 4) != 0)
        return attn_error(ATTN_E_FORMAT, "%s: the model is %s, not GPT-2 (expected model_type \"gpt2\", "
                                         "architectures [\"GPT2LMHeadModel\"])",
                          path, type ? type : first ? first : "of no stated architecture");
    if (first && strcmp(first, "GPT2LMHeadModel") && strcmp(first, "GPT2Model"))
        return attn_error(ATTN_E_FORMAT, "%s: architecture \"%s\" is not GPT-2's language model "
                                         "(expected GPT2LMHeadModel)", path, first);
    const char *act = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "activation_function"));
    if (act && strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh"))
        return attn_error(ATTN_E_FORMAT, "%s: activation_function \"%s\": attn's GPT has the tanh GELU "
                                         "(\"gelu_new\") only", path, act);
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_epsilon");
    if (eps && (!cJSON_IsNumber(eps) || fabs(eps->valuedouble - 1e-5) > 1e-12))
        return attn_error(ATTN_E_FORMAT, "%s: layer_norm_epsilon must be 1e-05 (attn's layer norm)", path);
    return ATTN_OK;
}

static attn_status read_config(const char *path, attn_gpt_config *c)
{
    char *text = NULL;
    attn_status st = attn_read_text_file(path, (size_t)1 << 20, &text, NULL);
    if (st) return st;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) st = attn_error(ATTN_E_FORMAT, "%s: not a JSON object", path);
    if (!st) st = check_gpt2(root, path);
    memset(c, 0, sizeof *c);
    if (!st) st = cfg_size(root, "vocab_size", NULL, path, &c->vocab_size);
    if (!st) st = cfg_size(root, "n_positions", "n_ctx", path, &c->context);
    if (!st) st = cfg_size(root, "n_embd", NULL, path, &c->width);
    if (!st) st = cfg_size(root, "n_layer", NULL, path, &c->layers);
    if (!st) st = cfg_size(root, "n_head", NULL, path, &c->heads);
    if (!st) c->bias = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "attn_bias"));
    if (!st) st = attn_gpt_config_check(c);
    if (st == ATTN_E_INVALID) st = ATTN_E_FORMAT;
    cJSON_Delete(root);
    return st;
}

int attn_gpt_hf_is_dir(const char *dir)
{
    char *path = dir ? join(dir, "config.json") : NULL, *text = NULL;
    int yes = 0;
    if (path && !attn_read_text_file(path, (size_t)1 << 20, &text, NULL)) {
        cJSON *root = cJSON_Parse(text);
        yes = cJSON_GetObjectItemCaseSensitive(root, "n_embd") != NULL;
        cJSON_Delete(root);
    }
    attn_clear_error();
    free(path), free(text);
    return yes;
}

/* ---- model.safetensors ---------------------------------------------------------------- */

static void shape_str(char *buf, size_t cap, int ndim, const size_t *shape)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, i ? ", %zu" : "%zu", shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Reads the tensor of parameter p (GPT-2's name `name`) into p->data. */
static attn_status load_param(const attn_safetensors *st, const attn_param_ref *p, const char *name,
                              int transpose, const char *cpath)
{
    attn_st_info info;
    attn_status s = attn_safetensors_info(st, name, &info);
    if (s == ATTN_E_NOTFOUND)
        return attn_error(ATTN_E_FORMAT, "%s: no tensor '%s', which %s asks for",
                          attn_safetensors_name(st), name, cpath);
    if (s) return s;
    size_t want[2] = {p->shape[0], p->ndim == 2 ? p->shape[1] : 1};
    if (transpose) want[0] = p->shape[1], want[1] = p->shape[0];
    if (info.ndim != p->ndim || info.shape[0] != want[0] || (p->ndim == 2 && info.shape[1] != want[1])) {
        char a[96], b[96];
        shape_str(a, sizeof a, info.ndim, info.shape);
        shape_str(b, sizeof b, p->ndim, want);
        return attn_error(ATTN_E_FORMAT, "%s: tensor '%s' has shape %s, but the sizes in %s give %s",
                          attn_safetensors_name(st), name, a, cpath, b);
    }
    attn_tensor t;
    if ((s = attn_safetensors_read(st, name, &t))) return s;
    if (transpose) {
        const size_t R = p->shape[0], K = p->shape[1]; /* attn: (R, K); file: (K, R) */
        for (size_t k = 0; k < K; k++)
            for (size_t r = 0; r < R; r++) p->data[r * K + k] = t.data[k * R + r];
    } else {
        memcpy(p->data, t.data, p->numel * sizeof(float));
    }
    attn_tensor_free(&t);
    return ATTN_OK;
}

/* lm_head.weight, when the file has it, must be wte (attn's head is tied). */
static attn_status check_head(const attn_safetensors *st, const attn_gpt *g, const char *prefix)
{
    char name[NAME_MAX_LEN];
    attn_st_info info;
    snprintf(name, sizeof name, "lm_head.weight");
    if (attn_safetensors_info(st, name, &info)) {
        snprintf(name, sizeof name, "%slm_head.weight", prefix);
        if (attn_safetensors_info(st, name, &info)) {
            attn_clear_error();
            return ATTN_OK;
        }
    }
    const attn_param_ref *wte = &attn_gpt_params(g)[0];
    attn_tensor t;
    attn_status s = attn_safetensors_read(st, name, &t);
    if (s) return s;
    int same = t.numel == wte->numel && !memcmp(t.data, wte->data, t.numel * sizeof(float));
    attn_tensor_free(&t);
    return same ? ATTN_OK
                : attn_error(ATTN_E_FORMAT, "%s: '%s' differs from wte.weight: attn's GPT ties the head "
                                            "to the token embedding", attn_safetensors_name(st), name);
}

static attn_status load_weights(attn_gpt *g, const attn_safetensors *st, const char *cpath)
{
    attn_st_info info;
    const char *prefix = attn_safetensors_info(st, "transformer.wte.weight", &info) ? "" : "transformer.";
    attn_clear_error();
    const attn_param_ref *tab = attn_gpt_params(g);
    attn_status s = ATTN_OK;
    for (size_t i = 0; !s && i < attn_gpt_param_count(g); i++) {
        char name[NAME_MAX_LEN], full[NAME_MAX_LEN + 16];
        int transpose;
        hf_name(tab[i].name, name, sizeof name, &transpose);
        snprintf(full, sizeof full, "%s%s", prefix, name);
        s = load_param(st, &tab[i], full, transpose, cpath);
    }
    return s ? s : check_head(st, g, prefix);
}

attn_status attn_gpt_hf_config(const char *dir, attn_gpt_config *c)
{
    if (!dir || !c) return attn_error(ATTN_E_INVALID, "attn_gpt_hf_config: NULL");
    char *cpath = join(dir, "config.json");
    attn_status s = cpath ? read_config(cpath, c) : attn_error(ATTN_E_NOMEM, "out of memory");
    free(cpath);
    return s;
}

attn_status attn_gpt_hf_init(attn_gpt *g, const char *dir)
{
    if (!g || !dir) return attn_error(ATTN_E_INVALID, "attn_gpt_hf_init: NULL");
    char *cpath = join(dir, "config.json"), *mpath = join(dir, "model.safetensors");
    attn_gpt_config c;
    attn_safetensors *st = NULL;
    attn_status s = cpath && mpath ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    if (!s) s = read_config(cpath, &c);
    const attn_gpt_config *m = attn_gpt_get_config(g);
    if (!s && (c.vocab_size != m->vocab_size || c.context != m->context || c.width != m->width ||
               c.layers != m->layers || c.heads != m->heads || !c.bias != !m->bias))
        s = attn_error(ATTN_E_FORMAT, "%s: vocab_size %zu, n_positions %zu, n_embd %zu, n_layer %zu, "
                                      "n_head %zu, but the model has %zu, %zu, %zu, %zu, %zu",
                       cpath, c.vocab_size, c.context, c.width, c.layers, c.heads, m->vocab_size,
                       m->context, m->width, m->layers, m->heads);
    if (!s) s = attn_safetensors_open(&st, mpath);
    if (!s) s = load_weights(g, st, cpath);
    attn_safetensors_close(st);
    free(cpath), free(mpath);
    return s;
}

attn_status attn_gpt_hf_load(attn_gpt **out, const char *dir, size_t max_batch)
{
    if (!out || !dir) return attn_error(ATTN_E_INVALID, "attn_gpt_hf_load: NULL");
    *out = NULL;
    attn_gpt_config c;
    attn_gpt *g = NULL;
    attn_status s = attn_gpt_hf_config(dir, &c);
    if (!s) s = attn_gpt_create(&g, &c, max_batch ? max_batch : 1);
    if (!s) s = attn_gpt_hf_init(g, dir);
    if (s) {
        attn_gpt_free(g);
        return s;
    }
    *out = g;
    return ATTN_OK;
}

/* ---- writing ----------------------------------------------------------------------------- */

static attn_status write_config(const attn_gpt_config *c, const char *path)
{
    attn_atomic_file af;
    attn_status s = attn_atomic_open(&af, path);
    if (s) return s;
    fprintf(af.f,
            "{\n  \"architectures\": [\"GPT2LMHeadModel\"],\n  \"model_type\": \"gpt2\",\n"
            "  \"vocab_size\": %zu,\n  \"n_positions\": %zu,\n  \"n_ctx\": %zu,\n  \"n_embd\": %zu,\n"
            "  \"n_layer\": %zu,\n  \"n_head\": %zu,\n  \"n_inner\": null,\n"
            "  \"layer_norm_epsilon\": 1e-05,\n  \"activation_function\": \"gelu_new\",\n"
            "  \"tie_word_embeddings\": true,\n  \"torch_dtype\": \"float32\",\n  \"attn_bias\": %s\n}\n",
            c->vocab_size, c->context, c->context, c->width, c->layers, c->heads,
            c->bias ? "true" : "false");
    return attn_atomic_commit(&af);
}

attn_status attn_gpt_hf_save(const attn_gpt *g, const char *dir)
{
    if (!g || !dir) return attn_error(ATTN_E_INVALID, "attn_gpt_hf_save: NULL");
    const attn_gpt_config *c = attn_gpt_get_config(g);
    const attn_param_ref *tab = attn_gpt_params(g);
    const size_t n = attn_gpt_param_count(g);
    /* A model without biases gets zero ones: 4 per block, 2 per layer norm. */
    const size_t n_out = n + (c->bias ? 0 : c->layers * 6 + 1);
    attn_st_named *named = calloc(n_out, sizeof *named);
    attn_tensor *ts = calloc(n_out, sizeof *ts);
    char (*names)[NAME_MAX_LEN] = calloc(n_out, sizeof *names);
    char *cpath = join(dir, "config.json"), *mpath = join(dir, "model.safetensors");
    attn_status s = named && ts && names && cpath && mpath ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; !s && i < n; i++) {
        int transpose;
        hf_name(tab[i].name, names[k], NAME_MAX_LEN, &transpose);
        size_t shape[2] = {tab[i].shape[transpose], tab[i].shape[!transpose]};
        if (tab[i].ndim == 1) shape[0] = tab[i].numel;
        if ((s = attn_tensor_create(&ts[k], tab[i].ndim, shape))) break;
        const size_t R = tab[i].shape[0], K = tab[i].ndim == 2 ? tab[i].shape[1] : 1;
        for (size_t r = 0; r < R; r++)
            for (size_t q = 0; q < K; q++) ts[k].data[transpose ? q * R + r : r * K + q] = tab[i].data[r * K + q];
        named[k].name = names[k], named[k].tensor = &ts[k];
        k++;
        /* the zero biases after their weight */
        const char *bias_of = NULL;
        size_t bn = 0;
        if (!c->bias && tab[i].ndim == 2 && strncmp(names[k - 1], "wte", 3) && strncmp(names[k - 1], "wpe", 3))
            bias_of = names[k - 1], bn = shape[1];
        else if (!c->bias && strstr(tab[i].name, "ln_") && strstr(tab[i].name, ".weight"))
            bias_of = names[k - 1], bn = shape[0];
        if (bias_of) {
            size_t stem = strlen(bias_of) - 6; /* without "weight" */
            memcpy(names[k], bias_of, stem);
            memcpy(names[k] + stem, "bias", 5);
            if ((s = attn_tensor_create(&ts[k], 1, &bn))) break;
            memset(ts[k].data, 0, bn * sizeof(float));
            named[k].name = names[k], named[k].tensor = &ts[k];
            k++;
        }
    }
    if (!s && k != n_out) s = attn_error(ATTN_E_INTERNAL, "GPT-2 layout: %zu tensors, expected %zu", k, n_out);
    if (!s) s = attn_safetensors_write(mpath, named, k, NULL, NULL, 0);
    if (!s) s = write_config(c, cpath);
    for (size_t i = 0; ts && i < n_out; i++) attn_tensor_free(&ts[i]);
    free(named), free(ts), free(names), free(cpath), free(mpath);
    return s;
}
