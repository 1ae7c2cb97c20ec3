/* mm/zio.h: zstd frames over mm_io, the middle layer of a stream.
 * Writers enable the content checksum and end a frame every few MiB and
 * whenever mm_zio_end_frame() is called (the stream layer does at each
 * segment end). Readers decode any concatenation of frames and call input
 * that ends inside a frame "truncated stream". Knows nothing of msgpack.
 * SPDX-License-Identifier: MIT */
#ifndef MM_ZIO_H
#define MM_ZIO_H

#include <stdint.h>
#include <sys/types.h>

#include "mm/defs.h"
#include "mm/io.h"

typedef struct mm_zio mm_zio;

/* Input bytes per frame before a writer ends the frame by itself. */
#define MM_ZIO_FRAME_BYTES ((size_t)4 << 20)

/* Take over IO (closed with the zio). MODE "r" or "w". */
mm_zio *mm_zio_new(mm_io *io, const char *mode);

/* Compression level for frames started from now on (default 3). */
void mm_zio_set_level(mm_zio *z, int level);
/* Compress on N threads of zstd's own besides the caller's (0, the
 * default: in the caller). Call before writing. The bytes written depend on
 * whether N is 0, never on which N >= 1. */
void mm_zio_set_workers(mm_zio *z, int n);

/* Reader: decode frames on N threads (plus one that cuts the input into
 * frames) from the first read on; N <= 1 keeps the serial decoder. Memory:
 * up to 2N + 2 frames in flight (about 8 MiB each for our writers). Call
 * before the first mm_zio_read; later calls are ignored. */
void mm_zio_set_threads(mm_zio *z, int n);

/* @return decompressed bytes (> 0), 0 at a clean end of input, or
 * MM_ETRUNC / MM_ECORRUPT / MM_EFORMAT / MM_ERR with mm_zio_error() set. */
ssize_t mm_zio_read(mm_zio *z, void *buf, size_t n) MM_RESULT_USED;

/* @return 0, or -1 with mm_zio_error() set. */
int mm_zio_write(mm_zio *z, const void *buf, size_t n) MM_RESULT_USED;

/* End the current frame (no-op when nothing was written since the last). */
int mm_zio_end_frame(mm_zio *z) MM_RESULT_USED;

/* End the frame, close and free. For a path output, rename into place.
 * @return 0, or -1 (message in mm_strerror()). */
int mm_zio_close(mm_zio *z) MM_RESULT_USED;

/* Close and remove any temporary output. */
void mm_zio_discard(mm_zio *z);

const char *mm_zio_error(const mm_zio *z);
const char *mm_zio_name(const mm_zio *z);
int mm_zio_is_tty(const mm_zio *z);
uint64_t mm_zio_raw_bytes(const mm_zio *z);  /* compressed bytes so far */
uint64_t mm_zio_data_bytes(const mm_zio *z); /* decompressed bytes so far */
/* Frames completed; a reader counts those that carried data (the parallel
 * one exactly, the serial one also frames that spanned reads). */
uint64_t mm_zio_frames(const mm_zio *z);

#endif
