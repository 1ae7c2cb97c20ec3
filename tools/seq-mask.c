/* seq-mask: features (or omics) streams in, a views stream out: GiMP's
 * contiguous crop with a patch mask, MIRROR's token sample, a random mask
 * over the whole slide, POMP's zeroed omics block; --views K per input.
 * The draws live in lib/seqmask.c (shared with mm-train); this file reads,
 * gathers the rows a view needs while the slide streams past once, and
 * writes. It does not shuffle slides or batch them.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mm/seqmask.h"
#include "mm/stream.h"
#include "toolutil.h"

static void usage(FILE *fp)
{
    fprintf(fp,
"Usage: seq-mask --mode MODE [options] [INPUT]\n"
"\n"
"Views of patch-feature sequences for masked pre-training. INPUT is a\n"
"features stream (one segment per slide) or, for --mode omics, omics\n"
"segments, one per block; '-' or none: stdin. Output: a views stream.\n"
"\n"
"  -m, --mode MODE        contiguous: L tokens from a random start in tile\n"
"                         order, repeated when the slide is shorter (GiMP);\n"
"                         sample: N tokens, without replacement when the\n"
"                         slide has N (MIRROR); random: every token;\n"
"                         omics: zero one whole block (POMP)\n"
"  -L, --length L         contiguous: tokens per view [6000]\n"
"  -n, --count N          sample: tokens per view [2048]\n"
"  -r, --ratio R          hidden fraction, in [0, 1) [0.5; sample 0]\n"
"  -k, --views K          views per input [1]\n"
"  -s, --seed S           base seed, mixed with each id [0]\n"
"      --max-buffer MIB   memory for a slide without \"n\" or for the views\n"
"                         [2048]\n"
"  -o, --output FILE      the views stream [stdout]\n"
"  -@, --threads N        accepted, unused\n"
"  -v, -q, -h, -V         more/less on stderr, help, version\n"
"Exit status: 0 ok, 1 bad input, 2 bad usage.\n");
}

static mm_stream *g_out;

static void set_u64(mm_val *v, uint64_t x)
{
    if (x > INT64_MAX) { v->type = MM_UINT; v->u.u = x; }
    else mm_val_set_int(v, (int64_t)x);
}

typedef struct {
    mm_seqmask_opts o;
    int64_t views;
    uint64_t seed;
    size_t cap;          /* --max-buffer in bytes */
    int pn;
    char **pargv;        /* provenance */
} cfg;

static void header_common(const cfg *c, mm_rec *h, const char *src_kind, const char *id)
{
    mm_hdr_init(h, "views", id);
    mm_hdr_set_tool(h, "seq-mask", c->pn, c->pargv);
    mm_val *m = mm_hdr_meta(h);
    mm_val_set_str(h, mm_map_put(h, m, "source_kind"), src_kind);
    mm_val_set_str(h, mm_map_put(h, m, "source_id"), id);
    mm_val_set_str(h, mm_map_put(h, m, "mode"), mm_seqmask_mode_name(c->o.mode));
    if (c->o.mode == MM_SEQMASK_CONTIGUOUS)
        mm_val_set_int(mm_map_put(h, m, "length"), c->o.length);
    if (c->o.mode == MM_SEQMASK_SAMPLE)
        mm_val_set_int(mm_map_put(h, m, "count"), c->o.count);
    if (c->o.mode != MM_SEQMASK_OMICS)
        mm_val_set_float(mm_map_put(h, m, "ratio"), c->o.ratio);
    set_u64(mm_map_put(h, m, "seed"), c->seed);
    mm_val_set_int(mm_map_put(h, m, "views"), c->views);
    mm_val_set_str(h, mm_map_put(h, m, "algorithm"), "seq-mask 1");
}

static double mib(size_t b) { return (double)b / (1 << 20); }

// ---- features: one segment in, one views segment out

static void do_features(const cfg *c, mm_stream *in, mm_stream *out)
{
    const mm_rec *h = mm_stream_header(in);
    const char *name = mm_stream_name(in);
    char *id = mm_strdup(mm_hdr_id(h) ? mm_hdr_id(h) : "");
    int64_t n = -1;
    const mm_val *nv = mm_map_get(mm_rec_get(h, "meta"), "n");
    if (nv && (mm_val_int(nv, &n) != 0 || n < 0)) n = -1;
    int streaming = n >= 0 && c->o.mode != MM_SEQMASK_RANDOM;
    if (n == 0) mm_die_discard(&g_out, "%s: slide '%s' has no tokens", name, id);
    if (n > INT32_MAX) mm_die_discard(&g_out, "%s: slide '%s': %lld tokens, more than seq-mask takes", name, id,
                            (long long)n);
    int64_t len = streaming ? mm_seqmask_len(&c->o, n) : 0;
    int32_t *idx = NULL;
    uint8_t *mask = NULL;
    uint64_t *vseed = NULL;
    if (streaming) { /* every view decided before the first token arrives */
        idx = mm_malloc((size_t)(c->views * len) * sizeof *idx);
        mask = mm_malloc((size_t)(c->views * len));
        vseed = mm_malloc((size_t)c->views * sizeof *vseed);
        for (int64_t v = 0; v < c->views; v++)
            if (mm_seqmask_view(&c->o, id, c->seed, v, n, idx + v * len, mask + v * len,
                                NULL, &vseed[v]) != 0)
                mm_die_discard(&g_out, "%s: %s", id, mm_strerror());
    }
    mm_seqgather *g = NULL;
    unsigned char *slide = NULL;  /* buffered path: every row */
    int32_t *sxy = NULL;
    size_t scap = 0;
    int64_t rows = 0, dim = -1;
    mm_dtype dt = MM_F32;
    size_t row_bytes = 0;
    int32_t *xyb = NULL;
    size_t xycap = 0;
    mm_rec *r = mm_rec_new();
    mm_progress *pg = mm_progress_new("tokens read", n > 0 ? (uint64_t)n : 0);
    int64_t k;
    while ((k = mm_stream_read(in, r)) >= 0) {
        mm_nd f, xy;
        if (mm_val_nd(mm_rec_get(r, "f"), &f) != 0 || f.ndim != 2)
            mm_die_discard(&g_out, "%s: slide '%s', record %lld: no \"f\" tensor [k, dim]", name, id, (long long)k);
        if (mm_val_nd(mm_rec_get(r, "xy"), &xy) != 0 || xy.ndim != 2 || xy.shape[1] != 2 ||
            xy.shape[0] != f.shape[0])
            mm_die_discard(&g_out, "%s: slide '%s', record %lld: no \"xy\" tensor [k, 2] beside \"f\"", name, id,
                 (long long)k);
        if (dim < 0) {
            dim = f.shape[1];
            dt = f.dtype;
            row_bytes = (size_t)dim * mm_dtype_size(dt);
            if (streaming) {
                size_t need = mm_seqgather_bytes(n, c->views, len, row_bytes);
                if (need > c->cap)
                    mm_die_discard(&g_out, "%s: slide '%s': %lld views of %lld tokens need %.0f MiB, over "
                         "--max-buffer %.0f MiB", name, id, (long long)c->views,
                         (long long)len, mib(need), mib(c->cap));
                g = mm_seqgather_new(n, c->views, len, idx, row_bytes);
            }
        } else if (f.shape[1] != dim || f.dtype != dt) {
            mm_die_discard(&g_out, "%s: slide '%s', record %lld: \"f\" is %s [%lld, %lld], earlier chunks %s "
                 "[k, %lld]", name, id, (long long)k, mm_dtype_name(f.dtype),
                 (long long)f.shape[0], (long long)f.shape[1], mm_dtype_name(dt),
                 (long long)dim);
        }
        int64_t kr = f.shape[0];
        if ((size_t)kr * 2 > xycap) xyb = mm_realloc(xyb, (xycap = (size_t)kr * 2) * sizeof *xyb);
        for (int64_t i = 0; i < 2 * kr; i++) xyb[i] = (int32_t)mm_nd_at(&xy, i);
        if (streaming) {
            if (rows + kr > n)
                mm_die_discard(&g_out, "%s: slide '%s': more tokens than its header's n = %lld", name, id,
                     (long long)n);
            mm_seqgather_feed(g, rows, kr, f.data, xyb);
        } else {
            size_t need = (size_t)(rows + kr) * (row_bytes + 2 * sizeof(int32_t));
            if (need > c->cap)
                mm_die_discard(&g_out, "%s: slide '%s': %s and its tokens exceed --max-buffer %.0f MiB; "
                     "give the header \"n\" or raise --max-buffer", name, id,
                     n < 0 ? "no token count (\"n\") in the header"
                           : "--mode random holds the slide", mib(c->cap));
            if ((size_t)(rows + kr) > scap) {
                scap = (size_t)(rows + kr) * 2;
                slide = mm_realloc(slide, scap * row_bytes);
                sxy = mm_realloc(sxy, scap * 2 * sizeof *sxy);
            }
            memcpy(slide + (size_t)rows * row_bytes, f.data, (size_t)kr * row_bytes);
            memcpy(sxy + (size_t)rows * 2, xyb, (size_t)kr * 2 * sizeof *sxy);
        }
        rows += kr;
        mm_progress_update(pg, (uint64_t)rows);
    }
    mm_progress_end(pg);
    if (k < -1) mm_die_discard(&g_out, "%s", mm_stream_error(in));
    if (n >= 0 && rows != n)
        mm_die_discard(&g_out, "%s: slide '%s': its header says n = %lld but it has %lld tokens", name, id,
             (long long)n, (long long)rows);
    if (rows == 0) mm_die_discard(&g_out, "%s: slide '%s' has no tokens", name, id);
    char digest[32];
    snprintf(digest, sizeof digest, "%s", mm_stream_digest(in));
    n = rows;
    if (!streaming) {
        len = mm_seqmask_len(&c->o, n);
        idx = mm_malloc((size_t)len * sizeof *idx);
        mask = mm_malloc((size_t)len);
        vseed = mm_malloc(sizeof *vseed);
    }

    mm_rec *oh = mm_rec_new();
    header_common(c, oh, "features", id);
    mm_hdr_add_parent(oh, "features", id);
    mm_val *m = mm_hdr_meta(oh);
    mm_val_set_int(mm_map_put(oh, m, "source_n"), n);
    mm_val_set_int(mm_map_put(oh, m, "tokens"), len);
    mm_val_set_int(mm_map_put(oh, m, "dim"), dim);
    if (mm_stream_begin(out, oh) != 0) mm_die_discard(&g_out, "%s", mm_stream_error(out));
    mm_stream_add_parent(out, "features", id, digest);
    unsigned char *vrows = streaming ? NULL : mm_malloc((size_t)len * row_bytes);
    int32_t *vxy = streaming ? NULL : mm_malloc((size_t)len * 2 * sizeof *vxy);
    mm_rec *extra = mm_rec_new();
    for (int64_t v = 0; v < c->views; v++) {
        const void *fr;
        const int32_t *xr, *ir;
        const uint8_t *mr;
        uint64_t s;
        if (streaming) {
            fr = mm_seqgather_rows(g, v);
            xr = mm_seqgather_xy(g, v);
            ir = idx + v * len;
            mr = mask + v * len;
            s = vseed[v];
        } else {
            if (mm_seqmask_view(&c->o, id, c->seed, v, n, idx, mask, NULL, &s) != 0)
                mm_die_discard(&g_out, "%s: %s", id, mm_strerror());
            for (int64_t j = 0; j < len; j++) {
                memcpy(vrows + (size_t)j * row_bytes, slide + (size_t)idx[j] * row_bytes,
                       row_bytes);
                vxy[2 * j] = sxy[2 * (size_t)idx[j]];
                vxy[2 * j + 1] = sxy[2 * (size_t)idx[j] + 1];
            }
            fr = vrows; xr = vxy; ir = idx; mr = mask;
        }
        mm_rec_clear(extra);
        mm_val_set_str(extra, mm_rec_put(extra, "id"), id);
        mm_val_set_int(mm_rec_put(extra, "view"), v);
        set_u64(mm_rec_put(extra, "seed"), s);
        mm_nd t[4] = {
            {.dtype = dt, .ndim = 2, .shape = {len, dim}, .count = len * dim, .data = fr,
             .nbytes = (size_t)len * row_bytes},
            {.dtype = MM_I32, .ndim = 2, .shape = {len, 2}, .count = len * 2, .data = xr,
             .nbytes = (size_t)len * 2 * sizeof(int32_t)},
            {.dtype = MM_I32, .ndim = 1, .shape = {len}, .count = len, .data = ir,
             .nbytes = (size_t)len * sizeof(int32_t)},
            {.dtype = MM_U8, .ndim = 1, .shape = {len}, .count = len, .data = mr,
             .nbytes = (size_t)len}};
        static const char *const keys[4] = {"f", "xy", "idx", "mask"};
        if (mm_stream_write_rows(out, extra, 4, keys, t) < 0) mm_die_discard(&g_out, "%s", mm_stream_error(out));
    }
    if (mm_stream_end(out) != 0) mm_die_discard(&g_out, "%s", mm_stream_error(out));
    mm_note(3, "%s: %lld tokens, %lld views of %lld", id, (long long)n, (long long)c->views,
            (long long)len);
    mm_rec_free(extra);
    mm_rec_free(oh);
    mm_rec_free(r);
    mm_seqgather_free(g);
    free(vrows);
    free(vxy);
    free(slide);
    free(sxy);
    free(xyb);
    free(idx);
    free(mask);
    free(vseed);
    free(id);
}

// ---- omics: every segment is one block of the same samples

typedef struct {
    char *name, *id, *digest;
    int64_t nf, ns;
    char **sample;
    float *x;      /* (ns, nf) */
} block;

static void read_block(const cfg *c, mm_stream *in, block *b, size_t *held)
{
    const mm_rec *h = mm_stream_header(in);
    const char *name = mm_stream_name(in);
    const char *bn = mm_val_str(mm_map_get(mm_rec_get(h, "meta"), "block"));
    b->id = mm_strdup(mm_hdr_id(h) ? mm_hdr_id(h) : "");
    b->name = mm_strdup(bn ? bn : b->id);
    b->nf = -1;
    size_t cap = 0;
    mm_rec *r = mm_rec_new();
    int64_t k;
    while ((k = mm_stream_read(in, r)) >= 0) {
        const char *sid = mm_val_str(mm_rec_get(r, "id"));
        mm_nd v;
        if (!sid || mm_val_nd(mm_rec_get(r, "v"), &v) != 0 || v.ndim != 1)
            mm_die_discard(&g_out, "%s: block '%s', record %lld: expected {\"id\", \"v\": [n_features]}", name,
                 b->name, (long long)k);
        if (b->nf < 0) b->nf = v.shape[0];
        else if (v.shape[0] != b->nf)
            mm_die_discard(&g_out, "%s: block '%s', sample '%s': %lld features, earlier samples %lld", name,
                 b->name, sid, (long long)v.shape[0], (long long)b->nf);
        *held += (size_t)b->nf * sizeof(float) + strlen(sid) + 1;
        if (*held > c->cap)
            mm_die_discard(&g_out, "%s: the omics blocks exceed --max-buffer %.0f MiB", name, mib(c->cap));
        if ((size_t)b->ns == cap) {
            cap = cap ? cap * 2 : 64;
            b->sample = mm_realloc(b->sample, cap * sizeof *b->sample);
            b->x = mm_realloc(b->x, cap * (size_t)b->nf * sizeof(float));
        }
        b->sample[b->ns] = mm_strdup(sid);
        mm_nd_get_f32(&v, b->x + (size_t)b->ns * (size_t)b->nf);
        b->ns++;
    }
    if (k < -1) mm_die_discard(&g_out, "%s", mm_stream_error(in));
    if (b->ns == 0) mm_die_discard(&g_out, "%s: block '%s' has no samples", name, b->name);
    b->digest = mm_strdup(mm_stream_digest(in));
    mm_rec_free(r);
}

static const block *g_sort_block;
static int cmp_sample(const void *a, const void *b)
{
    return strcmp(g_sort_block->sample[*(const int64_t *)a],
                  g_sort_block->sample[*(const int64_t *)b]);
}

/* Row of SID in B via ORD (B's rows sorted by id), or -1. */
static int64_t find_sample(const block *b, const int64_t *ord, const char *sid)
{
    int64_t lo = 0, hi = b->ns;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(b->sample[ord[mid]], sid);
        if (c == 0) return ord[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return -1;
}

static void write_omics(cfg *c, block *bl, int nb, const char *name, mm_stream *out)
{
    if (nb < 2) mm_die_discard(&g_out, "%s: --mode omics needs 2 or more blocks (omics segments), got %d", name, nb);
    c->o.blocks = nb;
    int64_t nf = 0, ns = bl[0].ns;
    int64_t **row = mm_malloc((size_t)nb * sizeof *row);  /* block b's row of sample i */
    for (int b = 0; b < nb; b++) {
        nf += bl[b].nf;
        if (bl[b].ns != ns)
            mm_die_discard(&g_out, "%s: block '%s' has %lld samples, block '%s' %lld: every block needs the "
                 "same samples", name, bl[b].name, (long long)bl[b].ns, bl[0].name,
                 (long long)ns);
        int64_t *ord = mm_malloc((size_t)ns * sizeof *ord);
        for (int64_t i = 0; i < ns; i++) ord[i] = i;
        g_sort_block = &bl[b];
        qsort(ord, (size_t)ns, sizeof *ord, cmp_sample);
        row[b] = mm_malloc((size_t)ns * sizeof **row);
        for (int64_t i = 0; i < ns; i++) {
            row[b][i] = find_sample(&bl[b], ord, bl[0].sample[i]);
            if (row[b][i] < 0)
                mm_die_discard(&g_out, "%s: sample '%s' of block '%s' is missing from block '%s'", name,
                     bl[0].sample[i], bl[0].name, bl[b].name);
        }
        free(ord);
    }
    mm_rec *h = mm_rec_new();
    header_common(c, h, "omics", bl[0].id);
    mm_val *m = mm_hdr_meta(h);
    mm_val *bn = mm_map_put(h, m, "blocks"), *bs = mm_map_put(h, m, "block_sizes");
    mm_val_set_array(bn);
    mm_val_set_array(bs);
    for (int b = 0; b < nb; b++) {
        mm_hdr_add_parent(h, "omics", bl[b].id);
        mm_val_set_str(h, mm_array_push(h, bn), bl[b].name);
        mm_val_set_int(mm_array_push(h, bs), bl[b].nf);
    }
    if (mm_stream_begin(out, h) != 0) mm_die_discard(&g_out, "%s", mm_stream_error(out));
    for (int b = 0; b < nb; b++) mm_stream_add_parent(out, "omics", bl[b].id, bl[b].digest);
    float *x = mm_malloc((size_t)nf * sizeof *x);
    uint8_t *mask = mm_malloc((size_t)nf);
    mm_rec *r = mm_rec_new();
    int64_t shape[1] = {nf};
    for (int64_t v = 0; v < c->views; v++)
        for (int64_t i = 0; i < ns; i++) {
            int64_t blk;
            uint64_t s;
            const char *sid = bl[0].sample[i];
            if (mm_seqmask_view(&c->o, sid, c->seed, v, 0, NULL, NULL, &blk, &s) != 0)
                mm_die_discard(&g_out, "%s: %s", sid, mm_strerror());
            int64_t at = 0;
            for (int b = 0; b < nb; b++) {
                int hide = b == blk;
                const float *src = bl[b].x + (size_t)row[b][i] * (size_t)bl[b].nf;
                for (int64_t j = 0; j < bl[b].nf; j++) {
                    x[at + j] = hide ? 0.0f : src[j];
                    mask[at + j] = (uint8_t)hide;
                }
                at += bl[b].nf;
            }
            mm_rec_clear(r);
            mm_val_set_str(r, mm_rec_put(r, "id"), sid);
            mm_val_set_int(mm_rec_put(r, "view"), v);
            set_u64(mm_rec_put(r, "seed"), s);
            mm_val_set_int(mm_rec_put(r, "chunk"), 0);
            mm_val_set_int(mm_rec_put(r, "block"), blk);
            mm_val_set_nd(r, mm_rec_put(r, "v"), MM_F32, 1, shape, x, 0);
            mm_val_set_nd(r, mm_rec_put(r, "mask"), MM_U8, 1, shape, mask, 0);
            if (mm_stream_write(out, r) != 0) mm_die_discard(&g_out, "%s", mm_stream_error(out));
        }
    if (mm_stream_end(out) != 0) mm_die_discard(&g_out, "%s", mm_stream_error(out));
    mm_rec_free(r);
    mm_rec_free(h);
    free(x);
    free(mask);
    for (int b = 0; b < nb; b++) free(row[b]);
    free(row);
}

int main(int argc, char **argv)
{
    enum { O_MAXBUF = 256 };
    static const struct option lopts[] = {
        {"mode", required_argument, NULL, 'm'}, {"length", required_argument, NULL, 'L'},
        {"count", required_argument, NULL, 'n'}, {"ratio", required_argument, NULL, 'r'},
        {"views", required_argument, NULL, 'k'}, {"seed", required_argument, NULL, 's'},
        {"max-buffer", required_argument, NULL, O_MAXBUF},
        {"output", required_argument, NULL, 'o'},
        MM_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    const char *optstring = "m:L:n:r:k:s:o:@:vqhV";
    const char *out = "-", *ratio_s = NULL;
    long long length = 6000, count = 2048, views = 1, seed = 0, maxbuf = 2048;
    int mode = -1, c;
    mm_tool_init("seq-mask");
    while ((c = getopt_long(argc, argv, optstring, lopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            if ((mode = mm_seqmask_mode_parse(optarg)) < 0)
                mm_die_usage("--mode: expected contiguous, sample, random or omics, got '%s'",
                             optarg);
            break;
        case 'L': length = mm_opt_int("--length", optarg, 1, INT32_MAX); break;
        case 'n': count = mm_opt_int("--count", optarg, 1, INT32_MAX); break;
        case 'r': ratio_s = optarg; break;
        case 'k': views = mm_opt_int("--views", optarg, 1, 1000000); break;
        case 's': seed = mm_opt_int("--seed", optarg, 0, LLONG_MAX); break;
        case O_MAXBUF: maxbuf = mm_opt_int("--max-buffer", optarg, 1, 1 << 30); break;
        case 'o': out = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': mm_print_version("seq-mask"); return 0;
        default:
            if (mm_common_opt(c, optarg)) break;
            usage(stderr);
            return MM_EXIT_USAGE;
        }
    }
    if (optind + 1 < argc) mm_die_usage("expected one INPUT, got %d", argc - optind);
    const char *in_path = optind < argc ? argv[optind] : "-";
    if (argc == 1 || (optind == argc && mode < 0 && isatty(STDIN_FILENO))) {
        usage(stderr);
        return MM_EXIT_USAGE;
    }
    if (mode < 0) mm_die_usage("--mode: required (contiguous, sample, random or omics)");
    cfg cf;
    mm_seqmask_opts_init(&cf.o, (mm_seqmask_mode)mode);
    cf.o.length = length;
    cf.o.count = count;
    if (ratio_s) {
        double r;
        if (mm_parse_double(ratio_s, 0, 1, &r) != 0 || r >= 1)
            mm_die_usage("--ratio: expected a number in [0, 1), got '%s'", ratio_s);
        cf.o.ratio = r;
    }
    if (mode == MM_SEQMASK_OMICS) cf.o.blocks = 1; /* set from the input */
    if (mm_seqmask_check(&cf.o) != 0) mm_die_usage("%s", mm_strerror());
    cf.views = views;
    cf.seed = (uint64_t)seed;
    cf.cap = (size_t)maxbuf << 20;
    if (!strcmp(in_path, "-") && isatty(STDIN_FILENO)) {
        usage(stderr);
        return MM_EXIT_USAGE;
    }
    mm_refuse_tty(out);
    cf.pargv = mm_argv_provenance(argc, argv, optstring, lopts, &cf.pn);
    cf.pargv[0] = "seq-mask"; /* not the path it was run by */

    mm_stream *in = mm_stream_open(in_path, "r");
    if (!in) mm_die("%s", mm_strerror());
    g_out = mm_stream_open(out, "w");
    if (!g_out) mm_die("%s", mm_strerror());
    block *bl = NULL;
    int nb = 0;
    size_t held = 0;
    int ret;
    while ((ret = mm_stream_next(in)) == 0) {
        const mm_rec *h = mm_stream_header(in);
        const char *kind = mm_hdr_kind(h) ? mm_hdr_kind(h) : "?";
        const char *id = mm_hdr_id(h) ? mm_hdr_id(h) : "";
        if (mode == MM_SEQMASK_OMICS) {
            if (strcmp(kind, "omics"))
                mm_die_discard(&g_out, "%s: segment '%s' has kind %s; --mode omics reads omics streams",
                     mm_stream_name(in), id, kind);
            bl = mm_realloc(bl, (size_t)(nb + 1) * sizeof *bl);
            memset(&bl[nb], 0, sizeof *bl);
            read_block(&cf, in, &bl[nb++], &held);
        } else {
            if (strcmp(kind, "features"))
                mm_die_discard(&g_out, "%s: segment '%s' has kind %s, not features%s", mm_stream_name(in), id,
                     kind, strcmp(kind, "omics") ? "" : " (omics: --mode omics)");
            do_features(&cf, in, g_out);
        }
    }
    if (ret < -1) mm_die_discard(&g_out, "%s", mm_stream_error(in));
    if (mode == MM_SEQMASK_OMICS) write_omics(&cf, bl, nb, mm_stream_name(in), g_out);
    if (mm_stream_close(in) != 0) mm_die_discard(&g_out, "%s", mm_strerror());
    mm_stream *o = g_out;
    g_out = NULL;
    if (mm_stream_close(o) != 0) mm_die("%s", mm_strerror());
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        mm_note(3, "peak memory: %ld MiB", ru.ru_maxrss / 1024);
    for (int b = 0; b < nb; b++) {
        for (int64_t i = 0; i < bl[b].ns; i++) free(bl[b].sample[i]);
        free(bl[b].sample);
        free(bl[b].x);
        free(bl[b].name);
        free(bl[b].id);
        free(bl[b].digest);
    }
    free(bl);
    free(cf.pargv);
    return mm_tool_exit(0);
}
