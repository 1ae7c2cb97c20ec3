/* fuzz_stream.c: libFuzzer target for the stream reader. The first byte
 * picks the layer: odd = the rest is msgpack, compressed here so the
 * segment parser is reached past zstd's checksum; even = the rest is fed
 * as stream bytes as they are. Bit 1 set: the zstd frames are decoded by
 * the parallel reader (2 threads). Every record is also printed as JSON.
 * Built and run by build-aux/check-asan.sh.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include <zstd.h>

#include "mm/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const void *p = data + 1;
    size_t n = size - 1;
    void *z = NULL;
    if (data[0] & 1) {
        size_t cap = ZSTD_compressBound(n);
        z = malloc(cap);
        ZSTD_CCtx *c = ZSTD_createCCtx();
        ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
        n = ZSTD_compress2(c, z, cap, p, n);
        ZSTD_freeCCtx(c);
        if (ZSTD_isError(n)) { free(z); return 0; }
        p = z;
    }
    static FILE *devnull;
    if (!devnull) devnull = fopen("/dev/null", "w");
    mm_stream *s = mm_stream_open_mem(p, n, "fuzz");
    if (data[0] & 2) mm_stream_set_threads(s, 2);
    mm_rec *r = mm_rec_new();
    int ret;
    int64_t k = 0;
    while ((ret = mm_stream_next(s)) == 0) {
        mm_val_print_json(devnull, mm_rec_croot(mm_stream_header(s)), 0);
        while ((k = mm_stream_read(s, r)) >= 0) {
            mm_val_print_json(devnull, mm_rec_croot(r), MM_JSON_FULL);
            mm_nd t;
            const mm_val *root = mm_rec_croot(r);
            for (size_t i = 0; i < root->u.m.n; i++)
                if (mm_val_nd(&root->u.m.kv[i].v, &t) == 0 && t.count > 0)
                    (void)mm_nd_at(&t, t.count - 1);
        }
        if (k < -1) break;
    }
    mm_rec_free(r);
    mm_stream_discard(s);
    free(z);
    return 0;
}
