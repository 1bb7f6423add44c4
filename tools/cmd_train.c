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

/* What the command line asks for. */
typedef struct train_args {
    attn_gpt_config mc;
    attn_train_config tc;
    const char *data, *config, *out, *resume, *json_log, *tokenizer, *init;
    size_t log_every, stop_at, iters;
    int force, log_curves;
} train_args;

/* --task picks the trainer: -1 to go on with this one, else the exit status. */
static int train_pick_task(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *task = NULL;
        if (!strcmp(argv[i], "--task") && i + 1 < argc) task = argv[i + 1];
        else if (!strncmp(argv[i], "--task=", 7)) task = argv[i] + 7;
        if (task && !strcmp(task, "classify")) return cmd_train_classify(argc, argv);
        if (task && strcmp(task, "lm"))
            return cli_usage_error("train", usage, "--task: expected lm or classify, found '%s'", task);
    }
    return -1;
}

/* Parses the flags into a, the hyperparameters settled from the defaults,
 * --config, the checkpoint being resumed and the flags. -1 when the run
 * goes on, else the exit status (--help, a usage error). */
static int train_parse(int argc, char **argv, train_args *a)
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
    memset(a, 0, sizeof *a);
    void *const parts[2] = {&a->mc, &a->tc};
    attn_hparams_defaults(h, parts);
    /* Flags are applied after --config: remember them. */
    cli_hp_flag flags[64];
    size_t n_flags = 0;
    a->log_every = 10;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, stdout), cli_hp_help(stdout, h), fputs(usage_tail, stdout);
            return cli_finish_stdout("train");
        case O_TASK: break;
        case O_FORCE: a->force = 1; break;
        case O_LOG_CURVES: a->log_curves = 1; break;
        case O_DATA: a->data = optarg; break;
        case O_CONFIG: a->config = optarg; break;
        case O_OUT: a->out = optarg; break;
        case O_RESUME: a->resume = optarg; break;
        case O_TOKENIZER: a->tokenizer = optarg; break;
        case O_INIT: a->init = optarg; break;
        case O_JSON_LOG: a->json_log = optarg; break;
        case O_LOG_EVERY:
            if (parse_size(optarg, &a->log_every) || !a->log_every)
                return cli_usage_error("train", usage, "--log-every: expected an integer > 0, found '%s'", optarg);
            break;
        case O_STOP_AT:
            if (parse_size(optarg, &a->stop_at) || !a->stop_at)
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
    if (!a->data) return cli_usage_error("train", usage, "missing --data FILE");
    if (!a->out && !a->resume) return cli_usage_error("train", usage, "missing --out DIR (or --resume DIR)");
    if (!a->out) a->out = a->resume;
    if (a->resume && (a->tokenizer || a->init))
        return cli_usage_error("train", usage, "--%s cannot be changed when resuming (the checkpoint holds it)",
                               a->tokenizer ? "tokenizer" : "init");
    if (a->init && a->tokenizer) return cli_usage_error("train", usage, "--init takes the tokenizer files from its folder");
    /* The log must not overwrite an input (compared by device and inode). */
    const char *inputs[2] = {a->data, a->config};
    attn_status st = attn_check_not_input(a->json_log, inputs, 2);
    if (st) return cli_fail("train", st);
    int iters_given = 0, rc = cli_hp_settle("train", usage, h, parts, flags, n_flags, a->resume, a->config, &iters_given);
    if (rc) return rc;
    if (iters_given) a->iters = a->tc.iters;
    return -1;
}

/* Checks the configuration and the output directory, reads the text and
 * creates (or resumes) the trainer, joining a data-parallel run when started
 * by mpirun. -1 with *t when the run goes on, else the exit status. */
static int train_start(train_args *a, attn_trainer **t, int *rank)
{
    attn_status st;
    if (a->init) { /* the sizes are the folder's */
        attn_gpt_config ic;
        if ((st = attn_gpt_hf_config(a->init, &ic))) return cli_fail("train", st);
        a->mc.layers = ic.layers, a->mc.heads = ic.heads, a->mc.width = ic.width, a->mc.context = ic.context;
        a->mc.bias = ic.bias;
    }
    if (!a->resume) {
        a->mc.vocab_size = 1; /* set from the data; checked here for the rest */
        st = attn_gpt_config_check(&a->mc);
        if (!st) st = attn_train_config_check(&a->tc);
        if (st) return cli_fail("train", st);
    }
    /* The output directory checked before any work; the first checkpoint
     * creates it (a run that fails before leaves nothing behind). */
    int rc = cli_check_out_dir("train", a->out, a->resume, a->force);
    if (rc) return rc;
    char *text = NULL;
    size_t len = 0;
    st = attn_export_check_dir(a->out);
    if (!st) st = attn_read_file(a->data, CLI_TEXT_LIMIT, ATTN_READ_TEXT, &text, &len);
    if (!st && !len) st = attn_error(ATTN_E_FORMAT, "%s: the file is empty", a->data);
    if (st) {
        free(text);
        return cli_fail("train", st);
    }
    *t = NULL;
    if (a->resume) {
        st = attn_trainer_resume(t, a->resume, text, len, a->data, a->iters);
    } else {
        attn_tokenizer *tok = NULL;
        st = a->tokenizer || a->init ? attn_bpe_tokenizer_load(&tok, a->tokenizer ? a->tokenizer : a->init)
                                     : attn_char_tokenizer_from_text(&tok, text, len, a->data);
        if (!st) st = attn_trainer_create(t, &a->mc, &a->tc, tok, text, len, a->data);
        if (!st && a->init) st = attn_gpt_hf_init(attn_trainer_model(*t), a->init);
    }
    *rank = 0; /* mpirun: data parallel, rank 0 alone prints and logs */
    if (!st) st = cli_dist_train_begin(*t, text, len, rank);
    if (*rank != 0) a->json_log = NULL;
    free(text);
    if (st) {
        attn_trainer_free(*t);
        return cli_fail("train", st);
    }
    return -1;
}

/* Runs the training with progress, the log and the curves, and reports how
 * it ended; frees t. The exit status. */
static int train_run(const train_args *a, attn_trainer *t, int rank)
{
    attn_status st;
    cli_progress p;
    memset(&p, 0, sizeof p);
    p.tty = isatty(fileno(stdout)), p.log_every = a->log_every, p.first_step = attn_trainer_info(t)->step;
    cli_curves curves;
    if (rank == 0 && !cli_curves_init(&curves, a->out, "attn train: GPT", 0, a->log_curves)) p.curves = &curves;
    if (a->json_log && !(p.json = fopen(a->json_log, a->resume ? "a" : "w"))) {
        st = attn_error(ATTN_E_IO, "%s: cannot open for writing: %s", a->json_log, strerror(errno));
        attn_trainer_free(t);
        if (p.curves) cli_curves_free(p.curves);
        return cli_fail("train", st);
    }
    const attn_checkpoint *info = attn_trainer_info(t);
    const attn_gpt_config *m = &info->model;
    printf("attn train: %zu parameters (%zu layers, %zu heads, width %zu, context %zu, vocab "
           "%zu%s), batch %zu x %zu, %s step %zu of %zu, %d thread%s\n",
           attn_gpt_num_params(attn_trainer_model(t)), m->layers, m->heads, m->width, m->context,
           m->vocab_size, m->bias ? ", biases" : "", info->train.batch, info->train.accum,
           a->resume ? "resuming at" : "from", info->step, info->train.iters, attn_threads(),
           attn_threads() == 1 ? "" : "s");
    fflush(stdout);

    cli_signals old;
    cli_catch_stop_signals(&old);
    int stopped = 0, rc = 0;
    struct timespec run0, run1;
    clock_gettime(CLOCK_MONOTONIC, &run0);
    st = attn_trainer_run(t, a->out, a->stop_at, &cli_interrupted, on_progress, &p, &stopped);
    clock_gettime(CLOCK_MONOTONIC, &run1);
    cli_restore_stop_signals(&old);
    if (p.tty) printf("\n");
    if (p.json && fclose(p.json) != 0 && !st)
        st = attn_error(ATTN_E_IO, "%s: cannot write the log", a->json_log);
    if (st) {
        rc = cli_fail("train", st);
    } else if (stopped) {
        printf("stopped at step %zu of %zu%s; checkpoint in %s (continue with --resume %s)\n",
               info->step, info->train.iters, cli_interrupted ? " (interrupted)" : "", a->out, a->out);
    } else {
        printf("done: step %zu; checkpoint in %s\n", info->step, a->out);
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

int cmd_train(int argc, char **argv)
{
    int rc = train_pick_task(argc, argv);
    if (rc >= 0) return rc;
    train_args a;
    if ((rc = train_parse(argc, argv, &a)) >= 0) return rc;
    attn_trainer *t = NULL;
    int rank = 0;
    if ((rc = train_start(&a, &t, &rank)) >= 0) return rc;
    return train_run(&a, t, rank);
}
