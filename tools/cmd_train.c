/* cmd_train.c - `attn train`: a GPT trained from scratch on a text file. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attn/export.h"
#include "attn/fileio.h"
#include "attn/gpt_hf.h"
#include "attn/train.h"
#include "cli.h"
#include "cli_curves.h"
#include "cli_hparams.h"
#include "cli_dist.h"
#include "cmd_classify.h"
#include "cmd_gpt.h"

static const char usage[] =
    "usage: attn train --data FILE.txt --out DIR [options]\n"
    "       attn train --data FILE.txt --resume DIR [--iters N] [options]\n"
    "       attn train --task classify --data DIR ... (see attn train --task classify --help)\n"
    "\n"
    "Trains a GPT (character-level) on a text file and writes checkpoints to DIR:\n"
    "config.json, model.safetensors, vocab.json, optim.safetensors, and curves.svg\n"
    "(the losses and learning rate so far). The first 90% of the text trains, the\n"
    "last 10% validates. Ctrl-C writes a checkpoint and stops; --resume DIR\n"
    "continues exactly where it stopped. Defaults: nanoGPT's baby GPT.\n"
    "\n";
static const char usage_tail[] =
    "  --tokenizer DIR      GPT-2 byte-level BPE tokens from DIR (encoder.json +\n"
    "                       vocab.bpe, e.g. from 'attn tokenize --train') instead\n"
    "                       of characters\n"
    "  --config FILE        a JSON object of any of the options above, named with\n"
    "                       '_' for '-' ({\"layers\": 6, \"min_lr\": 1e-4}); flags\n"
    "                       override it\n"
    "  --init DIR           start from a GPT-2 folder in Hugging Face's layout\n"
    "                       (its sizes, weights and tokenizer files): fine-tuning\n"
    "  --json-log FILE      one JSON object per step (appended when resuming)\n"
    "  --log-curves         curves.svg with the loss axis in log scale\n"
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
    if (p->curves) cli_curves_add(p->curves, e, NAN, NAN);
    return 0;
}

enum { O_DATA = 4000, O_CONFIG, O_JSON_LOG, O_LOG_EVERY, O_STOP_AT, O_OUT, O_RESUME, O_TASK, O_FORCE, O_TOKENIZER, O_INIT, O_LOG_CURVES };

static int parse_size(const char *s, size_t *out)
{
    int v;
    if (cli_parse_int(s, 0, INT_MAX, &v)) return -1;
    *out = (size_t)v;
    return 0;
}

int cmd_train(int argc, char **argv)
{
    static const struct option fixed[] = {
        {"data", required_argument, 0, O_DATA}, {"config", required_argument, 0, O_CONFIG},
        {"json-log", required_argument, 0, O_JSON_LOG}, {"log-every", required_argument, 0, O_LOG_EVERY},
        {"stop-at", required_argument, 0, O_STOP_AT}, {"out", required_argument, 0, O_OUT},
        {"resume", required_argument, 0, O_RESUME}, {"task", required_argument, 0, O_TASK},
        {"force", no_argument, 0, O_FORCE}, {"log-curves", no_argument, 0, O_LOG_CURVES}, {"tokenizer", required_argument, 0, O_TOKENIZER},
        {"init", required_argument, 0, O_INIT},
        {"help", no_argument, 0, 'h'}};
    const attn_hparams *h = attn_gpt_hparams();
    static struct option longopts[128];
    static char names[CLI_HP_MAX * 2][40];
    size_t n_fixed = sizeof fixed / sizeof *fixed;
    memcpy(longopts, fixed, sizeof fixed);
    cli_hp_longopts(h, longopts, n_fixed, sizeof longopts / sizeof *longopts, names);
    attn_gpt_config mc;
    attn_train_config tc;
    memset(&mc, 0, sizeof mc), memset(&tc, 0, sizeof tc);
    void *const parts[2] = {&mc, &tc};
    attn_hparams_defaults(h, parts);
    /* Flags are applied after --config: remember them. */
    cli_hp_flag flags[64];
    size_t n_flags = 0;
    const char *data = NULL, *config = NULL, *out = NULL, *resume = NULL, *json_log = NULL,
               *tokenizer = NULL, *init = NULL;
    size_t log_every = 10, stop_at = 0, iters = 0;
    int force = 0, log_curves = 0;
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
        case 'h':
            fputs(usage, stdout), cli_hp_help(stdout, h), fputs(usage_tail, stdout);
            return cli_finish_stdout("train");
        case O_TASK: break;
        case O_FORCE: force = 1; break;
        case O_LOG_CURVES: log_curves = 1; break;
        case O_DATA: data = optarg; break;
        case O_CONFIG: config = optarg; break;
        case O_OUT: out = optarg; break;
        case O_RESUME: resume = optarg; break;
        case O_TOKENIZER: tokenizer = optarg; break;
        case O_INIT: init = optarg; break;
        case O_JSON_LOG: json_log = optarg; break;
        case O_LOG_EVERY:
            if (parse_size(optarg, &log_every) || !log_every)
                return cli_usage_error("train", usage, "--log-every: expected an integer > 0, found '%s'", optarg);
            break;
        case O_STOP_AT:
            if (parse_size(optarg, &stop_at) || !stop_at)
                return cli_usage_error("train", usage, "--stop-at: expected an integer > 0, found '%s'", optarg);
            break;
        default:
            if (!cli_hp_entry(h, c)) return cli_bad_option("train", usage, c, argv);
            if (n_flags == sizeof flags / sizeof *flags)
                return cli_usage_error("train", usage, "too many options");
            flags[n_flags].opt = c, flags[n_flags++].arg = optarg;
        }
    }
    if (optind < argc) return cli_usage_error("train", usage, "unexpected argument '%s'", argv[optind]);
    if (!data) return cli_usage_error("train", usage, "missing --data FILE");
    if (!out && !resume) return cli_usage_error("train", usage, "missing --out DIR (or --resume DIR)");
    if (!out) out = resume;
    if (resume && (tokenizer || init))
        return cli_usage_error("train", usage, "--%s cannot be changed when resuming (the checkpoint holds it)",
                               tokenizer ? "tokenizer" : "init");
    if (init && tokenizer) return cli_usage_error("train", usage, "--init takes the tokenizer files from its folder");
    /* The log must not overwrite an input (compared by device and inode). */
    const char *inputs[2] = {data, config};
    attn_status st = attn_check_not_input(json_log, inputs, 2);
    if (st) return cli_fail("train", st);
    int iters_given = 0, rc = cli_hp_settle("train", usage, h, parts, flags, n_flags, resume, config, &iters_given);
    if (rc) return rc;
    if (iters_given) iters = tc.iters;
    char *text = NULL;
    size_t len = 0;
    if (init) { /* the sizes are the folder's */
        attn_gpt_config ic;
        if ((st = attn_gpt_hf_config(init, &ic))) return cli_fail("train", st);
        mc.layers = ic.layers, mc.heads = ic.heads, mc.width = ic.width, mc.context = ic.context;
        mc.bias = ic.bias;
    }
    if (!resume) {
        mc.vocab_size = 1; /* set from the data; checked here for the rest */
        st = attn_gpt_config_check(&mc);
        if (!st) st = attn_train_config_check(&tc);
        if (st) return cli_fail("train", st);
    }
    /* The output directory checked before any work; the first checkpoint
     * creates it (a run that fails before leaves nothing behind). */
    if ((rc = cli_check_out_dir("train", out, resume, force))) return rc;
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
        st = tokenizer || init ? attn_bpe_tokenizer_load(&tok, tokenizer ? tokenizer : init)
                               : attn_char_tokenizer_from_text(&tok, text, len, data);
        if (!st) st = attn_trainer_create(&t, &mc, &tc, tok, text, len, data);
        if (!st && init && (st = attn_gpt_hf_init(attn_trainer_model(t), init))) attn_trainer_free(t);
    }
    int rank = 0; /* mpirun: data parallel, rank 0 alone prints and logs */
    if (!st) st = cli_dist_train_begin(t, text, len, &rank);
    if (rank != 0) json_log = NULL;
    free(text);
    if (st) {
        attn_trainer_free(t);
        return cli_fail("train", st);
    }

    cli_progress p;
    memset(&p, 0, sizeof p);
    p.tty = isatty(fileno(stdout)), p.log_every = log_every, p.first_step = attn_trainer_info(t)->step;
    cli_curves curves;
    if (rank == 0 && !cli_curves_init(&curves, out, "attn train: GPT", 0, log_curves)) p.curves = &curves;
    if (json_log && !(p.json = fopen(json_log, resume ? "a" : "w"))) {
        st = attn_error(ATTN_E_IO, "%s: cannot open for writing: %s", json_log, strerror(errno));
        attn_trainer_free(t);
        if (p.curves) cli_curves_free(p.curves);
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
    struct timespec run0, run1;
    clock_gettime(CLOCK_MONOTONIC, &run0);
    st = attn_trainer_run(t, out, stop_at, &cli_interrupted, on_progress, &p, &stopped);
    clock_gettime(CLOCK_MONOTONIC, &run1);
    cli_restore_stop_signals(&old);
    if (p.tty) printf("\n");
    if (p.json && fclose(p.json) != 0 && !st)
        st = attn_error(ATTN_E_IO, "%s: cannot write the log", json_log);
    if (st) {
        rc = cli_fail("train", st);
    } else if (stopped) {
        printf("stopped at step %zu of %zu%s; checkpoint in %s (continue with --resume %s)\n",
               info->step, info->train.iters, cli_interrupted ? " (interrupted)" : "", out, out);
    } else {
        printf("done: step %zu; checkpoint in %s\n", info->step, out);
    }
    attn_trainer_free(t);
    if (p.curves) {
        if (!st) cli_curves_finish(p.curves);
        cli_curves_free(p.curves);
    }
    if (rc) return rc;
    cli_dist_end((double)(run1.tv_sec - run0.tv_sec) + 1e-9 * (double)(run1.tv_nsec - run0.tv_nsec));
    return cli_finish_stdout("train");
}
