/* cmd_mha.c - `attn mha`: nn.MultiheadAttention on tensors in safetensors files. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/fileio.h"
#include "attn/mha_io.h"
#include "cli.h"

static const char usage[] =
    "usage: attn mha --weights W.safetensors --num-heads H --query Q.safetensors\n"
    "                [--key K.safetensors --value V.safetensors]\n"
    "                [--attn-mask M.safetensors] [--key-padding-mask P.safetensors]\n"
    "                [--causal] [--add-zero-attn] --out O.safetensors\n"
    "\n"
    "Multi-head attention exactly as torch.nn.MultiheadAttention(batch_first=True)\n"
    "computes it, from its state_dict saved as safetensors (in_proj_weight or\n"
    "q/k/v_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias, bias_k,\n"
    "bias_v). Each input file holds one tensor (any name): query (N, L, E), key\n"
    "(N, S, kdim) and value (N, S, vdim), or unbatched (L, E). Without --key and\n"
    "--value, key = value = query (self-attention). Masks follow PyTorch's MHA:\n"
    "attn_mask (L, S) or (N*H, L, S) and key_padding_mask (N, S), boolean (BOOL or\n"
    "U8, true = masked out) or float (added to the scores). A query that may\n"
    "attend to nothing gets zero weights (PyTorch gives NaN there).\n"
    "O.safetensors gets 'output' (N, L, E) and 'attn_weights' (N, H, L, S), per head.\n"
    "\n"
    "options:\n"
    "  --weights FILE          the layer's state_dict (required)\n"
    "  --num-heads H           number of heads (required unless the file says)\n"
    "  --query FILE            the query (required)\n"
    "  --key FILE, --value FILE  keys and values (default: the query)\n"
    "  --attn-mask FILE        attention mask\n"
    "  --key-padding-mask FILE key padding mask\n"
    "  --causal                each query sees only keys at or before its position\n"
    "  --add-zero-attn         as the module's add_zero_attn=True\n"
    "  --out FILE              where to write the results (required)\n"
    "  -h, --help              show this help\n";

typedef struct input {
    attn_tensor t;
    attn_dtype dtype;
} input;

/* The single tensor of a file: with `data` 0 only its dtype and shape from
 * the header (in->t.data stays NULL), so that every check runs before a
 * byte is converted; with `data` 1 the values too, refused when not finite
 * (`allow_inf`: -inf and inf are fine, as in an additive mask; NaN never). */
static attn_status read_single(const char *path, input *in, int data, int allow_inf)
{
    attn_safetensors *st = NULL;
    attn_status s = attn_safetensors_open(&st, path);
    if (s) return s;
    attn_st_info info;
    if (attn_safetensors_count(st) != 1)
        s = attn_error(ATTN_E_FORMAT, "%s: expected exactly one tensor, found %zu", path,
                       attn_safetensors_count(st));
    if (!s) s = attn_safetensors_info_at(st, 0, &info);
    if (!s) in->dtype = info.dtype;
    if (!s && !data && info.ndim <= ATTN_MAX_DIMS) {
        memset(&in->t, 0, sizeof in->t);
        in->t.ndim = info.ndim;
        for (int d = 0; d < ATTN_MAX_DIMS; d++) in->t.shape[d] = d < info.ndim ? info.shape[d] : 1;
        in->t.numel = info.numel;
    } else if (!s) { /* (more than 4-D: the reader's own message) */
        attn_tensor_free(&in->t);
        s = attn_safetensors_read(st, info.name, &in->t);
    }
    for (size_t i = 0; !s && data && i < in->t.numel; i++) {
        float v = in->t.data[i];
        if (isnan(v) || (!allow_inf && isinf(v)))
            s = attn_error(ATTN_E_FORMAT, "%s: '%s' holds %s at element %zu; expected finite numbers",
                           path, info.name, isnan(v) ? "NaN" : "an infinity", i);
    }
    attn_safetensors_close(st);
    return s;
}

/* The layer's parameters must be finite: NaN weights give NaN outputs. */
static attn_status check_weights(attn_mha *m, const char *path)
{
    for (size_t i = 0; i < attn_mha_param_count(m); i++) {
        const char *name;
        attn_tensor p;
        attn_status st = attn_mha_param_at(m, i, &name, &p, NULL);
        if (st) return st;
        for (size_t j = 0; j < p.numel; j++)
            if (!isfinite(p.data[j]))
                return attn_error(ATTN_E_FORMAT, "%s: '%s' holds %s at element %zu; expected finite numbers",
                                  path, name, isnan(p.data[j]) ? "NaN" : "an infinity", j);
    }
    return ATTN_OK;
}

static void shape_str(char *buf, size_t n, const attn_tensor *t)
{
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%zu", i ? ", " : "", t->shape[i]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

static attn_status mask_kind(const char *path, const char *what, attn_dtype d, attn_mask_kind *k)
{
    if (d == ATTN_DTYPE_BOOL || d == ATTN_DTYPE_U8) *k = ATTN_MASK_BOOL;
    else if (d == ATTN_DTYPE_F32 || d == ATTN_DTYPE_F16 || d == ATTN_DTYPE_BF16 || d == ATTN_DTYPE_F64)
        *k = ATTN_MASK_ADDITIVE;
    else
        return attn_error(ATTN_E_FORMAT,
                          "%s: %s has dtype %s; only bool (BOOL, U8) and floating masks are "
                          "supported",
                          path, what, attn_dtype_name(d));
    return ATTN_OK;
}

static int is_float(attn_dtype d)
{
    return d == ATTN_DTYPE_F32 || d == ATTN_DTYPE_F16 || d == ATTN_DTYPE_BF16 || d == ATTN_DTYPE_F64;
}

/* (L, E) is one unbatched sequence: view it as (1, L, E). The key and value
 * must have the query's rank (`want_unbatched` >= 0), as in PyTorch. */
static attn_status as_batched(const char *path, const char *what, input *in, int *unbatched,
                              int want_unbatched)
{
    char s[96];
    shape_str(s, sizeof s, &in->t);
    if (!is_float(in->dtype))
        return attn_error(ATTN_E_FORMAT, "%s: %s has dtype %s, expected a floating type (F32, F16, BF16, F64)",
                          path, what, attn_dtype_name(in->dtype));
    for (int d = 0; d < in->t.ndim; d++)
        if (!in->t.shape[d])
            return attn_error(ATTN_E_FORMAT, "%s: %s has shape %s: every dimension must be > 0",
                              path, what, s);
    if (want_unbatched == 1 && in->t.ndim != 2)
        return attn_error(ATTN_E_FORMAT,
                          "%s: for an unbatched (2-D) query, expected %s to be 2-D too, found shape %s",
                          path, what, s);
    if (want_unbatched == 0 && in->t.ndim != 3)
        return attn_error(ATTN_E_FORMAT,
                          "%s: for a batched (3-D) query, expected %s to be 3-D too, found shape %s",
                          path, what, s);
    if (in->t.ndim == 3) return ATTN_OK;
    if (in->t.ndim == 2) {
        in->t.ndim = 3;
        in->t.shape[2] = in->t.shape[1];
        in->t.shape[1] = in->t.shape[0];
        in->t.shape[0] = 1;
        if (unbatched) *unbatched = 1;
        return ATTN_OK;
    }
    return attn_error(ATTN_E_FORMAT,
                      "%s: %s should be unbatched 2-D (L, E) or batched 3-D (N, L, E), found "
                      "shape %s",
                      path, what, s);
}

/* The key, value and masks against the query and the layer: shapes and
 * dtypes only (data may still be NULL); fills the masks' part of `in`. */
static attn_status check_inputs(const attn_mha_config *cfg, const char *pw, const input *q,
                                const char *pq, const input *k, const char *pk, const input *v,
                                const char *pv, input *mask, const char *pm, input *kpm,
                                const char *pp, int unbatched, attn_mha_inputs *in)
{
    char s1[96], s2[96];
    const attn_tensor *kt = k ? &k->t : &q->t, *vt = v ? &v->t : &q->t;
    const char *kpath = k ? pk : pq, *vpath = v ? pv : pq;
    if (kt->shape[2] != cfg->kdim)
        return attn_error(ATTN_E_FORMAT, "%s: expected key dimension %zu (from %s), found %zu",
                          kpath, cfg->kdim, pw, kt->shape[2]);
    if (vt->shape[2] != cfg->vdim)
        return attn_error(ATTN_E_FORMAT, "%s: expected value dimension %zu (from %s), found %zu",
                          vpath, cfg->vdim, pw, vt->shape[2]);
    if (kt->shape[0] != q->t.shape[0] || vt->shape[0] != q->t.shape[0] ||
        kt->shape[1] != vt->shape[1]) {
        shape_str(s1, sizeof s1, kt), shape_str(s2, sizeof s2, vt);
        return attn_error(ATTN_E_FORMAT,
                          "key shape %s (%s) and value shape %s (%s) must share N = %zu and S",
                          s1, kpath, s2, vpath, q->t.shape[0]);
    }
    const size_t N = q->t.shape[0], L = q->t.shape[1], S = kt->shape[1], H = cfg->num_heads;
    attn_status st = ATTN_OK;
    if (mask) {
        st = mask_kind(pm, "attn_mask", mask->dtype, &in->attn_mask_kind);
        int ok2 = mask->t.ndim == 2 && mask->t.shape[0] == L && mask->t.shape[1] == S;
        int ok3 = mask->t.ndim == 3 && mask->t.shape[0] == N * H && mask->t.shape[1] == L &&
                  mask->t.shape[2] == S;
        shape_str(s1, sizeof s1, &mask->t);
        if (!st && !ok2 && !ok3)
            st = attn_error(ATTN_E_FORMAT,
                            "%s: attn_mask has shape %s, expected [%zu, %zu] (L, S) or "
                            "[%zu, %zu, %zu] (N*H, L, S)",
                            pm, s1, L, S, N * H, L, S);
        in->attn_mask = mask->t.data;
        in->attn_mask_per_head = ok3;
    }
    if (!st && kpm) {
        st = mask_kind(pp, "key_padding_mask", kpm->dtype, &in->key_padding_kind);
        /* PyTorch: (N, S) for a batched query, (S) for an unbatched one. */
        int ok = unbatched ? kpm->t.ndim == 1 && kpm->t.shape[0] == S
                           : kpm->t.ndim == 2 && kpm->t.shape[0] == N && kpm->t.shape[1] == S;
        if (!st && !ok) {
            shape_str(s1, sizeof s1, &kpm->t);
            if (unbatched)
                st = attn_error(ATTN_E_FORMAT,
                                "%s: expecting key_padding_mask shape of [%zu] (S) for an "
                                "unbatched query, but got %s",
                                pp, S, s1);
            else
                st = attn_error(ATTN_E_FORMAT,
                                "%s: expecting key_padding_mask shape of [%zu, %zu] (N, S), but got %s",
                                pp, N, S, s1);
        }
        in->key_padding_mask = kpm->t.data;
    }
    return st;
}

/* Reads the query (and key, value, masks) files and checks them against the
 * layer's configuration, filling in (the masks) and *unbatched. */
static attn_status read_inputs(const char *pw, const char *pq, const char *pk, const char *pv,
                               const char *pm, const char *pp, const attn_mha_config *cfg,
                               input *q, input *k, input *v, input *mask, input *kpm,
                               int *unbatched, attn_mha_inputs *in)
{
    attn_status st = ATTN_OK;
    /* Every dtype and shape from the headers first: a wrong file costs no
     * conversion (data = 0); then the values (data = 1). */
    for (int data = 0; data < 2 && !st; data++) {
        if (!st) st = read_single(pq, q, data, 0);
        if (!st) st = as_batched(pq, "query", q, unbatched, -1);
        if (!st && q->t.shape[2] != cfg->embed_dim)
            st = attn_error(ATTN_E_FORMAT, "%s: expected embedding dimension %zu (from %s), found %zu",
                            pq, cfg->embed_dim, pw, q->t.shape[2]);
        if (!st && pk) st = read_single(pk, k, data, 0);
        if (!st && pk) st = as_batched(pk, "key", k, NULL, *unbatched);
        if (!st && pv) st = read_single(pv, v, data, 0);
        if (!st && pv) st = as_batched(pv, "value", v, NULL, *unbatched);
        if (!st && pm) st = read_single(pm, mask, data, 1);
        if (!st && pp) st = read_single(pp, kpm, data, 1);
        if (!st) st = check_inputs(cfg, pw, q, pq, pk ? k : NULL, pk, pv ? v : NULL, pv,
                                   pm ? mask : NULL, pm, pp ? kpm : NULL, pp, *unbatched, in);
    }
    return st;
}

int cmd_mha(int argc, char **argv)
{
    enum { O_WEIGHTS = 3000, O_HEADS, O_QUERY, O_KEY, O_VALUE, O_MASK, O_KPM, O_CAUSAL, O_ZERO, O_OUT };
    static const struct option longopts[] = {
        {"weights", required_argument, 0, O_WEIGHTS}, {"num-heads", required_argument, 0, O_HEADS},
        {"query", required_argument, 0, O_QUERY},     {"key", required_argument, 0, O_KEY},
        {"value", required_argument, 0, O_VALUE},     {"attn-mask", required_argument, 0, O_MASK},
        {"key-padding-mask", required_argument, 0, O_KPM},
        {"causal", no_argument, 0, O_CAUSAL},         {"add-zero-attn", no_argument, 0, O_ZERO},
        {"out", required_argument, 0, O_OUT},         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *pw = NULL, *pq = NULL, *pk = NULL, *pv = NULL, *pm = NULL, *pp = NULL, *po = NULL;
    int heads = 0, causal = 0, zero_attn = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(usage, stdout); return cli_finish_stdout("mha");
        case O_WEIGHTS: pw = optarg; break;
        case O_HEADS:
            if (cli_parse_int(optarg, 1, 1 << 20, &heads))
                return cli_usage_error("mha", usage, "--num-heads: expected an integer > 0, found '%s'", optarg);
            break;
        case O_QUERY: pq = optarg; break;
        case O_KEY: pk = optarg; break;
        case O_VALUE: pv = optarg; break;
        case O_MASK: pm = optarg; break;
        case O_KPM: pp = optarg; break;
        case O_CAUSAL: causal = 1; break;
        case O_ZERO: zero_attn = 1; break;
        case O_OUT: po = optarg; break;
        default: return cli_bad_option("mha", usage, c, argv);
        }
    }
    if (optind < argc) return cli_usage_error("mha", usage, "unexpected argument '%s'", argv[optind]);
    if (!pw) return cli_usage_error("mha", usage, "missing --weights FILE");
    if (!pq) return cli_usage_error("mha", usage, "missing --query FILE");
    if (!po) return cli_usage_error("mha", usage, "missing --out FILE");
    if (!pk != !pv) return cli_usage_error("mha", usage, "--key and --value go together");

    int rc;
    attn_safetensors *w = NULL;
    attn_mha *m = NULL;
    input q = {0}, k = {0}, v = {0}, mask = {0}, kpm = {0};
    attn_tensor out = {0}, weights = {0};
    attn_mha_config cfg;
    int unbatched = 0;
    attn_mha_inputs in;
    memset(&in, 0, sizeof in);
    /* Fail on an unwritable destination before any work. */
    const char *inputs[6] = {pw, pq, pk, pv, pm, pp};
    attn_status st = attn_export_check_file(po);
    if (!st) st = attn_check_not_input(po, inputs, 6);
    if (!st) st = attn_safetensors_open(&w, pw);
    if (!st) st = attn_mha_config_from_safetensors(&cfg, w, NULL, (size_t)heads);
    if (!st && zero_attn) cfg.add_zero_attn = 1;
    if (!st) st = attn_mha_create(&m, &cfg);
    if (!st) st = attn_mha_load_safetensors(m, w, NULL);
    if (!st) cfg = *attn_mha_get_config(m);
    if (!st) st = check_weights(m, pw);
    if (!st) st = read_inputs(pw, pq, pk, pv, pm, pp, &cfg, &q, &k, &v, &mask, &kpm, &unbatched, &in);
    const attn_tensor *kt = pk ? &k.t : &q.t, *vt = pv ? &v.t : &q.t;
    const size_t N = q.t.shape[0], L = q.t.shape[1], S = kt->shape[1], H = cfg.num_heads;
    const size_t S2 = attn_mha_kv_len(m, S);
    if (!st) {
        in.batch = N, in.tgt_len = L, in.src_len = S;
        in.query = q.t.data, in.key = kt->data, in.value = vt->data;
        in.causal = causal ? ATTN_CAUSAL_TOP_LEFT : ATTN_CAUSAL_NONE;
        size_t os[3] = {N, L, cfg.out_dim}, ws[4] = {N, H, L, S2};
        st = attn_tensor_create(&out, 3, os);
        if (!st) st = attn_tensor_create(&weights, 4, ws);
    }
    if (!st) st = attn_mha_forward(m, out.data, weights.data, 0, &in, NULL, NULL);
    if (!st && unbatched) { /* give back the rank that came in */
        size_t os[2] = {L, cfg.out_dim}, ws[3] = {H, L, S2};
        attn_tensor_reshape(&out, &out, 2, os);
        attn_tensor_reshape(&weights, &weights, 3, ws);
        out.owned = weights.owned = 1;
    }
    if (!st) {
        attn_st_named named[2] = {{"output", &out}, {"attn_weights", &weights}};
        st = attn_safetensors_write(po, named, 2, NULL, NULL, 0);
    }
    rc = st ? cli_fail("mha", st) : CLI_OK;
    attn_safetensors_close(w);
    attn_mha_free(m);
    attn_tensor_free(&q.t), attn_tensor_free(&k.t), attn_tensor_free(&v.t);
    attn_tensor_free(&mask.t), attn_tensor_free(&kpm.t);
    attn_tensor_free(&out), attn_tensor_free(&weights);
    return rc;
}
