/* zio.c: zstd frame layer (mm/zio.h). One ZSTD_DCtx decodes a concatenation
 * of frames; a frame that is still open when input ends is truncation.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "mm/zio.h"

struct mm_zio {
    mm_io *io;
    int writing;
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    int level, level_set;
    unsigned char *ibuf, *obuf;
    size_t isize, osize;
    ZSTD_inBuffer in;       /* reader: compressed bytes not yet consumed */
    int in_frame;           /* reader: a frame is started and not finished */
    int at_eof;
    int started;            /* reader: checked the first bytes */
    size_t frame_in;        /* writer: input bytes in the open frame */
    uint64_t data_bytes, frames;
    char err[512];
};

static void zerr(mm_zio *z, const char *fmt, ...) MM_PRINTF(2, 3);
static void zerr(mm_zio *z, const char *fmt, ...)
{
    if (z->err[0]) return;
    int n = snprintf(z->err, sizeof z->err, "%s: ", mm_io_name(z->io));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(z->err + n, sizeof z->err - (size_t)n, fmt, ap);
    va_end(ap);
}

mm_zio *mm_zio_new(mm_io *io, const char *mode)
{
    mm_zio *z = mm_calloc(1, sizeof *z);
    z->io = io;
    z->writing = mode[0] == 'w';
    z->level = 3;
    if (z->writing) {
        z->cctx = ZSTD_createCCtx();
        MM_ASSERT(z->cctx);
        ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1);
        z->osize = ZSTD_CStreamOutSize();
        z->obuf = mm_malloc(z->osize);
    } else {
        z->dctx = ZSTD_createDCtx();
        MM_ASSERT(z->dctx);
        z->isize = ZSTD_DStreamInSize();
        z->ibuf = mm_malloc(z->isize);
        z->in.src = z->ibuf;
    }
    return z;
}

void mm_zio_set_workers(mm_zio *z, int n)
{
    /* a libzstd built without threads refuses: then the caller compresses,
     * whatever N, and the bytes are still the same for every N >= 1 */
    if (z->cctx) ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_nbWorkers, n);
}

void mm_zio_set_level(mm_zio *z, int level)
{
    z->level = level;
    z->level_set = 0;
}

static int fill_input(mm_zio *z)
{
    if (z->in.pos < z->in.size || z->at_eof) return 0;
    ssize_t r = mm_io_read(z->io, z->ibuf, z->isize);
    if (r < 0) {
        zerr(z, "%s", mm_io_error(z->io));
        return MM_ERR;
    }
    z->in.size = (size_t)r;
    z->in.pos = 0;
    if (r == 0) z->at_eof = 1;
    return 0;
}

ssize_t mm_zio_read(mm_zio *z, void *buf, size_t n)
{
    if (z->err[0]) return MM_ERR;
    int ret;
    if (!z->started) {
        /* Read until we have 4 bytes or EOF, to name a foreign file. */
        unsigned char magic[4];
        size_t got = 0;
        z->started = 1;
        while (got < 4) {
            ssize_t r = mm_io_read(z->io, z->ibuf + got, z->isize - got);
            if (r < 0) { zerr(z, "%s", mm_io_error(z->io)); return MM_ERR; }
            if (r == 0) break;
            got += (size_t)r;
        }
        z->in.size = got;
        z->in.pos = 0;
        if (got == 0) {
            z->at_eof = 1;
            return 0;
        }
        memcpy(magic, z->ibuf, got < 4 ? got : 4);
        uint32_t m = (uint32_t)magic[0] | (uint32_t)magic[1] << 8 |
                     (uint32_t)magic[2] << 16 | (uint32_t)magic[3] << 24;
        if (got < 4 || (m != ZSTD_MAGICNUMBER &&
                        (m & ZSTD_MAGIC_SKIPPABLE_MASK) != ZSTD_MAGIC_SKIPPABLE_START)) {
            zerr(z, "not an mpk stream (not zstd-compressed)");
            return MM_EFORMAT;
        }
    }
    ZSTD_outBuffer out = {buf, n, 0};
    while (out.pos == 0) {
        if ((ret = fill_input(z)) < 0) return ret;
        if (z->in.pos == z->in.size && z->at_eof) {
            if (z->in_frame) {
                zerr(z, "truncated stream (input ends inside a zstd frame)");
                return MM_ETRUNC;
            }
            return 0;
        }
        size_t r = ZSTD_decompressStream(z->dctx, &out, &z->in);
        if (ZSTD_isError(r)) {
            zerr(z, "corrupt stream: zstd: %s", ZSTD_getErrorName(r));
            return MM_ECORRUPT;
        }
        if (r == 0) {
            if (z->in_frame || out.pos > 0) z->frames++;
            z->in_frame = 0;
        } else {
            z->in_frame = 1;
        }
    }
    z->data_bytes += out.pos;
    return (ssize_t)out.pos;
}

static int compress(mm_zio *z, const void *buf, size_t n, ZSTD_EndDirective mode)
{
    ZSTD_inBuffer in = {buf, n, 0};
    if (!z->level_set) {
        ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, z->level);
        z->level_set = 1;
    }
    for (;;) {
        ZSTD_outBuffer out = {z->obuf, z->osize, 0};
        size_t r = ZSTD_compressStream2(z->cctx, &out, &in, mode);
        if (ZSTD_isError(r)) {
            zerr(z, "zstd: %s", ZSTD_getErrorName(r));
            return -1;
        }
        if (out.pos && mm_io_write(z->io, z->obuf, out.pos) != 0) {
            zerr(z, "%s", mm_io_error(z->io));
            return -1;
        }
        if (mode == ZSTD_e_end ? r == 0 : in.pos == in.size) break;
    }
    return 0;
}

int mm_zio_end_frame(mm_zio *z)
{
    if (z->err[0]) return -1;
    if (z->frame_in == 0) return 0;
    if (compress(z, NULL, 0, ZSTD_e_end) != 0) return -1;
    z->frame_in = 0;
    z->frames++;
    return 0;
}

int mm_zio_write(mm_zio *z, const void *buf, size_t n)
{
    const char *p = buf;
    if (z->err[0]) return -1;
    while (n > 0) {
        size_t room = MM_ZIO_FRAME_BYTES - z->frame_in;
        size_t k = n < room ? n : room;
        if (compress(z, p, k, ZSTD_e_continue) != 0) return -1;
        z->frame_in += k;
        z->data_bytes += k;
        p += k;
        n -= k;
        if (z->frame_in >= MM_ZIO_FRAME_BYTES && mm_zio_end_frame(z) != 0)
            return -1;
    }
    return 0;
}

static void zfree(mm_zio *z)
{
    ZSTD_freeCCtx(z->cctx);
    ZSTD_freeDCtx(z->dctx);
    free(z->ibuf);
    free(z->obuf);
    free(z);
}

int mm_zio_close(mm_zio *z)
{
    if (!z) return 0;
    int ret = 0;
    if (z->writing && mm_zio_end_frame(z) != 0) ret = -1;
    if (z->err[0]) {
        mm__set_error("%s", z->err);
        mm_io_discard(z->io);
        ret = -1;
    } else if (mm_io_close(z->io) != 0) {
        ret = -1;
    }
    zfree(z);
    return ret;
}

void mm_zio_discard(mm_zio *z)
{
    if (!z) return;
    mm_io_discard(z->io);
    zfree(z);
}

const char *mm_zio_error(const mm_zio *z) { return z->err; }
const char *mm_zio_name(const mm_zio *z) { return mm_io_name(z->io); }
int mm_zio_is_tty(const mm_zio *z) { return mm_io_is_tty(z->io); }
uint64_t mm_zio_raw_bytes(const mm_zio *z) { return mm_io_bytes(z->io); }
uint64_t mm_zio_data_bytes(const mm_zio *z) { return z->data_bytes; }
uint64_t mm_zio_frames(const mm_zio *z) { return z->frames; }
