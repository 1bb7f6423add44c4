/* browser.c - headless Chromium over the DevTools protocol on a pipe (see
 * browser.h). Chromium reads commands on its fd 3 and writes answers and
 * events on its fd 4, each a JSON object ended by a NUL byte; a command's
 * answer carries its id, a tab's messages its sessionId. */
#include "browser.h"

#include "test_support.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define FLAGS                                                                                        \
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",               \
        "--disable-background-networking", "--disable-component-update", "--disable-sync",           \
        "--enable-logging=stderr", "--v=0", "--hide-scrollbars", "--remote-debugging-pipe"
#define WAIT_S 120.0 /* the longest wait for one answer: a hang fails the test */

struct browser {
    pid_t pid;
    int to, from; /* our ends: commands, answers */
    int next_id;
    char *buf; /* what has been read and not yet taken */
    size_t len, cap;
    char dir[600], log[700];
    long log_seen;       /* bytes of the log already checked */
    char problem[600];   /* the first console message or error of the page */
    char session[128];   /* the tab whose events count ("": none) */
    int loaded;          /* its load event came */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The child: the pipe ends as fds 3 and 4, the log as stderr. */
static void exec_chromium(int cmd_r, int ans_w, const char *dir, const char *log)
{
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test that fails mid-page leaves no browser behind */
#endif
    int r = fcntl(cmd_r, F_DUPFD, 10), w = fcntl(ans_w, F_DUPFD, 10);
    int out = open("/dev/null", O_WRONLY), err = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (r < 0 || w < 0 || out < 0 || err < 0) _exit(127);
    dup2(out, 1), dup2(err, 2), dup2(r, 3), dup2(w, 4);
    for (int fd = 5; fd < 64; fd++) close(fd);
    char udd[700];
    snprintf(udd, sizeof udd, "--user-data-dir=%s", dir);
    execl(BROWSER_CHROMIUM, BROWSER_CHROMIUM, FLAGS, udd, "about:blank", (char *)NULL);
    _exit(127);
}

static void send_json(browser *b, cJSON *msg)
{
    char *s = cJSON_PrintUnformatted(msg);
    assert_non_null(s);
    size_t n = strlen(s) + 1, off = 0; /* with its NUL */
    while (off < n) {
        ssize_t k = write(b->to, s + off, n - off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) fail_msg("chromium: cannot send a command (%s); its log: %s", strerror(errno), b->log);
        off += (size_t)k;
    }
    free(s);
}

/* The next message, parsed (to cJSON_Delete). */
static cJSON *next_message(browser *b, double deadline)
{
    for (;;) {
        char *end = b->len ? memchr(b->buf, '\0', b->len) : NULL;
        if (end) {
            cJSON *m = cJSON_Parse(b->buf);
            const size_t used = (size_t)(end - b->buf) + 1;
            memmove(b->buf, b->buf + used, b->len - used);
            b->len -= used;
            if (!m) fail_msg("chromium: a message that is not JSON");
            return m;
        }
        const double left = deadline - now_s();
        if (left <= 0) fail_msg("chromium: no answer within %.0f s; its log: %s", WAIT_S, b->log);
        struct pollfd p = {b->from, POLLIN, 0};
        const int ready = poll(&p, 1, (int)(left * 1000) + 1);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) continue;
        if (b->cap - b->len < 65536) {
            char *t = realloc(b->buf, b->cap * 2 + 65536);
            assert_non_null(t);
            b->buf = t, b->cap = b->cap * 2 + 65536;
        }
        ssize_t k = read(b->from, b->buf + b->len, b->cap - b->len);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) fail_msg("chromium ended; its log: %s", b->log);
        b->len += (size_t)k;
    }
}

/* A console message, an uncaught exception or a log entry of the page's tab
 * is a problem (the first is kept); the load event is noted. */
static void on_event(browser *b, const cJSON *m, const char *method)
{
    const cJSON *sid = cJSON_GetObjectItemCaseSensitive(m, "sessionId");
    if (!b->session[0] || !cJSON_IsString(sid) || strcmp(sid->valuestring, b->session)) return;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "params");
    if (!strcmp(method, "Page.loadEventFired")) {
        b->loaded = 1;
        return;
    }
    const int console = !strcmp(method, "Runtime.consoleAPICalled");
    const int thrown = !strcmp(method, "Runtime.exceptionThrown");
    const int logged = !strcmp(method, "Log.entryAdded");
    if (b->problem[0] || !(console || thrown || logged)) return;
    char *s = cJSON_PrintUnformatted(p);
    snprintf(b->problem, sizeof b->problem, "%s %.500s", method, s ? s : "");
    free(s);
}

/* Sends method(params) (to the tab when session is set) and returns the
 * answer's result (to cJSON_Delete, with its message); events on the way
 * are seen by on_event. An error answer fails the test. */
static cJSON *call(browser *b, const char *session, const char *method, cJSON *params, cJSON **holder)
{
    cJSON *msg = cJSON_CreateObject();
    const int id = ++b->next_id;
    cJSON_AddNumberToObject(msg, "id", id);
    cJSON_AddStringToObject(msg, "method", method);
    if (params) cJSON_AddItemToObject(msg, "params", params);
    if (session) cJSON_AddStringToObject(msg, "sessionId", session);
    send_json(b, msg);
    cJSON_Delete(msg);
    const double deadline = now_s() + WAIT_S;
    for (;;) {
        cJSON *m = next_message(b, deadline);
        const cJSON *mid = cJSON_GetObjectItemCaseSensitive(m, "id");
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(m, "method");
        if (cJSON_IsNumber(mid) && mid->valueint == id) {
            const cJSON *err = cJSON_GetObjectItemCaseSensitive(m, "error");
            if (err) {
                char *s = cJSON_PrintUnformatted(err);
                fail_msg("chromium: %s failed: %s", method, s ? s : "?");
            }
            *holder = m;
            return cJSON_GetObjectItemCaseSensitive(m, "result");
        }
        if (cJSON_IsString(ev)) on_event(b, m, ev->valuestring);
        cJSON_Delete(m);
    }
}

/* call() for a command whose answer is not needed. */
static void command(browser *b, const char *session, const char *method, cJSON *params)
{
    cJSON *holder = NULL;
    call(b, session, method, params, &holder);
    cJSON_Delete(holder);
}

browser *browser_start(void)
{
    if (access(BROWSER_CHROMIUM, X_OK) != 0) return NULL;
    browser *b = calloc(1, sizeof *b);
    assert_non_null(b);
    snprintf(b->dir, sizeof b->dir, "%.400s/chromium-XXXXXX", test_tmpdir());
    if (!mkdtemp(b->dir)) fail_msg("cannot create %s", b->dir);
    snprintf(b->log, sizeof b->log, "%s.log", b->dir);
    int cmd[2], ans[2];
    if (pipe(cmd) || pipe(ans)) fail_msg("pipe failed");
    signal(SIGPIPE, SIG_IGN); /* a browser that died: a failed write, not a dead test */
    b->pid = fork();
    if (b->pid < 0) fail_msg("fork failed");
    if (b->pid == 0) exec_chromium(cmd[0], ans[1], b->dir, b->log);
    close(cmd[0]), close(ans[1]);
    b->to = cmd[1], b->from = ans[0];
    fcntl(b->to, F_SETFD, FD_CLOEXEC), fcntl(b->from, F_SETFD, FD_CLOEXEC);
    command(b, NULL, "Browser.getVersion", NULL); /* it answers: it is up */
    return b;
}

/* New lines of Chromium's log that report the page's console (what
 * --enable-logging=stderr prints: "...:CONSOLE(...)] ..." or "Uncaught"). */
static void check_log(browser *b, const char *what)
{
    FILE *f = fopen(b->log, "rb");
    if (!f) return;
    char line[1024];
    int bad = 0;
    if (fseek(f, b->log_seen, SEEK_SET) == 0)
        while (!bad && fgets(line, sizeof line, f)) bad = strstr(line, "CONSOLE") || strstr(line, "Uncaught");
    if (fseek(f, 0, SEEK_END) == 0) b->log_seen = ftell(f); /* the next page starts after this one */
    fclose(f);
    if (bad) fail_msg("%s: console output: %s", what, line);
}

static unsigned char *base64_decode(const char *s, size_t *n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const size_t len = strlen(s);
    unsigned char *out = malloc(len / 4 * 3 + 3);
    assert_non_null(out);
    size_t k = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len && s[i] != '='; i++) {
        const char *p = strchr(abc, s[i]);
        if (!p || !s[i]) fail_msg("a screenshot that is not base64");
        acc = acc << 6 | (unsigned)(p - abc), bits += 6;
        if (bits >= 8) bits -= 8, out[k++] = (unsigned char)(acc >> bits);
    }
    *n = k;
    return out;
}

static void screenshot_to(browser *b, const char *session, const char *png)
{
    cJSON *params = cJSON_CreateObject(), *holder = NULL;
    cJSON_AddStringToObject(params, "format", "png");
    const cJSON *r = call(b, session, "Page.captureScreenshot", params, &holder);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(r, "data");
    if (!cJSON_IsString(data)) fail_msg("chromium: a screenshot without data");
    size_t n = 0;
    unsigned char *bytes = base64_decode(data->valuestring, &n);
    cJSON_Delete(holder);
    FILE *f = fopen(png, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) fail_msg("cannot write %s", png);
    free(bytes);
}

/* The condition as a promise of its value, polled every 20 ms for 60 s. */
static cJSON *until_params(const char *until)
{
    char expr[2048];
    snprintf(expr, sizeof expr,
             "new Promise((ok) => { const t0 = Date.now(); (function f() { let v = false; "
             "try { v = !!(%s); } catch (e) {} if (v || Date.now() - t0 > 60000) ok(v); "
             "else setTimeout(f, 20); })(); })",
             until);
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "expression", expr);
    cJSON_AddBoolToObject(p, "awaitPromise", 1);
    cJSON_AddBoolToObject(p, "returnByValue", 1);
    return p;
}

static const char *string_of(const cJSON *o, const char *key, const char *what)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) fail_msg("chromium: %s without %s", what, key);
    return v->valuestring;
}

char *browser_load(browser *b, const browser_page *pg)
{
    char url[1400], what[1400], target[128];
    snprintf(url, sizeof url, "file://%s%s", pg->path, pg->fragment ? pg->fragment : "");
    snprintf(what, sizeof what, "%s%s", pg->path, pg->fragment ? pg->fragment : "");
    b->session[0] = '\0';
    struct stat sb;
    if (stat(b->log, &sb) == 0) b->log_seen = (long)sb.st_size; /* what came before is not this page's */
    cJSON *p = cJSON_CreateObject(), *holder = NULL;
    cJSON_AddStringToObject(p, "url", "about:blank");
    const cJSON *r = call(b, NULL, "Target.createTarget", p, &holder);
    snprintf(target, sizeof target, "%s", string_of(r, "targetId", "a new tab"));
    cJSON_Delete(holder);
    p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "targetId", target);
    cJSON_AddBoolToObject(p, "flatten", 1);
    r = call(b, NULL, "Target.attachToTarget", p, &holder);
    snprintf(b->session, sizeof b->session, "%s", string_of(r, "sessionId", "a tab"));
    cJSON_Delete(holder);
    const char *session = b->session;
    b->loaded = 0, b->problem[0] = '\0';
    command(b, session, "Page.enable", NULL);
    command(b, session, "Runtime.enable", NULL);
    command(b, session, "Log.enable", NULL);
    p = cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "width", pg->width ? pg->width : 1400);
    cJSON_AddNumberToObject(p, "height", pg->height ? pg->height : 1000);
    cJSON_AddNumberToObject(p, "deviceScaleFactor", 1);
    cJSON_AddBoolToObject(p, "mobile", 0);
    command(b, session, "Emulation.setDeviceMetricsOverride", p);
    p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "url", url);
    r = call(b, session, "Page.navigate", p, &holder);
    const cJSON *nav_err = cJSON_GetObjectItemCaseSensitive(r, "errorText");
    if (cJSON_IsString(nav_err)) fail_msg("%s: %s", what, nav_err->valuestring);
    cJSON_Delete(holder);
    const double deadline = now_s() + WAIT_S;
    while (!b->loaded) {
        cJSON *m = next_message(b, deadline);
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(m, "method");
        if (cJSON_IsString(ev)) on_event(b, m, ev->valuestring);
        cJSON_Delete(m);
    }
    command(b, session, "Runtime.evaluate",
            until_params(pg->until ? pg->until : "document.body && document.body.hasAttribute('data-ready')"));
    if (pg->png) screenshot_to(b, session, pg->png);
    p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "expression", "document.documentElement.outerHTML");
    cJSON_AddBoolToObject(p, "returnByValue", 1);
    r = call(b, session, "Runtime.evaluate", p, &holder);
    char *dom = strdup(string_of(cJSON_GetObjectItemCaseSensitive(r, "result"), "value", "the document"));
    cJSON_Delete(holder);
    p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "targetId", target);
    b->session[0] = '\0';
    command(b, NULL, "Target.closeTarget", p);
    if (b->problem[0]) fail_msg("%s: %s", what, b->problem);
    check_log(b, what);
    return dom;
}

void browser_stop(browser *b)
{
    if (!b) return;
    cJSON *msg = cJSON_CreateObject();
    cJSON_AddNumberToObject(msg, "id", ++b->next_id);
    cJSON_AddStringToObject(msg, "method", "Browser.close");
    char *s = cJSON_PrintUnformatted(msg);
    if (s && write(b->to, s, strlen(s) + 1) < 0) { /* already gone: reaped below */
    }
    free(s);
    cJSON_Delete(msg);
    close(b->to), close(b->from);
    int status = 0;
    pid_t got = 0;
    for (int i = 0; i < 200 && (got = waitpid(b->pid, &status, WNOHANG)) == 0; i++) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    if (got == 0) kill(b->pid, SIGKILL), waitpid(b->pid, &status, 0);
    run_result r = run_cmd("rm -rf '%s'", b->dir);
    run_result_free(&r);
    free(b->buf);
    free(b);
}
