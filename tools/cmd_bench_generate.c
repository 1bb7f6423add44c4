/* cmd_bench_generate.c - `attn bench generate`: a random GPT in memory, its
 * prefill and decode speed with the KV cache (attn_bench_generate), the
 * memory-bandwidth limit of decoding and the fp32 peak (attn/bench.h), and
 * PyTorch on the same weights (bench/generate_torch.py, fed the safetensors
 * file attn writes), all in one run. */
#define _DEFAULT_SOURCE
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn/bench.h"
#include "attn/gpt.h"
#include "attn/gpt_hf.h"
#include "attn/ops.h"
#include "cli.h"
#include "cmd_bench.h"

#ifndef ATTN_BENCH_DIR
#define ATTN_BENCH_DIR "bench"
#endif
/* Where `cmake --install` puts the script, relative to the binary's folder. */
#ifndef ATTN_BIN_TO_SHARE
#define ATTN_BIN_TO_SHARE "../share/attn"
#endif
#define TORCH_SCRIPT "generate_torch.py"

static const char usage[] =
    "usage: attn bench generate [--config gpt2|tiny] [--prompt N] [--decode N] [--reps R]\n"
    "                           [--threads T] [--no-torch] [--python PATH] [--torch-script F]\n"
    "                           [--bandwidth-mib M] [--peak-seconds S] [--seed S] [--json]\n"
    "\n"
    "Builds a random GPT in memory (gpt2: GPT-2 124M, 12 layers, 12 heads, width\n"
    "768, context 1024, vocabulary 50257, tied head, biases, tanh GELU; tiny: 2\n"
    "layers, width 32, context 64, vocabulary 97) and times, with the KV cache,\n"
    "the prefill of a prompt (default 512 tokens; tiny 16) into an empty cache\n"
    "and then --decode one-token steps (default 32; tiny 8), teacher-forced with\n"
    "fixed ids, --reps times before and --reps times after PyTorch (medians of\n"
    "all). PyTorch runs the same weights (written to a temporary safetensors file\n"
    "in Hugging Face's layout) with its own preallocated cache, through\n"
    "bench/generate_torch.py and Debian's /usr/bin/python3 (PyTorch 1.13); the\n"
    "logits of both are compared. Beside them: the decode limit of memory\n"
    "bandwidth (parameter bytes a step reads / the read bandwidth measured here by\n"
    "streaming a --bandwidth-mib buffer, default 1024; tiny 64, with 1, 2, 4 and\n"
    "8 streams a thread, the fastest kept) and the prefill's share of the fp32\n"
    "FMA peak (attn bench attention's measure, before and after the runs, the\n"
    "higher kept). The bandwidth is measured right after each run's decode, as\n"
    "the machine's drifts within minutes: the limit is their median, and the\n"
    "decode's fraction of it the median of each run's against its own. The\n"
    "machine's load average is printed beside the figures: they are noisy when\n"
    "it is busy.\n"
    "\n"
    "options:\n"
    "  --config C        gpt2 (default) or tiny\n"
    "  --prompt N        prompt tokens\n"
    "  --decode N        decoded tokens after the prompt\n"
    "  --reps R          repetitions on each side of the PyTorch run (default 3)\n"
    "  --threads T       threads of both (default: OpenMP's)\n"
    "  --no-torch        skip PyTorch\n"
    "  --python PATH     the Python with PyTorch (default /usr/bin/python3)\n"
    "  --torch-script F  PyTorch's side (default: " ATTN_BIN_TO_SHARE "/" TORCH_SCRIPT "\n"
    "                    beside the attn binary, as installed, else the source\n"
    "                    tree's bench/" TORCH_SCRIPT ")\n"
    "  --bandwidth-mib M size of the bandwidth buffer in MiB\n"
    "  --peak-seconds S  length of one of the three fp32 peak runs (default 0.25)\n"
    "  --seed S          weights' seed (default 1337)\n"
    "  --json            one JSON object instead of a table\n"
    "  -h, --help        show this help\n";

enum { OPT_CONFIG = 1, OPT_PROMPT, OPT_DECODE, OPT_REPS, OPT_THREADS, OPT_NOTORCH, OPT_PYTHON,
       OPT_SCRIPT, OPT_BW, OPT_PEAK_S, OPT_SEED, OPT_JSON };

typedef struct gen_opts {
    attn_gpt_config cfg;
    const char *name, *python, *script;
    int prompt, decode, reps, threads, torch, bw_mib, json;
    int seed;
    double peak_seconds;
    char found[4096]; /* the default script, once found */
} gen_opts;

/* PyTorch's figures (ok = 0: not run; why says so). */
typedef struct torch_res {
    int ok, threads;
    char version[32], why[160];
    double prefill_s, decode_s, max_diff;
    int same_argmax;
} torch_res;

static int find_script(gen_opts *o);

static int parse(int argc, char **argv, gen_opts *o)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, OPT_CONFIG}, {"prompt", required_argument, 0, OPT_PROMPT},
        {"decode", required_argument, 0, OPT_DECODE}, {"reps", required_argument, 0, OPT_REPS},
        {"threads", required_argument, 0, OPT_THREADS}, {"no-torch", no_argument, 0, OPT_NOTORCH},
        {"python", required_argument, 0, OPT_PYTHON}, {"torch-script", required_argument, 0, OPT_SCRIPT},
        {"bandwidth-mib", required_argument, 0, OPT_BW}, {"peak-seconds", required_argument, 0, OPT_PEAK_S},
        {"seed", required_argument, 0, OPT_SEED},
        {"json", no_argument, 0, OPT_JSON}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "bench generate";
    int opt, tiny = 0;
    o->prompt = o->decode = o->bw_mib = -1;
    o->reps = 3, o->torch = 1, o->seed = 1337, o->peak_seconds = 0.25;
    o->python = "/usr/bin/python3", o->script = NULL;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case OPT_CONFIG:
            if (strcmp(optarg, "gpt2") == 0) tiny = 0;
            else if (strcmp(optarg, "tiny") == 0) tiny = 1;
            else return cli_usage_error(cmd, usage, "--config: expected gpt2 or tiny, got '%s'", optarg);
            break;
        case OPT_PROMPT: bad = cli_parse_int(optarg, 1, 1 << 20, &o->prompt); break;
        case OPT_DECODE: bad = cli_parse_int(optarg, 0, 1 << 20, &o->decode); break;
        case OPT_REPS: bad = cli_parse_int(optarg, 1, ATTN_BENCH_MAX_RUNS / 2, &o->reps); break;
        case OPT_THREADS: bad = cli_parse_int(optarg, 1, 1024, &o->threads); break;
        case OPT_NOTORCH: o->torch = 0; break;
        case OPT_PYTHON: o->python = optarg; break;
        case OPT_SCRIPT: o->script = optarg; break;
        case OPT_BW: bad = cli_parse_int(optarg, 1, 1 << 20, &o->bw_mib); break;
        case OPT_PEAK_S:
            if (cli_parse_double(optarg, 0.01, 60, &o->peak_seconds))
                return cli_usage_error(cmd, usage, "--peak-seconds: expected 0.01..60, got '%s'", optarg);
            break;
        case OPT_SEED: bad = cli_parse_int(optarg, 0, 0x7fffffff, &o->seed); break;
        case OPT_JSON: o->json = 1; break;
        case 'h': fputs(usage, stdout); return -1;
        default: return cli_bad_option(cmd, usage, opt, argv);
        }
        if (bad) return cli_usage_error(cmd, usage, "a number out of range: '%s'", optarg);
    }
    if (optind < argc) return cli_usage_error(cmd, usage, "unexpected argument '%s'", argv[optind]);
    const attn_gpt_config gpt2 = {50257, 1024, 12, 12, 768, 1}, small = {97, 64, 2, 2, 32, 1};
    o->cfg = tiny ? small : gpt2;
    o->name = tiny ? "tiny" : "gpt2";
    if (o->prompt < 0) o->prompt = tiny ? 16 : 512;
    if (o->decode < 0) o->decode = tiny ? 8 : 32;
    if (o->bw_mib < 0) o->bw_mib = tiny ? 64 : 1024;
    if ((size_t)o->prompt + (size_t)o->decode > o->cfg.context)
        return cli_usage_error(cmd, usage, "--prompt %d + --decode %d exceed the context of %zu",
                               o->prompt, o->decode, o->cfg.context);
    return o->torch && !o->script ? find_script(o) : 0;
}

/* 1 if dir/TORCH_SCRIPT is readable; its path in out. */
static int script_in(char *out, size_t n, const char *dir)
{
    return (size_t)snprintf(out, n, "%s/%s", dir, TORCH_SCRIPT) < n && access(out, R_OK) == 0;
}

/* The PyTorch script when --torch-script is not given: installed with the
 * binary (share/attn beside its bin/), else in the source tree it was built
 * from; a usage error (status 2) naming both when neither holds it. */
static int find_script(gen_opts *o)
{
    char exe[4096], where[4096];
    const ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = len > 0 ? (exe[len] = '\0', strrchr(exe, '/')) : NULL;
    if (slash) *slash = '\0';
    if (slash && (size_t)snprintf(where, sizeof where, "%s/%s", exe, ATTN_BIN_TO_SHARE) < sizeof where &&
        script_in(o->found, sizeof o->found, where)) {
        o->script = o->found;
        return 0;
    }
    if (script_in(o->found, sizeof o->found, ATTN_BENCH_DIR)) {
        o->script = o->found;
        return 0;
    }
    return cli_usage_error("bench generate", usage,
                           "cannot find PyTorch's side, " TORCH_SCRIPT ", in %s/%s nor in %s: "
                           "pass --torch-script FILE (or --no-torch)",
                           slash ? exe : "the binary's folder", ATTN_BIN_TO_SHARE, ATTN_BENCH_DIR);
}

/* s in single quotes for the shell (a ' becomes '\''); 0 if it does not fit. */
static int shell_quote(char *out, size_t n, const char *s)
{
    size_t k = 0;
    if (n < 3) return 0;
    out[k++] = '\'';
    for (; *s; s++) {
        const char *piece = *s == '\'' ? "'\\''" : NULL;
        size_t len = piece ? 4 : 1;
        if (k + len + 2 > n) return 0;
        if (piece) memcpy(out + k, piece, 4);
        else out[k] = *s;
        k += len;
    }
    out[k++] = '\'', out[k] = '\0';
    return 1;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Runs the PyTorch script on dir and reads its JSON line; compares its
 * prefill logits with attn's (b). */
static void torch_read(torch_res *t, const char *text, const attn_bench_gen *b, size_t V)
{
    cJSON *j = cJSON_Parse(text);
    const cJSON *head = j ? cJSON_GetObjectItemCaseSensitive(j, "logits_head") : NULL;
    const cJSON *ver = j ? cJSON_GetObjectItemCaseSensitive(j, "version") : NULL;
    t->prefill_s = num(j, "prefill_s"), t->decode_s = num(j, "decode_s");
    if (!j || !cJSON_IsArray(head) || !(t->prefill_s > 0) || !(t->decode_s > 0)) {
        snprintf(t->why, sizeof t->why, "the PyTorch script printed no result");
        cJSON_Delete(j);
        return;
    }
    t->threads = (int)num(j, "threads");
    snprintf(t->version, sizeof t->version, "%s", cJSON_IsString(ver) ? ver->valuestring : "?");
    t->max_diff = 0.0;
    for (size_t i = 0; i < (V < 8 ? V : 8); i++) {
        const cJSON *x = cJSON_GetArrayItem(head, (int)i);
        const double d = cJSON_IsNumber(x) ? fabs(x->valuedouble - b->logits_head[i]) : INFINITY;
        if (d > t->max_diff) t->max_diff = d;
    }
    t->same_argmax = (size_t)num(j, "argmax_prefill") == b->argmax_prefill;
    t->ok = 1;
    cJSON_Delete(j);
}

static void run_torch(torch_res *t, const gen_opts *o, const attn_gpt *g, const attn_bench_gen *b)
{
    memset(t, 0, sizeof *t);
    if (access(o->script, R_OK) || access(o->python, X_OK)) {
        snprintf(t->why, sizeof t->why, "%s or %s is missing", o->script, o->python);
        return;
    }
    const char *tmp = getenv("TMPDIR");
    char dir[512], qdir[1100], qpy[1100], qscript[1100], cmd[3600], path[600];
    snprintf(dir, sizeof dir, "%s/attn-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        snprintf(t->why, sizeof t->why, "cannot make a temporary directory");
        return;
    }
    if (attn_gpt_hf_save(g, dir)) {
        snprintf(t->why, sizeof t->why, "cannot write the weights: %s", attn_last_error());
    } else if (!shell_quote(qdir, sizeof qdir, dir) || !shell_quote(qpy, sizeof qpy, o->python) ||
               !shell_quote(qscript, sizeof qscript, o->script)) {
        snprintf(t->why, sizeof t->why, "paths too long");
    } else {
        snprintf(cmd, sizeof cmd, "%s %s %s --prompt %d --decode %d --reps %d --threads %d", qpy,
                 qscript, qdir, o->prompt, o->decode, o->reps, attn_threads());
        fflush(stdout);
        FILE *p = popen(cmd, "r");
        char line[8192] = "";
        size_t got = p ? fread(line, 1, sizeof line - 1, p) : 0;
        line[got] = '\0';
        const int rc = p ? pclose(p) : -1;
        if (rc) snprintf(t->why, sizeof t->why, "the PyTorch script failed (status %d)", rc);
        else torch_read(t, line, b, o->cfg.vocab_size);
    }
    const char *files[] = {"config.json", "model.safetensors"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        remove(path);
    }
    rmdir(dir);
}

/* The figures, derived once for both outputs. */
typedef struct gen_figs {
    double bw, peak, limit, a_pre, a_dec, dec_frac, load[3];
    double bw_runs[2 * ATTN_BENCH_MAX_RUNS]; /* GB/s after each run's decode, in run order */
    size_t params;
} gen_figs;

static void print_json(const gen_opts *o, const gen_figs *f, const attn_bench_gen *b,
                       const torch_res *t)
{
    const attn_gpt_config *c = &o->cfg;
    printf("{\"config\": {\"name\": \"%s\", \"vocab_size\": %zu, \"context\": %zu, \"layers\": %zu, "
           "\"heads\": %zu, \"width\": %zu, \"params\": %zu},\n",
           o->name, c->vocab_size, c->context, c->layers, c->heads, c->width, f->params);
    printf(" \"threads\": %d, \"prompt_tokens\": %d, \"decode_tokens\": %d, \"reps\": %d,\n",
           attn_threads(), o->prompt, o->decode, 2 * o->reps);
    printf(" \"bandwidth_gb_s\": %.3f, \"weight_bytes_per_token\": %zu, \"kv_bytes_per_token\": %zu,"
           " \"decode_limit_tok_s\": %.3f, \"fp32_peak_gflops\": %.2f,\n",
           f->bw, b->weight_bytes, b->kv_bytes, f->limit, f->peak);
    printf(" \"bandwidth_runs_gb_s\": [");
    for (int r = 0; r < 2 * o->reps; r++) printf("%s%.3f", r ? ", " : "", f->bw_runs[r]);
    printf("],\n");
    printf(" \"attn\": {\"prefill_tok_s\": %.3f, \"decode_tok_s\": %.3f, \"prefill_gflops\": %.3f,"
           " \"prefill_peak_fraction\": %.4f, \"decode_limit_fraction\": %.4f},\n",
           f->a_pre, f->a_dec, b->prefill_flops / (o->prompt / f->a_pre) / 1e9,
           f->peak > 0 ? b->prefill_flops * f->a_pre / o->prompt / 1e9 / f->peak : 0.0,
           f->dec_frac);
    if (t->ok) {
        const double tp = o->prompt / t->prefill_s, td = o->decode / t->decode_s;
        char diff[32] = "null"; /* JSON has no infinity: logits missing from PyTorch's side */
        if (isfinite(t->max_diff)) snprintf(diff, sizeof diff, "%.3g", t->max_diff);
        printf(" \"torch\": {\"version\": \"%s\", \"threads\": %d, \"prefill_tok_s\": %.3f, "
               "\"decode_tok_s\": %.3f, \"decode_limit_fraction\": %.4f, "
               "\"logits_max_abs_diff\": %s, \"same_argmax\": %s},\n",
               t->version, t->threads, tp, td, td / f->limit, diff,
               t->same_argmax ? "true" : "false");
        printf(" \"attn_over_torch\": {\"prefill\": %.3f, \"decode\": %.3f},\n", f->a_pre / tp,
               f->a_dec / td);
    } else {
        cJSON *w = cJSON_CreateString(t->why);
        char *why = w ? cJSON_PrintUnformatted(w) : NULL; /* escaped */
        printf(" \"torch\": null, \"torch_skipped\": %s, \"attn_over_torch\": null,\n",
               why ? why : "\"\"");
        free(why);
        cJSON_Delete(w);
    }
    printf(" \"load_average\": {\"start\": %.2f, \"before_torch\": %.2f, \"end\": %.2f}}\n",
           f->load[0], f->load[1], f->load[2]);
}

static void print_table(const gen_opts *o, const gen_figs *f, const attn_bench_gen *b,
                        const torch_res *t)
{
    const attn_gpt_config *c = &o->cfg;
    printf("%s: %zu layers, %zu heads, width %zu, context %zu, vocabulary %zu, %.1fM parameters; "
           "%d threads\n",
           o->name, c->layers, c->heads, c->width, c->context, c->vocab_size, f->params / 1e6,
           attn_threads());
    printf("read bandwidth %.2f GB/s (median, %d MiB buffer); a decode step reads %.1f MB of weights "
           "(+ %.1f MB of cache): limit %.2f tokens/s\n",
           f->bw, o->bw_mib, b->weight_bytes / 1e6, b->kv_bytes / 1e6, f->limit);
    printf("fp32 peak %.1f GFLOP/s\n\n", f->peak);
    printf("%-16s %22s %28s\n", "", "prefill (tokens/s)", "decode (tokens/s)");
    printf("%-16s %12.1f (%4.2f of peak) %14.2f (%4.2f of limit)\n", "attn", f->a_pre,
           f->peak > 0 ? b->prefill_flops * f->a_pre / o->prompt / 1e9 / f->peak : 0.0, f->a_dec,
           f->dec_frac);
    if (t->ok) {
        const double tp = o->prompt / t->prefill_s, td = o->decode / t->decode_s;
        char name[48];
        snprintf(name, sizeof name, "PyTorch %s", t->version);
        printf("%-16s %12.1f %14s %14.2f (%4.2f of limit)\n", name, tp, "", td, td / f->limit);
        printf("%-16s %11.2fx %14s %13.2fx\n", "attn / PyTorch", f->a_pre / tp, "", f->a_dec / td);
        printf("\nsame weights: prefill logits differ by at most %.2g, %s argmax\n", t->max_diff,
               t->same_argmax ? "same" : "DIFFERENT");
    } else {
        printf("PyTorch: skipped (%s)\n", t->why);
    }
    printf("prompt %d tokens, %d decoded after it; medians of %d runs; load average %.2f "
           "(start), %.2f (before PyTorch), %.2f (end)\n",
           o->prompt, o->decode, 2 * o->reps, f->load[0], f->load[1], f->load[2]);
}

static double load1(void)
{
    double l[1];
    return getloadavg(l, 1) == 1 ? l[0] : -1.0;
}

/* The fp32 FMA peak: the median of three runs of --peak-seconds (0 when it
 * cannot be measured). */
static double fma_peak(const gen_opts *o)
{
    attn_bench_peak p;
    memset(&p, 0, sizeof p);
    p.seconds = o->peak_seconds, p.runs = 3;
    return attn_bench_peak_measure(&p) ? 0.0 : p.median;
}

int cmd_bench_generate(int argc, char **argv)
{
    gen_opts o;
    memset(&o, 0, sizeof o);
    int rc = parse(argc, argv, &o);
    if (rc < 0) return cli_finish_stdout("bench generate");
    if (rc) return rc;
    if (o.threads) attn_set_threads(o.threads);
    gen_figs f;
    memset(&f, 0, sizeof f);
    f.load[0] = load1();
    attn_gpt *g = NULL;
    attn_bench_gen b, b2;
    memset(&b, 0, sizeof b);
    b.prompt = (size_t)o.prompt, b.decode = (size_t)o.decode, b.reps = o.reps;
    b2 = b;
    torch_res t;
    memset(&t, 0, sizeof t);
    snprintf(t.why, sizeof t.why, "--no-torch");
    attn_bench_bw *probe = NULL;
    attn_status st = attn_gpt_create(&g, &o.cfg, 1);
    if (!st) st = attn_gpt_init(g, (uint64_t)o.seed);
    if (!st) st = attn_bench_bw_create(&probe, (size_t)o.bw_mib << 20);
    b.bw = b2.bw = probe;
    if (!st) f.peak = fma_peak(&o);
    if (!st) st = attn_bench_generate(g, &b);
    f.load[1] = load1();
    if (!st && o.torch) run_torch(&t, &o, g, &b);
    if (!st) st = attn_bench_generate(g, &b2);
    attn_bench_bw_free(probe);
    /* The peak is the best of two measurements, before and after the runs:
     * a busy moment makes one of them low. */
    const double peak2 = st ? 0.0 : fma_peak(&o);
    f.peak = peak2 > f.peak ? peak2 : f.peak;
    f.load[2] = load1();
    if (st) {
        attn_gpt_free(g);
        return cli_fail("bench generate", st);
    }
    double pr[2 * ATTN_BENCH_MAX_RUNS], dr[2 * ATTN_BENCH_MAX_RUNS];
    memcpy(pr, b.prefill_runs, (size_t)o.reps * sizeof *pr);
    memcpy(pr + o.reps, b2.prefill_runs, (size_t)o.reps * sizeof *pr);
    memcpy(dr, b.decode_runs, (size_t)o.reps * sizeof *dr);
    memcpy(dr + o.reps, b2.decode_runs, (size_t)o.reps * sizeof *dr);
    /* each run's decode against the bandwidth measured right after it
     * (before the medians, which sort their arrays) */
    double bw[2 * ATTN_BENCH_MAX_RUNS], frac[2 * ATTN_BENCH_MAX_RUNS];
    memcpy(bw, b.bw_runs, (size_t)o.reps * sizeof *bw);
    memcpy(bw + o.reps, b2.bw_runs, (size_t)o.reps * sizeof *bw);
    memcpy(f.bw_runs, bw, 2 * (size_t)o.reps * sizeof *bw);
    for (int r = 0; r < 2 * o.reps; r++)
        frac[r] = dr[r] > 0.0 ? (double)b.weight_bytes * o.decode / dr[r] / (bw[r] * 1e9) : 0.0;
    f.bw = attn_bench_median(bw, 2 * o.reps);
    f.dec_frac = attn_bench_median(frac, 2 * o.reps);
    f.limit = f.bw * 1e9 / (double)b.weight_bytes;
    f.a_pre = o.prompt / attn_bench_median(pr, 2 * o.reps);
    f.a_dec = o.decode / attn_bench_median(dr, 2 * o.reps);
    f.params = attn_gpt_config_params(&o.cfg);
    attn_gpt_free(g);
    if (o.json) print_json(&o, &f, &b, &t);
    else print_table(&o, &f, &b, &t);
    return cli_finish_stdout("bench generate");
}
