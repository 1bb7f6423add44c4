/* cmd_train.c - `attn train`: a GPT trained from scratch on a text file. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attn/export.h"
#include "attn/fileio.h"
#include "attn/train.h"
#include "cli.h"
#include "cmd_classify.h"
#include "cmd_gpt.h"

static const char usage[] =
    "usage: attn train --data FILE.txt --out DIR [options]\n"
    "       attn train --data FILE.txt --resume DIR [--iters N] [options]\n"
    "       attn train --task classify --data DIR ... (see attn train --task classify --help)\n"
    "\n"
    "Trains a GPT (character-level) on a text file and writes checkpoints to DIR:\n"
    "config.json, model.safetensors, vocab.json, optim.safetensors. The first 90%\n"
    "of the text trains, the last 10% validates. Ctrl-C writes a checkpoint and\n"
    "stops; --resume DIR continues exactly where it stopped.\n"
    "\n"
    "model (defaults: nanoGPT's baby GPT):\n"
    "  --layers N           blocks (4)\n"
    "  --heads N            attention heads (4)\n"
    "  --width N            embedding width, divisible by heads (128)\n"
    "  --context N          context length in tokens (64)\n"
    "  --bias, --no-bias    biases in linear layers and layer norms (off)\n"
    "  --tokenizer DIR      GPT-2 byte-level BPE tokens from DIR (encoder.json +\n"
    "                       vocab.bpe, e.g. from 'attn tokenize --train') instead\n"
    "                       of characters\n"
    "training:\n"
    "  --batch N            sequences per micro-batch (12)\n"
    "  --accum N            micro-batches per step (gradient accumulation, 1)\n"
    "  --iters N            optimizer steps (2000)\n"
    "  --lr X               peak learning rate (1e-3)\n"
    "  --min-lr X           learning rate at the end of the cosine decay (1e-4)\n"
    "  --warmup N           linear warm-up steps (100)\n"
    "  --decay-iters N      step where the decay reaches min-lr (default: iters)\n"
    "  --weight-decay X     AdamW weight decay of matrices (0.1)\n"
    "  --beta1 X, --beta2 X AdamW betas (0.9, 0.99)\n"
    "  --grad-clip X        clip the global gradient norm to X, 0 = off (1.0)\n"
    "  --val-fraction X     share of the text held out for validation (0.1)\n"
    "  --seed N             seed of initialisation and batch sampling (1337)\n"
    "  --config FILE        a JSON object of any of these (layers, heads, width,\n"
    "                       context, bias, batch, accum, iters, lr, min_lr, warmup,\n"
    "                       decay_iters, weight_decay, beta1, beta2, eps, grad_clip,\n"
    "                       val_fraction, seed, eval_every, eval_iters,\n"
    "                       checkpoint_every); flags override it\n"
    "progress and checkpoints:\n"
    "  --eval-every N       validation loss every N steps, and at the end (250)\n"
    "  --eval-iters N       batches per evaluation (20); 0: the whole split, in order\n"
    "  --checkpoint-every N also write a checkpoint every N steps (0: at the end)\n"
    "  --json-log FILE      one JSON object per step (appended when resuming)\n"
    "  --log-every N        plain log lines every N steps when not on a terminal (10)\n"
    "  --stop-at N          stop after step N with a checkpoint, as if interrupted\n"
    "  --out DIR            checkpoint directory (required unless --resume); one\n"
    "                       that holds a checkpoint is refused unless --force\n"
    "  --resume DIR         continue the run in DIR (written back there unless --out)\n"
    "  --force              replace the checkpoint in --out DIR, starting at step 0\n"
    "  --task lm|classify   lm: this character-level GPT (the default); classify:\n"
    "                       an encoder classifier (attn train --task classify --help)\n"
    "  -h, --help           show this help\n";


static int on_progress(const attn_train_event *e, void *user)
{
    cli_progress *p = user;
    if (p->json) {
        fprintf(p->json,
                "{\"step\": %zu, \"train_loss\": %.17g, \"lr\": %.9g, \"grad_norm\": %.9g, "
                "\"ms_per_iter\": %.3f, \"tokens_per_s\": %.1f",
                e->step, e->train_loss, e->lr, e->grad_norm, e->ms_per_iter, e->tokens_per_s);
        if (e->evaluated)
            fprintf(p->json, ", \"val_loss\": %.17g, \"eval_train_loss\": %.17g", e->val_loss,
                    e->eval_train_loss);
        fprintf(p->json, "}\n");
        fflush(p->json);
    }
    char val[48] = "";
    if (e->evaluated) snprintf(val, sizeof val, "  val %.4f", e->val_loss);
    cli_progress_line(p, e, val);
    return 0;
}

enum {
    O_DATA = 4000, O_CONFIG, O_LAYERS, O_HEADS, O_WIDTH, O_CONTEXT, O_BIAS, O_NO_BIAS, O_BATCH,
    O_ACCUM, O_ITERS, O_LR, O_MIN_LR, O_WARMUP, O_DECAY, O_WD, O_BETA1, O_BETA2, O_CLIP, O_VALF,
    O_SEED, O_EVAL_EVERY, O_EVAL_ITERS, O_CKPT_EVERY, O_JSON_LOG, O_LOG_EVERY, O_STOP_AT, O_OUT,
    O_RESUME, O_TASK, O_TOKENIZER, O_FORCE
};

/* Options that describe the run: fixed once it has started. */
static int changes_run(int o) { return o >= O_CONFIG && o <= O_EVAL_ITERS && o != O_ITERS; }

static int parse_size(const char *s, size_t *out)
{
    int v;
    if (cli_parse_int(s, 0, INT_MAX, &v)) return -1;
    *out = (size_t)v;
    return 0;
}

int cmd_train(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, 0, O_DATA}, {"config", required_argument, 0, O_CONFIG},
        {"layers", required_argument, 0, O_LAYERS}, {"heads", required_argument, 0, O_HEADS},
        {"width", required_argument, 0, O_WIDTH}, {"context", required_argument, 0, O_CONTEXT},
        {"bias", no_argument, 0, O_BIAS}, {"no-bias", no_argument, 0, O_NO_BIAS},
        {"batch", required_argument, 0, O_BATCH}, {"accum", required_argument, 0, O_ACCUM},
        {"iters", required_argument, 0, O_ITERS}, {"lr", required_argument, 0, O_LR},
        {"min-lr", required_argument, 0, O_MIN_LR}, {"warmup", required_argument, 0, O_WARMUP},
        {"decay-iters", required_argument, 0, O_DECAY},
        {"weight-decay", required_argument, 0, O_WD}, {"beta1", required_argument, 0, O_BETA1},
        {"beta2", required_argument, 0, O_BETA2}, {"grad-clip", required_argument, 0, O_CLIP},
        {"val-fraction", required_argument, 0, O_VALF}, {"seed", required_argument, 0, O_SEED},
        {"eval-every", required_argument, 0, O_EVAL_EVERY},
        {"eval-iters", required_argument, 0, O_EVAL_ITERS},
        {"checkpoint-every", required_argument, 0, O_CKPT_EVERY},
        {"json-log", required_argument, 0, O_JSON_LOG},
        {"log-every", required_argument, 0, O_LOG_EVERY},
        {"stop-at", required_argument, 0, O_STOP_AT}, {"out", required_argument, 0, O_OUT},
        {"resume", required_argument, 0, O_RESUME}, {"task", required_argument, 0, O_TASK},
        {"tokenizer", required_argument, 0, O_TOKENIZER},
        {"force", no_argument, 0, O_FORCE}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    attn_gpt_config mc = attn_gpt_defaults();
    attn_train_config tc = attn_train_defaults();
    /* Flags are applied after --config: remember them. */
    struct { int opt; const char *arg; } flags[64];
    size_t n_flags = 0;
    const char *data = NULL, *config = NULL, *out = NULL, *resume = NULL, *json_log = NULL,
               *tokenizer = NULL;
    size_t log_every = 10, stop_at = 0, iters = 0;
    int force = 0;
    for (int i = 1; i < argc; i++) { /* --task picks the trainer */
        const char *task = NULL;
        if (!strcmp(argv[i], "--task") && i + 1 < argc) task = argv[i + 1];
        else if (!strncmp(argv[i], "--task=", 7)) task = argv[i] + 7;
        if (task && !strcmp(task, "classify")) return cmd_train_classify(argc, argv);
        if (task && strcmp(task, "lm"))
            return cli_usage_error("train", usage, "--task: expected lm or classify, found '%s'", task);
    }
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(usage, stdout); return cli_finish_stdout("train");
        case O_TASK: break;
        case O_FORCE: force = 1; break;
        case O_DATA: data = optarg; break;
        case O_CONFIG: config = optarg; break;
        case O_OUT: out = optarg; break;
        case O_RESUME: resume = optarg; break;
        case O_TOKENIZER: tokenizer = optarg; break;
        case O_JSON_LOG: json_log = optarg; break;
        case O_LOG_EVERY:
            if (parse_size(optarg, &log_every) || !log_every)
                return cli_usage_error("train", usage, "--log-every: expected an integer > 0, found '%s'", optarg);
            break;
        case O_STOP_AT:
            if (parse_size(optarg, &stop_at) || !stop_at)
                return cli_usage_error("train", usage, "--stop-at: expected an integer > 0, found '%s'", optarg);
            break;
        case '?':
        case ':': return cli_bad_option("train", usage, c, argv);
        default:
            if (n_flags == sizeof flags / sizeof *flags)
                return cli_usage_error("train", usage, "too many options");
            flags[n_flags].opt = c, flags[n_flags++].arg = optarg;
        }
    }
    if (optind < argc) return cli_usage_error("train", usage, "unexpected argument '%s'", argv[optind]);
    if (!data) return cli_usage_error("train", usage, "missing --data FILE");
    if (!out && !resume) return cli_usage_error("train", usage, "missing --out DIR (or --resume DIR)");
    if (!out) out = resume;
    if (resume && config) return cli_usage_error("train", usage, "--config cannot be changed when resuming");
    if (resume && tokenizer)
        return cli_usage_error("train", usage, "--tokenizer cannot be changed when resuming (the checkpoint holds it)");
    for (size_t i = 0; resume && i < n_flags; i++)
        if (changes_run(flags[i].opt)) {
            const char *name = "?";
            for (const struct option *o = longopts; o->name; o++)
                if (o->val == flags[i].opt) name = o->name;
            return cli_usage_error("train", usage,
                                   "--%s cannot be changed when resuming (the checkpoint holds it)", name);
        }

    /* The log must not overwrite an input (compared by device and inode). */
    const char *inputs[2] = {data, config};
    attn_status st = attn_check_not_input(json_log, inputs, 2);
    if (st) return cli_fail("train", st);
    char *text = NULL, *cfg_text = NULL;
    size_t len = 0, cfg_len = 0;
    if (config) {
        st = attn_read_file(config, CLI_TEXT_LIMIT, ATTN_READ_TEXT, &cfg_text, &cfg_len);
        if (!st) st = attn_train_config_from_json(cfg_text, config, &mc, &tc);
        free(cfg_text);
        if (st) return cli_fail("train", st);
    }
    for (size_t i = 0; i < n_flags; i++) {
        const char *a = flags[i].arg;
        size_t *sz = NULL;
        float *fl = NULL;
        switch (flags[i].opt) {
        case O_LAYERS: sz = &mc.layers; break;
        case O_HEADS: sz = &mc.heads; break;
        case O_WIDTH: sz = &mc.width; break;
        case O_CONTEXT: sz = &mc.context; break;
        case O_BIAS: mc.bias = 1; continue;
        case O_NO_BIAS: mc.bias = 0; continue;
        case O_BATCH: sz = &tc.batch; break;
        case O_ACCUM: sz = &tc.accum; break;
        case O_ITERS: sz = &iters; break;
        case O_WARMUP: sz = &tc.warmup; break;
        case O_DECAY: sz = &tc.decay_iters; break;
        case O_EVAL_EVERY: sz = &tc.eval_every; break;
        case O_EVAL_ITERS: sz = &tc.eval_iters; break;
        case O_CKPT_EVERY: sz = &tc.checkpoint_every; break;
        case O_LR: fl = &tc.lr; break;
        case O_MIN_LR: fl = &tc.min_lr; break;
        case O_WD: fl = &tc.weight_decay; break;
        case O_BETA1: fl = &tc.beta1; break;
        case O_BETA2: fl = &tc.beta2; break;
        case O_CLIP: fl = &tc.grad_clip; break;
        case O_VALF: fl = &tc.val_fraction; break;
        case O_SEED: {
            size_t s;
            if (parse_size(a, &s))
                return cli_usage_error("train", usage, "--seed: expected an integer >= 0, found '%s'", a);
            tc.seed = s;
            continue;
        }
        default: return cli_usage_error("train", usage, "unhandled option");
        }
        const char *name = "?";
        for (const struct option *o = longopts; o->name; o++)
            if (o->val == flags[i].opt) name = o->name;
        if (sz && parse_size(a, sz))
            return cli_usage_error("train", usage, "--%s: expected an integer >= 0, found '%s'", name, a);
        if (fl && cli_parse_float(a, fl))
            return cli_usage_error("train", usage, "--%s: expected a number, found '%s'", name, a);
    }
    for (size_t i = 0; i < n_flags; i++)
        if (flags[i].opt == O_ITERS) {
            if (!iters) return cli_fail("train", attn_error(ATTN_E_INVALID, "iters must be at least 1, got 0"));
            tc.iters = iters;
        }
    if (!resume) {
        mc.vocab_size = 1; /* set from the data; checked here for the rest */
        st = attn_gpt_config_check(&mc);
        if (!st) st = attn_train_config_check(&tc);
        if (st) return cli_fail("train", st);
    }
    /* The output directory checked before any work; the first checkpoint
     * creates it (a run that fails before leaves nothing behind). */
    int rc0 = cli_check_out_dir("train", out, resume, force);
    if (rc0) return rc0;
    st = attn_export_check_dir(out);
    if (!st) st = attn_read_file(data, CLI_TEXT_LIMIT, ATTN_READ_TEXT, &text, &len);
    if (!st && !len) st = attn_error(ATTN_E_FORMAT, "%s: the file is empty", data);
    if (st) {
        free(text);
        return cli_fail("train", st);
    }
    attn_trainer *t = NULL;
    if (resume) {
        st = attn_trainer_resume(&t, resume, text, len, data, iters);
    } else {
        attn_tokenizer *tok = NULL;
        st = tokenizer ? attn_bpe_tokenizer_load(&tok, tokenizer)
                       : attn_char_tokenizer_from_text(&tok, text, len, data);
        if (!st) st = attn_trainer_create(&t, &mc, &tc, tok, text, len, data);
    }
    free(text);
    if (st) return cli_fail("train", st);

    cli_progress p;
    memset(&p, 0, sizeof p);
    p.tty = isatty(fileno(stdout)), p.log_every = log_every, p.first_step = attn_trainer_info(t)->step;
    if (json_log && !(p.json = fopen(json_log, resume ? "a" : "w"))) {
        st = attn_error(ATTN_E_IO, "%s: cannot open for writing: %s", json_log, strerror(errno));
        attn_trainer_free(t);
        return cli_fail("train", st);
    }
    const attn_checkpoint *info = attn_trainer_info(t);
    const attn_gpt_config *m = &info->model;
    printf("attn train: %zu parameters (%zu layers, %zu heads, width %zu, context %zu, vocab "
           "%zu%s), batch %zu x %zu, %s step %zu of %zu\n",
           attn_gpt_num_params(attn_trainer_model(t)), m->layers, m->heads, m->width, m->context,
           m->vocab_size, m->bias ? ", biases" : "", info->train.batch, info->train.accum,
           resume ? "resuming at" : "from", info->step, info->train.iters);
    fflush(stdout);

    cli_signals old;
    cli_catch_stop_signals(&old);
    int stopped = 0;
    st = attn_trainer_run(t, out, stop_at, &cli_interrupted, on_progress, &p, &stopped);
    cli_restore_stop_signals(&old);
    if (p.tty) printf("\n");
    if (p.json && fclose(p.json) != 0 && !st)
        st = attn_error(ATTN_E_IO, "%s: cannot write the log", json_log);
    int rc = CLI_OK;
    if (st) {
        rc = cli_fail("train", st);
    } else if (stopped) {
        printf("stopped at step %zu of %zu%s; checkpoint in %s (continue with --resume %s)\n",
               info->step, info->train.iters, cli_interrupted ? " (interrupted)" : "", out, out);
    } else {
        printf("done: step %zu; checkpoint in %s\n", info->step, out);
    }
    attn_trainer_free(t);
    if (rc) return rc;
    return cli_finish_stdout("train");
}
