/* table.c: TSV/CSV tables (plain or gzip-compressed) and the shared
 * clinical column options (mm/table.h), packed into clinical and omics
 * streams.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "mm/io.h"
#include "mm/table.h"

struct mm_table {
    char *path;
    char *text;        /* the file, cut into NUL-terminated cells in place */
    int ncol;
    size_t nrow;
    char **names;      /* ncol */
    char **cells;      /* nrow * ncol */
    size_t *lines;     /* nrow */
    int index_col;
};

/* Inflate the gzip data IN[0..N-1] (members one after another, as bgzip
 * and `cat a.gz b.gz` make). @return the text or NULL (mm_strerror()). */
static char *gunzip(const char *path, const char *in, size_t n, size_t *outn)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        mm__set_error("%s: cannot start zlib", path);
        return NULL;
    }
    size_t cap = 4 * n + 65536, len = 0, used = 0;
    char *out = mm_malloc(cap);
    int r = Z_OK;
    for (;;) {
        if (cap - len < 65536) out = mm_realloc(out, cap *= 2);
        z.next_in = (Bytef *)in + used;
        z.avail_in = n - used > UINT_MAX ? UINT_MAX : (uInt)(n - used);
        z.next_out = (Bytef *)out + len;
        z.avail_out = cap - len - 1 > UINT_MAX ? UINT_MAX : (uInt)(cap - len - 1);
        uInt ai = z.avail_in, ao = z.avail_out;
        r = inflate(&z, Z_NO_FLUSH);
        used += ai - z.avail_in;
        len += ao - z.avail_out;
        if (r == Z_STREAM_END) {
            if (used == n) break;
            r = inflateReset(&z); /* the next member */
        } else if (r == Z_BUF_ERROR && used == n) {
            mm__set_error("%s: truncated gzip input", path);
            break;
        } else if (r != Z_OK && r != Z_BUF_ERROR) {
            mm__set_error("%s: corrupt gzip input (%s)", path, z.msg ? z.msg : "zlib error");
            break;
        }
    }
    inflateEnd(&z);
    if (r != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    out[len] = 0;
    *outn = len;
    return out;
}

static char *read_all(const char *path, size_t *n)
{
    mm_io *io = mm_io_open(path, "r");
    if (!io) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = mm_malloc(cap);
    for (;;) {
        if (cap - len < 65536) buf = mm_realloc(buf, cap *= 2);
        ssize_t r = mm_io_read(io, buf + len, cap - len - 1);
        if (r < 0) {
            mm__set_error("%s", mm_io_error(io));
            mm_io_discard(io);
            free(buf);
            return NULL;
        }
        if (r == 0) break;
        len += (size_t)r;
    }
    mm_io_discard(io);
    buf[len] = 0;
    *n = len;
    if (len >= 2 && (unsigned char)buf[0] == 0x1f && (unsigned char)buf[1] == 0x8b) {
        char *text = gunzip(path, buf, len, n);
        free(buf);
        return text;
    }
    return buf;
}

/* Split the line at *P (ending at '\n' or NUL) into fields, unquoting in
 * place. Moves *P past the line. @return the number of fields, or -1 on an
 * unterminated quote. FIELDS gets up to MAXF pointers. */
static int split_line(char **p, char delim, char **fields, int maxf, size_t *line)
{
    char *s = *p, *w;
    int nf = 0;
    for (;;) {
        char *start = s;
        w = s;
        if (*s == '"') {
            s++;
            for (;;) {
                if (*s == 0) return -1;
                if (*s == '"') {
                    if (s[1] == '"') { *w++ = '"'; s += 2; continue; }
                    s++;
                    break;
                }
                if (*s == '\n') (*line)++;
                *w++ = *s++;
            }
            while (*s && *s != delim && *s != '\n' && *s != '\r') s++; /* junk after quote */
        } else {
            while (*s && *s != delim && *s != '\n') *w++ = *s++;
            if (w > start && w[-1] == '\r' && (*s == '\n' || *s == 0)) w--;
        }
        if (*s == '\r') s++;
        char end = *s;
        *w = 0;
        if (nf < maxf) fields[nf] = start;
        nf++;
        if (end == delim) { s++; continue; }
        if (end == '\n') s++;
        break;
    }
    *p = s;
    return nf;
}

static int is_blank_line(const char *s)
{
    while (*s == ' ' || *s == '\r') s++;
    return *s == '\n' || *s == 0;
}

mm_table *mm_table_read(const char *path)
{
    size_t n;
    char *text = read_all(path, &n);
    if (!text) return NULL;
    if (memchr(text, 0, n)) {
        mm__set_error("%s: not a text table (has NUL bytes)", path);
        free(text);
        return NULL;
    }
    mm_table *t = mm_calloc(1, sizeof *t);
    t->path = mm_strdup(path);
    t->text = text;
    t->index_col = -1;
    char *p = text;
    if (n >= 3 && (unsigned char)p[0] == 0xef && (unsigned char)p[1] == 0xbb &&
        (unsigned char)p[2] == 0xbf)
        p += 3; /* UTF-8 byte order mark */
    char *eol = strchr(p, '\n');
    size_t hl = eol ? (size_t)(eol - p) : strlen(p);
    char delim = memchr(p, '\t', hl) ? '\t' : ',';
    if (hl == 0 || is_blank_line(p)) {
        mm__set_error("%s: empty table (no header line)", path);
        goto fail;
    }
    /* header */
    size_t line = 1;
    t->names = mm_malloc((hl + 2) * sizeof(char *)); /* fields <= bytes + 1 */
    int nf = split_line(&p, delim, t->names, (int)hl + 1, &line);
    if (nf < 0) {
        mm__set_error("%s:1: unterminated quote", path);
        goto fail;
    }
    t->ncol = nf;
    size_t cap = 1024;
    t->cells = mm_malloc(cap * (size_t)nf * sizeof(char *));
    t->lines = mm_malloc(cap * sizeof(size_t));
    while (*p) {
        line++;
        if (is_blank_line(p)) {
            char *e = strchr(p, '\n');
            p = e ? e + 1 : p + strlen(p);
            continue;
        }
        if (t->nrow == cap) {
            cap *= 2;
            t->cells = mm_realloc(t->cells, cap * (size_t)nf * sizeof(char *));
            t->lines = mm_realloc(t->lines, cap * sizeof(size_t));
        }
        size_t this_line = line;
        int k = split_line(&p, delim, t->cells + t->nrow * (size_t)nf, nf, &line);
        if (k < 0) {
            mm__set_error("%s:%zu: unterminated quote", path, this_line);
            goto fail;
        }
        if (k != nf) {
            mm__set_error("%s:%zu: expected %d fields, found %d", path, this_line, nf, k);
            goto fail;
        }
        t->lines[t->nrow++] = this_line;
    }
    /* pandas index column: row numbers are dropped, anything else is ids */
    if (nf > 1 && t->names[0][0] == 0) {
        int rownum = 1;
        for (size_t r = 0; r < t->nrow && rownum; r++) {
            char buf[32];
            snprintf(buf, sizeof buf, "%zu", r);
            rownum = strcmp(t->cells[r * (size_t)nf], buf) == 0;
        }
        if (rownum) {
            for (size_t r = 0; r < t->nrow; r++)
                memmove(t->cells + r * (size_t)(nf - 1), t->cells + r * (size_t)nf + 1,
                        (size_t)(nf - 1) * sizeof(char *));
            memmove(t->names, t->names + 1, (size_t)(nf - 1) * sizeof(char *));
            t->ncol = nf - 1;
        } else {
            t->index_col = 0;
        }
    }
    return t;
fail:
    mm_table_free(t);
    return NULL;
}

void mm_table_free(mm_table *t)
{
    if (!t) return;
    free(t->path);
    free(t->text);
    free(t->names);
    free(t->cells);
    free(t->lines);
    free(t);
}

const char *mm_table_path(const mm_table *t) { return t->path; }
int mm_table_ncol(const mm_table *t) { return t->ncol; }
size_t mm_table_nrow(const mm_table *t) { return t->nrow; }
const char *mm_table_colname(const mm_table *t, int col) { return t->names[col]; }
const char *mm_table_cell(const mm_table *t, size_t row, int col)
{
    return t->cells[row * (size_t)t->ncol + (size_t)col];
}
size_t mm_table_line(const mm_table *t, size_t row) { return t->lines[row]; }
int mm_table_index_col(const mm_table *t) { return t->index_col; }

int mm_table_find(const mm_table *t, const char *name)
{
    for (int c = 0; c < t->ncol; c++)
        if (strcmp(t->names[c], name) == 0) return c;
    for (int c = 0; c < t->ncol; c++)
        if (strcasecmp(t->names[c], name) == 0) return c;
    return -1;
}

int mm_cell_is_na(const char *s)
{
    static const char *na[] = {"", "NA", "NaN", "nan", "N/A", "null", "NULL", NULL};
    for (int i = 0; na[i]; i++)
        if (strcmp(s, na[i]) == 0) return 1;
    return 0;
}

int mm_cell_number(const char *s, double *out)
{
    char *end;
    while (*s == ' ') s++;
    if (!*s) return -1;
    errno = 0;
    double x = strtod(s, &end);
    while (*end == ' ') end++;
    if (*end || (errno == ERANGE && fabs(x) > 1)) return -1;
    if (isnan(x)) return -1;
    *out = x;
    return 0;
}

// ---------------------------------------------------------------- clinical

static int find_opt(const mm_table *t, const char *opt, const char *name, int *col)
{
    *col = -1;
    if (!name) return 0;
    *col = mm_table_find(t, name);
    if (*col < 0) {
        mm__set_error("%s: no column '%s' (%s)", t->path, name, opt);
        return -1;
    }
    return 0;
}

static int guess(const mm_table *t, const char *const *names)
{
    for (int i = 0; names[i]; i++) {
        int c = mm_table_find(t, names[i]);
        if (c >= 0) return c;
    }
    return -1;
}

int mm_clin_event(const mm_clin_cols *c, const char *s, int *event)
{
    double x;
    if (mm_cell_is_na(s)) return 1;
    switch (c->event_mode) {
    case MM_EV_VALUE:
    case MM_EV_CENSORED: {
        double y;
        int same = strcmp(s, c->value) == 0 ||
                   (mm_cell_number(s, &x) == 0 && mm_cell_number(c->value, &y) == 0 && x == y);
        *event = c->event_mode == MM_EV_VALUE ? same : !same;
        return 0;
    }
    case MM_EV_01:
    case MM_EV_CENSOR01:
        if (mm_cell_number(s, &x) != 0 || (x != 0 && x != 1)) return -1;
        *event = c->event_mode == MM_EV_01 ? x == 1 : x == 0;
        return 0;
    case MM_EV_R12:
        if (mm_cell_number(s, &x) != 0 || (x != 1 && x != 2)) return -1;
        *event = x == 2;
        return 0;
    case MM_EV_CBIO:
        if ((s[0] != '0' && s[0] != '1') || s[1] != ':') return -1;
        *event = s[0] == '1';
        return 0;
    case MM_EV_WORDS:
        if (!strcasecmp(s, "dead") || !strcasecmp(s, "deceased") || !strcasecmp(s, "died")) {
            *event = 1;
            return 0;
        }
        if (!strcasecmp(s, "alive") || !strcasecmp(s, "living") || !strcasecmp(s, "censored")) {
            *event = 0;
            return 0;
        }
        return -1;
    }
    return -1;
}

int mm_clin_resolve(const mm_table *t, const mm_colopts *o, mm_clin_cols *c)
{
    static const char *const time_names[] = {"time", "survival_months", "time_months",
                                             "futime", "os.time", "os_time", "os_months",
                                             "os_days", NULL};
    static const char *const event_names[] = {"event", "status", "censorship",
                                              "fustat", "vital_status", NULL};
    memset(c, 0, sizeof *c);
    if (find_opt(t, "--id-col", o->id_col, &c->id) || find_opt(t, "--label-col", o->label_col, &c->label) ||
        find_opt(t, "--time-col", o->time_col, &c->time) || find_opt(t, "--event-col", o->event_col, &c->event))
        return -1;
    if (!o->id_col) {
        c->id = mm_table_find(t, "id");
        if (c->id < 0) c->id = t->index_col;
    }
    if (!o->time_col) c->time = guess(t, time_names);
    if (!o->event_col) c->event = guess(t, event_names);
    if (o->event_value && o->censored_value) {
        mm__set_error("--event-value and --censored-value exclude each other");
        return -1;
    }
    if (c->event < 0) {
        if (o->event_value || o->censored_value) {
            mm__set_error("%s: --event-value/--censored-value given but no event "
                          "column (use --event-col)", t->path);
            return -1;
        }
        return 0;
    }
    const char *ename = t->names[c->event];
    if (o->event_value || o->censored_value) {
        c->event_mode = o->event_value ? MM_EV_VALUE : MM_EV_CENSORED;
        c->value = o->event_value ? o->event_value : o->censored_value;
        snprintf(c->note, sizeof c->note, "event column '%s': %s '%s'", ename,
                 o->event_value ? "event when" : "censored when", c->value);
        return 0;
    }
    /* infer the coding from the values present */
    int has[3] = {0, 0, 0}, other = 0, cbio = 1, words = 1, any = 0;
    for (size_t r = 0; r < t->nrow; r++) {
        const char *s = mm_table_cell(t, r, c->event);
        double x;
        if (mm_cell_is_na(s)) continue;
        any = 1;
        if (mm_cell_number(s, &x) == 0 && (x == 0 || x == 1 || x == 2)) has[(int)x] = 1;
        else other = 1;
        if (!((s[0] == '0' || s[0] == '1') && s[1] == ':')) cbio = 0;
        mm_clin_cols w = {.event_mode = MM_EV_WORDS};
        int ev;
        if (mm_clin_event(&w, s, &ev) != 0) words = 0;
    }
    int censor = strstr(ename, "censor") || strstr(ename, "Censor") || strstr(ename, "CENSOR");
    if (!any) {
        snprintf(c->note, sizeof c->note, "event column '%s' is empty", ename);
        c->event_mode = MM_EV_01;
    } else if (!other && !has[2]) {
        c->event_mode = censor ? MM_EV_CENSOR01 : MM_EV_01;
        snprintf(c->note, sizeof c->note, "event column '%s': 0/1 read as %s", ename,
                 censor ? "censorship (1 = censored, 0 = event)" : "1 = event, 0 = censored");
    } else if (!other && !has[0]) {
        c->event_mode = MM_EV_R12;
        snprintf(c->note, sizeof c->note, "event column '%s': 1/2 read as R's "
                 "Surv coding (2 = event, 1 = censored)", ename);
    } else if (other && cbio) {
        c->event_mode = MM_EV_CBIO;
        snprintf(c->note, sizeof c->note, "event column '%s': cBioPortal 'N:TEXT' "
                 "coding (1 = event)", ename);
    } else if (other && words) {
        c->event_mode = MM_EV_WORDS;
        snprintf(c->note, sizeof c->note, "event column '%s': dead/deceased = event, "
                 "alive/living = censored", ename);
    } else {
        mm__set_error("%s: cannot tell which value of column '%s' means an event; "
                      "give --event-value or --censored-value", t->path, ename);
        return -1;
    }
    return 0;
}

/* Column types: 0 string, 1 integer, 2 float (all non-NA cells numeric). */
static int col_type(const mm_table *t, int c)
{
    int type = 1;
    for (size_t r = 0; r < t->nrow; r++) {
        const char *s = mm_table_cell(t, r, c);
        double x;
        if (mm_cell_is_na(s)) continue;
        if (mm_cell_number(s, &x) != 0) return 0;
        if (x != floor(x) || fabs(x) > 9007199254740992.0 || strpbrk(s, ".eE")) type = 2;
    }
    return type;
}

static void put_typed(mm_rec *r, mm_val *v, const char *s, int type)
{
    double x;
    if (type && mm_cell_is_na(s)) {
        mm_val_set_nil(v);
    } else if (type == 1 && mm_cell_number(s, &x) == 0) {
        mm_val_set_int(v, (int64_t)x);
    } else if (type == 2 && mm_cell_number(s, &x) == 0) {
        mm_val_set_float(v, x);
    } else if (type == 0 && mm_cell_is_na(s)) {
        mm_val_set_nil(v);
    } else {
        mm_val_set_str(r, v, s);
    }
}

static void id_of(const mm_table *t, int idcol, size_t row, char *buf, size_t n)
{
    if (idcol >= 0) snprintf(buf, n, "%s", mm_table_cell(t, row, idcol));
    else snprintf(buf, n, "%zu", row + 1);
}

int mm_pack_clinical(const mm_table *t, const mm_colopts *o, mm_rec *h,
                     mm_stream *out, char *note, size_t note_n)
{
    mm_clin_cols c;
    if (mm_clin_resolve(t, o, &c) != 0) return -1;
    int nc = t->ncol;
    int *types = mm_malloc((size_t)nc * sizeof(int));
    for (int j = 0; j < nc; j++) types[j] = col_type(t, j);
    if (c.time >= 0 && types[c.time] == 0) {
        mm__set_error("%s: time column '%s' is not numeric", t->path, t->names[c.time]);
        free(types);
        return -1;
    }
    snprintf(note, note_n, "%s", c.note);
    mm_val *meta = mm_hdr_meta(h);
    mm_val *cols = mm_map_put(h, meta, "columns");
    mm_val_set_array(cols);
    for (int j = 0; j < nc; j++) {
        if (j == c.id) continue;
        mm_val *m = mm_array_push(h, cols);
        mm_val_set_map(m);
        mm_val_set_str(h, mm_map_put(h, m, "name"), t->names[j]);
        mm_val_set_str(h, mm_map_put(h, m, "type"),
                       types[j] == 0 ? "string" : types[j] == 1 ? "integer" : "float");
    }
    mm_val_set_str(h, mm_map_put(h, meta, "id_column"), c.id >= 0 ? t->names[c.id] : "(row number)");
    if (c.label >= 0) mm_val_set_str(h, mm_map_put(h, meta, "label_column"), t->names[c.label]);
    if (c.time >= 0) mm_val_set_str(h, mm_map_put(h, meta, "time_column"), t->names[c.time]);
    if (c.event >= 0) {
        mm_val_set_str(h, mm_map_put(h, meta, "event_column"), t->names[c.event]);
        mm_val_set_str(h, mm_map_put(h, meta, "event_coding"), c.note);
    }
    mm_val_set_str(h, mm_map_put(h, meta, "time_unit"), o->time_unit ? o->time_unit : "unknown");
    for (int j = 0; j < nc; j++)
        if (strncmp(t->names[j], "mpk", 3) == 0)
            snprintf(note + strlen(note), note_n - strlen(note), "%scolumn '%s' renamed "
                     "'_%s' (keys starting with mpk are reserved)", note[0] ? "; " : "",
                     t->names[j], t->names[j]);
    int ret = mm_stream_begin(out, h);
    mm_rec *r = mm_rec_new();
    char id[1024], key[1024];
    for (size_t i = 0; i < t->nrow && ret == 0; i++) {
        mm_rec_clear(r);
        id_of(t, c.id, i, id, sizeof id);
        mm_val_set_str(r, mm_rec_put(r, "id"), id);
        if (c.label >= 0) {
            const char *s = mm_table_cell(t, i, c.label);
            if (mm_cell_is_na(s)) mm_rec_put(r, "label");
            else mm_val_set_str(r, mm_rec_put(r, "label"), s);
        }
        if (c.time >= 0) {
            const char *s = mm_table_cell(t, i, c.time);
            double x;
            if (mm_cell_is_na(s)) {
                mm_rec_put(r, "time");
            } else if (mm_cell_number(s, &x) != 0 || x < 0) {
                mm__set_error("%s:%zu: time '%s' is not a number >= 0", t->path,
                              t->lines[i], s);
                ret = -1;
                break;
            } else {
                mm_val_set_float(mm_rec_put(r, "time"), x);
            }
        }
        if (c.event >= 0) {
            const char *s = mm_table_cell(t, i, c.event);
            int ev = 0, k = mm_clin_event(&c, s, &ev);
            if (k < 0) {
                mm__set_error("%s:%zu: event value '%s' does not fit the coding (%s)",
                              t->path, t->lines[i], s, c.note);
                ret = -1;
                break;
            }
            if (k == 1) mm_rec_put(r, "event");
            else mm_val_set_int(mm_rec_put(r, "event"), ev);
        }
        for (int j = 0; j < nc; j++) {
            const char *name = t->names[j];
            if (j == c.id || (mm_rec_get(r, name) && (j == c.label || j == c.time || j == c.event)))
                continue;
            if (mm_rec_get(r, name) || strncmp(name, "mpk", 3) == 0) {
                snprintf(key, sizeof key, "%s.raw", name); /* keep both */
                if (strncmp(name, "mpk", 3) == 0) snprintf(key, sizeof key, "_%s", name);
                name = key;
            }
            put_typed(r, mm_rec_put(r, name), mm_table_cell(t, i, j), types[j]);
        }
        if (mm_stream_write(out, r) != 0) ret = -1;
    }
    if (ret == 0 && mm_stream_end(out) != 0) ret = -1;
    if (ret != 0 && mm_stream_error(out)[0]) mm__set_error("%s", mm_stream_error(out));
    mm_rec_free(r);
    free(types);
    return ret;
}

// ---------------------------------------------------------------- omics

int mm_pack_omics(const mm_table *t, const mm_colopts *o, int genes_in_rows,
                  const char *block, mm_rec *h, mm_stream *out)
{
    int idcol = -1;
    if (find_opt(t, "--id-col", o->id_col, &idcol)) return -1;
    if (!o->id_col) {
        idcol = mm_table_find(t, "id");
        if (idcol < 0) idcol = t->index_col;
        if (idcol < 0 && genes_in_rows) idcol = 0; /* Xena/Bioconductor: probe ids first */
    }
    size_t nsamp = genes_in_rows ? (size_t)(t->ncol - (idcol >= 0)) : t->nrow;
    size_t nfeat = genes_in_rows ? t->nrow : (size_t)(t->ncol - (idcol >= 0));
    if (nfeat * 4 + 4096 > MM_REC_MAX) {
        mm__set_error("%s: %zu features do not fit one record", t->path, nfeat);
        return -1;
    }
    /* values, sample-major, checked before anything is written */
    float *v = mm_malloc((nsamp ? nsamp : 1) * (nfeat ? nfeat : 1) * sizeof(float));
    for (size_t r = 0; r < t->nrow; r++) {
        size_t k = 0;
        for (int j = 0; j < t->ncol; j++) {
            if (j == idcol) continue;
            const char *s = mm_table_cell(t, r, j);
            double x;
            if (mm_cell_is_na(s)) {
                x = NAN;
            } else if (mm_cell_number(s, &x) != 0) {
                mm__set_error("%s:%zu: column '%s': not a number: '%s'", t->path,
                              t->lines[r], t->names[j], s);
                free(v);
                return -1;
            }
            size_t at = genes_in_rows ? k * nfeat + r : r * nfeat + k;
            v[at] = (float)x;
            k++;
        }
    }
    mm_val *meta = mm_hdr_meta(h);
    mm_val *fa = mm_map_put(h, meta, "features");
    mm_val_set_array(fa);
    char id[1024];
    if (genes_in_rows) {
        for (size_t r = 0; r < t->nrow; r++) {
            id_of(t, idcol, r, id, sizeof id);
            mm_val_set_str(h, mm_array_push(h, fa), id);
        }
    } else {
        for (int j = 0; j < t->ncol; j++)
            if (j != idcol) mm_val_set_str(h, mm_array_push(h, fa), t->names[j]);
    }
    mm_val_set_str(h, mm_map_put(h, meta, "block"), block ? block : "omics");
    mm_val_set_str(h, mm_map_put(h, meta, "transform"), "none");
    mm_val_set_array(mm_map_put(h, meta, "selection"));
    mm_val_set_str(h, mm_map_put(h, meta, "orientation"),
                   genes_in_rows ? "features in rows" : "samples in rows");
    int ret = mm_stream_begin(out, h);
    mm_rec *r = mm_rec_new();
    int64_t shape[1] = {(int64_t)nfeat};
    size_t k = 0;
    for (size_t i = 0; i < nsamp && ret == 0; i++) {
        mm_rec_clear(r);
        if (genes_in_rows) {
            while ((int)k == idcol) k++;
            snprintf(id, sizeof id, "%s", t->names[k++]);
        } else {
            id_of(t, idcol, i, id, sizeof id);
        }
        mm_val_set_str(r, mm_rec_put(r, "id"), id);
        mm_val_set_nd(r, mm_rec_put(r, "v"), MM_F32, 1, shape, v + i * nfeat, 0);
        if (mm_stream_write(out, r) != 0) ret = -1;
    }
    if (ret == 0 && mm_stream_end(out) != 0) ret = -1;
    if (ret != 0 && mm_stream_error(out)[0]) mm__set_error("%s", mm_stream_error(out));
    mm_rec_free(r);
    free(v);
    return ret;
}
