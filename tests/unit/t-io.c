/* t-io.c: raw I/O: temporary output renamed only on success, discard
 * leaves nothing, memory input, error messages name the file.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm/io.h"
#include "../tap.h"

int main(void)
{
    char dir[] = "/tmp/t-io.XXXXXX", p[256], cmd[300];
    struct stat st;
    if (!mkdtemp(dir)) return 99;
    snprintf(p, sizeof p, "%s/out.bin", dir);

    mm_io *io = mm_io_open(p, "w");
    ok(io != NULL, "open for writing");
    ok(mm_io_write(io, "hello", 5) == 0, "write");
    ok(stat(p, &st) != 0, "final name absent before close");
    ok(mm_io_close(io) == 0, "close");
    ok(stat(p, &st) == 0 && st.st_size == 5, "renamed into place on close");
    mode_t um = umask(0);
    umask(um);
    is_int(st.st_mode & 0777, 0666 & ~um, "mode is 0666 less the umask, not mkstemp's 0600");

    io = mm_io_open(p, "r");
    char buf[16];
    ssize_t n = mm_io_read(io, buf, sizeof buf);
    is_int(n, 5, "read back 5 bytes");
    is_int(mm_io_read(io, buf, sizeof buf), 0, "then end of file");
    is_int(mm_io_bytes(io), 5, "bytes counted");
    ok(mm_io_close(io) == 0, "close reader");

    snprintf(p, sizeof p, "%s/discard.bin", dir);
    io = mm_io_open(p, "w");
    ok(mm_io_write(io, "x", 1) == 0, "write");
    mm_io_discard(io);
    ok(stat(p, &st) != 0, "discard leaves no file");
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp > /dev/null", dir);
    ok(system(cmd) != 0, "and no temporary file");

    io = mm_io_open_mem("abcdef", 6, "mem");
    n = mm_io_read(io, buf, 4);
    is_int(n, 4, "memory read");
    is_int(mm_io_read(io, buf, 4), 2, "memory rest");
    is_int(mm_io_read(io, buf, 4), 0, "memory end");
    is_str(mm_io_name(io), "mem", "memory name");
    mm_io_discard(io);

    ok(mm_io_open("/nonexistent/in", "r") == NULL, "missing input");
    like(mm_strerror(), "/nonexistent/in: No such file or directory", "message names the file");
    ok(mm_io_open(dir, "r") == NULL, "directory refused");
    like(mm_strerror(), "is a directory", "directory: message");
    io = mm_io_open("-", "r");
    is_str(mm_io_name(io), "stdin", "- is stdin");
    mm_io_discard(io);

    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) diag("cleanup failed");
    return done_testing();
}
