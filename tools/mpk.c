/* mpk: inspect and convert mpk streams: cat as JSON Lines, info, head,
 * verify, and pack a TSV/CSV table into a clinical or omics stream.
 * The samtools view / quickcheck of mmpath; all the work is in libmmpath.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm/stream.h"
#include "mm/table.h"
#include "toolutil.h"

static void usage(FILE *fp)
{
    fprintf(fp,
"Usage: mpk <command> [options] [FILE...]\n"
"\n"
"Inspect and convert mpk streams (mmpath-stream(5)). FILE '-' or none: stdin.\n"
"\n"
"Commands:\n"
"  cat     print records as JSON Lines (tensors summarised; --full for values)\n"
"  head    print the first N records as JSON Lines\n"
"  info    segments, kinds, ids, record counts, bytes and provenance\n"
"  verify  check whole streams (frames, checksums, trailers); exit 0 or 1\n"
"  pack    turn a TSV/CSV table into a clinical or omics stream\n"
"\n"
"Common options: -h/--help, -V/--version, -v/-q (more/less on stderr),\n"
"-@/--threads N. 'mpk <command> --help' shows a command's options.\n"
"Exit status: 0 ok, 1 bad input or failure, 2 bad usage.\n");
}

static void open_fail(const char *path)
{
    mm_die("%s", mm_strerror());
    (void)path;
}

/* stdin that is a terminal is no input: print usage and exit 2 */
static void need_input(int nfiles, void (*u)(FILE *))
{
    if (nfiles == 0 && isatty(STDIN_FILENO)) {
        u(stderr);
        exit(MM_EXIT_USAGE);
    }
}

// ---------------------------------------------------------------- cat, head

static void cat_usage(FILE *fp)
{
    fprintf(fp,
"Usage: mpk cat [options] [FILE...]\n"
"\n"
"Print each stream as JSON Lines: the header, the records and the trailer of\n"
"every segment, one map per line. Tensors print as {\"tensor\", \"shape\",\n"
"\"min\", \"max\", \"mean\"}; bins as {\"bin\": length}.\n"
"\n"
"  -r, --records   records only (no headers or trailers)\n"
"  -f, --full      print every tensor value (and bins as base64)\n"
"  -o, --output F  write to F instead of stdout\n");
}

static void head_usage(FILE *fp)
{
    fprintf(fp,
"Usage: mpk head [options] [FILE]\n"
"\n"
"Print the headers and the first N records of a stream as JSON Lines.\n"
"\n"
"  -n, --lines N   records to print [10]\n"
"  -r, --records   records only (no headers)\n"
"  -f, --full      print every tensor value\n");
}

static int dump(const char *path, FILE *out, int flags, int records_only,
                long long limit, long long *printed)
{
    mm_stream *s = mm_stream_open(path, "r");
    if (!s) open_fail(path);
    mm_rec *r = mm_rec_new();
    int ret = 0;
    int64_t k = 0;
    while (*printed < limit && (ret = mm_stream_next(s)) == 0) {
        if (!records_only) {
            mm_val_print_json(out, mm_rec_croot(mm_stream_header(s)), flags);
            fputc('\n', out);
        }
        while (*printed < limit && (k = mm_stream_read(s, r)) >= 0) {
            mm_val_print_json(out, mm_rec_croot(r), flags);
            fputc('\n', out);
            ++*printed;
        }
        if (k < -1) { ret = (int)k; break; }
        if (k == -1 && !records_only && limit == (long long)INT64_MAX) {
            mm_val_print_json(out, mm_rec_croot(mm_stream_trailer(s)), flags);
            fputc('\n', out);
        }
    }
    int bad = ret < -1;
    if (bad) fprintf(stderr, "%s: %s\n", mm_prog, mm_stream_error(s));
    mm_rec_free(r);
    if (mm_stream_close(s) != 0) bad = 1;
    return bad;
}

static int cmd_cat(int argc, char **argv, int head)
{
    static const struct option lopts[] = {
        {"records", no_argument, NULL, 'r'}, {"full", no_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'}, {"lines", required_argument, NULL, 'n'},
        MM_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    int c, flags = 0, records_only = 0;
    long long limit = head ? 10 : (long long)INT64_MAX, printed = 0;
    const char *outpath = NULL;
    void (*u)(FILE *) = head ? head_usage : cat_usage;
    while ((c = getopt_long(argc, argv, head ? "rfn:@:vqhV" : "rfo:@:vqhV", lopts, NULL)) != -1) {
        switch (c) {
        case 'r': records_only = 1; break;
        case 'f': flags |= MM_JSON_FULL; break;
        case 'o': outpath = optarg; break;
        case 'n': limit = mm_opt_int("--lines", optarg, 0, INT64_MAX); break;
        case 'h': u(stdout); return 0;
        case 'V': mm_print_version("mpk"); return 0;
        default:
            if (mm_common_opt(c, optarg)) break;
            u(stderr);
            return MM_EXIT_USAGE;
        }
    }
    need_input(argc - optind, u);
    mm_out *o = outpath ? mm_out_open(outpath) : NULL;
    FILE *out = o ? mm_out_fp(o) : stdout;
    int bad = 0;
    if (optind == argc) {
        bad = dump("-", out, flags, records_only, limit, &printed);
    } else {
        for (int i = optind; i < argc && printed < limit; i++)
            bad |= dump(argv[i], out, flags, records_only, limit, &printed);
    }
    if (o && mm_out_close(o, !bad) != 0 && !bad) mm_die("%s", mm_strerror());
    return bad ? MM_EXIT_FAIL : 0;
}

// ---------------------------------------------------------------- info

static void info_usage(FILE *fp)
{
    fprintf(fp,
"Usage: mpk info [options] [FILE...]\n"
"\n"
"For each stream: its segments (kind, id, records, digest), the tool and\n"
"options that made each, its parents and meta keys, and the compressed and\n"
"decompressed sizes. The whole stream is read and checked.\n");
}

static void print_str_array(const mm_val *a, const char *sep)
{
    for (size_t i = 0; a && a->type == MM_ARRAY && i < a->u.a.n; i++)
        printf("%s%s", i ? sep : "", mm_val_str(&a->u.a.v[i]) ? mm_val_str(&a->u.a.v[i]) : "?");
}

static int info_one(const char *path)
{
    mm_stream *s = mm_stream_open(path, "r");
    if (!s) open_fail(path);
    mm_rec *r = mm_rec_new();
    int ret;
    int64_t k, total = 0;
    printf("%s\n", mm_stream_name(s));
    while ((ret = mm_stream_next(s)) == 0) {
        const mm_rec *h = mm_stream_header(s);
        const mm_val *tool = mm_rec_get(h, "tool"), *par = mm_rec_get(h, "parents");
        const mm_val *meta = mm_rec_get(h, "meta");
        uint64_t bytes = 0;
        size_t rn;
        mm_progress *pg = mm_progress_new("records read", 0);
        while ((k = mm_stream_read(s, r)) >= 0) {
            if (mm_rec_bytes(r, &rn)) bytes += rn;
            mm_progress_update(pg, (uint64_t)(total + k + 1));
        }
        mm_progress_end(pg);
        if (k < -1) { ret = (int)k; break; }
        total += mm_stream_count(s);
        printf("  segment %lld: %s '%s', %lld records (%llu bytes), digest %s\n",
               (long long)mm_stream_segments(s), mm_hdr_kind(h) ? mm_hdr_kind(h) : "?",
               mm_hdr_id(h) ? mm_hdr_id(h) : "?", (long long)mm_stream_count(s),
               (unsigned long long)bytes, mm_stream_digest(s));
        if (tool && tool->type == MM_MAP) {
            const char *name = mm_val_str(mm_map_get(tool, "name"));
            const char *ver = mm_val_str(mm_map_get(tool, "version"));
            printf("    tool: %s %s: ", name ? name : "?", ver ? ver : "?");
            print_str_array(mm_map_get(tool, "argv"), " ");
            printf("\n");
        }
        if (par && par->type == MM_ARRAY && par->u.a.n) {
            printf("    parents:");
            for (size_t i = 0; i < par->u.a.n; i++) {
                const char *pk = mm_val_str(mm_map_get(&par->u.a.v[i], "kind"));
                const char *pi = mm_val_str(mm_map_get(&par->u.a.v[i], "id"));
                printf(" %s '%s'", pk ? pk : "?", pi ? pi : "?");
            }
            printf("\n");
        }
        if (meta && meta->type == MM_MAP && meta->u.m.n) {
            printf("    meta:");
            for (size_t i = 0; i < meta->u.m.n; i++) {
                const mm_val *key = &meta->u.m.kv[i].k, *v = &meta->u.m.kv[i].v;
                printf(" %s", mm_val_str(key) ? mm_val_str(key) : "?");
                if (v->type == MM_ARRAY) printf("[%zu]", v->u.a.n);
                else if (v->type == MM_STR && v->u.s.n <= 40) printf("=%s", v->u.s.p);
                else if (v->type == MM_INT) printf("=%lld", (long long)v->u.i);
                else if (v->type == MM_FLOAT) printf("=%g", v->u.f);
            }
            printf("\n");
        }
    }
    int bad = ret < -1;
    if (bad) {
        fflush(stdout);
        fprintf(stderr, "%s: %s\n", mm_prog, mm_stream_error(s));
    } else {
        uint64_t raw = mm_stream_raw_bytes(s), data = mm_stream_data_bytes(s);
        printf("  total: %lld segment%s, %lld records, %llu bytes compressed, "
               "%llu bytes of msgpack (ratio %.2f)\n", (long long)mm_stream_segments(s),
               mm_stream_segments(s) == 1 ? "" : "s", (long long)total,
               (unsigned long long)raw, (unsigned long long)data,
               raw ? (double)data / (double)raw : 0.0);
    }
    mm_rec_free(r);
    mm_stream_discard(s);
    return bad;
}

static int cmd_info(int argc, char **argv, int verify)
{
    static const struct option lopts[] = {MM_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    void (*u)(FILE *) = info_usage;
    if (verify) {
        u = NULL;
    }
    int c;
    while ((c = getopt_long(argc, argv, "@:vqhV", lopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            if (verify) goto vusage;
            info_usage(stdout);
            return 0;
        case 'V': mm_print_version("mpk"); return 0;
        default:
            if (mm_common_opt(c, optarg)) break;
            if (verify) {
                fprintf(stderr, "Usage: mpk verify [-v|-q] [FILE...]\n");
                return MM_EXIT_USAGE;
            }
            info_usage(stderr);
            return MM_EXIT_USAGE;
        }
    }
    if (verify && argc - optind == 0 && isatty(STDIN_FILENO)) {
        fprintf(stderr, "Usage: mpk verify [-v|-q] [FILE...]\n");
        return MM_EXIT_USAGE;
    }
    if (u) need_input(argc - optind, u);
    int bad = 0;
    for (int i = optind; i < argc || (i == optind && argc == optind); i++) {
        const char *path = i < argc ? argv[i] : "-";
        if (!verify) {
            bad |= info_one(path);
            continue;
        }
        mm_stream *s = mm_stream_open(path, "r");
        if (!s) {
            fprintf(stderr, "%s: %s\n", mm_prog, mm_strerror());
            bad = 1;
            continue;
        }
        mm_rec *r = mm_rec_new();
        int ret;
        int64_t k = 0, n = 0;
        mm_progress *pg = mm_progress_new("records checked", 0);
        while ((ret = mm_stream_next(s)) == 0) {
            while ((k = mm_stream_read(s, r)) >= 0) mm_progress_update(pg, (uint64_t)++n);
            if (k < -1) { ret = (int)k; break; }
        }
        mm_progress_end(pg);
        if (ret < -1) {
            if (mm_verbosity >= 1) fprintf(stderr, "%s: %s\n", mm_prog, mm_stream_error(s));
            bad = 1;
        } else {
            mm_note(3, "%s: ok (%lld segments, %lld records)", mm_stream_name(s),
                    (long long)mm_stream_segments(s), (long long)n);
        }
        mm_rec_free(r);
        mm_stream_discard(s);
    }
    return bad ? MM_EXIT_FAIL : 0;
vusage:
    printf("Usage: mpk verify [-v|-q] [FILE...]\n"
           "\n"
           "Read each stream to its end and check every frame checksum, record,\n"
           "trailer count and digest. Prints nothing and exits 0 when all are\n"
           "good; otherwise one line per bad file and exit 1 (-q: no lines,\n"
           "-v: a line per good file too). Like samtools quickcheck.\n");
    return 0;
}

// ---------------------------------------------------------------- pack

static void pack_usage(FILE *fp)
{
    fprintf(fp,
"Usage: mpk pack --kind clinical|omics [options] TABLE\n"
"\n"
"Turn a TSV or CSV table (chosen by content; '-' for stdin) into a stream.\n"
"clinical: one record per row {\"id\", \"label\", \"time\", \"event\", other\n"
"columns typed}. omics: one record per sample {\"id\", \"v\": f32 [features]}.\n"
"\n"
"  -k, --kind K            clinical or omics (required)\n"
"  -o, --output FILE       write FILE (via a temporary name) [stdout]\n"
"      --id NAME           the segment id [table file name without extension]\n"
"      --id-col COL        id column [a column named id, a pandas index, else\n"
"                          row numbers 1..n]\n"
"      --label-col COL     class label column (clinical)\n"
"      --time-col COL      survival time [time, survival_months, futime, ...]\n"
"      --event-col COL     event column [event, status, censorship, fustat]\n"
"      --event-value V     the value that means an event (e.g. 2, 1:DECEASED)\n"
"      --censored-value V  the value that means censored (e.g. censorship 1)\n"
"      --time-unit U       unit of the time column (days, months) [unknown]\n"
"      --genes-in rows|columns  omics orientation [columns: samples in rows]\n"
"      --block NAME        omics block name (mRNA, CNV, ...) [omics]\n"
"  -l, --level N           zstd level [3]\n"
"Without --event-value/--censored-value the event coding is inferred (0/1;\n"
"'censorship' 0/1 inverted; R's 1/2; cBioPortal 'N:TEXT'; dead/alive) and\n"
"stated on stderr.\n");
}

static const char *base_id(const char *path, char *buf, size_t n)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    if (strcmp(path, "-") == 0) b = "stdin";
    snprintf(buf, n, "%s", b);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = 0;
    return buf;
}

static int cmd_pack(int argc, char **argv)
{
    enum { O_ID = 256, O_IDCOL, O_LABEL, O_TIME, O_EVENT, O_EVV, O_CENS, O_UNIT,
           O_GENES, O_BLOCK };
    static const struct option lopts[] = {
        {"kind", required_argument, NULL, 'k'}, {"output", required_argument, NULL, 'o'},
        {"id", required_argument, NULL, O_ID}, {"id-col", required_argument, NULL, O_IDCOL},
        {"label-col", required_argument, NULL, O_LABEL},
        {"time-col", required_argument, NULL, O_TIME},
        {"event-col", required_argument, NULL, O_EVENT},
        {"event-value", required_argument, NULL, O_EVV},
        {"censored-value", required_argument, NULL, O_CENS},
        {"time-unit", required_argument, NULL, O_UNIT},
        {"genes-in", required_argument, NULL, O_GENES},
        {"block", required_argument, NULL, O_BLOCK},
        {"level", required_argument, NULL, 'l'},
        MM_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    const char *optstring = "k:o:l:@:vqhV";
    const char *kind = NULL, *out = "-", *id = NULL, *block = NULL;
    int c, genes_in_rows = 0, level = -1;
    mm_colopts co = {0};
    while ((c = getopt_long(argc, argv, optstring, lopts, NULL)) != -1) {
        switch (c) {
        case 'k': kind = optarg; break;
        case 'o': out = optarg; break;
        case 'l': level = (int)mm_opt_int("--level", optarg, 1, 19); break;
        case O_ID: id = optarg; break;
        case O_IDCOL: co.id_col = optarg; break;
        case O_LABEL: co.label_col = optarg; break;
        case O_TIME: co.time_col = optarg; break;
        case O_EVENT: co.event_col = optarg; break;
        case O_EVV: co.event_value = optarg; break;
        case O_CENS: co.censored_value = optarg; break;
        case O_UNIT: co.time_unit = optarg; break;
        case O_BLOCK: block = optarg; break;
        case O_GENES:
            if (strcmp(optarg, "rows") == 0) genes_in_rows = 1;
            else if (strcmp(optarg, "columns") == 0) genes_in_rows = 0;
            else mm_die_usage("--genes-in: expected rows or columns, got '%s'", optarg);
            break;
        case 'h': pack_usage(stdout); return 0;
        case 'V': mm_print_version("mpk"); return 0;
        default:
            if (mm_common_opt(c, optarg)) break;
            pack_usage(stderr);
            return MM_EXIT_USAGE;
        }
    }
    if (!kind) mm_die_usage("--kind is required (clinical or omics)");
    int clinical = strcmp(kind, "clinical") == 0;
    if (!clinical && strcmp(kind, "omics") != 0)
        mm_die_usage("--kind: expected clinical or omics, got '%s'", kind);
    if (argc - optind != 1) {
        pack_usage(stderr);
        return MM_EXIT_USAGE;
    }
    if (co.event_value && co.censored_value)
        mm_die_usage("--event-value and --censored-value exclude each other");
    const char *path = argv[optind];
    mm_refuse_tty(out);
    mm_table *t = mm_table_read(path);
    if (!t) mm_die("%s", mm_strerror());
    char idbuf[512];
    if (!id) id = base_id(path, idbuf, sizeof idbuf);
    mm_rec *h = mm_rec_new();
    mm_hdr_init(h, kind, id);
    int pn;
    char **pargv = mm_argv_provenance(argc, argv, optstring, lopts, &pn);
    char *full[pn + 1];
    full[0] = "mpk";
    for (int i = 0; i < pn; i++) full[i + 1] = pargv[i];
    full[1] = "pack";
    mm_hdr_set_tool(h, "mpk", pn + 1, full);
    free(pargv);
    mm_val_set_str(h, mm_map_put(h, mm_hdr_meta(h), "source"), path);
    mm_stream *s = mm_stream_open(out, "w");
    if (!s) mm_die("%s", mm_strerror());
    if (level > 0) mm_stream_set_level(s, level);
    char note[256] = "";
    int ret = clinical ? mm_pack_clinical(t, &co, h, s, note, sizeof note)
                       : mm_pack_omics(t, &co, genes_in_rows, block, h, s);
    if (ret != 0) {
        mm_stream_discard(s);
        mm_die("%s", mm_strerror());
    }
    if (note[0]) mm_note(1, "%s", note);
    if (mm_stream_close(s) != 0) mm_die("%s", mm_strerror());
    mm_note(3, "%s: %zu rows packed", path, mm_table_nrow(t));
    mm_table_free(t);
    mm_rec_free(h);
    return 0;
}

// ---------------------------------------------------------------- main

int main(int argc, char **argv)
{
    mm_tool_init("mpk");
    if (argc < 2) {
        usage(stderr);
        return MM_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        usage(stdout);
        return mm_tool_exit(0);
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        mm_print_version("mpk");
        return mm_tool_exit(0);
    }
    static char prog[64];
    snprintf(prog, sizeof prog, "mpk %s", cmd);
    mm_tool_init(prog);
    argv[1] = prog; /* getopt's own messages say "mpk pack: ..." */
    int ret;
    if (!strcmp(cmd, "cat")) ret = cmd_cat(argc - 1, argv + 1, 0);
    else if (!strcmp(cmd, "head")) ret = cmd_cat(argc - 1, argv + 1, 1);
    else if (!strcmp(cmd, "info")) ret = cmd_info(argc - 1, argv + 1, 0);
    else if (!strcmp(cmd, "verify")) ret = cmd_info(argc - 1, argv + 1, 1);
    else if (!strcmp(cmd, "pack")) ret = cmd_pack(argc - 1, argv + 1);
    else {
        mm_tool_init("mpk");
        fprintf(stderr, "mpk: unknown command '%s'\n", cmd);
        usage(stderr);
        return MM_EXIT_USAGE;
    }
    return mm_tool_exit(ret);
}
