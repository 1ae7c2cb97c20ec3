/* io.c: raw byte I/O over file descriptors and memory (mm/io.h).
 * Not buffered and not compressed; the layers above do that.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm/io.h"

struct mm_io {
    int fd;           /* -1 for memory */
    int writing;
    int own_fd;       /* close fd at the end (not stdin/stdout) */
    const unsigned char *mem;
    size_t mem_n, mem_pos;
    uint64_t bytes;
    char *name;       /* as given; "-" shown as "stdin"/"stdout" */
    char *tmp;        /* temporary output path, renamed at close */
    char *final;      /* final output path */
    char err[512];
};

static void io_error(mm_io *io, const char *fmt, ...) MM_PRINTF(2, 3);
static void io_error(mm_io *io, const char *fmt, ...)
{
    if (io->err[0]) return;               /* first error wins */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(io->err, sizeof io->err, fmt, ap);
    va_end(ap);
}

mm_io *mm_io_open(const char *path, const char *mode)
{
    int writing = mode && mode[0] == 'w';
    mm_io *io = mm_calloc(1, sizeof *io);
    io->writing = writing;
    if (strcmp(path, "-") == 0) {
        io->fd = writing ? STDOUT_FILENO : STDIN_FILENO;
        io->name = mm_strdup(writing ? "stdout" : "stdin");
        return io;
    }
    io->name = mm_strdup(path);
    io->own_fd = 1;
    if (!writing) {
        io->fd = open(path, O_RDONLY);
        if (io->fd < 0) {
            mm__set_error("%s: %s", path, strerror(errno));
            goto fail;
        }
        struct stat st;
        if (fstat(io->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
            mm__set_error("%s: is a directory", path);
            close(io->fd);
            goto fail;
        }
        return io;
    }
    size_t n = strlen(path);
    io->final = mm_strdup(path);
    io->tmp = mm_malloc(n + 16);
    snprintf(io->tmp, n + 16, "%s.tmp.XXXXXX", path);
    io->fd = mkstemp(io->tmp);
    if (io->fd < 0) {
        mm__set_error("%s: cannot create: %s", path, strerror(errno));
        goto fail;
    }
    mode_t um = umask(0);
    umask(um);
    if (fchmod(io->fd, 0666 & ~um) != 0) { /* mkstemp made it 0600 */
        mm__set_error("%s: %s", io->tmp, strerror(errno));
        close(io->fd);
        unlink(io->tmp);
        goto fail;
    }
    return io;
fail:
    free(io->name);
    free(io->tmp);
    free(io->final);
    free(io);
    return NULL;
}

mm_io *mm_io_open_mem(const void *buf, size_t n, const char *name)
{
    mm_io *io = mm_calloc(1, sizeof *io);
    io->fd = -1;
    io->mem = buf;
    io->mem_n = n;
    io->name = mm_strdup(name ? name : "memory");
    return io;
}

ssize_t mm_io_read(mm_io *io, void *buf, size_t n)
{
    MM_ASSERT(!io->writing);
    if (io->fd < 0) {
        size_t k = io->mem_n - io->mem_pos;
        if (k > n) k = n;
        memcpy(buf, io->mem + io->mem_pos, k);
        io->mem_pos += k;
        io->bytes += k;
        return (ssize_t)k;
    }
    for (;;) {
        ssize_t r = read(io->fd, buf, n);
        if (r >= 0) {
            io->bytes += (uint64_t)r;
            return r;
        }
        if (errno == EINTR) continue;
        io_error(io, "%s: read error: %s", io->name, strerror(errno));
        return -1;
    }
}

int mm_io_write(mm_io *io, const void *buf, size_t n)
{
    MM_ASSERT(io->writing && io->fd >= 0);
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(io->fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            io_error(io, "%s: write error: %s", io->final ? io->final : io->name,
                     strerror(errno));
            return -1;
        }
        p += w;
        n -= (size_t)w;
        io->bytes += (uint64_t)w;
    }
    return 0;
}

static void io_free(mm_io *io)
{
    free(io->name);
    free(io->tmp);
    free(io->final);
    free(io);
}

int mm_io_close(mm_io *io)
{
    if (!io) return 0;
    int ret = io->err[0] ? -1 : 0;
    if (io->own_fd && io->fd >= 0 && close(io->fd) != 0 && ret == 0) {
        mm__set_error("%s: close failed: %s", io->name, strerror(errno));
        ret = -1;
    }
    if (io->err[0]) mm__set_error("%s", io->err);
    if (io->tmp) {
        if (ret == 0 && rename(io->tmp, io->final) != 0) {
            mm__set_error("%s: cannot rename %s into place: %s", io->final,
                          io->tmp, strerror(errno));
            ret = -1;
        }
        if (ret != 0) unlink(io->tmp);
    }
    io_free(io);
    return ret;
}

void mm_io_discard(mm_io *io)
{
    if (!io) return;
    if (io->own_fd && io->fd >= 0) close(io->fd);
    if (io->tmp) unlink(io->tmp);
    io_free(io);
}

const char *mm_io_name(const mm_io *io) { return io->final ? io->final : io->name; }
const char *mm_io_error(const mm_io *io) { return io->err; }
int mm_io_is_tty(const mm_io *io) { return io->fd >= 0 && isatty(io->fd); }
uint64_t mm_io_bytes(const mm_io *io) { return io->bytes; }
