/* t-zio.c: the zstd frame layer: frames end every 4 MiB of input and on
 * request, each with a content checksum; reads span frames; input that
 * ends inside a frame is truncation; foreign bytes are named.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdlib.h>
#include <string.h>

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

/* Read everything (STEP bytes a call) with THREADS decoders; *GOTP: bytes
 * delivered before the end or the error. */
static ssize_t read_par(const void *p, size_t n, unsigned char *dst, size_t cap, char *err,
                        int threads, size_t step, size_t *gotp)
{
    mm_zio *z = mm_zio_new(mm_io_open_mem(p, n, "z"), "r");
    mm_zio_set_threads(z, threads);
    size_t got = 0;
    ssize_t r;
    while ((r = mm_zio_read(z, dst + got, cap - got > step ? step : cap - got)) > 0)
        got += (size_t)r;
    snprintf(err, 600, "%s", mm_zio_error(z));
    mm_zio_discard(z);
    if (gotp) *gotp = got;
    return r < 0 ? r : (ssize_t)got;
}

static ssize_t read_all(const void *p, size_t n, unsigned char *dst, size_t cap, char *err)
{
    return read_par(p, n, dst, cap, err, 0, 100000, NULL);
}

/* A skippable frame (RFC 8878 3.1.2) of LEN bytes at B. */
static size_t skippable(unsigned char *b, uint32_t len)
{
    const uint32_t magic = 0x184D2A53u, v[2] = {magic, len};
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v[i / 4] >> (8 * (i % 4)));
    memset(b + 8, 0xAB, len);
    return 8 + len;
}

/* The parallel reader against the serial one on a stream of many frames of
 * uneven sizes (one of them skippable, some empty of data): same bytes, same
 * frame count; cut anywhere, the same outcome and the same bytes first;
 * bytes flipped anywhere, an error and never a wrong byte before it. */
static void parallel_reader(const char *dir, const unsigned char *data, size_t n)
{
    char p[300], err[600], err1[600];
    snprintf(p, sizeof p, "%s/many.zst", dir);
    mm_zio *z = mm_zio_new(mm_io_open(p, "w"), "w");
    mm_zio_set_level(z, 1);
    size_t at = 0, nframes = 0;
    int wfail = 0;
    uint64_t x = 88172645463325252u;
    while (at < n) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t k = x % 300000 + 1;
        if (k > n - at) k = n - at;
        if (mm_zio_write(z, data + at, k) != 0 || mm_zio_end_frame(z) != 0) wfail++;
        at += k;
        nframes++;
    }
    ok(!wfail && mm_zio_close(z) == 0, "wrote %zu bytes in %zu frames", n, nframes);
    size_t zn0;
    unsigned char *z0 = slurp(p, &zn0);
    /* put a skippable frame after the third frame */
    size_t cut = 0;
    for (int i = 0; i < 3; i++) cut += ZSTD_findFrameCompressedSize(z0 + cut, zn0 - cut);
    unsigned char *zb = malloc(zn0 + 64);
    memcpy(zb, z0, cut);
    size_t zn = cut + skippable(zb + cut, 40);
    memcpy(zb + zn, z0 + cut, zn0 - cut);
    zn += zn0 - cut;
    free(z0);

    unsigned char *a = malloc(n + 16), *b = malloc(n + 16);
    {
        mm_zio *r = mm_zio_new(mm_io_open_mem(zb, zn, "z"), "r");
        size_t got = 0;
        ssize_t k;
        while ((k = mm_zio_read(r, a + got, 65536)) > 0) got += (size_t)k;
        mm_zio_discard(r);
        ok(k == 0 && got == n && memcmp(a, data, n) == 0, "serial: every byte back, skippable frame skipped");
    }
    const int threads[] = {2, 3, 8};
    const size_t steps[] = {1000003, 65536, 777};
    for (int t = 0; t < 3; t++) {
        mm_zio *r = mm_zio_new(mm_io_open_mem(zb, zn, "z"), "r");
        mm_zio_set_threads(r, threads[t]);
        size_t got = 0;
        ssize_t k;
        while ((k = mm_zio_read(r, b + got, steps[t])) > 0) got += (size_t)k;
        ok(k == 0 && got == n && memcmp(b, data, n) == 0,
           "%d threads, reads of %zu bytes: every byte back", threads[t], steps[t]);
        is_int(mm_zio_frames(r), nframes, "%d threads: the %zu frames with data counted",
               threads[t], nframes);
        is_int(mm_zio_data_bytes(r), n, "%d threads: data bytes counted", threads[t]);
        mm_zio_discard(r);
    }
    /* stop early: the threads are stopped and joined (no hang, no leak) */
    {
        mm_zio *r = mm_zio_new(mm_io_open_mem(zb, zn, "z"), "r");
        mm_zio_set_threads(r, 4);
        ok(mm_zio_read(r, b, 10) == 10 && memcmp(b, data, 10) == 0, "4 threads: read 10 bytes, then close");
        mm_zio_discard(r);
    }

    int same = 0, cuts = 0;
    for (size_t c = 0; c < zn; c += zn / 97 + 1) {
        size_t g1, g2;
        ssize_t r1 = read_par(zb, c, a, n + 16, err1, 0, 65536, &g1);
        ssize_t r2 = read_par(zb, c, b, n + 16, err, 3, 65536, &g2);
        cuts++;
        /* the parallel reader hands out verified whole frames only, so it
         * may stop short of the serial one's bytes from a cut last frame */
        if (r1 == r2 && g2 <= g1 && memcmp(a, b, g2) == 0 && !strcmp(err, err1) &&
            (r1 < 0 || g1 == g2))
            same++;
        else diag("cut at %zu: serial %zd (%zu bytes, '%s'), parallel %zd (%zu bytes, '%s')",
                  c, r1, g1, err1, r2, g2, err);
    }
    is_int(same, cuts, "input cut at %d places: parallel and serial give the same code and message, the same bytes before it (whole frames)", cuts);

    int bad = 0, flips = 0;
    unsigned char *f = malloc(zn);
    for (size_t c = 4; c < zn; c += zn / 61 + 1) {
        memcpy(f, zb, zn);
        f[c] ^= 0x5A;
        size_t g2;
        ssize_t r2 = read_par(f, zn, b, n + 16, err, 3, 65536, &g2);
        flips++;
        if (r2 >= 0 && !(g2 == n && !memcmp(b, data, n))) bad++;
        if (g2 > n || memcmp(b, data, g2 < n ? g2 : n)) bad++;
    }
    is_int(bad, 0, "bytes flipped at %d places: an error, and only correct bytes before it", flips);
    free(f);
    free(a);
    free(b);
    free(zb);
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

    parallel_reader(dir, data, n);

    free(flip);
    free(zb);
    free(data);
    free(back);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) diag("cleanup failed");
    return done_testing();
}
