/* seqmask.c: the views of seq-mask(1) and mm-train's on-the-fly masking:
 * seed mixing, the generator, the draws of each mode (mm/seqmask.h states
 * the algorithm), and a row gather for streaming a slide once. No I/O.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "mm/rng.h"
#include "mm/seqmask.h"

#define GOLDEN UINT64_C(0x9E3779B97F4A7C15)

// ---- options

void mm_seqmask_opts_init(mm_seqmask_opts *o, mm_seqmask_mode mode)
{
    o->mode = mode;
    o->length = 6000;
    o->count = 2048;
    o->ratio = mode == MM_SEQMASK_SAMPLE ? 0.0 : 0.5;
    o->blocks = 0;
}

static const char *mode_names[] = {"contiguous", "sample", "random", "omics"};

const char *mm_seqmask_mode_name(mm_seqmask_mode m)
{
    return (unsigned)m < 4 ? mode_names[m] : "?";
}

int mm_seqmask_mode_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, mode_names[i])) return i;
    return -1;
}

int mm_seqmask_check(const mm_seqmask_opts *o)
{
    if ((unsigned)o->mode > MM_SEQMASK_OMICS) {
        mm__set_error("unknown mode %d", (int)o->mode);
        return -1;
    }
    if (!(o->ratio >= 0 && o->ratio < 1)) {
        mm__set_error("ratio: expected a number in [0, 1), got %g", o->ratio);
        return -1;
    }
    if (o->mode == MM_SEQMASK_CONTIGUOUS && (o->length < 1 || o->length > INT32_MAX)) {
        mm__set_error("length: expected an integer in [1, %d], got %lld", INT32_MAX,
                      (long long)o->length);
        return -1;
    }
    if (o->mode == MM_SEQMASK_SAMPLE && (o->count < 1 || o->count > INT32_MAX)) {
        mm__set_error("count: expected an integer in [1, %d], got %lld", INT32_MAX,
                      (long long)o->count);
        return -1;
    }
    if (o->mode == MM_SEQMASK_OMICS && (o->blocks < 1 || o->blocks > INT32_MAX)) {
        mm__set_error("blocks: expected an integer in [1, %d], got %lld", INT32_MAX,
                      (long long)o->blocks);
        return -1;
    }
    return 0;
}

// ---- views

uint64_t mm_seqmask_seed(const char *id, uint64_t base_seed, int64_t view)
{
    return XXH64(id, strlen(id), base_seed) ^ ((uint64_t)view * GOLDEN);
}

int64_t mm_seqmask_len(const mm_seqmask_opts *o, int64_t n)
{
    switch (o->mode) {
    case MM_SEQMASK_CONTIGUOUS: return o->length;
    case MM_SEQMASK_SAMPLE: return o->count;
    case MM_SEQMASK_RANDOM: return n;
    default: return 0;
    }
}

int64_t mm_seqmask_hidden(double ratio, int64_t len)
{
    int64_t h = (int64_t)floor(ratio * (double)len + 0.5);
    return h < 0 ? 0 : h > len ? len : h;
}

/* H(R, len) positions hidden by a partial Fisher-Yates over 0..len-1. */
static void draw_mask(mm_rng *g, double ratio, int64_t len, uint8_t *mask)
{
    memset(mask, 0, (size_t)len);
    int64_t h = mm_seqmask_hidden(ratio, len);
    if (h == 0) return;
    int32_t *p = mm_malloc((size_t)len * sizeof *p);
    for (int64_t i = 0; i < len; i++) p[i] = (int32_t)i;
    for (int64_t i = 0; i < h; i++) {
        int64_t j = i + (int64_t)mm_rng_below(g, (uint64_t)(len - i));
        int32_t t = p[i]; p[i] = p[j]; p[j] = t;
        mask[p[i]] = 1;
    }
    free(p);
}

int mm_seqmask_draw(const mm_seqmask_opts *o, uint64_t seed, int64_t n,
                    int32_t *idx, uint8_t *mask, int64_t *block)
{
    if (mm_seqmask_check(o) != 0) return -1;
    if (block) *block = -1;
    mm_rng g;
    mm_rng_seed(&g, seed);
    if (o->mode == MM_SEQMASK_OMICS) {
        int64_t b = (int64_t)mm_rng_below(&g, (uint64_t)o->blocks);
        if (block) *block = b;
        return 0;
    }
    if (n < 1 || n > INT32_MAX) {
        mm__set_error("%lld tokens: expected 1 to %d", (long long)n, INT32_MAX);
        return -1;
    }
    int64_t len = mm_seqmask_len(o, n);
    switch (o->mode) {
    case MM_SEQMASK_CONTIGUOUS: {
        int64_t span = (n > len ? n - len : 0) + 1;
        int64_t start = (int64_t)mm_rng_below(&g, (uint64_t)span);
        for (int64_t j = 0; j < len; j++) idx[j] = (int32_t)((start + j) % n);
        break;
    }
    case MM_SEQMASK_SAMPLE:
        if (n >= len) {
            int32_t *q = mm_malloc((size_t)n * sizeof *q);
            for (int64_t i = 0; i < n; i++) q[i] = (int32_t)i;
            for (int64_t i = 0; i < len; i++) {
                int64_t j = i + (int64_t)mm_rng_below(&g, (uint64_t)(n - i));
                int32_t t = q[i]; q[i] = q[j]; q[j] = t;
                idx[i] = q[i];
            }
            free(q);
        } else {
            for (int64_t i = 0; i < len; i++)
                idx[i] = (int32_t)mm_rng_below(&g, (uint64_t)n);
        }
        break;
    default: /* random */
        for (int64_t j = 0; j < len; j++) idx[j] = (int32_t)j;
        break;
    }
    draw_mask(&g, o->ratio, len, mask);
    return 0;
}

int mm_seqmask_view(const mm_seqmask_opts *o, const char *id, uint64_t base_seed,
                    int64_t view, int64_t n, int32_t *idx, uint8_t *mask,
                    int64_t *block, uint64_t *seed)
{
    uint64_t s = mm_seqmask_seed(id, base_seed, view);
    if (seed) *seed = s;
    return mm_seqmask_draw(o, s, n, idx, mask, block);
}

// ---- gather

struct mm_seqgather {
    int64_t n, nviews, len;
    size_t row_bytes;
    int64_t *start;    /* (n + 1): CSR over source rows */
    int64_t *dest;     /* (nviews * len): view * len + position */
    unsigned char *rows; /* (nviews * len, row_bytes) */
    int32_t *xy;       /* (nviews * len, 2) */
};

size_t mm_seqgather_bytes(int64_t n, int64_t nviews, int64_t len, size_t row_bytes)
{
    size_t m = (size_t)(nviews * len);
    return m * (row_bytes + 2 * sizeof(int32_t) + sizeof(int64_t)) +
           (size_t)(n + 1) * sizeof(int64_t);
}

mm_seqgather *mm_seqgather_new(int64_t n, int64_t nviews, int64_t len,
                               const int32_t *idx, size_t row_bytes)
{
    MM_ASSERT(n >= 0 && nviews >= 1 && len >= 0);
    mm_seqgather *g = mm_calloc(1, sizeof *g);
    size_t m = (size_t)(nviews * len);
    g->n = n;
    g->nviews = nviews;
    g->len = len;
    g->row_bytes = row_bytes;
    g->start = mm_calloc((size_t)n + 1, sizeof(int64_t));
    g->dest = mm_malloc((m ? m : 1) * sizeof(int64_t));
    g->rows = mm_calloc(m ? m : 1, row_bytes ? row_bytes : 1);
    g->xy = mm_calloc((m ? m : 1) * 2, sizeof(int32_t));
    for (size_t d = 0; d < m; d++) {
        MM_ASSERT(idx[d] >= 0 && idx[d] < n);
        g->start[idx[d] + 1]++;
    }
    for (int64_t i = 0; i < n; i++) g->start[i + 1] += g->start[i];
    int64_t *fill = mm_malloc(((size_t)n + 1) * sizeof(int64_t));
    memcpy(fill, g->start, ((size_t)n + 1) * sizeof(int64_t));
    for (size_t d = 0; d < m; d++) g->dest[fill[idx[d]]++] = (int64_t)d;
    free(fill);
    return g;
}

void mm_seqgather_feed(mm_seqgather *g, int64_t r0, int64_t k, const void *rows,
                       const int32_t *xy)
{
    const unsigned char *src = rows;
    for (int64_t i = 0; i < k; i++) {
        int64_t r = r0 + i;
        if (r < 0 || r >= g->n) continue;
        for (int64_t e = g->start[r]; e < g->start[r + 1]; e++) {
            int64_t d = g->dest[e];
            memcpy(g->rows + (size_t)d * g->row_bytes, src + (size_t)i * g->row_bytes,
                   g->row_bytes);
            if (xy) {
                g->xy[2 * d] = xy[2 * i];
                g->xy[2 * d + 1] = xy[2 * i + 1];
            }
        }
    }
}

const void *mm_seqgather_rows(const mm_seqgather *g, int64_t v)
{
    return g->rows + (size_t)(v * g->len) * g->row_bytes;
}

const int32_t *mm_seqgather_xy(const mm_seqgather *g, int64_t v)
{
    return g->xy + (size_t)(v * g->len) * 2;
}

void mm_seqgather_free(mm_seqgather *g)
{
    if (!g) return;
    free(g->start);
    free(g->dest);
    free(g->rows);
    free(g->xy);
    free(g);
}
