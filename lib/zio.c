/* zio.c: zstd frame layer (mm/zio.h). One ZSTD_DCtx decodes a concatenation
 * of frames; a frame that is still open when input ends is truncation.
 *
 * A reader given threads (mm_zio_set_threads) decodes whole frames in
 * parallel instead: one thread cuts the input into frames
 * (ZSTD_findFrameCompressedSize), N workers decode them into a ring of
 * slots, and mm_zio_read hands the slots out in input order. Writers end a
 * frame every 4 MiB, so a tiles stream has one frame per ~20 tiles: enough
 * to keep several cores busy. The bytes read are the same; so are the
 * error classes (a frame still open at the end of input is truncation,
 * anything zstd rejects is corruption), and an error is reported where
 * the serial reader would meet it, after the whole frames before it (the
 * serial reader also hands out the start of a frame that turns out cut or
 * corrupt; this one hands out verified frames only).
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>
#include <zstd_errors.h> /* ZSTD_getErrorCode: a frame cut short */

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
    int nthreads;           /* reader: > 1 decodes frames in parallel */
    struct zpar *par;
    char err[512];
};

/* ---- parallel reader ---------------------------------------------------- */

enum { SLOT_FREE, SLOT_QUEUED, SLOT_BUSY, SLOT_DONE };

typedef struct {
    unsigned char *raw, *out;
    size_t rawn, rawcap, outn, outcap, outpos;
    uint64_t seq;
    int state, code;        /* code: 0 or MM_ECORRUPT with msg */
    char msg[256];
} zslot;

typedef struct zpar {
    mm_zio *z;
    pthread_mutex_t mu;
    pthread_cond_t work, done, space;
    pthread_t cutter, *workers;
    int nworkers, nslots, stop, cutter_started;
    zslot *slots;
    uint64_t head;          /* the frame mm_zio_read hands out next */
    int ended;              /* the cutter stopped: end_seq frames in all */
    uint64_t end_seq;
    int end_code;           /* 0 clean end, or MM_ETRUNC / MM_ECORRUPT / MM_ERR */
    char end_msg[512];
    unsigned char *pend;    /* cutter: input read but not yet cut */
    size_t pendn, pendpos, pendcap;
    int eof;
} zpar;

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

/* Cut the next frame off the input into S. @return 1, 0 at a clean end, or
 * an error code with P->end_msg set. Runs on the cutter thread only. */
static int cut_frame(zpar *P, zslot *S)
{
    for (;;) {
        size_t avail = P->pendn - P->pendpos;
        if (avail > 0) {
            size_t fs = ZSTD_findFrameCompressedSize(P->pend + P->pendpos, avail);
            if (!ZSTD_isError(fs)) {
                if (S->rawcap < fs) {
                    free(S->raw);
                    S->rawcap = fs;
                    S->raw = mm_malloc(fs);
                }
                memcpy(S->raw, P->pend + P->pendpos, fs);
                S->rawn = fs;
                P->pendpos += fs;
                return 1;
            }
            if (ZSTD_getErrorCode(fs) != ZSTD_error_srcSize_wrong) {
                snprintf(P->end_msg, sizeof P->end_msg, "corrupt stream: zstd: %s",
                         ZSTD_getErrorName(fs));
                return MM_ECORRUPT;
            }
        }
        if (P->eof) {
            if (avail == 0) return 0;
            snprintf(P->end_msg, sizeof P->end_msg,
                     "truncated stream (input ends inside a zstd frame)");
            return MM_ETRUNC;
        }
        /* Keep what is left at the front and read more; the buffer grows
         * only while one frame does not fit. */
        memmove(P->pend, P->pend + P->pendpos, avail);
        P->pendn = avail;
        P->pendpos = 0;
        if (P->pendcap - P->pendn < ((size_t)1 << 20)) {
            P->pendcap = P->pendcap * 2 > P->pendn + ((size_t)1 << 20)
                             ? P->pendcap * 2 : P->pendn + ((size_t)1 << 20);
            P->pend = mm_realloc(P->pend, P->pendcap);
        }
        ssize_t r = mm_io_read(P->z->io, P->pend + P->pendn, P->pendcap - P->pendn);
        if (r < 0) {
            snprintf(P->end_msg, sizeof P->end_msg, "%s", mm_io_error(P->z->io));
            return MM_ERR;
        }
        if (r == 0) P->eof = 1;
        P->pendn += (size_t)r;
    }
}

static void *cutter_main(void *arg)
{
    zpar *P = arg;
    for (uint64_t seq = 0;; seq++) {
        zslot *S = &P->slots[seq % (uint64_t)P->nslots];
        pthread_mutex_lock(&P->mu);
        while (S->state != SLOT_FREE && !P->stop) pthread_cond_wait(&P->space, &P->mu);
        int stop = P->stop;
        pthread_mutex_unlock(&P->mu);
        int r = stop ? 0 : cut_frame(P, S);
        pthread_mutex_lock(&P->mu);
        if (r == 1) {
            S->seq = seq;
            S->state = SLOT_QUEUED;
            pthread_cond_signal(&P->work);
        } else {
            P->ended = 1;
            P->end_seq = seq;
            P->end_code = r;
            pthread_cond_broadcast(&P->work);
            pthread_cond_broadcast(&P->done);
        }
        pthread_mutex_unlock(&P->mu);
        if (r != 1) return NULL;
    }
}

/* Decode the whole frame in S. Called without the lock; S is ours. */
static void decode_frame(ZSTD_DCtx *dctx, zslot *S)
{
    ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
    unsigned long long want = ZSTD_getFrameContentSize(S->raw, S->rawn);
    size_t need = want < ((unsigned long long)1 << 30) ? (size_t)want : MM_ZIO_FRAME_BYTES;
    if (S->outcap < need + ZSTD_DStreamOutSize()) {
        free(S->out);
        S->outcap = need + ZSTD_DStreamOutSize();
        S->out = mm_malloc(S->outcap);
    }
    ZSTD_inBuffer in = {S->raw, S->rawn, 0};
    S->outn = S->outpos = 0;
    S->code = 0;
    for (;;) {
        if (S->outcap - S->outn < ZSTD_DStreamOutSize()) {
            S->outcap *= 2;
            S->out = mm_realloc(S->out, S->outcap);
        }
        ZSTD_outBuffer out = {S->out, S->outcap, S->outn};
        size_t r = ZSTD_decompressStream(dctx, &out, &in);
        S->outn = out.pos;
        if (ZSTD_isError(r)) {
            snprintf(S->msg, sizeof S->msg, "corrupt stream: zstd: %s", ZSTD_getErrorName(r));
            S->code = MM_ECORRUPT;
            return;
        }
        if (r == 0) return;
        if (in.pos == in.size && out.pos < out.size) {
            /* the cutter measured a whole frame: zstd wanting more is corrupt */
            snprintf(S->msg, sizeof S->msg, "corrupt stream: zstd frame ends early");
            S->code = MM_ECORRUPT;
            return;
        }
    }
}

static void *worker_main(void *arg)
{
    zpar *P = arg;
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    MM_ASSERT(dctx);
    pthread_mutex_lock(&P->mu);
    for (;;) {
        zslot *S = NULL;
        for (int i = 0; i < P->nslots; i++)
            if (P->slots[i].state == SLOT_QUEUED && (!S || P->slots[i].seq < S->seq))
                S = &P->slots[i];
        if (!S) {
            if (P->stop || P->ended) break;
            pthread_cond_wait(&P->work, &P->mu);
            continue;
        }
        S->state = SLOT_BUSY;
        pthread_mutex_unlock(&P->mu);
        decode_frame(dctx, S);
        pthread_mutex_lock(&P->mu);
        S->state = SLOT_DONE;
        pthread_cond_broadcast(&P->done);
    }
    pthread_mutex_unlock(&P->mu);
    ZSTD_freeDCtx(dctx);
    return NULL;
}

static void par_free(zpar *P);

/* Start the threads, handing them the LEAD bytes already read. Where a
 * thread cannot be started the reader stays serial. */
static void par_start(mm_zio *z, const unsigned char *lead, size_t n)
{
    zpar *P = mm_calloc(1, sizeof *P);
    P->z = z;
    P->nslots = 2 * z->nthreads + 2;
    P->slots = mm_calloc((size_t)P->nslots, sizeof *P->slots);
    P->pendcap = (size_t)1 << 20 > n ? (size_t)1 << 20 : n;
    P->pend = mm_malloc(P->pendcap);
    memcpy(P->pend, lead, n);
    P->pendn = n;
    pthread_mutex_init(&P->mu, NULL);
    pthread_cond_init(&P->work, NULL);
    pthread_cond_init(&P->done, NULL);
    pthread_cond_init(&P->space, NULL);
    P->workers = mm_calloc((size_t)z->nthreads, sizeof *P->workers);
    while (P->nworkers < z->nthreads &&
           pthread_create(&P->workers[P->nworkers], NULL, worker_main, P) == 0)
        P->nworkers++;
    if (P->nworkers == 0 || pthread_create(&P->cutter, NULL, cutter_main, P) != 0) {
        P->ended = 1; /* nothing to join but the workers */
        par_free(P);
        return;
    }
    P->cutter_started = 1;
    z->par = P;
}

static void par_free(zpar *P)
{
    if (!P) return;
    pthread_mutex_lock(&P->mu);
    P->stop = 1;
    pthread_cond_broadcast(&P->work);
    pthread_cond_broadcast(&P->space);
    pthread_mutex_unlock(&P->mu);
    if (P->cutter_started) pthread_join(P->cutter, NULL);
    for (int i = 0; i < P->nworkers; i++) pthread_join(P->workers[i], NULL);
    for (int i = 0; i < P->nslots; i++) {
        free(P->slots[i].raw);
        free(P->slots[i].out);
    }
    free(P->slots);
    free(P->workers);
    free(P->pend);
    pthread_mutex_destroy(&P->mu);
    pthread_cond_destroy(&P->work);
    pthread_cond_destroy(&P->done);
    pthread_cond_destroy(&P->space);
    free(P);
}

static ssize_t par_read(mm_zio *z, void *buf, size_t n)
{
    zpar *P = z->par;
    for (;;) {
        zslot *S = &P->slots[P->head % (uint64_t)P->nslots];
        pthread_mutex_lock(&P->mu);
        while (!(S->state == SLOT_DONE && S->seq == P->head) &&
               !(P->ended && P->end_seq == P->head))
            pthread_cond_wait(&P->done, &P->mu);
        int have = S->state == SLOT_DONE && S->seq == P->head;
        pthread_mutex_unlock(&P->mu);
        if (!have) {
            if (P->end_code == 0) return 0;
            zerr(z, "%s", P->end_msg);
            return P->end_code;
        }
        if (S->code) {
            zerr(z, "%s", S->msg);
            return S->code;
        }
        size_t k = S->outn - S->outpos < n ? S->outn - S->outpos : n;
        memcpy(buf, S->out + S->outpos, k);
        S->outpos += k;
        if (S->outpos == S->outn) {
            pthread_mutex_lock(&P->mu);
            S->state = SLOT_FREE;
            P->head++;
            if (S->outn) z->frames++;
            pthread_cond_signal(&P->space);
            pthread_mutex_unlock(&P->mu);
        }
        if (k > 0) {
            z->data_bytes += k;
            return (ssize_t)k;
        }
    }
}

void mm_zio_set_threads(mm_zio *z, int n)
{
    if (!z->writing && !z->started) z->nthreads = n > 1 ? n : 0;
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
        if (z->nthreads > 1) {
            par_start(z, z->ibuf, got);
            if (z->par) z->in.size = z->in.pos = 0;
        }
    }
    if (z->par) return par_read(z, buf, n);
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
    par_free(z->par);
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
    par_free(z->par); /* the cutter reads z->io: stop it first */
    z->par = NULL;
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
    par_free(z->par);
    z->par = NULL;
    mm_io_discard(z->io);
    zfree(z);
}

const char *mm_zio_error(const mm_zio *z) { return z->err; }
const char *mm_zio_name(const mm_zio *z) { return mm_io_name(z->io); }
int mm_zio_is_tty(const mm_zio *z) { return mm_io_is_tty(z->io); }
uint64_t mm_zio_raw_bytes(const mm_zio *z) { return mm_io_bytes(z->io); }
uint64_t mm_zio_data_bytes(const mm_zio *z) { return z->data_bytes; }
uint64_t mm_zio_frames(const mm_zio *z) { return z->frames; }
