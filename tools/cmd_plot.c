/* cmd_plot.c - `attn plot`: training logs (one JSON object per line, as
 * `attn train --json-log` and bench/gpt_torch.py write them) drawn on the
 * same axes, as SVG or an HTML page. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn/fileio.h"
#include "attn/plot.h"
#include "cli.h"
#include "cmd_plot.h"

static const char usage[] =
    "usage: attn plot LOG.jsonl [LOG2.jsonl ...] --out FILE.svg|FILE.html [options]\n"
    "\n"
    "Draws JSON logs (one object per line with a \"step\", as written by\n"
    "'attn train --json-log' and bench/gpt_torch.py) on the same axes: one line\n"
    "per log and key, named LOG: key. Lines without a step (summaries) are skipped.\n"
    "\n"
    "options:\n"
    "  --out FILE           the picture: .svg, or .html for a page around it (required)\n"
    "  --y KEYS             the keys to draw, comma-separated (train_loss,val_loss)\n"
    "  --y2 KEYS            keys on a second axis at the right, e.g. lr\n"
    "  --log                the left axis in log scale\n"
    "  --title TEXT         the chart's title (the logs' names)\n"
    "  -h, --help           show this help\n";

#define MAX_SERIES 32

typedef struct series_buf {
    char name[256];
    double *x, *y;
    size_t n, cap;
} series_buf;

static int push(series_buf *s, double x, double y)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 256;
        double *nx = realloc(s->x, nc * sizeof *nx);
        if (nx) s->x = nx;
        double *ny = nx ? realloc(s->y, nc * sizeof *ny) : NULL;
        if (!ny) return -1;
        s->y = ny, s->cap = nc;
    }
    s->x[s->n] = x, s->y[s->n++] = y;
    return 0;
}

/* Reads one log into a series per key of keys[0..nk). */
static attn_status read_log(const char *path, char *const *keys, size_t nk, series_buf *out)
{
    char *text = NULL;
    attn_status st = attn_read_text_file(path, (size_t)1 << 30, &text, NULL);
    if (st) return st;
    for (size_t k = 0; k < nk; k++) snprintf(out[k].name, sizeof out[k].name, "%s: %s", path, keys[k]);
    size_t line = 0, points = 0;
    for (char *p = text, *next; !st && p && *p; p = next) {
        next = strchr(p, '\n');
        if (next) *next++ = 0;
        line++;
        if (!p[strspn(p, " \t\r")]) continue;
        cJSON *o = cJSON_Parse(p);
        const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "step");
        if (!cJSON_IsObject(o)) st = attn_error(ATTN_E_FORMAT, "%s:%zu: expected a JSON object", path, line);
        for (size_t k = 0; !st && cJSON_IsNumber(step) && k < nk; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[k]);
            if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
                if (push(&out[k], step->valuedouble, v->valuedouble)) st = attn_error(ATTN_E_NOMEM, "out of memory");
                points++;
            }
        }
        cJSON_Delete(o);
    }
    free(text);
    if (!st && !points)
        st = attn_error(ATTN_E_FORMAT, "%s: no line has a \"step\" and any of the keys asked for", path);
    return st;
}

/* Splits a comma-separated list in place. */
static size_t split(char *s, char **out, size_t max)
{
    size_t n = 0;
    for (char *t = strtok(s, ","); t && n < max; t = strtok(NULL, ",")) out[n++] = t;
    return n;
}

int cmd_plot(int argc, char **argv)
{
    enum { O_OUT = 9000, O_Y, O_Y2, O_LOG, O_TITLE };
    static const struct option longopts[] = {
        {"out", required_argument, 0, O_OUT}, {"y", required_argument, 0, O_Y}, {"y2", required_argument, 0, O_Y2},
        {"log", no_argument, 0, O_LOG}, {"title", required_argument, 0, O_TITLE}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *out = NULL, *title = NULL;
    char ybuf[512] = "train_loss,val_loss", y2buf[512] = "";
    int log_y = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(usage, stdout); return cli_finish_stdout("plot");
        case O_OUT: out = optarg; break;
        case O_Y: snprintf(ybuf, sizeof ybuf, "%s", optarg); break;
        case O_Y2: snprintf(y2buf, sizeof y2buf, "%s", optarg); break;
        case O_LOG: log_y = 1; break;
        case O_TITLE: title = optarg; break;
        default: return cli_bad_option("plot", usage, c, argv);
        }
    }
    char ylabel[600];
    snprintf(ylabel, sizeof ylabel, "%s", ybuf);
    char *keys[MAX_SERIES];
    size_t ny = split(ybuf, keys, MAX_SERIES), n2 = split(y2buf, keys + ny, MAX_SERIES - ny);
    const size_t nk = ny + n2, nlogs = (size_t)(argc - optind);
    if (!nlogs) return cli_usage_error("plot", usage, "missing the log files to draw");
    if (!out) return cli_usage_error("plot", usage, "missing --out FILE.svg or FILE.html");
    const size_t ol = strlen(out);
    const int html = ol > 5 && !strcmp(out + ol - 5, ".html");
    if (!html && !(ol > 4 && !strcmp(out + ol - 4, ".svg")))
        return cli_usage_error("plot", usage, "--out: expected a name ending in .svg or .html, found '%s'", out);
    if (!ny) return cli_usage_error("plot", usage, "--y: expected keys separated by commas");
    if (nk * nlogs > MAX_SERIES) return cli_usage_error("plot", usage, "at most %d lines (logs x keys)", MAX_SERIES);
    attn_status st = attn_check_not_input(out, (const char *const *)(argv + optind), nlogs);
    if (st) return cli_fail("plot", st);
    series_buf *s = calloc(nk * nlogs, sizeof *s);
    attn_plot_series *ps = calloc(nk * nlogs, sizeof *ps);
    st = s && ps ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    for (size_t l = 0; !st && l < nlogs; l++) st = read_log(argv[optind + (int)l], keys, nk, s + l * nk);
    char names[512] = "";
    for (size_t l = 0; l < nlogs; l++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", l ? " vs " : "", argv[optind + (int)l]);
    for (size_t i = 0; !st && i < nk * nlogs; i++)
        ps[i] = (attn_plot_series){s[i].name, s[i].x, s[i].y, s[i].n, i % nk >= ny, (int)(i / nk) % 2};
    if (!st) {
        attn_plot p = {title ? title : names, "step", ylabel, n2 ? keys[ny] : NULL, log_y, ps,
                       nk * nlogs};
        st = attn_plot_write(&p, 1, out, html);
    }
    for (size_t i = 0; s && i < nk * nlogs; i++) free(s[i].x), free(s[i].y);
    free(s), free(ps);
    if (st) return cli_fail("plot", st);
    printf("wrote %s (%zu line%s from %zu log%s)\n", out, nk * nlogs, nk * nlogs == 1 ? "" : "s", nlogs,
           nlogs == 1 ? "" : "s");
    return cli_finish_stdout("plot");
}
