/* t-table.c: TSV/CSV reading (quotes, CRLF, BOM, pandas index columns,
 * malformed rows named by line), the clinical column options and event
 * codings, and packing into clinical and omics streams.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "mm/table.h"
#include "../tap.h"

static char dir[] = "/tmp/t-table.XXXXXX";

static const char *put(const char *name, const char *text)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *fp = fopen(p, "wb");
    fputs(text, fp);
    fclose(fp);
    return p;
}

static mm_table *rd(const char *name, const char *text)
{
    return mm_table_read(put(name, text));
}

static int event_of(const mm_clin_cols *c, const char *s)
{
    int ev = -7;
    int r = mm_clin_event(c, s, &ev);
    return r == 0 ? ev : r == 1 ? 9 : -1;
}

int main(void)
{
    if (!mkdtemp(dir)) return 99;
    mm_table *t = rd("a.tsv", "id\ttime\tstatus\n007\t5.5\t1\n008\tNA\t0\n");
    ok(t != NULL, "read TSV");
    is_int(mm_table_ncol(t), 3, "3 columns");
    is_int(mm_table_nrow(t), 2, "2 rows");
    is_str(mm_table_cell(t, 0, 0), "007", "ids keep leading zeros");
    is_int(mm_table_find(t, "STATUS"), 2, "find ignores case");
    is_int(mm_table_line(t, 1), 3, "line numbers");
    mm_table_free(t);

    t = rd("q.csv", "\xef\xbb\xbfname,note\r\n\"Smith, J\",\"said \"\"hi\"\"\"\r\nb,\r\n");
    ok(t != NULL, "read CSV with BOM, CRLF, quotes");
    is_str(mm_table_colname(t, 0), "name", "BOM stripped");
    is_str(mm_table_cell(t, 0, 0), "Smith, J", "quoted comma");
    is_str(mm_table_cell(t, 0, 1), "said \"hi\"", "doubled quotes");
    is_str(mm_table_cell(t, 1, 1), "", "empty last field, CR stripped");
    mm_table_free(t);

    t = rd("bad.csv", "a,b,c\n1,2,3\n4,5\n");
    ok(t == NULL, "short row refused");
    like(mm_strerror(), "bad.csv:3: expected 3 fields, found 2", "short row: file and line");
    ok(rd("q2.csv", "a,b\n\"x,1\n") == NULL, "unterminated quote refused");
    like(mm_strerror(), "q2.csv:2: unterminated quote", "quote: message");
    ok(rd("empty.csv", "") == NULL, "empty file refused");
    like(mm_strerror(), "empty table", "empty: message");

    /* pandas index: row numbers dropped, ids kept */
    t = rd("pi.csv", ",x,y\n0,1,2\n1,3,4\n");
    is_int(mm_table_ncol(t), 2, "row-number index dropped");
    is_str(mm_table_colname(t, 0), "x", "first column is x");
    is_int(mm_table_index_col(t), -1, "no index id column");
    mm_table_free(t);
    t = rd("pid.csv", ",GENE1,GENE2\nTCGA-01,1.5,2\nTCGA-02,3,NA\n");
    is_int(mm_table_ncol(t), 3, "id index kept");
    is_int(mm_table_index_col(t), 0, "index column is the id column");

    /* omics pack of that table, read back */
    mm_colopts co = {0};
    char p[256];
    snprintf(p, sizeof p, "%s/o.mpk", dir);
    mm_stream *s = mm_stream_open(p, "w");
    mm_rec *h = mm_rec_new(), *r = mm_rec_new();
    mm_hdr_init(h, "omics", "pid");
    ok(mm_pack_omics(t, &co, 0, "mRNA", h, s) == 0, "pack omics");
    ok(mm_stream_close(s) == 0, "closed");
    s = mm_stream_open(p, "r");
    ok(mm_stream_read(s, r) == 0, "first sample");
    const mm_val *feats = mm_map_get(mm_rec_get(mm_stream_header(s), "meta"), "features");
    ok(feats && feats->u.a.n == 2 && !strcmp(mm_val_str(&feats->u.a.v[1]), "GENE2"),
       "features in the header");
    is_str(mm_val_str(mm_rec_get(r, "id")), "TCGA-01", "sample id");
    mm_nd nd;
    float v[2];
    ok(mm_val_nd(mm_rec_get(r, "v"), &nd) == 0 && nd.count == 2, "v tensor");
    mm_nd_get_f32(&nd, v);
    ok(v[0] == 1.5f && v[1] == 2.0f, "values");
    ok(mm_stream_read(s, r) == 1, "second sample");
    ok(mm_val_nd(mm_rec_get(r, "v"), &nd) == 0, "v tensor");
    mm_nd_get_f32(&nd, v);
    ok(isnan(v[1]), "NA is NaN");
    is_int(mm_stream_read(s, r), -1, "two samples");
    mm_stream_discard(s);
    mm_table_free(t);

    /* genes in rows, as Xena/Bioconductor */
    t = rd("xena.tsv", "probe\tS1\tS2\tS3\ng1\t1\t2\t3\ng2\t4\t5\t6\n");
    s = mm_stream_open(p, "w");
    mm_hdr_init(h, "omics", "xena");
    ok(mm_pack_omics(t, &co, 1, NULL, h, s) == 0 && mm_stream_close(s) == 0, "pack transposed");
    s = mm_stream_open(p, "r");
    ok(mm_stream_read(s, r) == 0 && mm_stream_read(s, r) == 1, "two reads");
    is_str(mm_val_str(mm_rec_get(r, "id")), "S2", "sample from the header row");
    ok(mm_val_nd(mm_rec_get(r, "v"), &nd) == 0 && nd.count == 2, "2 features");
    mm_nd_get_f32(&nd, v);
    ok(v[0] == 2 && v[1] == 5, "column S2 = (2, 5)");
    mm_stream_discard(s);
    mm_table_free(t);

    t = rd("nonnum.tsv", "id\ta\tb\nx\t1\tfoo\n");
    s = mm_stream_open(p, "w");
    ok(mm_pack_omics(t, &co, 0, NULL, h, s) != 0, "non-numeric omics value refused");
    like(mm_strerror(), "nonnum.tsv:2: column 'b': not a number: 'foo'", "message names file, line, column");
    mm_stream_discard(s);
    mm_table_free(t);

    /* event codings */
    mm_clin_cols c;
    t = rd("r.tsv", "time\tstatus\n1\t1\n2\t2\n");
    ok(mm_clin_resolve(t, &co, &c) == 0 && c.event_mode == MM_EV_R12, "R 1/2 coding");
    ok(event_of(&c, "2") == 1 && event_of(&c, "1") == 0 && event_of(&c, "3") == -1, "2 = event");
    like(c.note, "R's Surv coding", "R: note");
    mm_table_free(t);
    t = rd("c.csv", "case_id,survival_months,censorship\nA,3,1\nB,4,0\n");
    ok(mm_clin_resolve(t, &co, &c) == 0 && c.event_mode == MM_EV_CENSOR01, "censorship column");
    ok(event_of(&c, "1") == 0 && event_of(&c, "0") == 1, "censorship 1 = censored");
    is_int(c.time, 1, "survival_months found as time");
    mm_table_free(t);
    t = rd("cb.tsv", "OS_MONTHS\tOS_STATUS\n3\t1:DECEASED\n4\t0:LIVING\n5\t\n");
    co.time_col = "OS_MONTHS";
    co.event_col = "OS_STATUS";
    ok(mm_clin_resolve(t, &co, &c) == 0 && c.event_mode == MM_EV_CBIO, "cBioPortal coding");
    ok(event_of(&c, "1:DECEASED") == 1 && event_of(&c, "0:LIVING") == 0 && event_of(&c, "") == 9,
       "1:DECEASED = event, empty = NA");
    mm_table_free(t);
    memset(&co, 0, sizeof co);
    t = rd("pbc.tsv", "time\tstatus\n1\t0\n2\t1\n3\t2\n");
    ok(mm_clin_resolve(t, &co, &c) != 0, "0/1/2 is ambiguous");
    like(mm_strerror(), "give --event-value or --censored-value", "ambiguous: message");
    co.event_value = "2";
    ok(mm_clin_resolve(t, &co, &c) == 0 && event_of(&c, "2") == 1 && event_of(&c, "1") == 0,
       "--event-value 2");
    co.event_value = NULL;
    co.censored_value = "0";
    ok(mm_clin_resolve(t, &co, &c) == 0 && event_of(&c, "1") == 1 && event_of(&c, "0") == 0,
       "--censored-value 0");
    co.censored_value = NULL;
    co.id_col = "nope";
    ok(mm_clin_resolve(t, &co, &c) != 0, "missing --id-col column");
    like(mm_strerror(), "no column 'nope' (--id-col)", "missing column: message");
    mm_table_free(t);

    /* clinical pack */
    memset(&co, 0, sizeof co);
    co.label_col = "grade";
    co.time_unit = "days";
    t = rd("cl.tsv", "ID\ttime\tstatus\tgrade\tage\tmpk_x\n01\t10\t2\tG1\t50\t1\n02\t20\t1\tNA\t61.5\t2\n");
    s = mm_stream_open(p, "w");
    mm_hdr_init(h, "clinical", "cl");
    char note[256];
    ok(mm_pack_clinical(t, &co, h, s, note, sizeof note) == 0 && mm_stream_close(s) == 0,
       "pack clinical");
    s = mm_stream_open(p, "r");
    ok(mm_stream_read(s, r) == 0, "first patient");
    is_str(mm_val_str(mm_rec_get(r, "id")), "01", "id from the ID column");
    is_str(mm_val_str(mm_rec_get(r, "label")), "G1", "label");
    double x;
    int64_t k;
    ok(mm_val_num(mm_rec_get(r, "time"), &x) == 0 && x == 10, "time");
    ok(mm_val_int(mm_rec_get(r, "event"), &k) == 0 && k == 1, "event from R coding");
    ok(mm_val_int(mm_rec_get(r, "age"), &k) == 0 && k == 50 &&
       mm_rec_get(r, "age")->type == MM_FLOAT, "age is a float column (61.5 below)");
    ok(mm_rec_get(r, "_mpk_x") != NULL && mm_rec_get(r, "mpk_x") == NULL, "mpk_ column renamed");
    ok(mm_stream_read(s, r) == 1, "second patient");
    ok(mm_rec_get(r, "label") && mm_rec_get(r, "label")->type == MM_NIL, "NA label is nil");
    is_str(mm_val_str(mm_map_get(mm_rec_get(mm_stream_header(s), "meta"), "time_unit")), "days",
           "time unit in meta");
    mm_stream_discard(s);
    mm_table_free(t);

    t = rd("neg.tsv", "time\tevent\n-1\t1\n");
    s = mm_stream_open(p, "w");
    mm_hdr_init(h, "clinical", "neg");
    memset(&co, 0, sizeof co);
    ok(mm_pack_clinical(t, &co, h, s, note, sizeof note) != 0, "negative time refused");
    like(mm_strerror(), "neg.tsv:2: time '-1' is not a number >= 0", "negative time: message");
    mm_stream_discard(s);
    mm_table_free(t);

    /* gzip input: detected by its magic, whatever the name */
    char cmd[700];
    put("z.tsv", "id\tx\n007\t1.5\n008\tNA\n");
    snprintf(cmd, sizeof cmd, "cd %s && gzip -c z.tsv > z.tsv.gz && cp z.tsv.gz z2.tsv && "
             "cat z.tsv.gz z.tsv.gz > zz.gz && head -c 20 z.tsv.gz > ztrunc.gz && "
             "cp z.tsv.gz zbad.gz && printf 'XXXX' | dd of=zbad.gz bs=1 seek=12 "
             "conv=notrunc 2>/dev/null", dir);
    if (system(cmd) != 0) {
        ok(1, "# SKIP gzip(1) not available");
    } else {
        snprintf(p, sizeof p, "%s/z.tsv.gz", dir);
        t = mm_table_read(p);
        ok(t && mm_table_nrow(t) == 2 && mm_table_ncol(t) == 2, "gzip table read");
        if (t) is_str(mm_table_cell(t, 0, 0), "007", "gzip: cells as in the plain file");
        mm_table_free(t);
        snprintf(p, sizeof p, "%s/z2.tsv", dir);
        t = mm_table_read(p);
        ok(t && mm_table_nrow(t) == 2, "gzip found by magic, not by name");
        mm_table_free(t);
        snprintf(p, sizeof p, "%s/zz.gz", dir);
        t = mm_table_read(p);
        ok(t && mm_table_nrow(t) == 5, "two gzip members read one after the other");
        if (t) is_str(mm_table_cell(t, 4, 0), "008", "second member's last row");
        mm_table_free(t);
        snprintf(p, sizeof p, "%s/ztrunc.gz", dir);
        ok(mm_table_read(p) == NULL, "truncated gzip refused");
        like(mm_strerror(), "ztrunc.gz: truncated gzip input", "truncated: message");
        snprintf(p, sizeof p, "%s/zbad.gz", dir);
        ok(mm_table_read(p) == NULL, "corrupt gzip refused");
        like(mm_strerror(), "zbad.gz: corrupt gzip input", "corrupt: message");
    }

    mm_rec_free(h);
    mm_rec_free(r);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) diag("cleanup failed");
    return done_testing();
}
