/* clinical.c: clinical data from tables or streams, and TCGA patient ids
 * (mm/clinical.h). Linear lookups: cohorts have thousands of patients,
 * not millions.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/clinical.h"
#include "mm/stream.h"

static void push(mm_clin_data *d, size_t *cap, const char *id, const char *label,
                 double time, int event)
{
    if (d->n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        d->id = mm_realloc(d->id, *cap * sizeof(char *));
        d->label = mm_realloc(d->label, *cap * sizeof(char *));
        d->time = mm_realloc(d->time, *cap * sizeof(double));
        d->event = mm_realloc(d->event, *cap * sizeof(int));
    }
    d->id[d->n] = mm_strdup(id);
    d->label[d->n] = label ? mm_strdup(label) : NULL;
    d->time[d->n] = time;
    d->event[d->n] = event;
    d->n++;
}

static int load_stream(const char *path, mm_clin_data *d)
{
    mm_stream *s = mm_stream_open(path, "r");
    if (!s) return -1;
    mm_rec *r = mm_rec_new();
    size_t cap = 0;
    int ret;
    int64_t k = 0;
    char num[64];
    while ((ret = mm_stream_next(s)) == 0) {
        while ((k = mm_stream_read(s, r)) >= 0) {
            const mm_val *idv = mm_rec_get(r, "id"), *lv = mm_rec_get(r, "label");
            const char *id = mm_val_str(idv);
            int64_t iid;
            if (!id && mm_val_int(idv, &iid) == 0) {
                snprintf(num, sizeof num, "%lld", (long long)iid);
                id = num;
            }
            if (!id) continue;
            double t = NAN;
            int64_t e = -1;
            if (mm_val_num(mm_rec_get(r, "time"), &t) == 0) d->has_time = 1;
            if (mm_val_int(mm_rec_get(r, "event"), &e) == 0) d->has_event = 1;
            if (mm_val_str(lv)) d->has_label = 1;
            push(d, &cap, id, mm_val_str(lv), t, e == 0 || e == 1 ? (int)e : -1);
        }
        if (k < -1) { ret = (int)k; break; }
    }
    if (ret < -1) mm__set_error("%s", mm_stream_error(s));
    mm_rec_free(r);
    mm_stream_discard(s);
    return ret < -1 ? -1 : 0;
}

int mm_clin_load(const char *path, const mm_colopts *o, mm_clin_data *out)
{
    memset(out, 0, sizeof *out);
    if (mm_stream_sniff(path)) {
        if (load_stream(path, out) != 0) {
            mm_clin_data_free(out);
            return -1;
        }
        snprintf(out->note, sizeof out->note, "clinical stream: event as recorded");
        return 0;
    }
    mm_table *t = mm_table_read(path);
    if (!t) return -1;
    mm_clin_cols c;
    if (mm_clin_resolve(t, o, &c) != 0) {
        mm_table_free(t);
        return -1;
    }
    snprintf(out->note, sizeof out->note, "%s", c.note);
    out->has_label = c.label >= 0;
    out->has_time = c.time >= 0;
    out->has_event = c.event >= 0;
    size_t cap = 0;
    char idbuf[32];
    for (size_t i = 0; i < mm_table_nrow(t); i++) {
        const char *id = c.id >= 0 ? mm_table_cell(t, i, c.id) : NULL;
        if (!id) {
            snprintf(idbuf, sizeof idbuf, "%zu", i + 1);
            id = idbuf;
        }
        const char *label = c.label >= 0 ? mm_table_cell(t, i, c.label) : NULL;
        if (label && mm_cell_is_na(label)) label = NULL;
        double tm = NAN;
        if (c.time >= 0) {
            const char *ts = mm_table_cell(t, i, c.time);
            if (!mm_cell_is_na(ts) && (mm_cell_number(ts, &tm) != 0 || tm < 0)) {
                mm__set_error("%s:%zu: time '%s' is not a number >= 0", path,
                              mm_table_line(t, i), ts);
                mm_table_free(t);
                mm_clin_data_free(out);
                return -1;
            }
        }
        int ev = -1;
        if (c.event >= 0) {
            const char *es = mm_table_cell(t, i, c.event);
            int k = mm_clin_event(&c, es, &ev);
            if (k < 0) {
                mm__set_error("%s:%zu: event value '%s' does not fit the coding (%s)",
                              path, mm_table_line(t, i), es, c.note);
                mm_table_free(t);
                mm_clin_data_free(out);
                return -1;
            }
            if (k == 1) ev = -1;
        }
        push(out, &cap, id, label, tm, ev);
    }
    mm_table_free(t);
    return 0;
}

void mm_clin_data_free(mm_clin_data *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->id[i]);
        free(d->label[i]);
    }
    free(d->id);
    free(d->label);
    free(d->time);
    free(d->event);
    memset(d, 0, sizeof *d);
}

static int is_tcga(const char *id)
{
    static const char *pat = "TCGA-##-####";
    if (strlen(id) < 12) return 0;
    for (int i = 0; i < 12; i++) {
        char c = (char)toupper((unsigned char)id[i]);
        if (pat[i] == '#' ? !isalnum((unsigned char)c) : c != pat[i]) return 0;
    }
    return 1;
}

const char *mm_patient_id(const char *id, char *buf, size_t n)
{
    if (is_tcga(id)) {
        snprintf(buf, n, "%.12s", id);
        for (char *p = buf; *p; p++) *p = (char)toupper((unsigned char)*p);
    } else {
        snprintf(buf, n, "%s", id);
    }
    return buf;
}

int mm_tcga_sample_type(const char *id)
{
    if (!is_tcga(id) || strlen(id) < 15 || id[12] != '-' ||
        !isdigit((unsigned char)id[13]) || !isdigit((unsigned char)id[14]))
        return -1;
    return (id[13] - '0') * 10 + (id[14] - '0');
}

long mm_clin_find(const mm_clin_data *d, const char *id)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->id[i], id) == 0) return (long)i;
    char a[64], b[64];
    mm_patient_id(id, a, sizeof a);
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(mm_patient_id(d->id[i], b, sizeof b), a) == 0) return (long)i;
    return -1;
}
