/* mha_io.c - nn.MultiheadAttention state_dicts: infer, load, save. */
#include "attn/mha_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 256

static void full_name(char *buf, const char *prefix, const char *name)
{
    snprintf(buf, NAME_MAX_LEN, "%s%s", prefix ? prefix : "", name);
}

/* Info of prefix+name; *found = 0 when absent (not an error here). */
static attn_status lookup(const attn_safetensors *st, const char *prefix, const char *name,
                          attn_st_info *info, int *found)
{
    char full[NAME_MAX_LEN];
    full_name(full, prefix, name);
    attn_status s = attn_safetensors_info(st, full, info);
    *found = s == ATTN_OK;
    if (s == ATTN_E_NOTFOUND) {
        attn_clear_error();
        return ATTN_OK;
    }
    return s;
}

static void shape_str(char *buf, size_t n, int ndim, const size_t *shape)
{
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%zu", i ? ", " : "", shape[i]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

static attn_status need_2d(const attn_safetensors *st, const attn_st_info *i)
{
    if (i->ndim == 2) return ATTN_OK;
    char s[128];
    shape_str(s, sizeof s, i->ndim, i->shape);
    return attn_error(ATTN_E_FORMAT, "%s: tensor '%s' has shape %s, expected 2 dimensions",
                      attn_safetensors_name(st), i->name, s);
}

static attn_status missing(const attn_safetensors *st, const char *prefix, const char *name)
{
    return attn_error(ATTN_E_FORMAT,
                      "%s: no tensor '%s%s' (expected an nn.MultiheadAttention state_dict)",
                      attn_safetensors_name(st), prefix ? prefix : "", name);
}

attn_status attn_mha_config_from_safetensors(attn_mha_config *cfg, const attn_safetensors *st,
                                             const char *prefix, size_t num_heads)
{
    if (!cfg || !st) return attn_error(ATTN_E_INVALID, "attn_mha_config_from_safetensors: NULL");
    const char *file = attn_safetensors_name(st);
    if (!num_heads) {
        const char *h = attn_safetensors_metadata(st, "num_heads");
        char *end;
        unsigned long v = h ? strtoul(h, &end, 10) : 0;
        if (!h || *end || !v)
            return attn_error(ATTN_E_INVALID,
                              "%s: the number of heads is not in the file: give it (--num-heads)",
                              file);
        num_heads = (size_t)v;
    }
    attn_st_info in_w, q_w, k_w, v_w, o_w, in_b, o_b, b_k, b_v;
    int has_in_w, has_q, has_k, has_v, has_o, has_in_b, has_o_b, has_bk, has_bv;
    attn_status s = lookup(st, prefix, "in_proj_weight", &in_w, &has_in_w);
    if (!s) s = lookup(st, prefix, "q_proj_weight", &q_w, &has_q);
    if (!s) s = lookup(st, prefix, "k_proj_weight", &k_w, &has_k);
    if (!s) s = lookup(st, prefix, "v_proj_weight", &v_w, &has_v);
    if (!s) s = lookup(st, prefix, "out_proj.weight", &o_w, &has_o);
    if (!s) s = lookup(st, prefix, "in_proj_bias", &in_b, &has_in_b);
    if (!s) s = lookup(st, prefix, "out_proj.bias", &o_b, &has_o_b);
    if (!s) s = lookup(st, prefix, "bias_k", &b_k, &has_bk);
    if (!s) s = lookup(st, prefix, "bias_v", &b_v, &has_bv);
    if (s) return s;
    if (!has_o) return missing(st, prefix, "out_proj.weight");
    if ((s = need_2d(st, &o_w))) return s;

    attn_mha_config c;
    memset(&c, 0, sizeof c);
    c.num_heads = num_heads;
    c.out_dim = o_w.shape[0];
    const size_t hv = o_w.shape[1];
    size_t hq;
    if (has_in_w) { /* packed: (3E, E) */
        if ((s = need_2d(st, &in_w))) return s;
        c.embed_dim = in_w.shape[1];
        if (in_w.shape[0] != 3 * c.embed_dim)
            return attn_error(ATTN_E_FORMAT,
                              "%s: tensor '%s' has %zu rows, expected 3 x %zu (q|k|v rows)", file,
                              in_w.name, in_w.shape[0], c.embed_dim);
        c.kdim = c.vdim = c.embed_dim;
        hq = c.embed_dim;
        if (hv != c.embed_dim)
            return attn_error(ATTN_E_FORMAT, "%s: out_proj.weight has %zu columns, expected %zu",
                              file, hv, c.embed_dim);
    } else {
        if (!has_q) return missing(st, prefix, "in_proj_weight' or 'q_proj_weight");
        if (!has_k) return missing(st, prefix, "k_proj_weight");
        if (!has_v) return missing(st, prefix, "v_proj_weight");
        if ((s = need_2d(st, &q_w)) || (s = need_2d(st, &k_w)) || (s = need_2d(st, &v_w))) return s;
        c.embed_dim = q_w.shape[1];
        hq = q_w.shape[0];
        c.kdim = k_w.shape[1];
        c.vdim = v_w.shape[1];
        if (k_w.shape[0] != hq)
            return attn_error(ATTN_E_FORMAT, "%s: k_proj_weight has %zu rows, q_proj_weight %zu",
                              file, k_w.shape[0], hq);
        if (v_w.shape[0] != hv)
            return attn_error(ATTN_E_FORMAT,
                              "%s: v_proj_weight has %zu rows, out_proj.weight %zu columns", file,
                              v_w.shape[0], hv);
    }
    if (hq % num_heads || hv % num_heads)
        return attn_error(ATTN_E_INVALID,
                          "%s: projection widths %zu and %zu are not divisible by num_heads %zu",
                          file, hq, hv, num_heads);
    c.head_dim = hq / num_heads;
    c.v_head_dim = hv / num_heads;
    if (has_in_b != has_o_b)
        return attn_error(ATTN_E_FORMAT, "%s: has %s but no %s (bias is both or neither)", file,
                          has_in_b ? "in_proj_bias" : "out_proj.bias",
                          has_in_b ? "out_proj.bias" : "in_proj_bias");
    c.bias = has_in_b;
    if (has_bk != has_bv)
        return attn_error(ATTN_E_FORMAT, "%s: has %s but no %s", file,
                          has_bk ? "bias_k" : "bias_v", has_bk ? "bias_v" : "bias_k");
    c.add_bias_kv = has_bk;
    const char *z = attn_safetensors_metadata(st, "add_zero_attn");
    c.add_zero_attn = z && strcmp(z, "1") == 0;
    *cfg = c;
    return ATTN_OK;
}

attn_status attn_mha_load_safetensors(attn_mha *m, const attn_safetensors *st, const char *prefix)
{
    if (!m || !st) return attn_error(ATTN_E_INVALID, "attn_mha_load_safetensors: NULL");
    for (size_t i = 0; i < attn_mha_param_count(m); i++) {
        const char *name;
        attn_tensor p;
        attn_status s = attn_mha_param_at(m, i, &name, &p, NULL);
        if (s) return s;
        char full[NAME_MAX_LEN];
        full_name(full, prefix, name);
        attn_st_info info;
        if ((s = attn_safetensors_info(st, full, &info)) == ATTN_E_NOTFOUND)
            return missing(st, prefix, name);
        if (s) return s;
        int same = info.ndim == p.ndim;
        for (int d = 0; same && d < p.ndim; d++) same = info.shape[d] == p.shape[d];
        if (!same) {
            char a[128], b[128];
            shape_str(a, sizeof a, info.ndim, info.shape);
            shape_str(b, sizeof b, p.ndim, p.shape);
            return attn_error(ATTN_E_FORMAT, "%s: tensor '%s' has shape %s, expected %s",
                              attn_safetensors_name(st), full, a, b);
        }
        attn_tensor t;
        if ((s = attn_safetensors_read(st, full, &t))) return s;
        memcpy(p.data, t.data, p.numel * sizeof(float));
        attn_tensor_free(&t);
    }
    return ATTN_OK;
}

attn_status attn_mha_save_safetensors(attn_mha *m, const char *path)
{
    if (!m || !path) return attn_error(ATTN_E_INVALID, "attn_mha_save_safetensors: NULL");
    size_t n = attn_mha_param_count(m);
    attn_st_named named[8];
    attn_tensor views[8];
    for (size_t i = 0; i < n && i < 8; i++) {
        attn_status s = attn_mha_param_at(m, i, &named[i].name, &views[i], NULL);
        if (s) return s;
        named[i].tensor = &views[i];
    }
    const attn_mha_config *c = attn_mha_get_config(m);
    char heads[32], zero[4];
    snprintf(heads, sizeof heads, "%zu", c->num_heads);
    snprintf(zero, sizeof zero, "%d", c->add_zero_attn);
    const char *keys[3] = {"format", "num_heads", "add_zero_attn"};
    const char *vals[3] = {"attn.mha", heads, zero};
    return attn_safetensors_write(path, named, n, keys, vals, 3);
}
