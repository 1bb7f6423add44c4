/* cli.c - shared helpers of the attn subcommands. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attn/fileio.h"

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "attn %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_fail(const char *cmd, attn_status st)
{
    /* A failed write to stdout is a failure of the output (1), whichever
     * layer noticed it first: reported as cli_finish_stdout does. */
    if (ferror(stdout)) return cli_finish_stdout(cmd);
    cli_error(cmd, "%s", attn_last_error()[0] ? attn_last_error() : attn_status_str(st));
    switch (st) {
    case ATTN_E_FORMAT:
    case ATTN_E_INVALID:
    case ATTN_E_IO:
    case ATTN_E_NOTFOUND: return CLI_BAD_INPUT;
    default: return CLI_FAIL;
    }
}

/* A usage error is the message and one line: the command's synopsis (the
 * first line of its usage) and where the full help is, not 40 lines of help
 * that push the message off the screen. */
int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "attn %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    const char *nl = strchr(usage, '\n');
    int first = nl ? (int)(nl - usage) : (int)strlen(usage);
    /* The classifier trainer has its own help under `attn train --task classify`. */
    const char *sub = strstr(usage, "--task classify") && strstr(usage, "--task classify") < usage + first
                          ? " --task classify"
                          : "";
    fprintf(stderr, "\n%.*s  (all options: attn %s%s --help)\n", first, usage, cmd, sub);
    return CLI_BAD_INPUT;
}

/* Under mpirun only rank 0 writes checkpoints (the launchers' variables:
 * MPI itself starts later, after the inputs are read). */
static int writes_checkpoints(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *r = getenv(vars[i]);
        if (r && *r) return strcmp(r, "0") == 0;
    }
    return 1;
}

int cli_check_out_dir(const char *cmd, const char *out, const char *resume, int force)
{
    /* Another run writing there is refused before any work (its lock is
     * dropped by the kernel if it dies). */
    attn_status st = writes_checkpoints() ? attn_checkpoint_lock(out) : ATTN_OK;
    if (st) return cli_fail(cmd, st);
    if (force || (resume && strcmp(resume, out) == 0)) return CLI_OK;
    size_t n = strlen(out) + sizeof "/config.json";
    char *cfg = malloc(n);
    if (!cfg) {
        cli_error(cmd, "out of memory");
        return CLI_FAIL;
    }
    snprintf(cfg, n, "%s/config.json", out);
    int held = access(cfg, F_OK) == 0;
    free(cfg);
    if (!held) return CLI_OK;
    cli_error(cmd, "%s already holds a checkpoint: continue it with --resume %s, or replace it with --force",
              out, out);
    return CLI_BAD_INPUT;
}

int cli_bad_option(const char *cmd, const char *usage, int opt, char **argv)
{
    const char *arg = argv[optind - 1];
    if (opt == ':') return cli_usage_error(cmd, usage, "option '%s' needs a value", arg);
    if (optopt && optopt < 256)
        return cli_usage_error(cmd, usage, "unknown option '-%c'", optopt);
    return cli_usage_error(cmd, usage, "unknown option '%s'", arg);
}

int cli_parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v) || !isfinite((float)v)) return -1;
    *out = (float)v;
    return 0;
}

int cli_parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

int cli_parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int cli_color_mode(const char *arg)
{
    if (strcmp(arg, "always") == 0) return 1;
    if (strcmp(arg, "never") == 0) return 0;
    if (strcmp(arg, "auto") == 0) {
        const char *no = getenv("NO_COLOR"), *term = getenv("TERM");
        if (no && no[0]) return 0;
        if (term && strcmp(term, "dumb") == 0) return 0;
        return isatty(fileno(stdout)) ? 1 : 0;
    }
    return -1;
}

int cli_finish_stdout(const char *cmd)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error(cmd, "cannot write the output: %s", strerror(errno));
        return CLI_FAIL;
    }
    return CLI_OK;
}

void cli_attention_defaults(cli_attention_opts *o)
{
    memset(o, 0, sizeof *o);
    o->sdpa = attn_sdpa_defaults();
    o->text.precision = 3;
    o->text.color = cli_color_mode("auto");
}

int cli_attention_option(const char *cmd, const char *usage, int opt, const char *arg,
                         cli_attention_opts *o)
{
    switch (opt) {
    case CLI_OPT_NO_SCALE: o->sdpa.scale_mode = ATTN_SCALE_NONE; return 1;
    case CLI_OPT_SCALE:
        if (cli_parse_float(arg, &o->sdpa.scale)) {
            cli_usage_error(cmd, usage, "--scale: expected a finite number, found '%s'", arg);
            return -1;
        }
        o->sdpa.scale_mode = ATTN_SCALE_CUSTOM;
        return 1;
    case CLI_OPT_TEMPERATURE:
        if (cli_parse_float(arg, &o->sdpa.temperature) || !(o->sdpa.temperature > 0)) {
            cli_usage_error(cmd, usage, "--temperature: expected a number > 0, found '%s'", arg);
            return -1;
        }
        return 1;
    case CLI_OPT_CAUSAL: o->sdpa.causal = ATTN_CAUSAL_TOP_LEFT; return 1;
    case CLI_OPT_JSON: o->json = 1; return 1;
    case CLI_OPT_COLOR: {
        int c = cli_color_mode(arg);
        if (c < 0) {
            cli_usage_error(cmd, usage, "--color: expected auto, always or never, found '%s'", arg);
            return -1;
        }
        o->text.color = c;
        return 1;
    }
    case CLI_OPT_PRECISION:
        if (cli_parse_int(arg, 0, 9, &o->text.precision)) {
            cli_usage_error(cmd, usage, "--precision: expected an integer 0..9, found '%s'", arg);
            return -1;
        }
        return 1;
    default: return 0;
    }
}

void cli_describe_scale(char *buf, size_t n, const attn_sdpa_params *p, size_t d)
{
    float s = attn_sdpa_scale(p, d);
    if (p->scale_mode == ATTN_SCALE_NONE) snprintf(buf, n, "no scaling");
    else if (p->scale_mode == ATTN_SCALE_CUSTOM) snprintf(buf, n, "scale %g", (double)s);
    else snprintf(buf, n, "scale 1/√d = 1/√%zu = %.4g", d, (double)s);
    if (p->temperature != 1.0f) {
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, ", temperature %g", (double)p->temperature);
    }
    if (p->causal != ATTN_CAUSAL_NONE) {
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, ", causal");
    }
}

int cli_export_option(int opt, const char *arg, cli_export_opts *e)
{
    switch (opt) {
    case CLI_OPT_HTML: e->html = arg; return 1;
    case CLI_OPT_SVG: e->svg = arg; return 1;
    case CLI_OPT_CSV: e->csv = arg; return 1;
    case CLI_OPT_XLSX: e->xlsx = arg; return 1;
    default: return 0;
    }
}

int cli_export_any(const cli_export_opts *e) { return e->html || e->svg || e->csv || e->xlsx; }

attn_status cli_export_check(const cli_export_opts *e)
{
    attn_status st = ATTN_OK;
    if (!st && e->html) st = attn_export_check_file(e->html);
    if (!st && e->xlsx) st = attn_export_check_file(e->xlsx);
    if (!st && e->svg) st = attn_export_check_dir(e->svg);
    if (!st && e->csv) st = attn_export_check_dir(e->csv);
    return st;
}

attn_status cli_export_check_inputs(const cli_export_opts *e, const char *const *inputs, size_t n)
{
    attn_status st = attn_check_not_input(e->html, inputs, n);
    if (!st) st = attn_check_not_input(e->xlsx, inputs, n);
    return st;
}

attn_status cli_export_run(const cli_export_opts *e, const attn_doc *doc)
{
    attn_status st = ATTN_OK;
    if (!st && e->html && !(st = attn_export_html(doc, e->html)))
        printf("wrote %s (interactive page: open it in a browser)\n", e->html);
    if (!st && e->xlsx && !(st = attn_export_xlsx(doc, e->xlsx)))
        printf("wrote %s (workbook of live formulas)\n", e->xlsx);
    if (!st && e->svg && !(st = attn_export_svg(doc, e->svg)))
        printf("wrote %s/ (one SVG heatmap per matrix)\n", e->svg);
    if (!st && e->csv && !(st = attn_export_csv(doc, e->csv)))
        printf("wrote %s/ (one CSV per matrix)\n", e->csv);
    return st;
}

volatile sig_atomic_t cli_interrupted = 0;

/* The first stop signal asks for a checkpoint; a second one (of any of
 * them) ends the process at once, as if it had not been caught. */
static void on_stop(int sig)
{
    if (cli_interrupted) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, NULL);
        raise(sig); /* delivered when the handler returns */
        return;
    }
    cli_interrupted = sig;
}

void cli_catch_stop_signals(cli_signals *saved)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &saved->old[0]);
    sigaction(SIGTERM, &sa, &saved->old[1]);
    /* SIGHUP: on a terminal it means the user is gone and ends the run
     * (the last checkpoint stays); under nohup it stays ignored. */
    saved->hup = 0;
    if (!isatty(STDIN_FILENO) && sigaction(SIGHUP, NULL, &saved->old[2]) == 0 &&
        saved->old[2].sa_handler != SIG_IGN) {
        sigaction(SIGHUP, &sa, NULL);
        saved->hup = 1;
    }
}

void cli_restore_stop_signals(const cli_signals *saved)
{
    sigaction(SIGINT, &saved->old[0], NULL);
    sigaction(SIGTERM, &saved->old[1], NULL);
    if (saved->hup) sigaction(SIGHUP, &saved->old[2], NULL);
}

void cli_default_sigpipe(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
}

void cli_format_eta(char *buf, size_t n, double s)
{
    if (!isfinite(s) || s < 0) s = 0;
    unsigned long t = (unsigned long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%luh%02lum", t / 3600, t / 60 % 60);
    else snprintf(buf, n, "%lum%02lus", t / 60, t % 60);
}

void cli_progress_line(cli_progress *p, const attn_train_event *e, const char *eval_text)
{
    const double per_step = e->elapsed_s / (double)(e->step - p->first_step);
    char eta[32], rate[96];
    cli_format_eta(eta, sizeof eta, per_step * (double)(e->iters - e->step));
    if (p->unit) {
        p->win_ms[p->win_at] = e->ms_per_iter;
        p->win_at = (p->win_at + 1) % CLI_RATE_WINDOW;
        if (p->win_n < CLI_RATE_WINDOW) p->win_n++;
        double ms = 0.0;
        for (size_t i = 0; i < p->win_n; i++) ms += p->win_ms[i];
        ms /= (double)p->win_n;
        snprintf(rate, sizeof rate, "%.0f %s/s  %.1f ms/step", ms > 0 ? 1e3 * p->per_step / ms : 0.0,
                 p->unit, ms);
    } else {
        snprintf(rate, sizeof rate, "%.0f tok/s  %.1f ms/it", e->tokens_per_s, e->ms_per_iter);
    }
    if (p->tty) {
        printf("\rstep %zu/%zu  loss %.4f%s  %s  ETA %s\033[K", e->step, e->iters, e->train_loss,
               eval_text, rate, eta);
        if (e->evaluated) printf("\n");
        fflush(stdout);
    } else if (e->evaluated || e->step % p->log_every == 0 || e->step == e->iters) {
        printf("step %zu/%zu  loss %.4f%s  %s  ETA %s\n", e->step, e->iters, e->train_loss, eval_text,
               rate, eta);
        fflush(stdout);
    }
}
