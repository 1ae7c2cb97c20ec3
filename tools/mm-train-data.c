/* mm-train-data.c: mm-train's inputs joined by patient (STREAM.md "Ids and
 * joins"): feature streams (one segment per slide; a patient's slides
 * stacked in slide-id order into one bag), an omics stream, a clinical
 * table or stream, and split files in CLAM's or MIRROR's layout.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "mm/stream.h"
#include "mm-train.h"
#include "toolutil.h"

// ---- ids

typedef struct {
    char **from, **to;
    size_t n;
} idmap;
static idmap g_map;

static void map_load(const char *path)
{
    mm_table *t = mm_table_read(path);
    if (!t) mm_die("%s", mm_strerror());
    if (mm_table_ncol(t) < 2) mm_die("%s: --patient-map needs two columns (id, patient)", path);
    g_map.n = mm_table_nrow(t);
    g_map.from = mm_malloc((g_map.n + 1) * sizeof(char *));
    g_map.to = mm_malloc((g_map.n + 1) * sizeof(char *));
    for (size_t i = 0; i < g_map.n; i++) {
        g_map.from[i] = mm_strdup(mm_table_cell(t, i, 0));
        g_map.to[i] = mm_strdup(mm_table_cell(t, i, 1));
    }
    mm_table_free(t);
}

/* The patient of a sample or slide id: --patient-map, else the TCGA rule. */
static const char *patient_of(const char *id, char *buf, size_t n)
{
    for (size_t i = 0; i < g_map.n; i++)
        if (!strcmp(g_map.from[i], id)) {
            snprintf(buf, n, "%s", g_map.to[i]);
            return buf;
        }
    return mm_patient_id(id, buf, n);
}

/* 1 when ID is a TCGA normal sample (types 10-19) to drop */
static int is_normal(const char *id, int keep_normal)
{
    int t = mm_tcga_sample_type(id);
    return !keep_normal && t >= 10 && t <= 19;
}

/* Slide id: the name without directory and slide extension(s). */
static void slide_id(const char *path, char *buf, size_t n)
{
    static const char *ext[] = {".ome.tiff", ".ome.tif", ".svs", ".tiff", ".tif", ".ndpi",
                                ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide",
                                ".mpk", ".feat", ".h5", ".pt", NULL};
    const char *b = strrchr(path, '/');
    snprintf(buf, n, "%s", b ? b + 1 : path);
    for (int again = 1; again;) {
        again = 0;
        size_t l = strlen(buf);
        for (int i = 0; ext[i]; i++) {
            size_t e = strlen(ext[i]);
            if (l > e && !strcasecmp(buf + l - e, ext[i])) {
                buf[l - e] = 0;
                again = 1;
                break;
            }
        }
    }
}

// ---- growable lists

typedef struct {
    char *id, *patient, *file;
    int64_t n;
    float *x;
} slide;

typedef struct {
    slide *s;
    size_t n, cap;
} slides;

static void add_path(char ***v, size_t *n, size_t *cap, const char *p)
{
    if (*n == *cap) *v = mm_realloc(*v, (*cap = *cap ? 2 * *cap : 16) * sizeof(char *));
    (*v)[(*n)++] = mm_strdup(p);
}

/* --slides: a stream, a directory of streams, or a list file of paths */
static void expand(const char *arg, char ***v, size_t *n, size_t *cap)
{
    struct stat st;
    if (stat(arg, &st) != 0) mm_die_errno("%s", arg);
    if (S_ISDIR(st.st_mode)) {
        struct dirent **ents;
        int ne = scandir(arg, &ents, NULL, alphasort);
        if (ne < 0) mm_die_errno("%s", arg);
        size_t before = *n;
        for (int e = 0; e < ne; e++) {
            const char *nm = ents[e]->d_name;
            size_t l = strlen(nm);
            if (nm[0] != '.' && l > 4 && !strcmp(nm + l - 4, ".mpk")) {
                char *p = mm_malloc(strlen(arg) + l + 2);
                sprintf(p, "%s/%s", arg, nm);
                add_path(v, n, cap, p);
                free(p);
            }
            free(ents[e]);
        }
        free(ents);
        if (*n == before) mm_die("%s: no feature streams (*.mpk) in the directory", arg);
        return;
    }
    if (mm_stream_sniff(arg)) {
        add_path(v, n, cap, arg);
        return;
    }
    FILE *fp = fopen(arg, "r");
    if (!fp) mm_die_errno("%s", arg);
    char *line = NULL;
    size_t lc = 0;
    ssize_t len;
    while ((len = getline(&line, &lc, fp)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = 0;
        if (len == 0 || line[0] == '#') continue;
        add_path(v, n, cap, line);
    }
    free(line);
    fclose(fp);
}

static void read_features(const char *path, const mt_inputs *in, slides *ss, int *dim)
{
    mm_stream *s = mm_stream_open(path, "r");
    if (!s) mm_die("%s", mm_strerror());
    mm_rec *r = mm_rec_new();
    int ret;
    int64_t k = 0;
    char fb[1024], pb[256];
    while ((ret = mm_stream_next(s)) == 0) {
        const mm_rec *h = mm_stream_header(s);
        const char *kind = mm_hdr_kind(h);
        if (!kind || strcmp(kind, "features"))
            mm_die("%s: a segment of kind '%s', expected features", path, kind ? kind : "?");
        const mm_val *meta = mm_rec_get(h, "meta");
        const char *sp = mm_val_str(mm_map_get(meta, "slide_path"));
        if (!sp) sp = mm_val_str(mm_map_get(meta, "slide"));
        if (!sp) sp = mm_hdr_id(h);
        if (!sp || !*sp) sp = path;
        slide_id(sp, fb, sizeof fb);
        slide sl = {mm_strdup(fb), NULL, mm_strdup(path), 0, NULL};
        int64_t cap = 0;
        while ((k = mm_stream_read(s, r)) >= 0) {
            mm_nd t;
            const mm_val *fv = mm_rec_get(r, "f");
            if (!fv) continue;
            if (mm_val_nd(fv, &t) != 0 || t.ndim != 2 || t.shape[1] < 1 ||
                (t.dtype != MM_F32 && t.dtype != MM_F16 && t.dtype != MM_F64))
                mm_die("%s: slide %s: \"f\" is not a float (k, dim) tensor", path, fb);
            if (*dim == 0) *dim = (int)t.shape[1];
            if (t.shape[1] != *dim)
                mm_die("%s: slide %s has %lld features per patch, others %d", path, fb,
                       (long long)t.shape[1], *dim);
            if (sl.n + t.shape[0] > cap) {
                cap = 2 * (sl.n + t.shape[0]);
                sl.x = mm_realloc(sl.x, (size_t)cap * (size_t)*dim * sizeof(float));
            }
            mm_nd_get_f32(&t, sl.x + sl.n * *dim);
            sl.n += t.shape[0];
        }
        if (k < -1) { ret = (int)k; break; }
        if (sl.n == 0) mm_die("%s: slide %s has no patch features", path, fb);
        if (is_normal(fb, in->keep_normal)) {
            mm_warn("%s: slide %s is a TCGA normal sample, dropped (--keep-normal keeps it)", path, fb);
            free(sl.id); free(sl.file); free(sl.x);
            continue;
        }
        sl.patient = mm_strdup(patient_of(fb, pb, sizeof pb));
        if (ss->n == ss->cap) ss->s = mm_realloc(ss->s, (ss->cap = ss->cap ? 2 * ss->cap : 16) * sizeof(slide));
        ss->s[ss->n++] = sl;
    }
    if (ret < -1) mm_die("%s", mm_stream_error(s));
    mm_rec_free(r);
    mm_stream_discard(s);
}

static int cmp_slide(const void *a, const void *b)
{
    const slide *x = a, *y = b;
    int c = strcmp(x->patient, y->patient);
    return c ? c : strcmp(x->id, y->id);
}

// ---- the patient list

static int cmp_pat(const void *a, const void *b)
{
    return strcmp(((const mt_patient *)a)->id, ((const mt_patient *)b)->id);
}

static mt_patient *get_patient(mt_cohort *c, const char *id, size_t *cap)
{
    for (int i = 0; i < c->np; i++)
        if (!strcmp(c->p[i].id, id)) return &c->p[i];
    if ((size_t)c->np == *cap) c->p = mm_realloc(c->p, (*cap = *cap ? 2 * *cap : 64) * sizeof(mt_patient));
    mt_patient *p = &c->p[c->np++];
    memset(p, 0, sizeof *p);
    p->id = mm_strdup(id);
    p->y = -1;
    p->time = NAN;
    p->event = -1;
    return p;
}

int mt_cohort_find(const mt_cohort *c, const char *id)
{
    char pb[256];
    const char *pid = patient_of(id, pb, sizeof pb);
    mt_patient key = {.id = (char *)pid};
    const mt_patient *p = bsearch(&key, c->p, (size_t)c->np, sizeof *c->p, cmp_pat);
    if (p) return (int)(p - c->p);
    for (int i = 0; i < c->np; i++)
        for (int s = 0; s < c->p[i].nslides; s++)
            if (!strcmp(c->p[i].slides[s], id)) return i;
    return -1;
}

/* "N patients have no M: id,id,..." */
static void report(const char *what, char **ids, size_t n, const char *action)
{
    if (!n) return;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += strlen(ids[i]) + 1;
    char *s = mm_malloc(len + 1), *q = s;
    for (size_t i = 0; i < n; i++) q += sprintf(q, "%s%s", i ? "," : "", ids[i]);
    mm_warn("%zu patient%s %s, %s: %s", n, n == 1 ? "" : "s", what, action, s);
    free(s);
}

void mt_cohort_load(const mt_inputs *in, mt_cohort *c)
{
    memset(c, 0, sizeof *c);
    size_t cap = 0;
    if (in->patient_map) map_load(in->patient_map);
    char pb[256];
    /* slides */
    if (in->nslides) {
        char **paths = NULL;
        size_t np = 0, pc = 0;
        for (int i = 0; i < in->nslides; i++) expand(in->slides[i], &paths, &np, &pc);
        slides ss = {0};
        for (size_t i = 0; i < np; i++) read_features(paths[i], in, &ss, &c->dim);
        if (!ss.n) mm_die("%s: no slides", in->slides[0]);
        qsort(ss.s, ss.n, sizeof(slide), cmp_slide);
        for (size_t i = 0; i < ss.n; i++) {
            if (i && !strcmp(ss.s[i].id, ss.s[i - 1].id) && !strcmp(ss.s[i].patient, ss.s[i - 1].patient))
                mm_die("slide %s twice (%s and %s)", ss.s[i].id, ss.s[i - 1].file, ss.s[i].file);
            mt_patient *p = get_patient(c, ss.s[i].patient, &cap);
            p->slides = mm_realloc(p->slides, (size_t)(p->nslides + 1) * sizeof(char *));
            p->slides[p->nslides++] = ss.s[i].id;
            p->x = mm_realloc(p->x, (size_t)(p->n + ss.s[i].n) * (size_t)c->dim * sizeof(float));
            memcpy(p->x + p->n * c->dim, ss.s[i].x, (size_t)ss.s[i].n * (size_t)c->dim * sizeof(float));
            p->n += ss.s[i].n;
            free(ss.s[i].x);
            free(ss.s[i].patient);
            free(ss.s[i].file);
        }
        free(ss.s);
        snprintf(c->slides_src, sizeof c->slides_src, "%s%s", in->slides[0], in->nslides > 1 ? ",..." : "");
        for (size_t i = 0; i < np; i++) free(paths[i]);
        free(paths);
    }
    /* omics */
    if (in->omics) {
        mm_stream *s = mm_stream_open(in->omics, "r");
        if (!s) mm_die("%s", mm_strerror());
        mm_rec *r = mm_rec_new();
        int ret;
        int64_t k = 0;
        size_t dup = 0;
        while ((ret = mm_stream_next(s)) == 0) {
            const char *kind = mm_hdr_kind(mm_stream_header(s));
            if (!kind || strcmp(kind, "omics"))
                mm_die("%s: a segment of kind '%s', expected omics", in->omics, kind ? kind : "?");
            while ((k = mm_stream_read(s, r)) >= 0) {
                const char *id = mm_val_str(mm_rec_get(r, "id"));
                mm_nd t;
                if (!id || mm_val_nd(mm_rec_get(r, "v"), &t) != 0 || t.ndim != 1)
                    mm_die("%s: record %lld has no \"id\" or no \"v\" vector", in->omics, (long long)k);
                if (c->omic_dim == 0) c->omic_dim = (int)t.count;
                if (t.count != c->omic_dim)
                    mm_die("%s: sample %s has %lld values, others %d", in->omics, id,
                           (long long)t.count, c->omic_dim);
                if (is_normal(id, in->keep_normal)) {
                    mm_warn("%s: sample %s is a TCGA normal sample, dropped", in->omics, id);
                    continue;
                }
                mt_patient *p = get_patient(c, patient_of(id, pb, sizeof pb), &cap);
                if (p->omic) { dup++; continue; }
                p->omic = mm_malloc((size_t)c->omic_dim * sizeof(float));
                mm_nd_get_f32(&t, p->omic);
                for (int j = 0; j < c->omic_dim; j++)
                    if (!isfinite(p->omic[j]))
                        mm_die("%s: sample %s has a missing or infinite value (impute with rna-select)", in->omics, id);
            }
            if (k < -1) { ret = (int)k; break; }
        }
        if (ret < -1) mm_die("%s", mm_stream_error(s));
        if (dup) mm_warn("%s: %zu samples of a patient already seen, the first kept", in->omics, dup);
        mm_rec_free(r);
        mm_stream_discard(s);
        snprintf(c->omics_src, sizeof c->omics_src, "%s", in->omics);
    }
    /* clinical */
    if (in->clinical) {
        mm_clin_data cd = {0};
        if (mm_clin_load(in->clinical, &in->co, &cd) != 0) mm_die("%s", mm_strerror());
        if (cd.note[0]) mm_note(3, "%s: %s", in->clinical, cd.note);
        for (size_t i = 0; i < cd.n; i++) {
            if (is_normal(cd.id[i], in->keep_normal)) continue;
            mt_patient *p = get_patient(c, patient_of(cd.id[i], pb, sizeof pb), &cap);
            if (p->has_clin) continue; /* one row per slide: the first */
            p->has_clin = 1;
            p->label = cd.label[i] ? mm_strdup(cd.label[i]) : NULL;
            p->time = cd.time[i];
            p->event = cd.event[i];
        }
        mm_clin_data_free(&cd);
        snprintf(c->time_unit, sizeof c->time_unit, "%s", in->co.time_unit ? in->co.time_unit : "");
        snprintf(c->clin_src, sizeof c->clin_src, "%s", in->clinical);
    }
    /* missing modalities */
    char **miss[3] = {mm_malloc((size_t)(c->np + 1) * sizeof(char *)),
                      mm_malloc((size_t)(c->np + 1) * sizeof(char *)),
                      mm_malloc((size_t)(c->np + 1) * sizeof(char *))};
    size_t nm[3] = {0, 0, 0};
    int kept = 0;
    char *drop = mm_calloc((size_t)c->np + 1, 1);
    for (int i = 0; i < c->np; i++) {
        mt_patient *p = &c->p[i];
        int ms = in->need_slides && !p->x, mo = in->need_omics && !p->omic;
        int mc = in->need_clin && !p->has_clin;
        if (ms) miss[0][nm[0]++] = p->id;
        if (mo) miss[1][nm[1]++] = p->id;
        if (mc) miss[2][nm[2]++] = p->id;
        int drop_it = mc || (in->require_all ? (ms || mo) : (ms && mo) || (!p->x && !p->omic));
        if (drop_it) {
            drop[i] = 1;
            continue;
        }
        kept++;
    }
    report("have no slides", miss[0], nm[0], in->require_all ? "dropped (--require all)" :
           "kept with a zero patch where omics exist (--require any)");
    report("have no omics", miss[1], nm[1], in->require_all ? "dropped (--require all)" :
           "kept with zero omics where slides exist (--require any)");
    report("have no clinical data", miss[2], nm[2], "dropped");
    for (int k = 0; k < 3; k++) free(miss[k]);
    /* compact */
    int j = 0;
    for (int i = 0; i < c->np; i++) {
        mt_patient *p = &c->p[i];
        if (drop[i]) {
            for (int s = 0; s < p->nslides; s++) free(p->slides[s]);
            free(p->id); free(p->slides); free(p->x); free(p->omic); free(p->label);
            continue;
        }
        if (in->need_slides && !p->x) { /* --require any */
            p->n = 1;
            p->x = mm_calloc((size_t)c->dim, sizeof(float));
        }
        if (in->need_omics && !p->omic) p->omic = mm_calloc((size_t)c->omic_dim, sizeof(float));
        c->p[j++] = *p;
    }
    c->np = j;
    free(drop);
    if (kept == 0) mm_die("no patient has every input needed (see the warnings above)");
    qsort(c->p, (size_t)c->np, sizeof(mt_patient), cmp_pat);
    /* classes, sorted */
    for (int i = 0; i < c->np; i++) {
        const char *l = c->p[i].label;
        if (!l) continue;
        int k = 0;
        while (k < c->nclass && strcmp(c->classes[k], l)) k++;
        if (k == c->nclass) {
            c->classes = mm_realloc(c->classes, (size_t)(c->nclass + 1) * sizeof(char *));
            c->classes[c->nclass++] = mm_strdup(l);
        }
    }
    for (int a = 0; a < c->nclass; a++)
        for (int b = a + 1; b < c->nclass; b++)
            if (strcmp(c->classes[b], c->classes[a]) < 0) {
                char *t = c->classes[a]; c->classes[a] = c->classes[b]; c->classes[b] = t;
            }
    for (int i = 0; i < c->np; i++) {
        c->p[i].y = -1;
        for (int k = 0; c->p[i].label && k < c->nclass; k++)
            if (!strcmp(c->classes[k], c->p[i].label)) c->p[i].y = k;
    }
}

void mt_cohort_free(mt_cohort *c)
{
    for (int i = 0; i < c->np; i++) {
        mt_patient *p = &c->p[i];
        for (int s = 0; s < p->nslides; s++) free(p->slides[s]);
        free(p->id); free(p->slides); free(p->x); free(p->omic); free(p->label);
    }
    free(c->p);
    for (int k = 0; k < c->nclass; k++) free(c->classes[k]);
    free(c->classes);
    for (size_t i = 0; i < g_map.n; i++) { free(g_map.from[i]); free(g_map.to[i]); }
    free(g_map.from);
    free(g_map.to);
    memset(&g_map, 0, sizeof g_map);
    memset(c, 0, sizeof *c);
}

// ---- splits

void mt_split_read(const mt_cohort *c, const char *path, int *role)
{
    mm_table *t = mm_table_read(path);
    if (!t) mm_die("%s", mm_strerror());
    static const char *names[3] = {"train", "val", "test"};
    int col[3];
    for (int r = 0; r < 3; r++) col[r] = mm_table_find(t, names[r]);
    if (col[0] < 0 || (col[1] < 0 && col[2] < 0))
        mm_die("%s: not a split file (columns train and val, or train, val and test)", path);
    for (int i = 0; i < c->np; i++) role[i] = MT_NONE;
    size_t unknown = 0;
    const char *first_unknown = NULL;
    for (size_t row = 0; row < mm_table_nrow(t); row++)
        for (int r = 0; r < 3; r++) {
            if (col[r] < 0) continue;
            const char *id = mm_table_cell(t, row, col[r]);
            if (mm_cell_is_na(id)) continue;
            int i = mt_cohort_find(c, id);
            if (i < 0) {
                if (!unknown++) first_unknown = id;
                continue;
            }
            if (role[i] != MT_NONE && role[i] != r)
                mm_die("%s: patient %s is in both %s and %s", path, c->p[i].id, names[role[i]], names[r]);
            role[i] = r;
        }
    if (unknown)
        mm_warn("%s: %zu ids are not patients of the inputs (first: %s)", path, unknown, first_unknown);
    int n[3] = {0, 0, 0};
    for (int i = 0; i < c->np; i++)
        if (role[i] >= 0) n[role[i]]++;
    if (n[0] == 0) mm_die("%s: no training patient among the inputs", path);
    mm_note(3, "%s: %d train, %d val, %d test patients", path, n[0], n[1], n[2]);
    mm_table_free(t);
}

void mt_split_write(const mt_cohort *c, const int *role, const char *path)
{
    mm_out *o = mm_out_open(path);
    FILE *fp = mm_out_fp(o);
    int *at[3], n[3] = {0, 0, 0};
    for (int r = 0; r < 3; r++) at[r] = mm_malloc((size_t)(c->np + 1) * sizeof(int));
    for (int i = 0; i < c->np; i++)
        if (role[i] >= 0) at[role[i]][n[role[i]]++] = i;
    int rows = n[0] > n[1] ? n[0] : n[1];
    if (n[2] > rows) rows = n[2];
    fprintf(fp, ",train,val,test\n");
    for (int k = 0; k < rows; k++) {
        fprintf(fp, "%d", k);
        for (int r = 0; r < 3; r++) fprintf(fp, ",%s", k < n[r] ? c->p[at[r][k]].id : "");
        fputc('\n', fp);
    }
    for (int r = 0; r < 3; r++) free(at[r]);
    if (mm_out_close(o, 1) != 0) mm_die("%s", mm_strerror());
}
