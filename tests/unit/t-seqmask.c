/* t-seqmask.c: the views of lib/seqmask.c: the generator and the view
 * seeds against fixed values (a Python transcription of seq-mask(1)'s
 * algorithm gave the draws), exact counts and ratios, determinism, short
 * slides repeated, indices in range, seeds mixed with the slide id, bad
 * options, and the row gather with its memory bound.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "mm/seqmask.h"
#include "../tap.h"

static long maxrss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static int64_t sum8(const uint8_t *m, int64_t n)
{
    int64_t s = 0;
    for (int64_t i = 0; i < n; i++) s += m[i];
    return s;
}

static int in_range(const int32_t *idx, int64_t len, int64_t n)
{
    for (int64_t i = 0; i < len; i++)
        if (idx[i] < 0 || idx[i] >= n) return 0;
    return 1;
}

static int eq32(const int32_t *a, const int32_t *b, int64_t n)
{
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

static void known_values(void)
{
    mm_rng g;
    mm_rng_seed(&g, 0);
    uint64_t x0 = mm_rng_next(&g), x1 = mm_rng_next(&g),
             x2 = mm_rng_next(&g);
    ok(x0 == UINT64_C(0x99ec5f36cb75f2b4) && x1 == UINT64_C(0xbf6e1f784956452a) &&
       x2 == UINT64_C(0x1a5f849d4933e6e0), "xoshiro256** from splitmix64(0): the reference outputs");
    mm_rng_seed(&g, 12345);
    is_int(mm_rng_below(&g, 7), 4, "U(7) from seed 12345");

    uint64_t s0 = mm_seqmask_seed("slideA", 1, 0), s1 = mm_seqmask_seed("slideA", 1, 1);
    ok(s0 == UINT64_C(4608891625876165050), "view seed of slideA, base 1, view 0");
    ok((s0 ^ s1) == UINT64_C(0x9E3779B97F4A7C15), "view 1's seed: XOR 0x9E3779B97F4A7C15");

    mm_seqmask_opts o;
    int32_t idx[16];
    uint8_t mask[16];
    mm_seqmask_opts_init(&o, MM_SEQMASK_CONTIGUOUS);
    o.length = 10;
    ok(mm_seqmask_draw(&o, 12345, 100, idx, mask, NULL) == 0, "contiguous: draw");
    static const int32_t ci[10] = {53, 54, 55, 56, 57, 58, 59, 60, 61, 62};
    static const uint8_t cm[10] = {1, 1, 1, 0, 0, 1, 0, 0, 1, 0};
    ok(eq32(idx, ci, 10) && !memcmp(mask, cm, 10), "contiguous seed 12345 n 100 L 10: known view");

    mm_seqmask_opts_init(&o, MM_SEQMASK_SAMPLE);
    o.count = 6;
    o.ratio = 0.5;
    ok(mm_seqmask_draw(&o, 12345, 100, idx, mask, NULL) == 0, "sample: draw");
    static const int32_t si[6] = {83, 86, 16, 89, 44, 36};
    static const uint8_t sm[6] = {1, 1, 0, 0, 1, 0};
    ok(eq32(idx, si, 6) && !memcmp(mask, sm, 6), "sample seed 12345 n 100 N 6: known view (draw order)");
    ok(mm_seqmask_draw(&o, 12345, 3, idx, mask, NULL) == 0, "sample with replacement: draw");
    static const int32_t ri[6] = {0, 1, 1, 2, 1, 1};
    ok(eq32(idx, ri, 6) && !memcmp(mask, sm, 6), "sample seed 12345 n 3 N 6: known view");
}

static void counts(void)
{
    mm_seqmask_opts o;
    int64_t n = 150000, L = 6000;
    int32_t *idx = malloc(8192 * sizeof *idx), *idx2 = malloc(8192 * sizeof *idx);
    uint8_t *mask = malloc(8192), *mask2 = malloc(8192);
    uint64_t seed;

    is_int(mm_seqmask_hidden(0.5, 6000), 3000, "H(0.5, 6000) = 3000");
    is_int(mm_seqmask_hidden(0.75, 2048), 1536, "H(0.75, 2048) = 1536 (MIRROR keeps 512)");
    is_int(mm_seqmask_hidden(0.5, 5), 3, "H(0.5, 5) = floor(3.0) = 3");
    is_int(mm_seqmask_hidden(0.3, 10), 3, "H(0.3, 10) = 3");

    mm_seqmask_opts_init(&o, MM_SEQMASK_CONTIGUOUS);
    is_int(o.length, 6000, "contiguous default length 6000");
    ok(o.ratio == 0.5, "contiguous default ratio 0.5");
    ok(mm_seqmask_view(&o, "TCGA-05-4244-01Z", 7, 0, n, idx, mask, NULL, &seed) == 0,
       "contiguous over 150,000 tokens");
    int contig = 1;
    for (int64_t j = 1; j < L; j++) contig &= idx[j] == idx[j - 1] + 1;
    ok(contig && idx[0] >= 0 && idx[0] <= n - L, "contiguous: a run of 6000 starting in [0, n - L]");
    is_int(sum8(mask, L), 3000, "contiguous: exactly 3000 of 6000 hidden");
    ok(seed == mm_seqmask_seed("TCGA-05-4244-01Z", 7, 0), "the view's seed is reported");

    ok(mm_seqmask_view(&o, "TCGA-05-4244-01Z", 7, 0, n, idx2, mask2, NULL, NULL) == 0 &&
       eq32(idx, idx2, L) && !memcmp(mask, mask2, (size_t)L), "the same seed gives the same view");
    ok(mm_seqmask_view(&o, "TCGA-05-4244-01Z", 7, 1, n, idx2, mask2, NULL, NULL) == 0 &&
       memcmp(mask, mask2, (size_t)L) != 0, "view 1 differs from view 0");
    ok(mm_seqmask_view(&o, "TCGA-05-4245-01Z", 7, 0, n, idx2, mask2, NULL, NULL) == 0 &&
       memcmp(mask, mask2, (size_t)L) != 0, "another slide id, the same seed: another mask");
    ok(mm_seqmask_view(&o, "TCGA-05-4244-01Z", 8, 0, n, idx2, mask2, NULL, NULL) == 0 &&
       memcmp(mask, mask2, (size_t)L) != 0, "another base seed: another mask");

    /* a short slide: repeated in order from its first token, truncated */
    o.length = 20;
    ok(mm_seqmask_view(&o, "short", 0, 0, 7, idx, mask, NULL, NULL) == 0, "short slide: 7 tokens, L 20");
    int rep = 1;
    for (int j = 0; j < 20; j++) rep &= idx[j] == j % 7;
    ok(rep, "short slide: 0..6, 0..6, 0..5");
    is_int(sum8(mask, 20), 10, "short slide: 10 of 20 hidden");
    o.length = 7;
    ok(mm_seqmask_view(&o, "exact", 0, 0, 7, idx, mask, NULL, NULL) == 0 && idx[0] == 0 &&
       idx[6] == 6, "n = L: the whole slide");

    /* sample: without replacement when n >= N, with otherwise */
    mm_seqmask_opts_init(&o, MM_SEQMASK_SAMPLE);
    is_int(o.count, 2048, "sample default count 2048");
    ok(o.ratio == 0, "sample default: no mask");
    o.ratio = 0.75;
    ok(mm_seqmask_view(&o, "s", 42, 0, 5000, idx, mask, NULL, NULL) == 0, "sample 2048 of 5000");
    uint8_t *seen = calloc(5000, 1);
    int uniq = 1;
    for (int j = 0; j < 2048; j++) {
        if (idx[j] < 0 || idx[j] >= 5000 || seen[idx[j]]) { uniq = 0; break; }
        seen[idx[j]] = 1;
    }
    ok(uniq, "sample: 2048 distinct indices within [0, 5000)");
    is_int(sum8(mask, 2048), 1536, "sample: 1536 of 2048 hidden at ratio 0.75");
    ok(mm_seqmask_view(&o, "s", 42, 0, 2048, idx, mask, NULL, NULL) == 0, "sample 2048 of 2048");
    memset(seen, 0, 5000);
    int perm = 1;
    for (int j = 0; j < 2048; j++) {
        if (seen[idx[j]]) perm = 0;
        seen[idx[j]] = 1;
    }
    ok(perm, "sample n = N: a permutation");
    ok(mm_seqmask_view(&o, "s", 42, 0, 1000, idx, mask, NULL, NULL) == 0 &&
       in_range(idx, 2048, 1000), "sample 2048 of 1000: with replacement, within range");
    ok(mm_seqmask_view(&o, "s", 42, 0, 1, idx, mask, NULL, NULL) == 0 && in_range(idx, 2048, 1),
       "sample of a 1-token slide: all 0");
    free(seen);

    /* random: the whole slide in order */
    mm_seqmask_opts_init(&o, MM_SEQMASK_RANDOM);
    o.ratio = 0.3;
    is_int(mm_seqmask_len(&o, 1000), 1000, "random: a view is the whole slide");
    ok(mm_seqmask_view(&o, "r", 1, 0, 1000, idx, mask, NULL, NULL) == 0, "random: draw");
    int ord = 1;
    for (int j = 0; j < 1000; j++) ord &= idx[j] == j;
    ok(ord, "random: indices 0..n-1 in order");
    is_int(sum8(mask, 1000), 300, "random: 300 of 1000 hidden");
    o.ratio = 0;
    ok(mm_seqmask_view(&o, "r", 1, 0, 1000, idx, mask, NULL, NULL) == 0 && sum8(mask, 1000) == 0,
       "ratio 0: nothing hidden");

    /* omics: one block, uniform */
    mm_seqmask_opts_init(&o, MM_SEQMASK_OMICS);
    o.blocks = 3;
    int hits[3] = {0, 0, 0}, okb = 1;
    for (int i = 0; i < 3000; i++) {
        char id[32];
        int64_t b;
        snprintf(id, sizeof id, "TCGA-%04d", i);
        if (mm_seqmask_view(&o, id, 5, 0, 0, NULL, NULL, &b, NULL) != 0 || b < 0 || b > 2) okb = 0;
        else hits[b]++;
    }
    ok(okb, "omics: a block in [0, 3) for 3000 samples");
    ok(hits[0] > 900 && hits[1] > 900 && hits[2] > 900, "omics: each block about a third (%d %d %d)",
       hits[0], hits[1], hits[2]);

    /* bad options */
    mm_seqmask_opts_init(&o, MM_SEQMASK_CONTIGUOUS);
    o.ratio = 1;
    ok(mm_seqmask_check(&o) == -1, "ratio 1 refused");
    like(mm_strerror(), "[0, 1)", "the message names the range");
    o.ratio = -0.1;
    ok(mm_seqmask_check(&o) == -1, "ratio -0.1 refused");
    o.ratio = 0.5;
    o.length = 0;
    ok(mm_seqmask_check(&o) == -1, "length 0 refused");
    o.length = 10;
    ok(mm_seqmask_draw(&o, 1, 0, idx, mask, NULL) == -1, "a slide of 0 tokens refused");
    is_int(mm_seqmask_mode_parse("sample"), MM_SEQMASK_SAMPLE, "mode names parse");
    is_int(mm_seqmask_mode_parse("nope"), -1, "unknown mode: -1");
    free(idx);
    free(idx2);
    free(mask);
    free(mask2);
}

static void gather(void)
{
    /* 2 views of 5 rows from 6 rows of 3 floats, with repeats */
    const int32_t plan[10] = {5, 0, 0, 3, 5, 1, 1, 2, 4, 1};
    mm_seqgather *g = mm_seqgather_new(6, 2, 5, plan, 3 * sizeof(float));
    float rows[6][3];
    int32_t xy[6][2];
    for (int i = 0; i < 6; i++) {
        for (int d = 0; d < 3; d++) rows[i][d] = (float)(10 * i + d);
        xy[i][0] = i;
        xy[i][1] = -i;
    }
    mm_seqgather_feed(g, 0, 4, rows[0], xy[0]);  /* two chunks */
    mm_seqgather_feed(g, 4, 2, rows[4], xy[4]);
    int good = 1;
    for (int v = 0; v < 2; v++) {
        const float *f = mm_seqgather_rows(g, v);
        const int32_t *x = mm_seqgather_xy(g, v);
        for (int j = 0; j < 5; j++) {
            int s = plan[v * 5 + j];
            for (int d = 0; d < 3; d++) good &= f[j * 3 + d] == rows[s][d];
            good &= x[2 * j] == s && x[2 * j + 1] == -s;
        }
    }
    ok(good, "gather: every view row is its source row, repeats included");
    mm_seqgather_free(g);

    /* a 150,000-token slide of dim 64 streamed in chunks of 4096: what the
     * gather holds is the view (6000 rows), not the slide (37 MiB) */
    const int64_t n = 150000, dim = 64, L = 6000, step = 4096;
    mm_seqmask_opts o;
    mm_seqmask_opts_init(&o, MM_SEQMASK_CONTIGUOUS);
    int32_t *idx = malloc(L * sizeof *idx);
    uint8_t *mask = malloc(L);
    ok(mm_seqmask_view(&o, "big", 3, 0, n, idx, mask, NULL, NULL) == 0, "big slide: the view");
    size_t need = mm_seqgather_bytes(n, 1, L, dim * sizeof(float));
    ok(need < (size_t)(n * dim * sizeof(float)) / 8, "big slide: the gather needs %.1f MiB, "
       "the slide %.1f", need / 1048576.0, n * dim * 4 / 1048576.0);
    float *chunk = malloc(step * dim * sizeof *chunk);
    int32_t *cxy = malloc(step * 2 * sizeof *cxy);
    long before = maxrss_kib();
    g = mm_seqgather_new(n, 1, L, idx, dim * sizeof(float));
    for (int64_t r0 = 0; r0 < n; r0 += step) {
        int64_t k = n - r0 < step ? n - r0 : step;
        for (int64_t i = 0; i < k; i++) {
            for (int64_t d = 0; d < dim; d++) chunk[i * dim + d] = (float)(r0 + i);
            cxy[2 * i] = (int32_t)(r0 + i);
            cxy[2 * i + 1] = 0;
        }
        mm_seqgather_feed(g, r0, k, chunk, cxy);
    }
    long grew = maxrss_kib() - before;
    const float *f = mm_seqgather_rows(g, 0);
    good = 1;
    for (int64_t j = 0; j < L; j++) good &= f[j * dim] == (float)idx[j] && f[j * dim + dim - 1] == (float)idx[j];
    ok(good, "big slide: the view's rows are the sampled tokens");
    ok(grew < 16 * 1024, "big slide: peak memory grew %ld KiB streaming 37 MiB of tokens (< 16 MiB)", grew);
    mm_seqgather_free(g);
    free(chunk);
    free(cxy);
    free(idx);
    free(mask);
}

int main(void)
{
    known_values();
    counts();
    gather();
    return done_testing();
}
