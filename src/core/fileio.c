/* fileio.c - atomic file writes: a temporary file beside the target, renamed
 * into place only once every byte is written and synced; bounded whole-file
 * reads; the check that an output is not one of the inputs.
 *
 * The temporary file lives in the target's directory so that the final
 * rename() stays on one file system and is atomic: a reader sees either the
 * old file or the complete new one, never a half-written one.
 *
 * What is not a regular file is never renamed over: a character device
 * (/dev/null, a terminal), a FIFO, a socket or the file stdout points to is
 * written as a stream, in place. A symbolic link is followed: its target is
 * replaced atomically and the link stays (a dangling link is refused).
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "attn/fileio.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The process umask without changing it (umask() would race with other
 * threads): Linux reports it in /proc/self/status; elsewhere assume 022. */
static mode_t current_umask(void)
{
    mode_t mask = 022;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return mask;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Umask:", 6) == 0) {
            char *end;
            unsigned long v = strtoul(line + 6, &end, 8);
            if (end != line + 6 && v <= 0777) mask = (mode_t)v;
            break;
        }
    }
    fclose(f);
    return mask;
}

/* mkstemp makes the file 0600; give the result the mode an ordinary
 * fopen() would have (or the mode of the file it replaces). */
static void set_final_mode(int fd, const char *path)
{
    struct stat sb;
    mode_t mode;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
        mode = sb.st_mode & 07777;
    else
        mode = 0666 & ~current_umask();
    (void)fchmod(fd, mode); /* best effort: a 0600 file is still correct */
}

/* The file stdout writes to, if `sb` is it. */
static int is_stdout(const struct stat *sb)
{
    struct stat so;
    return fstat(STDOUT_FILENO, &so) == 0 && so.st_dev == sb->st_dev && so.st_ino == sb->st_ino;
}

/* A device, FIFO, socket or stdout's file: written in place, as a stream. */
static attn_status open_stream(attn_atomic_file *af, const char *path, int to_stdout)
{
    int fd = to_stdout ? dup(STDOUT_FILENO) : open(path, O_WRONLY | O_NOCTTY);
    if (fd < 0)
        return attn_error(ATTN_E_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    char *target = strdup(path);
    FILE *f = target ? fdopen(fd, "wb") : NULL;
    if (!f) {
        close(fd);
        free(target);
        return attn_error(ATTN_E_NOMEM, "%s: out of memory", path);
    }
    af->f = f;
    af->path = target;
    af->tmp_path = NULL; /* no rename: a stream */
    return ATTN_OK;
}

attn_status attn_atomic_open(attn_atomic_file *af, const char *path)
{
    if (!af) return attn_error(ATTN_E_INVALID, "attn_atomic_open: NULL file");
    memset(af, 0, sizeof *af);
    if (!path || !path[0]) return attn_error(ATTN_E_INVALID, "attn_atomic_open: empty path");
    struct stat sb, lsb;
    int exists = stat(path, &sb) == 0;
    /* (A directory falls through: the rename at commit fails, naming it.) */
    if (exists && !S_ISDIR(sb.st_mode) && (!S_ISREG(sb.st_mode) || is_stdout(&sb)))
        return open_stream(af, path, S_ISREG(sb.st_mode));
    if (lstat(path, &lsb) == 0 && S_ISLNK(lsb.st_mode)) {
        if (!exists)
            return attn_error(ATTN_E_IO, "%s: a symbolic link to a missing file (not replaced)", path);
        /* Replace what the link points to, not the link. */
        char *real = realpath(path, NULL);
        if (!real) return attn_error(ATTN_E_IO, "%s: cannot resolve the link: %s", path, strerror(errno));
        attn_status st = attn_atomic_open(af, real);
        free(real);
        return st;
    }
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return attn_error(ATTN_E_IO, "%s: not a file name (the path names a directory)", path);
    /* The directory as the user wrote it, for messages: "out", "/", ".". */
    size_t dir_len = slash ? (size_t)(slash - path) : 0;
    char *dir = slash ? (dir_len ? strndup(path, dir_len) : strdup("/")) : strdup(".");
    size_t plen = strlen(path), blen = strlen(base);
    /* <dir>/.<base>.tmp-XXXXXX: hidden, and recognisably ours. */
    char *tmp = malloc(plen + 14);
    char *target = strndup(path, plen);
    if (!dir || !tmp || !target) {
        free(dir);
        free(tmp);
        free(target);
        return attn_error(ATTN_E_NOMEM, "%s: out of memory", path);
    }
    size_t pre = (size_t)(base - path);
    memcpy(tmp, path, pre);
    tmp[pre] = '.';
    memcpy(tmp + pre + 1, base, blen);
    memcpy(tmp + pre + 1 + blen, ".tmp-XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        attn_status st = attn_error(ATTN_E_IO, "%s: cannot create a file in '%s': %s", path, dir,
                                    strerror(e));
        free(dir);
        free(tmp);
        free(target);
        return st;
    }
    free(dir);
    set_final_mode(fd, path);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        free(tmp);
        free(target);
        return attn_error(ATTN_E_IO, "%s: cannot open a stream on the temporary file: %s", path,
                          strerror(e));
    }
    af->f = f;
    af->path = target;
    af->tmp_path = tmp;
    return ATTN_OK;
}

/* Makes the rename itself durable; some file systems refuse fsync on a
 * directory (EINVAL), which is not an error worth failing a write for. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

attn_status attn_atomic_commit(attn_atomic_file *af)
{
    if (!af || !af->f || !af->path)
        return attn_error(ATTN_E_INVALID, "attn_atomic_commit: the file is not open");
    attn_status st = ATTN_OK;
    if (!af->tmp_path) { /* a stream: nothing to sync or rename */
        errno = 0;
        int bad = fflush(af->f) != 0 || ferror(af->f);
        int e = errno;
        if (fclose(af->f) != 0 && !bad) bad = 1, e = errno;
        if (bad)
            st = attn_error(ATTN_E_IO, "%s: write failed%s%s", af->path, e ? ": " : "",
                            e ? strerror(e) : "");
        free(af->path);
        memset(af, 0, sizeof *af);
        return st;
    }
    /* errno is only meaningful for the call that just failed; an earlier
     * failed fwrite shows up in ferror() alone. */
    errno = 0;
    if (fflush(af->f) != 0 || ferror(af->f)) {
        int e = errno;
        st = attn_error(ATTN_E_IO, "%s: writing the temporary file '%s' failed%s%s", af->path,
                        af->tmp_path, e ? ": " : "", e ? strerror(e) : "");
    } else if (fsync(fileno(af->f)) != 0) {
        st = attn_error(ATTN_E_IO, "%s: cannot sync the temporary file '%s': %s", af->path,
                        af->tmp_path, strerror(errno));
    }
    int close_rc = fclose(af->f);
    af->f = NULL;
    if (!st && close_rc != 0)
        st = attn_error(ATTN_E_IO, "%s: cannot close the temporary file '%s': %s", af->path,
                        af->tmp_path, strerror(errno));
    if (!st && rename(af->tmp_path, af->path) != 0)
        st = attn_error(ATTN_E_IO, "%s: cannot rename '%s' into place: %s", af->path,
                        af->tmp_path, strerror(errno));
    if (st) {
        unlink(af->tmp_path);
    } else {
        sync_parent_dir(af->path);
    }
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
    return st;
}

void attn_atomic_abort(attn_atomic_file *af)
{
    if (!af) return;
    if (af->f) fclose(af->f);
    if (af->tmp_path) unlink(af->tmp_path);
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

attn_status attn_read_text_file(const char *path, size_t max_bytes, char **out, size_t *len)
{
    if (!path || !out) return attn_error(ATTN_E_INVALID, "attn_read_text_file: NULL argument");
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return attn_error(ATTN_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > max_bytes) {
        fclose(f);
        return attn_error(ATTN_E_FORMAT, "%s: not a regular file of at most %zu bytes", path,
                          max_bytes);
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    size_t got = buf ? fread(buf, 1, (size_t)sb.st_size, f) : 0;
    fclose(f);
    if (!buf) return attn_error(ATTN_E_NOMEM, "%s: out of memory", path);
    if (got != (size_t)sb.st_size) {
        free(buf);
        return attn_error(ATTN_E_IO, "%s: short read", path);
    }
    buf[got] = 0;
    *out = buf;
    if (len) *len = got;
    return ATTN_OK;
}

/* Line and column (1-based, in bytes) of offset `at` of buf. */
static void line_col(const char *buf, size_t at, size_t *line, size_t *col)
{
    size_t l = 1, c = 1;
    for (size_t i = 0; i < at; i++) {
        if (buf[i] == '\n') l++, c = 1;
        else c++;
    }
    *line = l, *col = c;
}

/* The body of attn_read_file and attn_read_stream: f is open; its size is
 * known in advance when known_size is not SIZE_MAX. */
static attn_status read_open_stream(FILE *f, const char *name, size_t known_size, size_t max_bytes,
                                    unsigned flags, char **out, size_t *len)
{
    size_t cap = known_size != SIZE_MAX ? known_size + 1 : (size_t)1 << 16, n = 0;
    if (max_bytes < SIZE_MAX - 2 && cap > max_bytes + 2) cap = max_bytes + 2;
    char *buf = malloc(cap);
    attn_status st = buf ? ATTN_OK : attn_error(ATTN_E_NOMEM, "%s: out of memory", name);
    while (!st) {
        if (n + 1 >= cap) { /* a stream, or a file that grew: bounded growth */
            if (n >= max_bytes) {
                st = attn_error(ATTN_E_FORMAT, "%s: more than the limit of %zu bytes", name, max_bytes);
                break;
            }
            size_t ncap = cap > max_bytes / 2 ? max_bytes + 2 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                st = attn_error(ATTN_E_NOMEM, "%s: out of memory after %zu bytes", name, n);
                break;
            }
            buf = nb, cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        if ((flags & ATTN_READ_TEXT) && got) {
            const char *z = memchr(buf + n, 0, got);
            if (z) { /* /dev/zero or a binary file: refuse at once */
                size_t line, col;
                line_col(buf, (size_t)(z - buf), &line, &col);
                st = attn_error(ATTN_E_FORMAT, "%s:%zu:%zu: unexpected NUL byte (expected text)",
                                name, line, col);
                break;
            }
        }
        n += got;
        if (!got) {
            if (ferror(f)) st = attn_error(ATTN_E_IO, "%s: read error: %s", name, strerror(errno));
            break;
        }
    }
    if (!st && n > max_bytes)
        st = attn_error(ATTN_E_FORMAT, "%s: more than the limit of %zu bytes", name, max_bytes);
    if (st) {
        free(buf);
        return st;
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return ATTN_OK;
}

attn_status attn_read_file(const char *path, size_t max_bytes, unsigned flags, char **out,
                           size_t *len)
{
    if (!path || !out) return attn_error(ATTN_E_INVALID, "attn_read_file: NULL argument");
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return attn_error(ATTN_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || S_ISDIR(sb.st_mode)) {
        fclose(f);
        return attn_error(ATTN_E_IO, "%s: cannot read: it is a directory, expected a file", path);
    }
    /* A regular file's size is known: refuse it before reading a byte. */
    if (S_ISREG(sb.st_mode) && (uintmax_t)sb.st_size > max_bytes) {
        fclose(f);
        return attn_error(ATTN_E_FORMAT, "%s: %jd bytes, more than the limit of %zu", path,
                          (intmax_t)sb.st_size, max_bytes);
    }
    attn_status st = read_open_stream(f, path, S_ISREG(sb.st_mode) ? (size_t)sb.st_size : SIZE_MAX,
                                      max_bytes, flags, out, len);
    fclose(f);
    return st;
}

attn_status attn_read_stream(FILE *f, const char *name, size_t max_bytes, unsigned flags, char **out,
                             size_t *len)
{
    if (!f || !name || !out) return attn_error(ATTN_E_INVALID, "attn_read_stream: NULL argument");
    *out = NULL;
    if (len) *len = 0;
    return read_open_stream(f, name, SIZE_MAX, max_bytes, flags, out, len);
}

attn_status attn_read_line(FILE *f, const char *name, size_t line_no, size_t max_bytes, char **buf,
                           size_t *cap, size_t *len, int *eof)
{
    if (!f || !name || !buf || !cap || !len || !eof)
        return attn_error(ATTN_E_INVALID, "attn_read_line: NULL argument");
    size_t n = 0;
    int ch = EOF;
    *len = 0, *eof = 0;
    while ((ch = getc(f)) != EOF && ch != '\n') {
        if (n >= max_bytes)
            return attn_error(ATTN_E_FORMAT, "%s:%zu: a line longer than %zu bytes", name, line_no, max_bytes);
        if (n + 2 > *cap) { /* room for this byte and the NUL */
            size_t ncap = *cap < 128 ? 128 : *cap > max_bytes / 2 ? max_bytes + 2 : *cap * 2;
            char *nb = realloc(*buf, ncap);
            if (!nb) return attn_error(ATTN_E_NOMEM, "%s:%zu: out of memory", name, line_no);
            *buf = nb, *cap = ncap;
        }
        (*buf)[n++] = (char)ch;
    }
    if (ch == EOF && ferror(f)) return attn_error(ATTN_E_IO, "%s: read error: %s", name, strerror(errno));
    if (ch == EOF && n == 0) {
        *eof = 1;
        return ATTN_OK;
    }
    if (!*buf) { /* an empty line before anything was allocated */
        *buf = malloc(1);
        if (!*buf) return attn_error(ATTN_E_NOMEM, "%s:%zu: out of memory", name, line_no);
        *cap = 1;
    }
    (*buf)[n] = 0;
    *len = n;
    return ATTN_OK;
}

attn_status attn_check_not_input(const char *out, const char *const *inputs, size_t n)
{
    struct stat so, si;
    /* Only an existing regular file can be destroyed by writing over it;
     * /dev/null as both input and output is harmless. */
    if (!out || stat(out, &so) != 0 || !S_ISREG(so.st_mode)) return ATTN_OK;
    for (size_t i = 0; i < n; i++) {
        if (!inputs[i] || stat(inputs[i], &si) != 0) continue;
        if (si.st_dev == so.st_dev && si.st_ino == so.st_ino)
            return attn_error(ATTN_E_INVALID,
                              "%s: the output is the same file as the input '%s'; writing it "
                              "would destroy the input (choose another output name)",
                              out, inputs[i]);
    }
    return ATTN_OK;
}
