/* mkfeatures.c: a small synthetic cohort with planted signals for
 * mm-train's tests (tests/tools/mm-train.sh):
 *   DIR/slides/P-DXk.mpk  one features stream per slide (TCGA-like ids;
 *                         every third patient has two slides)
 *   DIR/omics.mpk         an omics stream, G genes
 *   DIR/clinical.tsv      id, label (A/B), time, event
 * Every value is N(0, 1) noise except:
 *   subtype: in class B, a third of each slide's patches carry +SHIFT on
 *            patch features 0-3 (a few patch features, a few patches);
 *   survival: z ~ N(0, 1) per patient; gene 0 = z, and patch feature 4 of
 *            every patch = z + noise; time ~ Exponential(rate exp(1.5 z)),
 *            censored by an independent Exponential (about 30%).
 * Prints "oracle_cindex=C": Harrell's C of the true risk z, the ceiling a
 * model can reach on these data.
 * Usage: mkfeatures DIR N_PATIENTS DIM GENES SEED
 * A test helper, not installed.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mm/rng.h"
#include "mm/stream.h"
#include "mm/survival.h"

static double gauss(mm_rng *g)
{
    double z[2];
    mm_rng_normal2(g, z);
    return z[0];
}

static int write_slide(const char *path, const char *id, int n, int dim, const float *f)
{
    mm_stream *s = mm_stream_open(path, "w");
    if (!s) return -1;
    mm_rec *h = mm_rec_new(), *r = mm_rec_new();
    mm_hdr_init(h, "features", id);
    mm_val *m = mm_hdr_meta(h);
    char sp[512];
    snprintf(sp, sizeof sp, "/slides/%s.svs", id);
    mm_val_set_str(h, mm_map_put(h, m, "slide_path"), sp);
    mm_val_set_int(mm_map_put(h, m, "dim"), dim);
    mm_val_set_str(h, mm_map_put(h, m, "model"), "synthetic");
    mm_val_set_int(mm_map_put(h, m, "n"), n);
    int ret = mm_stream_begin(s, h);
    int32_t *xy = malloc((size_t)n * 2 * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        xy[2 * i] = i * 256;
        xy[2 * i + 1] = 0;
    }
    int64_t fs[2] = {n, dim}, xs[2] = {n, 2};
    mm_val_set_int(mm_rec_put(r, "chunk"), 0);
    mm_val_set_nd(r, mm_rec_put(r, "xy"), MM_I32, 2, xs, xy, 0);
    mm_val_set_nd(r, mm_rec_put(r, "f"), MM_F32, 2, fs, f, 0);
    if (ret == 0) ret = mm_stream_write(s, r);
    if (ret == 0) ret = mm_stream_end(s);
    free(xy);
    mm_rec_free(h);
    mm_rec_free(r);
    if (ret != 0) {
        mm_stream_discard(s);
        return -1;
    }
    return mm_stream_close(s);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "Usage: mkfeatures DIR N_PATIENTS DIM GENES SEED\n");
        return 2;
    }
    const char *dir = argv[1];
    int np = atoi(argv[2]), dim = atoi(argv[3]), genes = atoi(argv[4]);
    if (np < 4 || dim < 5 || genes < 1) return 2;
    mm_rng g;
    mm_rng_seed(&g, strtoull(argv[5], NULL, 10));
    char path[4096];
    snprintf(path, sizeof path, "%s/slides", dir);
    mkdir(dir, 0777);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/clinical.tsv", dir);
    FILE *clin = fopen(path, "w");
    if (!clin) return 1;
    fprintf(clin, "id\tlabel\ttime\tevent\n");
    snprintf(path, sizeof path, "%s/omics.mpk", dir);
    mm_stream *om = mm_stream_open(path, "w");
    if (!om) return 1;
    mm_rec *h = mm_rec_new(), *r = mm_rec_new();
    mm_hdr_init(h, "omics", "synthetic");
    mm_val *fa = mm_map_put(h, mm_hdr_meta(h), "features");
    mm_val_set_array(fa);
    for (int j = 0; j < genes; j++) {
        char gn[32];
        snprintf(gn, sizeof gn, "GENE%d", j);
        mm_val_set_str(h, mm_array_push(h, fa), gn);
    }
    if (mm_stream_begin(om, h) != 0) return 1;
    double *t = malloc((size_t)np * sizeof(double)), *risk = malloc((size_t)np * sizeof(double));
    int *e = malloc((size_t)np * sizeof(int));
    float *v = malloc((size_t)genes * sizeof(float));
    for (int p = 0; p < np; p++) {
        char pid[64];
        snprintf(pid, sizeof pid, "TCGA-SY-%04d", p + 1);
        int b = p % 2; /* alternating classes: balanced */
        double z = gauss(&g);
        double tt = -log(1 - mm_rng_uniform(&g)) / exp(1.5 * z);
        double tc = -log(1 - mm_rng_uniform(&g)) / 0.4;
        t[p] = 12 * (tt < tc ? tt : tc);
        e[p] = tt < tc;
        risk[p] = z;
        fprintf(clin, "%s\t%s\t%.6f\t%d\n", pid, b ? "B" : "A", t[p], e[p]);
        int ns = p % 3 == 0 ? 2 : 1;
        for (int s = 0; s < ns; s++) {
            int n = 20 + (int)mm_rng_below(&g, 30);
            float *f = malloc((size_t)n * (size_t)dim * sizeof(float));
            for (int i = 0; i < n; i++) {
                for (int d = 0; d < dim; d++) f[i * dim + d] = (float)gauss(&g);
                if (b && i % 3 == 0)
                    for (int d = 0; d < 4; d++) f[i * dim + d] += 2.0f;
                f[i * dim + 4] = (float)(z + 0.3 * gauss(&g));
            }
            char sid[96];
            snprintf(sid, sizeof sid, "%s-01Z-00-DX%d", pid, s + 1);
            snprintf(path, sizeof path, "%s/slides/%s.mpk", dir, sid);
            if (write_slide(path, sid, n, dim, f) != 0) return 1;
            free(f);
        }
        for (int j = 0; j < genes; j++) v[j] = (float)gauss(&g);
        v[0] = (float)z;
        char sample[80];
        snprintf(sample, sizeof sample, "%s-01A", pid);
        int64_t shape[1] = {genes};
        mm_rec_clear(r);
        mm_val_set_str(r, mm_rec_put(r, "id"), sample);
        mm_val_set_nd(r, mm_rec_put(r, "v"), MM_F32, 1, shape, v, 0);
        if (mm_stream_write(om, r) != 0) return 1;
    }
    if (mm_stream_end(om) != 0 || mm_stream_close(om) != 0) return 1;
    fclose(clin);
    mm_cindex ci;
    if (mm_cindex_harrell(t, e, risk, (size_t)np, &ci) != 0) return 1;
    printf("oracle_cindex=%.6f\n", ci.c);
    free(t); free(risk); free(e); free(v);
    mm_rec_free(h);
    mm_rec_free(r);
    return 0;
}
