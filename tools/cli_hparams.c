/* cli_hparams.c - a trainer's flags, --help and --config from its table. */
#include "cli_hparams.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int on_cli(const attn_hparam *p) { return !(p->flags & (ATTN_HP_DATA | ATTN_HP_HIDDEN)); }

size_t cli_hp_longopts(const attn_hparams *h, struct option *longopts, size_t n, size_t cap,
                       char (*names)[40])
{
    for (size_t i = 0; i < h->n && i < CLI_HP_MAX; i++) {
        const attn_hparam *p = &h->p[i];
        if (!on_cli(p) || n + 2 >= cap) continue;
        char *flag = attn_hparam_flag(p, names[2 * i], 40), *no = names[2 * i + 1];
        longopts[n++] = (struct option){flag, p->type == ATTN_HP_BOOL ? no_argument : required_argument, 0,
                                        CLI_HP_OPT + (int)i};
        if (p->type == ATTN_HP_BOOL) {
            snprintf(no, 40, "no-%s", flag);
            longopts[n++] = (struct option){no, no_argument, 0, CLI_HP_NO + (int)i};
        }
    }
    longopts[n] = (struct option){0, 0, 0, 0};
    return n;
}

static void default_text(const attn_hparam *p, char *buf, size_t n)
{
    if (p->type == ATTN_HP_FLOAT) attn_float_shortest(buf, n, (float)p->def);
    else if (p->type == ATTN_HP_BOOL) snprintf(buf, n, "%s", p->def ? "on" : "off");
    else if (p->type == ATTN_HP_CHOICE) {
        const char *c = p->arg;
        for (int i = 0; i < (int)p->def && strchr(c, '|'); i++) c = strchr(c, '|') + 1;
        snprintf(buf, n, "%.*s", (int)strcspn(c, "|"), c);
    } else snprintf(buf, n, "%.0f", p->def);
}

void cli_hp_help(FILE *f, const attn_hparams *h)
{
    const char *done[8] = {0};
    size_t n_done = 0;
    for (size_t s = 0; s < h->n; s++) {
        const char *sec = h->p[s].section;
        int seen = 0;
        for (size_t k = 0; k < n_done; k++) seen |= !strcmp(done[k], sec);
        if (seen || n_done == 8) continue;
        done[n_done++] = sec;
        fprintf(f, "%s:\n", sec);
        for (size_t i = s; i < h->n; i++) {
            const attn_hparam *p = &h->p[i];
            if (!on_cli(p) || strcmp(p->section, sec)) continue;
            char name[40], flag[96], def[32];
            attn_hparam_flag(p, name, sizeof name);
            if (p->type == ATTN_HP_BOOL) snprintf(flag, sizeof flag, "--%s, --no-%s", name, name);
            else snprintf(flag, sizeof flag, "--%s %s", name, p->arg);
            default_text(p, def, sizeof def);
            fprintf(f, "  %-20s ", flag);
            for (const char *line = p->help; line;) {
                const char *nl = strchr(line, '\n');
                if (nl) fprintf(f, "%.*s\n%23s", (int)(nl - line), line, "");
                else fprintf(f, "%s (%s)\n", line, def);
                line = nl ? nl + 1 : NULL;
            }
        }
    }
}

const attn_hparam *cli_hp_entry(const attn_hparams *h, int opt)
{
    int i = opt >= CLI_HP_NO ? opt - CLI_HP_NO : opt - CLI_HP_OPT;
    return opt >= CLI_HP_OPT && i >= 0 && (size_t)i < h->n ? &h->p[i] : NULL;
}

int cli_hp_settle(const char *cmd, const char *usage, const attn_hparams *h, void *const *parts,
                  const cli_hp_flag *flags, size_t n, const char *resume, const char *config,
                  int *iters_given)
{
    if (resume && config) return cli_usage_error(cmd, usage, "--config cannot be changed when resuming");
    *iters_given = 0;
    for (size_t i = 0; i < n; i++) {
        const attn_hparam *p = cli_hp_entry(h, flags[i].opt);
        char flag[40];
        attn_hparam_flag(p, flag, sizeof flag);
        if (resume && !(p->flags & ATTN_HP_RESUMABLE))
            return cli_usage_error(cmd, usage, "--%s cannot be changed when resuming (the checkpoint holds it)", flag);
        *iters_given |= !strcmp(p->name, "iters");
    }
    if (config) {
        char *text = NULL;
        size_t len = 0;
        attn_status st = attn_read_file(config, CLI_TEXT_LIMIT, ATTN_READ_TEXT, &text, &len);
        if (!st) st = attn_hparams_from_json(h, parts, text, config, NULL);
        free(text);
        if (st) return cli_fail(cmd, st);
    }
    for (size_t i = 0; i < n; i++) {
        const attn_hparam *p = cli_hp_entry(h, flags[i].opt);
        const char *arg = p->type == ATTN_HP_BOOL ? (flags[i].opt >= CLI_HP_NO ? "false" : "true") : flags[i].arg;
        if (attn_hparam_parse(p, parts, arg)) return cli_usage_error(cmd, usage, "%s", attn_last_error());
    }
    return CLI_OK;
}
