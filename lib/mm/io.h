/* mm/io.h: raw byte I/O, the bottom layer of a stream (STREAM.md "Bytes").
 * A path, "-" for stdin/stdout, or a memory buffer. Output to a path goes to
 * a temporary name beside it and is renamed on a successful close, so a
 * failed run never leaves a half-written file under the final name.
 * No buffering, no compression: mm/zio.h does that.
 * SPDX-License-Identifier: MIT */
#ifndef MM_IO_H
#define MM_IO_H

#include <stdint.h>
#include <sys/types.h>

#include "mm/defs.h"

typedef struct mm_io mm_io;

/* Open PATH for reading ("r") or writing ("w"). "-" means stdin/stdout.
 * Writing to a path creates PATH.tmp.XXXXXX and renames it at close.
 * @return the handle, or NULL with the reason in mm_strerror(). */
mm_io *mm_io_open(const char *path, const char *mode) MM_RESULT_USED;

/* Read from N bytes at BUF (not copied: BUF must outlive the handle).
 * NAME is used in messages. */
mm_io *mm_io_open_mem(const void *buf, size_t n, const char *name);

/* @return bytes read (> 0), 0 at end of input, -1 on error. */
ssize_t mm_io_read(mm_io *io, void *buf, size_t n) MM_RESULT_USED;

/* Write all N bytes. @return 0, or -1 on error. */
int mm_io_write(mm_io *io, const void *buf, size_t n) MM_RESULT_USED;

/* Close; for output to a path, rename the temporary file into place.
 * @return 0, or -1 when the close, a write or the rename failed (the
 * temporary file is then removed). The handle is freed either way. */
int mm_io_close(mm_io *io) MM_RESULT_USED;

/* Close and throw the output away (remove the temporary file). */
void mm_io_discard(mm_io *io);

const char *mm_io_name(const mm_io *io);
const char *mm_io_error(const mm_io *io); /* "" when none */
int mm_io_is_tty(const mm_io *io);
uint64_t mm_io_bytes(const mm_io *io); /* bytes read or written so far */

#endif
