/* cmd_train_classify.c - `attn train --task classify`: an encoder classifier
 * on DIR/{train,valid,test}.tsv, with the baselines on the same split. */
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

#include "attn/classify.h"
#include "attn/plot.h"
#include "cli.h"
#include "cli_curves.h"
#include "cli_dist.h"
#include "cli_hparams.h"
#include "cmd_classify.h"

static const char usage[] =
    "usage: attn train --task classify --data DIR --out DIR [options]\n"
    "       attn train --task classify --data DIR --resume DIR [--iters N] [options]\n"
    "\n"
    "Trains a bidirectional Transformer encoder to classify the texts of\n"
    "DIR/train.tsv (label<TAB>text lines, e.g. from 'attn data wordnet'), with\n"
    "accuracy and macro-F1 on DIR/valid.tsv at each evaluation, early stopping\n"
    "that keeps the best weights, and at the end the test accuracy, macro-F1 and\n"
    "confusion matrix, beside two baselines on the same split: the majority class\n"
    "and a bag-of-words logistic regression with the same tokenizer. Checkpoints\n"
    "in DIR: config.json, model.safetensors, best.safetensors, vocab.json,\n"
    "optim.safetensors; Ctrl-C writes one and stops; --resume continues exactly.\n"
    "\n"
    "\n";
static const char usage_tail[] =
    "  --config FILE        a JSON object of any of the options above, named with\n"
    "                       '_' for '-' ({\"layers\": 2, \"label_smoothing\": 0});\n"
    "                       flags override it\n"
    "  --json-log FILE      one JSON object per step, and the test results at the end\n"
    "  --log-curves         curves.svg with the loss axis in log scale\n"
    "  --log-every N        plain log lines every N steps when not on a terminal (50)\n"
    "  --stop-at N          stop after step N with a checkpoint, as if interrupted\n"
    "  --no-baselines       skip the majority and bag-of-words baselines\n"
    "  --out DIR            checkpoint directory (required unless --resume); one\n"
    "                       that holds a checkpoint is refused unless --force\n"
    "  --resume DIR         continue the run in DIR (written back there unless --out)\n"
    "  --force              replace the checkpoint in --out DIR, starting at step 0\n"
    "  -h, --help           show this help\n";

static int on_progress(const attn_cls_event *ce, void *user)
{
    cli_progress *p = user;
    const attn_train_event *e = &ce->base;
    if (p->json) {
        fprintf(p->json,
                "{\"step\": %zu, \"epoch\": %zu, \"train_loss\": %.17g, \"lr\": %.9g, \"grad_norm\": %.9g, "
                "\"ms_per_iter\": %.3f, \"tokens_per_s\": %.1f",
                e->step, ce->epoch, e->train_loss, e->lr, e->grad_norm, e->ms_per_iter, e->tokens_per_s);
        if (e->evaluated)
            fprintf(p->json, ", \"val_loss\": %.17g, \"val_accuracy\": %.17g, \"val_macro_f1\": %.17g, \"best\": %s",
                    e->val_loss, ce->val_accuracy, ce->val_f1, ce->improved ? "true" : "false");
        fprintf(p->json, "}\n");
        fflush(p->json);
    }
    char val[96] = "";
    if (e->evaluated)
        snprintf(val, sizeof val, "  val %.4f acc %.4f f1 %.4f%s", e->val_loss, ce->val_accuracy,
                 ce->val_f1, ce->improved ? " *" : "");
    cli_progress_line(p, e, val);
    if (p->curves) cli_curves_add(p->curves, e, ce->val_accuracy, ce->val_f1);
    return 0;
}

enum { O_TASK = 7000, O_DATA, O_OUT, O_RESUME, O_JSON_LOG, O_LOG_EVERY, O_STOP_AT, O_NO_BASE, O_FORCE, O_CONFIG, O_LOG_CURVES };

static int parse_size(const char *s, size_t *out)
{
    int v;
    if (cli_parse_int(s, 1, INT_MAX, &v)) return -1;
    *out = (size_t)v;
    return 0;
}

/* The test results: the encoder's best weights and the baselines. Under
 * mpirun every rank evaluates (its share); rank 0 alone writes files. */
static attn_status report(attn_cls_trainer *t, const char *out, int baselines, FILE *json, int rank)
{
    const attn_cls_info *in = attn_cls_trainer_info(t);
    const size_t K = in->model.classes;
    size_t *conf = calloc(K * K, sizeof *conf);
    if (!conf) return attn_error(ATTN_E_NOMEM, "out of memory");
    attn_cls_metrics enc, maj, bow;
    attn_status st = attn_cls_trainer_load_best(t, out);
    if (!st) st = attn_cls_trainer_evaluate(t, ATTN_CLS_TEST, &enc, conf);
    if (!st && baselines) st = attn_cls_trainer_baselines(t, ATTN_CLS_TEST, &maj, &bow, NULL);
    if (st || rank != 0) {
        free(conf);
        return st;
    }
    printf("\ntest: %zu examples, %zu classes\n", in->n_test, K);
    if (baselines) {
        printf("  %-36s accuracy %.4f  macro-F1 %.4f\n", "majority class", maj.accuracy, maj.macro_f1);
        printf("  %-36s accuracy %.4f  macro-F1 %.4f\n", "bag-of-words logistic regression",
               bow.accuracy, bow.macro_f1);
    }
    char what[64];
    snprintf(what, sizeof what, "encoder (best: step %zu)", in->best_step);
    printf("  %-36s accuracy %.4f  macro-F1 %.4f\n", what, enc.accuracy, enc.macro_f1);
    double *f1 = malloc(K * sizeof *f1);
    if (!f1) {
        free(conf);
        return attn_error(ATTN_E_NOMEM, "out of memory");
    }
    attn_cls_f1_per_class(f1, conf, K); /* the encoder's */
    printf("\nconfusion matrix (rows: true class, columns: predicted, numbered as the rows; "
           "the encoder's F1 per class)\n");
    printf("%24s", "");
    for (size_t j = 0; j < K; j++) printf(" %5zu", j + 1);
    printf("     F1\n");
    for (size_t i = 0; i < K; i++) {
        printf("%3zu %-20.20s", i + 1, in->labels[i]);
        for (size_t j = 0; j < K; j++) printf(" %5zu", conf[i * K + j]);
        printf("  %.3f\n", f1[i]);
    }
    /* the same matrix as a picture beside the checkpoint */
    size_t n = strlen(out) + sizeof "/confusion.svg";
    char *svg = malloc(n);
    attn_status pst = svg ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    if (svg) snprintf(svg, n, "%s/confusion.svg", out);
    if (!pst) pst = attn_confusion_svg_write(svg, "test confusion matrix of the encoder (rows: true class)",
                                             (const char *const *)in->labels, K, conf);
    if (pst) fprintf(stderr, "attn train: warning: %s\n", attn_last_error());
    else printf("(as a heatmap: %s)\n", svg);
    free(svg);
    if (json) {
        fprintf(json, "{\"test\": {\"examples\": %zu, \"encoder\": {\"accuracy\": %.17g, \"macro_f1\": %.17g, "
                      "\"best_step\": %zu}",
                in->n_test, enc.accuracy, enc.macro_f1, in->best_step);
        if (baselines)
            fprintf(json, ", \"majority\": {\"accuracy\": %.17g, \"macro_f1\": %.17g}, \"bag_of_words\": "
                          "{\"accuracy\": %.17g, \"macro_f1\": %.17g}",
                    maj.accuracy, maj.macro_f1, bow.accuracy, bow.macro_f1);
        fprintf(json, ", \"labels\": [");
        for (size_t i = 0; i < K; i++) fprintf(json, "%s\"%s\"", i ? ", " : "", in->labels[i]);
        fprintf(json, "], \"f1\": [");
        for (size_t i = 0; i < K; i++) fprintf(json, "%s%.17g", i ? ", " : "", f1[i]);
        fprintf(json, "], \"confusion\": [");
        for (size_t i = 0; i < K; i++) {
            fprintf(json, "%s[", i ? ", " : "");
            for (size_t j = 0; j < K; j++) fprintf(json, "%s%zu", j ? ", " : "", conf[i * K + j]);
            fprintf(json, "]");
        }
        fprintf(json, "]}}\n");
    }
    free(conf), free(f1);
    return ATTN_OK;
}

/* What the command line asks for. */
typedef struct cls_args {
    attn_encoder_config mc;
    attn_train_config tc;
    attn_cls_opts co; /* defaults tuned on validation: docs/classify.md */
    const char *data, *out, *resume, *json_log, *config;
    size_t log_every, stop_at, iters;
    int baselines, force, log_curves;
} cls_args;

/* Parses the flags into a, the hyperparameters settled from the defaults,
 * --config, the checkpoint being resumed and the flags, and checks them. -1
 * when the run goes on, else the exit status (--help, a usage error). */
static int cls_parse(int argc, char **argv, cls_args *a)
{
    static const struct option fixed[] = {
        {"task", required_argument, 0, O_TASK}, {"data", required_argument, 0, O_DATA},
        {"out", required_argument, 0, O_OUT}, {"resume", required_argument, 0, O_RESUME},
        {"json-log", required_argument, 0, O_JSON_LOG}, {"log-every", required_argument, 0, O_LOG_EVERY},
        {"stop-at", required_argument, 0, O_STOP_AT}, {"no-baselines", no_argument, 0, O_NO_BASE},
        {"force", no_argument, 0, O_FORCE}, {"log-curves", no_argument, 0, O_LOG_CURVES}, {"config", required_argument, 0, O_CONFIG},
        {"help", no_argument, 0, 'h'}};
    const attn_hparams *h = attn_cls_hparams();
    static struct option longopts[128];
    static char names[CLI_HP_MAX * 2][40];
    memcpy(longopts, fixed, sizeof fixed);
    cli_hp_longopts(h, longopts, sizeof fixed / sizeof *fixed, sizeof longopts / sizeof *longopts, names);
    memset(a, 0, sizeof *a);
    void *const parts[3] = {&a->mc, &a->tc, &a->co};
    attn_hparams_defaults(h, parts);
    cli_hp_flag flags[64];
    size_t n_flags = 0;
    a->log_every = 50, a->baselines = 1;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, stdout), cli_hp_help(stdout, h), fputs(usage_tail, stdout);
            return cli_finish_stdout("train");
        case O_TASK: break;
        case O_DATA: a->data = optarg; break;
        case O_OUT: a->out = optarg; break;
        case O_RESUME: a->resume = optarg; break;
        case O_CONFIG: a->config = optarg; break;
        case O_JSON_LOG: a->json_log = optarg; break;
        case O_LOG_EVERY:
            if (parse_size(optarg, &a->log_every))
                return cli_usage_error("train", usage, "--log-every: expected an integer > 0, found '%s'", optarg);
            break;
        case O_STOP_AT:
            if (parse_size(optarg, &a->stop_at))
                return cli_usage_error("train", usage, "--stop-at: expected an integer > 0, found '%s'", optarg);
            break;
        case O_NO_BASE: a->baselines = 0; break;
        case O_FORCE: a->force = 1; break;
        case O_LOG_CURVES: a->log_curves = 1; break;
        default:
            if (!cli_hp_entry(h, c)) return cli_bad_option("train", usage, c, argv);
            if (n_flags == sizeof flags / sizeof *flags)
                return cli_usage_error("train", usage, "too many options");
            flags[n_flags].opt = c, flags[n_flags++].arg = optarg;
        }
    }
    if (optind < argc) return cli_usage_error("train", usage, "unexpected argument '%s'", argv[optind]);
    if (!a->data) return cli_usage_error("train", usage, "missing --data DIR (with train.tsv, valid.tsv, test.tsv)");
    if (!a->out && !a->resume) return cli_usage_error("train", usage, "missing --out DIR (or --resume DIR)");
    if (!a->out) a->out = a->resume;
    int iters_given = 0, rc = cli_hp_settle("train", usage, h, parts, flags, n_flags, a->resume, a->config, &iters_given);
    if (rc) return rc;
    if (iters_given) a->iters = a->tc.iters, a->co.epochs = 0;
    if (!a->co.epochs && !a->iters && !a->resume)
        return cli_usage_error("train", usage, "--epochs 0 needs --iters N (the number of steps)");
    if (!a->resume) {
        attn_encoder_config chk = a->mc;
        chk.vocab_size = 4, chk.classes = 2; /* set from the data; the rest checked here */
        attn_status st = attn_encoder_config_check(&chk);
        if (!st) st = attn_train_config_check(&a->tc);
        if (st) return cli_fail("train", st);
    }
    return -1;
}

/* The run's first lines: the data and the model. */
static void cls_print_header(attn_cls_trainer *t, int resume)
{
    const attn_cls_info *in = attn_cls_trainer_info(t);
    const attn_encoder_config *m = &in->model;
    printf("attn train --task classify: %zu train, %zu validation, %zu test texts (%.1f words "
           "on average), %zu classes, vocabulary %zu\n"
           "encoder: %zu parameters (%zu layers, %zu heads, width %zu, context %zu, %s pooling%s), "
           "batch %zu, %zu steps per epoch, %s step %zu of %zu\n",
           in->n_train, in->n_valid, in->n_test, in->mean_words, m->classes, m->vocab_size,
           attn_encoder_num_params(attn_cls_trainer_model(t)), m->layers, m->heads, m->width,
           m->context, m->pooling == ATTN_POOL_CLS ? "[CLS]" : "mean", m->bias ? ", biases" : "",
           in->train.batch, in->steps_per_epoch, resume ? "resuming at" : "from", in->step,
           in->train.iters);
    printf("(batches group texts of similar length, so steps differ in time; texts/s and ms/step\n"
           " are means over the last %d steps)\n", CLI_RATE_WINDOW);
    fflush(stdout);
}

/* Trains with progress, the log and the curves, reports how it ended (and
 * the test scores when it is done); frees t. The exit status. */
static int cls_run(const cls_args *a, attn_cls_trainer *t, int rank)
{
    attn_status st;
    const char *json_log = rank == 0 ? a->json_log : NULL;
    const int baselines = rank == 0 ? a->baselines : 0;
    const attn_cls_info *in = attn_cls_trainer_info(t);
    cli_progress p;
    memset(&p, 0, sizeof p);
    p.tty = isatty(fileno(stdout)), p.log_every = a->log_every, p.first_step = in->step;
    /* texts per step on average: an epoch's steps cover the training set once */
    cli_curves curves;
    if (rank == 0 && !cli_curves_init(&curves, a->out, "attn train --task classify: encoder", 1, a->log_curves))
        p.curves = &curves;
    p.unit = "texts", p.per_step = (double)in->n_train / (double)(in->steps_per_epoch ? in->steps_per_epoch : 1);
    if (json_log && !(p.json = fopen(json_log, a->resume ? "a" : "w"))) {
        st = attn_error(ATTN_E_IO, "%s: cannot open for writing: %s", json_log, strerror(errno));
        attn_cls_trainer_free(t);
        if (p.curves) cli_curves_free(p.curves);
        return cli_fail("train", st);
    }
    cls_print_header(t, a->resume != NULL);
    cli_signals old;
    cli_catch_stop_signals(&old);
    int stopped = 0;
    struct timespec run0, run1;
    clock_gettime(CLOCK_MONOTONIC, &run0);
    st = attn_cls_trainer_run(t, a->out, a->stop_at, &cli_interrupted, on_progress, &p, &stopped);
    clock_gettime(CLOCK_MONOTONIC, &run1);
    cli_restore_stop_signals(&old);
    if (p.tty) printf("\n");
    if (!st && stopped == 1) {
        printf("stopped at step %zu of %zu%s; checkpoint in %s (continue with --resume %s)\n", in->step,
               in->train.iters, cli_interrupted ? " (interrupted)" : "", a->out, a->out);
    } else if (!st) {
        if (stopped == 2)
            printf("early stop at step %zu: no better validation accuracy in %zu evaluations\n", in->step,
                   in->bad_evals);
        printf("done: step %zu; best validation accuracy %.4f (macro-F1 %.4f) at step %zu; checkpoint in %s\n",
               in->step, in->best_accuracy, in->best_f1, in->best_step, a->out);
        st = report(t, a->out, baselines, p.json, rank);
    }
    if (p.json && fclose(p.json) != 0 && !st) st = attn_error(ATTN_E_IO, "%s: cannot write the log", json_log);
    attn_cls_trainer_free(t);
    if (p.curves) {
        if (!st) cli_curves_finish(p.curves);
        cli_curves_free(p.curves);
    }
    if (st) return cli_fail("train", st);
    cli_dist_end((double)(run1.tv_sec - run0.tv_sec) + 1e-9 * (double)(run1.tv_nsec - run0.tv_nsec));
    return cli_finish_stdout("train");
}

int cmd_train_classify(int argc, char **argv)
{
    cls_args a;
    int rc = cls_parse(argc, argv, &a);
    if (rc >= 0) return rc;
    if ((rc = cli_check_out_dir("train", a.out, a.resume, a.force))) return rc;
    attn_status st = attn_export_check_dir(a.out); /* created by the first checkpoint */
    attn_cls_trainer *t = NULL;
    if (!st) st = a.resume ? attn_cls_trainer_resume(&t, a.resume, a.data, a.iters)
                           : attn_cls_trainer_create(&t, &a.mc, &a.tc, &a.co, a.data);
    int rank = 0; /* mpirun: data parallel, rank 0 alone prints and writes */
    if (!st) st = cli_dist_cls_begin(t, &rank);
    if (st) {
        attn_cls_trainer_free(t);
        return cli_fail("train", st);
    }
    return cls_run(&a, t, rank);
}
