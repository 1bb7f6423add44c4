/* ckpt_dir.c - the checkpoint directory shared by every model (ckpt_dir.h):
 * a whole state committed by renaming one pointer, files stamped with model,
 * run and step, and the run's name. */
#include "ckpt_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attn/fileio.h"
#include "attn/safetensors.h"

#define STEPS ".steps"
#define CURRENT "current"
#define CURRENT_TMP "current.tmp"

char *ckpt_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

attn_status ckpt_paths(const char *dir, const char *const *names, size_t n, char **paths)
{
    for (size_t i = 0; i < n; i++)
        if (!(paths[i] = ckpt_path(dir, names[i]))) {
            while (i) free(paths[--i]), paths[i] = NULL;
            return attn_error(ATTN_E_NOMEM, "out of memory");
        }
    return ATTN_OK;
}

/* ---- the directory ---------------------------------------------------------- */

/* fsync of a directory makes the renames and creations in it durable; file
 * systems that cannot (EINVAL) offer nothing better, so that is no error. */
static attn_status sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return attn_error(ATTN_E_IO, "%s: cannot open the directory: %s", path, strerror(errno));
    int rc = fsync(fd), e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL)
        return attn_error(ATTN_E_IO, "%s: cannot sync the directory: %s", path, strerror(e));
    return ATTN_OK;
}

static attn_status sync_parent(const char *path)
{
    char *p = strdup(path);
    if (!p) return attn_error(ATTN_E_NOMEM, "out of memory");
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = '\0';
    char *slash = strrchr(p, '/');
    attn_status st;
    if (!slash) st = sync_dir(".");
    else {
        slash[slash == p] = '\0'; /* "/x" -> "/" */
        st = sync_dir(p);
    }
    free(p);
    return st;
}

/* mkdir, or an existing directory; a new one is made durable in its parent. */
static attn_status make_dir(const char *path)
{
    if (mkdir(path, 0777) == 0) return sync_parent(path);
    int e = errno;
    struct stat sb;
    if (e == EEXIST && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) return ATTN_OK;
    if (e == EEXIST) return attn_error(ATTN_E_IO, "%s: exists and is not a directory", path);
    return attn_error(ATTN_E_IO, "%s: cannot create the directory: %s", path, strerror(e));
}

/* Removes a state directory: its files, then itself (a state holds no
 * subdirectories; anything else stays and so does the directory). */
static void remove_state(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                char *f = ckpt_path(path, e->d_name);
                if (f) unlink(f);
                free(f);
            }
        closedir(d);
    }
    rmdir(path);
}

/* ---- the writer's lock ------------------------------------------------------ */

/* flock(2) on the directory DIR/.steps itself (no lock file to list or
 * remove): the kernel drops it when the process dies, so a killed run never
 * blocks the next one. flock belongs to an open file, so a second open in
 * this process would conflict with the first: the directories this process
 * holds are kept here (by device and inode) and found again. */
typedef struct held_lock {
    dev_t dev;
    ino_t ino;
    int fd;
} held_lock;
static held_lock *g_held;
static size_t g_n_held, g_cap_held;
static char g_held_busy; /* a spin lock over g_held: saves are rare */

static void held_enter(void)
{
    while (__atomic_test_and_set(&g_held_busy, __ATOMIC_ACQUIRE)) {
    }
}
static void held_leave(void) { __atomic_clear(&g_held_busy, __ATOMIC_RELEASE); }

/* Takes the lock of steps (DIR/.steps), or finds it held here already. A file
 * system without flock (some network ones) goes unlocked: no worse than
 * before, and training there should not fail for it. */
static attn_status lock_steps(const char *dir, const char *steps)
{
    int fd = open(steps, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return attn_error(ATTN_E_IO, "%s: cannot open the directory: %s", steps, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return attn_error(ATTN_E_IO, "%s: %s", steps, strerror(e));
    }
    attn_status st = ATTN_OK;
    int keep = 0;
    held_enter();
    size_t i = 0;
    while (i < g_n_held && (g_held[i].dev != sb.st_dev || g_held[i].ino != sb.st_ino)) i++;
    if (i == g_n_held && g_n_held == g_cap_held) {
        size_t cap = g_cap_held ? 2 * g_cap_held : 4;
        held_lock *h = realloc(g_held, cap * sizeof *h);
        if (h) g_held = h, g_cap_held = cap;
        else st = attn_error(ATTN_E_NOMEM, "out of memory");
    }
    if (!st && i == g_n_held) { /* not ours yet */
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            g_held[g_n_held++] = (held_lock){sb.st_dev, sb.st_ino, fd};
            keep = 1;
        } else if (errno == EWOULDBLOCK) {
            st = attn_error(ATTN_E_INVALID, "%s: another training run is writing this checkpoint "
                            "directory; wait for it to end, or write elsewhere", dir);
        }
    }
    held_leave();
    if (!keep) close(fd);
    return st;
}

attn_status ckpt_lock(const char *dir, int create)
{
    if (!dir || !dir[0]) return attn_error(ATTN_E_INVALID, "ckpt_lock: empty directory name");
    char *steps = ckpt_path(dir, STEPS);
    attn_status st = steps ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    struct stat sb;
    if (!st && create) st = make_dir(dir);
    if (!st && create) st = make_dir(steps);
    if (!st && (create || (stat(steps, &sb) == 0 && S_ISDIR(sb.st_mode)))) st = lock_steps(dir, steps);
    free(steps);
    return st;
}

attn_status attn_checkpoint_lock(const char *dir) { return ckpt_lock(dir, 0); }

static void txn_free(ckpt_txn *w)
{
    free(w->dir), free(w->steps), free(w->tmp);
    memset(w, 0, sizeof *w);
}

attn_status ckpt_begin(ckpt_txn *w, const char *dir)
{
    memset(w, 0, sizeof *w);
    if (!dir || !dir[0]) return attn_error(ATTN_E_INVALID, "ckpt_begin: empty directory name");
    w->dir = strdup(dir);
    w->steps = ckpt_path(dir, STEPS);
    attn_status st = w->dir && w->steps ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    if (!st) st = ckpt_lock(dir, 1); /* makes dir and dir/.steps */
    /* A name of this process's own: mkdir with the umask (mkdtemp would make
     * the state 0700, unreadable to the group that may read the rest). */
    static unsigned serial;
    for (unsigned tries = 0; !st && !w->tmp; tries++) {
        char name[64];
        snprintf(name, sizeof name, "tmp-%ld-%u", (long)getpid(), serial++);
        if (!(w->tmp = ckpt_path(w->steps, name))) st = attn_error(ATTN_E_NOMEM, "out of memory");
        else if (mkdir(w->tmp, 0777) != 0) {
            int e = errno;
            free(w->tmp), w->tmp = NULL;
            if (e != EEXIST || tries > 1000)
                st = attn_error(ATTN_E_IO, "%s: cannot create a directory for the new checkpoint: %s",
                                w->steps, strerror(e));
        }
    }
    if (st) txn_free(w);
    return st;
}

/* readlink into a malloc'd string; NULL with errno set when it fails. */
static char *read_link(const char *path)
{
    char buf[512];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0) return NULL;
    if ((size_t)n >= sizeof buf - 1) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    buf[n] = '\0';
    return strdup(buf);
}

attn_status ckpt_state(const char *dir, char **state)
{
    if (!dir || !state) return attn_error(ATTN_E_INVALID, "ckpt_state: NULL");
    *state = NULL;
    char *cur = ckpt_path(dir, STEPS "/" CURRENT);
    if (!cur) return attn_error(ATTN_E_NOMEM, "out of memory");
    char *target = read_link(cur);
    attn_status st = ATTN_OK;
    if (!target) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR) { /* the flat layout, or nothing at all */
            *state = strdup(dir);
            if (!*state) st = attn_error(ATTN_E_NOMEM, "out of memory");
        } else {
            st = attn_error(ATTN_E_FORMAT, "%s: cannot read the checkpoint's pointer: %s", cur,
                            e == EINVAL ? "not a symbolic link" : strerror(e));
        }
    } else if (strncmp(target, "step-", 5) || strchr(target, '/')) {
        st = attn_error(ATTN_E_FORMAT, "%s: points to '%s', not a step of this checkpoint", cur, target);
    } else {
        char *steps = ckpt_path(dir, STEPS);
        *state = steps ? ckpt_path(steps, target) : NULL;
        free(steps);
        if (!*state) st = attn_error(ATTN_E_NOMEM, "out of memory");
    }
    free(cur), free(target);
    return st;
}

static attn_status copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb");
    if (!in) return attn_error(ATTN_E_IO, "%s: cannot open: %s", src, strerror(errno));
    attn_atomic_file af;
    attn_status st = attn_atomic_open(&af, dst);
    char buf[1 << 16];
    size_t got;
    while (!st && (got = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, got, af.f) != got) st = attn_error(ATTN_E_IO, "%s: cannot write: %s", dst, strerror(errno));
    if (!st && ferror(in)) st = attn_error(ATTN_E_IO, "%s: read error", src);
    fclose(in);
    if (st) attn_atomic_abort(&af);
    else st = attn_atomic_commit(&af);
    return st;
}

attn_status ckpt_carry(ckpt_txn *w, const char *from, const char *name)
{
    char *state = NULL;
    attn_status st = ckpt_state(from, &state);
    char *src = st ? NULL : ckpt_path(state, name), *dst = st ? NULL : ckpt_path(w->tmp, name);
    if (!st && (!src || !dst)) st = attn_error(ATTN_E_NOMEM, "out of memory");
    if (!st && link(src, dst) != 0) {
        int e = errno;
        if (e == ENOENT)
            st = attn_error(ATTN_E_IO, "%s: missing, but the checkpoint needs it", src);
        else /* a file system without hard links: a copy */
            st = copy_file(src, dst);
    }
    free(state), free(src), free(dst);
    return st;
}

/* Replaces `path` by a symbolic link to `target` (through a temporary link
 * and rename: never a moment without either). */
static attn_status put_link(const char *path, const char *tmp, const char *target)
{
    unlink(tmp);
    if (symlink(target, tmp) != 0)
        return attn_error(ATTN_E_IO, "%s: cannot create a link: %s", tmp, strerror(errno));
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return attn_error(ATTN_E_IO, "%s: cannot replace it by a link: %s", path, strerror(e));
    }
    return ATTN_OK;
}

/* dir/<name> -> .steps/current/<name> for each file, where not yet so;
 * only_missing: only where dir/<name> does not exist (made before the
 * commit, so that a state is never current without its links; a file of
 * the flat layout is replaced after it, when `current` reads instead). */
static attn_status link_files(const char *dir, const char *const *names, size_t n, int only_missing)
{
    attn_status st = ATTN_OK;
    int changed = 0;
    for (size_t i = 0; !st && i < n; i++) {
        char target[256], tmp_name[256];
        snprintf(target, sizeof target, STEPS "/" CURRENT "/%s", names[i]);
        snprintf(tmp_name, sizeof tmp_name, ".%s.link-tmp", names[i]);
        char *path = ckpt_path(dir, names[i]), *tmp = ckpt_path(dir, tmp_name);
        char *now = path ? read_link(path) : NULL;
        struct stat sb;
        if (path && only_missing && lstat(path, &sb) == 0) {
            free(path), free(tmp), free(now);
            continue;
        }
        if (!path || !tmp) st = attn_error(ATTN_E_NOMEM, "out of memory");
        else if (!now || strcmp(now, target)) st = put_link(path, tmp, target), changed = 1;
        free(path), free(tmp), free(now);
    }
    if (!st && changed) st = sync_dir(dir);
    return st;
}

/* Leftovers of killed saves: in .steps every state but the two kept, and
 * beside the files the temporaries of the flat layout's saves
 * (".config.json.pending", "..config.json.pending.tmp-*") and of links. */
static void prune(const ckpt_txn *w, const char *keep, const char *prev, const char *const *names,
                  size_t n)
{
    DIR *d = opendir(w->steps);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *s = e->d_name;
        if ((keep && !strcmp(s, keep)) || (prev && !strcmp(s, prev))) continue;
        if (strncmp(s, "step-", 5) && strncmp(s, "tmp-", 4) && strcmp(s, CURRENT_TMP)) continue;
        char *p = ckpt_path(w->steps, s);
        struct stat sb;
        if (p && lstat(p, &sb) == 0) {
            if (S_ISDIR(sb.st_mode)) remove_state(p);
            else unlink(p);
        }
        free(p);
    }
    if (d) closedir(d);
    d = opendir(w->dir);
    while (d && (e = readdir(d))) {
        const char *s = e->d_name;
        if (s[0] != '.') continue;
        while (*s == '.') s++;
        for (size_t i = 0; i < n; i++) {
            size_t len = strlen(names[i]);
            if (strncmp(s, names[i], len)) continue;
            const char *rest = s + len;
            if (strncmp(rest, ".pending", 8) && strncmp(rest, ".tmp-", 5) && strcmp(rest, ".link-tmp"))
                continue;
            char *p = ckpt_path(w->dir, e->d_name);
            if (p) unlink(p);
            free(p);
            break;
        }
    }
    if (d) closedir(d);
}

attn_status ckpt_commit(ckpt_txn *w, attn_status st, size_t step, const char *const *names,
                        size_t n)
{
    if (st) {
        remove_state(w->tmp);
        txn_free(w);
        return st;
    }
    char name[64], *final = NULL, *cur = ckpt_path(w->steps, CURRENT);
    char *cur_tmp = ckpt_path(w->steps, CURRENT_TMP), *prev = NULL;
    if (!cur || !cur_tmp) st = attn_error(ATTN_E_NOMEM, "out of memory");
    if (!st) st = sync_dir(w->tmp);
    /* step-N, or step-N.1, ... when a state of that step is kept already */
    for (unsigned k = 0; !st && !final; k++) {
        if (k) snprintf(name, sizeof name, "step-%06zu.%u", step, k);
        else snprintf(name, sizeof name, "step-%06zu", step);
        struct stat sb;
        if (!(final = ckpt_path(w->steps, name))) st = attn_error(ATTN_E_NOMEM, "out of memory");
        else if (lstat(final, &sb) == 0) free(final), final = NULL;
    }
    if (!st && rename(w->tmp, final) != 0)
        st = attn_error(ATTN_E_IO, "%s: cannot rename the new checkpoint into place: %s", final, strerror(errno));
    if (st) remove_state(w->tmp);
    if (!st) st = sync_dir(w->steps);
    if (!st) prev = read_link(cur);
    if (!st) st = link_files(w->dir, names, n, 1);
    /* The commit: `current` names the new state. */
    if (!st) st = put_link(cur, cur_tmp, name);
    if (!st) st = sync_dir(w->steps);
    if (!st) st = link_files(w->dir, names, n, 0);
    if (!st) prune(w, name, prev, names, n);
    free(final), free(cur), free(cur_tmp), free(prev);
    txn_free(w);
    return st;
}

/* ---- files ---------------------------------------------------------------- */

attn_status ckpt_text_write(const char *path, const char *text)
{
    attn_atomic_file af;
    attn_status st = attn_atomic_open(&af, path);
    if (st) return st;
    fputs(text, af.f);
    fputc('\n', af.f);
    return attn_atomic_commit(&af);
}

/* The stamp as metadata, and up to `extra` more pairs after it. */
typedef struct meta {
    const char *k[6], *v[6];
    size_t n;
    char step[32];
} meta;

static void meta_of(meta *m, const ckpt_stamp *s)
{
    snprintf(m->step, sizeof m->step, "%zu", s->step);
    m->n = 0;
    m->k[m->n] = "format", m->v[m->n++] = s->format;
    m->k[m->n] = "step", m->v[m->n++] = m->step;
    if (s->run && s->run[0]) m->k[m->n] = "run", m->v[m->n++] = s->run;
}

static attn_status save_safetensors(const char *path, const attn_param_ref *p, size_t n,
                                    float *const *datas, const meta *m)
{
    attn_st_named *named = calloc(n, sizeof *named);
    attn_tensor *ts = calloc(n, sizeof *ts);
    attn_status st = named && ts ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < n; i++) {
        size_t shape[2] = {p[i].shape[0], p[i].shape[1]};
        st = attn_tensor_view(&ts[i], datas ? datas[i] : p[i].data, p[i].ndim, shape);
        named[i].name = p[i].name, named[i].tensor = &ts[i];
    }
    if (!st) st = attn_safetensors_write(path, named, n, m->k, m->v, m->n);
    free(named), free(ts);
    return st;
}

attn_status ckpt_params_write(const char *path, const ckpt_stamp *s, const attn_param_ref *p,
                              size_t n)
{
    if (!path || !s || !s->format || !p) return attn_error(ATTN_E_INVALID, "ckpt_params_write: NULL");
    meta m;
    meta_of(&m, s);
    return save_safetensors(path, p, n, NULL, &m);
}

attn_status ckpt_optim_write(const char *path, const ckpt_stamp *s, const attn_param_ref *p,
                             size_t n, attn_adamw *opt, const attn_rng *rng)
{
    if (!path || !s || !s->format || !p || !opt || !rng)
        return attn_error(ATTN_E_INVALID, "ckpt_optim_write: NULL");
    meta m;
    meta_of(&m, s);
    char r[4 * 17 + 4], adam[32];
    snprintf(r, sizeof r, "%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64, rng->s[0],
             rng->s[1], rng->s[2], rng->s[3]);
    snprintf(adam, sizeof adam, "%zu", attn_adamw_steps(opt));
    m.k[m.n] = "rng", m.v[m.n++] = r;
    m.k[m.n] = "adam_steps", m.v[m.n++] = adam;
    /* One file: m.<name> then v.<name>. */
    attn_param_ref *both = malloc(2 * n * sizeof *both);
    float **datas = malloc(2 * n * sizeof *datas);
    char **nm = calloc(2 * n, sizeof *nm);
    attn_status st = both && datas && nm ? ATTN_OK : attn_error(ATTN_E_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < 2 * n; i++) {
        both[i] = p[i % n];
        size_t len = strlen(p[i % n].name) + 3;
        if (!(nm[i] = malloc(len))) {
            st = attn_error(ATTN_E_NOMEM, "out of memory");
            break;
        }
        snprintf(nm[i], len, "%c.%s", i < n ? 'm' : 'v', p[i % n].name);
        both[i].name = nm[i];
        float *mo, *vo;
        attn_adamw_moments(opt, i % n, &mo, &vo);
        datas[i] = i < n ? mo : vo;
    }
    if (!st) st = save_safetensors(path, both, 2 * n, datas, &m);
    if (nm)
        for (size_t i = 0; i < 2 * n; i++) free(nm[i]);
    free(nm), free(both), free(datas);
    return st;
}

/* Tensor `name` must be there with the shape of p. */
static attn_status check_shape(const attn_safetensors *sf, const char *path, const char *name,
                               const attn_param_ref *p)
{
    attn_st_info info;
    if (attn_safetensors_info(sf, name, &info))
        return attn_error(ATTN_E_FORMAT, "%s: tensor '%s' is missing", path, name);
    int same = info.ndim == p->ndim && info.shape[0] == p->shape[0] &&
               (p->ndim == 1 || info.shape[1] == p->shape[1]);
    if (same) return ATTN_OK;
    char got[96] = "[", want[64];
    for (int d = 0; d < info.ndim && d < 4; d++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%zu", d ? ", " : "", info.shape[d]);
    strcat(got, "]");
    if (p->ndim == 2) snprintf(want, sizeof want, "[%zu, %zu]", p->shape[0], p->shape[1]);
    else snprintf(want, sizeof want, "[%zu]", p->shape[0]);
    return attn_error(ATTN_E_FORMAT,
                      "%s: tensor '%s' has shape %s, but the configuration needs %s (a checkpoint "
                      "of another architecture?)",
                      path, name, got, want);
}

static attn_status read_into(const attn_safetensors *sf, const char *name, const attn_param_ref *p,
                             float *dst)
{
    attn_tensor t = {0};
    attn_status st = attn_safetensors_read(sf, name, &t);
    if (!st) memcpy(dst, t.data, p->numel * sizeof(float));
    attn_tensor_free(&t);
    return st;
}

/* The model and step (before anything else: a file of another step is
 * usually one of another save), or the run (after the shapes: a file of
 * another architecture is better named so). */
static attn_status check_stamp(const attn_safetensors *sf, const char *path, const ckpt_stamp *s,
                               int run)
{
    if (!s) return ATTN_OK;
    if (run) {
        const char *r = attn_safetensors_metadata(sf, "run");
        if (!s->run || !strcmp(r ? r : "", s->run)) return ATTN_OK;
        return attn_error(ATTN_E_FORMAT,
                          "%s: written by run %s, but config.json is of run %s (a file of another "
                          "run mixed in)",
                          path, r ? r : "(none)", s->run[0] ? s->run : "(none)");
    }
    const char *fmt = attn_safetensors_metadata(sf, "format");
    const char *step = attn_safetensors_metadata(sf, "step");
    if (!fmt || strcmp(fmt, s->format))
        return attn_error(ATTN_E_FORMAT, "%s: not an %s checkpoint (metadata format is not \"%s\")",
                          path, s->format, s->format);
    char want[32];
    snprintf(want, sizeof want, "%zu", s->step);
    if (!step || strcmp(step, want))
        return attn_error(ATTN_E_FORMAT,
                          "%s: written at step %s, but config.json says step %zu (files of two "
                          "checkpoints mixed)",
                          path, step ? step : "(none)", s->step);
    return ATTN_OK;
}

/* Every tensor of p checked (strict: and no other), the run, then loaded. */
static attn_status load_params(const attn_safetensors *sf, const char *path, const ckpt_stamp *s,
                               const attn_param_ref *p, size_t n, int strict)
{
    attn_status st = check_stamp(sf, path, s, 0);
    for (size_t i = 0; !st && i < n; i++) st = check_shape(sf, path, p[i].name, &p[i]);
    for (size_t i = 0; !st && strict && i < attn_safetensors_count(sf); i++) {
        attn_st_info info;
        if (attn_safetensors_info_at(sf, i, &info)) break;
        size_t j = 0;
        while (j < n && strcmp(p[j].name, info.name)) j++;
        if (j == n)
            st = attn_error(ATTN_E_FORMAT,
                            "%s: unexpected tensor '%s' (a checkpoint of another architecture?)",
                            path, info.name);
    }
    if (!st) st = check_stamp(sf, path, s, 1);
    for (size_t i = 0; !st && i < n; i++) st = read_into(sf, p[i].name, &p[i], p[i].data);
    return st;
}

attn_status ckpt_params_read(const char *path, const ckpt_stamp *s, const attn_param_ref *p,
                             size_t n, int strict)
{
    if (!path || !p) return attn_error(ATTN_E_INVALID, "ckpt_params_read: NULL");
    attn_safetensors *sf = NULL;
    attn_status st = attn_safetensors_open(&sf, path);
    if (!st) st = load_params(sf, path, s, p, n, strict);
    attn_safetensors_close(sf);
    return st;
}

static attn_status optim_meta(const attn_safetensors *sf, const char *path, size_t *steps,
                              attn_rng *rng)
{
    const char *adam = attn_safetensors_metadata(sf, "adam_steps");
    char *end = NULL;
    unsigned long long v = adam ? strtoull(adam, &end, 10) : 0;
    if (!adam || *end || !*adam)
        return attn_error(ATTN_E_FORMAT, "%s: metadata \"adam_steps\" missing or not a number", path);
    *steps = (size_t)v;
    const char *r = attn_safetensors_metadata(sf, "rng");
    uint64_t s[4];
    if (!r || strlen(r) != 67 ||
        sscanf(r, "%16" SCNx64 ",%16" SCNx64 ",%16" SCNx64 ",%16" SCNx64, &s[0], &s[1], &s[2], &s[3]) != 4)
        return attn_error(ATTN_E_FORMAT, "%s: metadata \"rng\" missing or malformed", path);
    memcpy(rng->s, s, sizeof s);
    return ATTN_OK;
}

attn_status ckpt_optim_read(const char *path, const ckpt_stamp *s, const attn_param_ref *p,
                            size_t n, attn_adamw *opt, attn_rng *rng)
{
    if (!path || !s || !p || !opt || !rng) return attn_error(ATTN_E_INVALID, "ckpt_optim_read: NULL");
    attn_safetensors *sf = NULL;
    attn_status st = attn_safetensors_open(&sf, path);
    size_t steps = 0;
    attn_rng r;
    char name[160];
    if (!st) st = check_stamp(sf, path, s, 0);
    for (size_t i = 0; !st && i < 2 * n; i++) {
        snprintf(name, sizeof name, "%c.%s", i < n ? 'm' : 'v', p[i % n].name);
        st = check_shape(sf, path, name, &p[i % n]);
    }
    if (!st) st = check_stamp(sf, path, s, 1);
    if (!st) st = optim_meta(sf, path, &steps, &r);
    for (size_t i = 0; !st && i < 2 * n; i++) {
        float *m, *v;
        attn_adamw_moments(opt, i % n, &m, &v);
        snprintf(name, sizeof name, "%c.%s", i < n ? 'm' : 'v', p[i % n].name);
        st = read_into(sf, name, &p[i % n], i < n ? m : v);
    }
    if (!st) attn_adamw_set_steps(opt, steps), *rng = r;
    attn_safetensors_close(sf);
    return st;
}

/* The public per-file calls (attn/train.h): no run recorded or checked. */
attn_status attn_params_write(const char *path, const char *format, size_t step,
                              const attn_param_ref *p, size_t n)
{
    ckpt_stamp s = {format, NULL, step};
    return ckpt_params_write(path, &s, p, n);
}

attn_status attn_params_read(const char *path, const char *format, size_t step,
                             const attn_param_ref *p, size_t n, int strict)
{
    if (!format) return attn_error(ATTN_E_INVALID, "attn_params_read: NULL");
    ckpt_stamp s = {format, NULL, step};
    return ckpt_params_read(path, &s, p, n, strict);
}

attn_status attn_optim_write(const char *path, const char *format, size_t step,
                             const attn_param_ref *p, size_t n, attn_adamw *opt,
                             const attn_rng *rng)
{
    ckpt_stamp s = {format, NULL, step};
    return ckpt_optim_write(path, &s, p, n, opt, rng);
}

attn_status attn_optim_read(const char *path, const char *format, size_t step,
                            const attn_param_ref *p, size_t n, attn_adamw *opt, attn_rng *rng)
{
    ckpt_stamp s = {format, NULL, step};
    return ckpt_optim_read(path, &s, p, n, opt, rng);
}

/* ---- the run ------------------------------------------------------------------ */

/* FNV-1a over the bytes, each piece led by its length (so that "ab"+"c"
 * and "a"+"bc" differ), finished by SplitMix64's mixer. */
void ckpt_hash_add(ckpt_hash *h, const void *data, size_t len)
{
    const uint64_t prime = 0x100000001b3ull;
    uint64_t x = h->h, l = (uint64_t)len;
    for (int i = 0; i < 8; i++) x = (x ^ ((l >> (8 * i)) & 0xff)) * prime;
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) x = (x ^ p[i]) * prime;
    h->h = x;
}

void ckpt_hash_init(ckpt_hash *h, const char *format)
{
    h->h = 0xcbf29ce484222325ull;
    ckpt_hash_add(h, format, strlen(format));
}

void ckpt_hash_hex(const ckpt_hash *h, char run[CKPT_RUN_LEN + 1])
{
    uint64_t z = h->h + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    snprintf(run, CKPT_RUN_LEN + 1, "%016" PRIx64, z);
}

static attn_status run_parse(const char *value, int present, const char *path,
                             char run[CKPT_RUN_LEN + 1])
{
    run[0] = '\0';
    if (!present) return ATTN_OK;
    int ok = value && strlen(value) == CKPT_RUN_LEN;
    for (size_t i = 0; ok && i < CKPT_RUN_LEN; i++)
        ok = (value[i] >= '0' && value[i] <= '9') || (value[i] >= 'a' && value[i] <= 'f');
    if (!ok) return attn_error(ATTN_E_FORMAT, "%s: \"run\" must be %d hexadecimal digits", path, CKPT_RUN_LEN);
    memcpy(run, value, CKPT_RUN_LEN + 1);
    return ATTN_OK;
}

attn_status ckpt_config_head(const cJSON *root, const char *path, const char *format,
                             const char *hint, int version, size_t *step,
                             char run[CKPT_RUN_LEN + 1])
{
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "step");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "run");
    if (!cJSON_IsObject(root)) return attn_error(ATTN_E_FORMAT, "%s: not a JSON object", path);
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, format))
        return attn_error(ATTN_E_FORMAT, "%s: \"format\" is not \"%s\"%s", path, format, hint);
    if (!cJSON_IsNumber(ver) || ver->valuedouble != version)
        return attn_error(ATTN_E_FORMAT, "%s: unsupported \"version\" (this attn reads %d)", path, version);
    if (!cJSON_IsNumber(s) || !(s->valuedouble >= 0) || s->valuedouble != floor(s->valuedouble) ||
        s->valuedouble > 9007199254740992.0)
        return attn_error(ATTN_E_FORMAT, "%s: \"step\" must be a whole number >= 0", path);
    *step = (size_t)s->valuedouble;
    return run_parse(cJSON_GetStringValue(r), r != NULL, path, run);
}
