/* t-zio.c: the zstd frame layer: frames end every 4 MiB of input and on
 * request, each with a content checksum; reads span frames; input that
 * ends inside a frame is truncation; foreign bytes are named.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdlib.h>

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader */
#include <zstd.h>

#include "mm/zio.h"
#include "../tap.h"

static unsigned char *slurp(const char *p, size_t *n)
{
    FILE *fp = fopen(p, "rb");
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    if (fread(b, 1, *n, fp) != *n) *n = 0;
    fclose(fp);
    return b;
}

static ssize_t read_all(const void *p, size_t n, unsigned char *dst, size_t cap, char *err)
{
    mm_zio *z = mm_zio_new(mm_io_open_mem(p, n, "z"), "r");
    size_t got = 0;
    ssize_t r;
    while ((r = mm_zio_read(z, dst + got, cap - got > 100000 ? 100000 : cap - got)) > 0)
        got += (size_t)r;
    snprintf(err, 600, "%s", mm_zio_error(z));
    mm_zio_discard(z);
    return r < 0 ? r : (ssize_t)got;
}

int main(void)
{
    char dir[] = "/tmp/t-zio.XXXXXX", p[256], err[600];
    if (!mkdtemp(dir)) return 99;
    snprintf(p, sizeof p, "%s/a.zst", dir);
    size_t n = 10u << 20;
    unsigned char *data = malloc(n), *back = malloc(n + 16);
    for (size_t i = 0; i < n; i++) data[i] = (unsigned char)((i * 2654435761u) >> 13 ^ i / 4096);

    mm_zio *z = mm_zio_new(mm_io_open(p, "w"), "w");
    mm_zio_set_level(z, 1);
    ok(mm_zio_write(z, data, 1000) == 0, "write 1000 bytes");
    ok(mm_zio_end_frame(z) == 0, "end a frame on request");
    ok(mm_zio_end_frame(z) == 0, "ending again writes nothing");
    ok(mm_zio_write(z, data + 1000, n - 1000) == 0, "write the rest");
    ok(mm_zio_close(z) == 0, "close");

    size_t zn;
    unsigned char *zb = slurp(p, &zn);
    size_t at = 0, frames = 0, checksums = 0;
    while (at < zn && frames < 16) {
        size_t fs = ZSTD_findFrameCompressedSize(zb + at, zn - at);
        if (ZSTD_isError(fs)) break;
        ZSTD_frameHeader fh;
        if (ZSTD_getFrameHeader(&fh, zb + at, zn - at) == 0 && fh.checksumFlag) checksums++;
        frames++;
        at += fs;
    }
    is_int(frames, 4, "1000 bytes, then 10 MiB in frames of at most 4 MiB: 4 frames");
    is_int(checksums, frames, "every frame has a content checksum");
    is_int(at, zn, "frames cover the file");

    ssize_t got = read_all(zb, zn, back, n + 16, err);
    is_int(got, n, "read across frames");
    ok(got == (ssize_t)n && memcmp(back, data, n) == 0, "same bytes back");
    is_int(read_all(zb, zn / 2, back, n + 16, err), MM_ETRUNC, "cut inside a frame");
    like(err, "z: truncated stream", "truncation: message");
    is_int(read_all("PK\003\004junk", 8, back, 16, err), MM_EFORMAT, "zip file");
    like(err, "not an mpk stream (not zstd-compressed)", "foreign: message");
    is_int(read_all("", 0, back, 16, err), 0, "empty input is a clean end here");
    unsigned char *flip = malloc(zn);
    memcpy(flip, zb, zn);
    flip[zn - 2] ^= 1; /* inside the last frame's checksum */
    is_int(read_all(flip, zn, back, n + 16, err), MM_ECORRUPT, "checksum mismatch");
    like(err, "corrupt stream: zstd:", "checksum: message");

    /* levels: a higher level must not compress this worse */
    size_t sz[2];
    for (int i = 0; i < 2; i++) {
        z = mm_zio_new(mm_io_open(p, "w"), "w");
        mm_zio_set_level(z, i ? 9 : 1);
        ok(mm_zio_write(z, data, n) == 0 && mm_zio_close(z) == 0, "write at level %d", i ? 9 : 1);
        free(slurp(p, &sz[i]));
    }
    ok(sz[1] < sz[0], "level 9 (%zu bytes) smaller than level 1 (%zu)", sz[1], sz[0]);

    free(flip);
    free(zb);
    free(data);
    free(back);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) diag("cleanup failed");
    return done_testing();
}
