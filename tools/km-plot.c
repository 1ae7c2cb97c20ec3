/* km-plot: Kaplan-Meier curves, the log-rank test and the C-index from a
 * predictions stream or a clinical table, as an SVG/PNG picture, a curve
 * table (--tsv) and key=value numbers on stdout. The numbers are R
 * survival's; the picture is survminer's ggsurvplot in spirit.
 * All statistics live in lib/survival.c, the drawing in lib/plot.c.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm/io.h"
#include "mm/plot.h"
#include "mm/stream.h"
#include "mm/survival.h"
#include "mm/table.h"
#include "toolutil.h"

static void usage(FILE *fp)
{
    fprintf(fp,
"Usage: km-plot [options] INPUT\n"
"\n"
"Kaplan-Meier curves, log-rank test and C-index. INPUT is a predictions\n"
"stream (mm-train predict) or a TSV/CSV table ('-': stdin). Numbers go to\n"
"stdout as key=value lines at full precision; the picture to -o.\n"
"\n"
"Output:\n"
"  -o, --output FILE       the plot: FILE.svg, or FILE.png (rendered from SVG)\n"
"      --png FILE          also write a PNG\n"
"      --png-scale X       PNG size as a multiple of 720 x 560 [2]\n"
"      --tsv FILE          the curve table (one row per group and distinct time)\n"
"Groups:\n"
"      --group COL         one curve per value of COL\n"
"      --split S           split the risk score: median, quantiles:K, cutoff:X\n"
"                          (higher risk = worse; ties go to the lower group)\n"
"      --risk-col COL      risk score column or key [risk]\n"
"      --fold N            predictions: only fold N [all folds pooled]\n"
"Columns (tables): --id-col, --time-col, --event-col, --event-value,\n"
"      --censored-value, --time-unit (see mmpath(7))\n"
"Statistics:\n"
"      --conf-type T       log, log-log or plain [log, as R]\n"
"      --conf-level X      [0.95]\n"
"      --rho R             Fleming-Harrington rho: 0 log-rank, 1 Peto-Peto [0]\n"
"      --gamma G           Fleming-Harrington gamma [0]\n"
"      --tau T             truncation time of Uno's C [the last event time]\n"
"Picture:\n"
"      --title T, --xlabel T, --ylabel T, --xmax X\n"
"      --times LIST        number-at-risk times, comma-separated [the x ticks]\n"
"      --no-ci, --no-censor-marks, --no-risk-table\n"
"  -v, -q, -h, -V          more/less on stderr, help, version\n"
"Exit status: 0 ok, 1 bad input, 2 bad usage.\n");
}

typedef struct {
    double *time, *risk;
    int *event;
    char **group;    /* group value per subject (--group), owned */
    size_t n, cap;
    int has_risk;
    char unit[64];
} cohort;

static void cohort_push(cohort *c, double t, int e, double risk, const char *g)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        c->time = mm_realloc(c->time, c->cap * sizeof(double));
        c->risk = mm_realloc(c->risk, c->cap * sizeof(double));
        c->event = mm_realloc(c->event, c->cap * sizeof(int));
        c->group = mm_realloc(c->group, c->cap * sizeof(char *));
    }
    c->time[c->n] = t;
    c->event[c->n] = e;
    c->risk[c->n] = risk;
    c->group[c->n] = g ? mm_strdup(g) : NULL;
    c->n++;
}

static void val_text(const mm_val *v, char *buf, size_t n)
{
    double x;
    if (!v || v->type == MM_NIL) snprintf(buf, n, "NA");
    else if (v->type == MM_STR) snprintf(buf, n, "%s", v->u.s.p);
    else if (mm_val_num(v, &x) == 0) snprintf(buf, n, "%.15g", x);
    else snprintf(buf, n, "?");
}

/* predictions stream: {"id", "fold", "risk", "time", "event", ...} */
static void read_stream(const char *path, const char *group_col, const char *risk_col,
                        long long fold, cohort *c, size_t *skipped)
{
    mm_stream *s = mm_stream_open(path, "r");
    if (!s) mm_die("%s", mm_strerror());
    mm_rec *r = mm_rec_new();
    int ret;
    int64_t k = 0;
    char g[256];
    c->has_risk = 1;
    while ((ret = mm_stream_next(s)) == 0) {
        const mm_val *tu = mm_map_get(mm_rec_get(mm_stream_header(s), "meta"), "time_unit");
        if (mm_val_str(tu) && !c->unit[0]) snprintf(c->unit, sizeof c->unit, "%s", mm_val_str(tu));
        while ((k = mm_stream_read(s, r)) >= 0) {
            int64_t f, e;
            double t, risk = NAN;
            if (fold >= 0 && (mm_val_int(mm_rec_get(r, "fold"), &f) != 0 || f != fold)) continue;
            if (mm_val_num(mm_rec_get(r, "time"), &t) != 0 ||
                mm_val_int(mm_rec_get(r, "event"), &e) != 0 || (e != 0 && e != 1) || isnan(t)) {
                ++*skipped;
                continue;
            }
            if (mm_val_num(mm_rec_get(r, risk_col), &risk) != 0) c->has_risk = 0;
            if (group_col) val_text(mm_rec_get(r, group_col), g, sizeof g);
            cohort_push(c, t, (int)e, risk, group_col ? g : NULL);
        }
        if (k < -1) { ret = (int)k; break; }
    }
    if (ret < -1) mm_die("%s", mm_stream_error(s));
    mm_rec_free(r);
    mm_stream_discard(s);
    if (c->n == 0) c->has_risk = 0;
}

static void read_table(const char *path, const mm_colopts *co, const char *group_col,
                       const char *risk_col, cohort *c, size_t *skipped, char *note, size_t nn)
{
    mm_table *t = mm_table_read(path);
    if (!t) mm_die("%s", mm_strerror());
    mm_clin_cols cc;
    if (mm_clin_resolve(t, co, &cc) != 0) mm_die("%s", mm_strerror());
    if (cc.time < 0) mm_die("%s: no time column (use --time-col)", path);
    if (cc.event < 0) mm_die("%s: no event column (use --event-col)", path);
    snprintf(note, nn, "%s", cc.note);
    int gcol = -1, rcol = mm_table_find(t, risk_col);
    if (group_col && (gcol = mm_table_find(t, group_col)) < 0)
        mm_die("%s: no column '%s' (--group)", path, group_col);
    c->has_risk = rcol >= 0;
    for (size_t i = 0; i < mm_table_nrow(t); i++) {
        const char *ts = mm_table_cell(t, i, cc.time);
        double tm, risk = NAN;
        int ev;
        int k = mm_clin_event(&cc, mm_table_cell(t, i, cc.event), &ev);
        if (k < 0)
            mm_die("%s:%zu: event value '%s' does not fit the coding (%s)", path,
                   mm_table_line(t, i), mm_table_cell(t, i, cc.event), cc.note);
        if (mm_cell_is_na(ts) || k == 1) {
            ++*skipped;
            continue;
        }
        if (mm_cell_number(ts, &tm) != 0 || tm < 0)
            mm_die("%s:%zu: time '%s' is not a number >= 0", path, mm_table_line(t, i), ts);
        if (rcol >= 0) {
            const char *rs = mm_table_cell(t, i, rcol);
            if (mm_cell_is_na(rs)) {
                ++*skipped;
                continue;
            }
            if (mm_cell_number(rs, &risk) != 0)
                mm_die("%s:%zu: risk '%s' is not a number", path, mm_table_line(t, i), rs);
        }
        const char *g = gcol >= 0 ? mm_table_cell(t, i, gcol) : NULL;
        if (g && mm_cell_is_na(g)) g = "NA";
        cohort_push(c, tm, ev, risk, g);
    }
    mm_table_free(t);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* R's quantile(type = 7) of sorted X[0..n) */
static double quantile7(const double *x, size_t n, double p)
{
    double h = (double)(n - 1) * p;
    size_t lo = (size_t)floor(h);
    if (lo + 1 >= n) return x[n - 1];
    return x[lo] + (h - (double)lo) * (x[lo + 1] - x[lo]);
}

typedef struct {
    const char *s;
    double num;
    int isnum;
} gkey;
static gkey *g_keys;

/* numbers first, in numeric order, then strings in byte order */
static int gkey_cmp(const gkey *x, const gkey *y)
{
    if (x->isnum && y->isnum) return (x->num > y->num) - (x->num < y->num);
    if (x->isnum != y->isnum) return x->isnum ? -1 : 1;
    return strcmp(x->s, y->s);
}

static int cmp_gkey(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = gkey_cmp(&g_keys[i], &g_keys[j]);
    return c ? c : (i > j) - (i < j);
}

/* BUF into PATH through mm_io: a temporary name renamed on success */
static void write_file(const char *path, const char *buf, size_t n)
{
    mm_io *io = mm_io_open(path, "w");
    if (!io) mm_die("%s", mm_strerror());
    if (mm_io_write(io, buf, n) != 0) {
        fprintf(stderr, "%s: %s\n", mm_prog, mm_io_error(io));
        mm_io_discard(io);
        exit(MM_EXIT_FAIL);
    }
    if (mm_io_close(io) != 0) mm_die("%s", mm_strerror());
}

static void write_tsv(const char *path, mm_km *km, char **names, int ng)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *fp = open_memstream(&buf, &n);
    fprintf(fp, "group\ttime\tn.risk\tn.event\tn.censor\tsurv\tstd.err\tstd.err.logS\tlower\tupper\n");
    for (int g = 0; g < ng; g++)
        for (size_t i = 0; i < km[g].nrows; i++) {
            const mm_km_row *r = &km[g].rows[i];
            fprintf(fp, "%s\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\n",
                    names[g], r->time, r->n_risk, r->n_event, r->n_censor, r->surv,
                    r->std_err, r->std_err_logS, r->lower, r->upper);
        }
    fclose(fp);
    write_file(path, buf, n);
    free(buf);
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcasecmp(s + a - b, suf) == 0;
}

static void print_num(const char *key, double x)
{
    if (isnan(x)) printf("%s=NA\n", key);
    else printf("%s=%.17g\n", key, x);
}

int main(int argc, char **argv)
{
    enum { O_PNG = 256, O_PNGSCALE, O_TSV, O_GROUP, O_SPLIT, O_RISK, O_FOLD, O_IDCOL,
           O_TIME, O_EVENT, O_EVV, O_CENS, O_UNIT, O_CONFT, O_CONFL, O_RHO, O_GAMMA,
           O_TAU, O_TITLE, O_XLAB, O_YLAB, O_XMAX, O_TIMES, O_NOCI, O_NOCENS, O_NORISK };
    static const struct option lopts[] = {
        {"output", required_argument, NULL, 'o'}, {"png", required_argument, NULL, O_PNG},
        {"png-scale", required_argument, NULL, O_PNGSCALE}, {"tsv", required_argument, NULL, O_TSV},
        {"group", required_argument, NULL, O_GROUP}, {"split", required_argument, NULL, O_SPLIT},
        {"risk-col", required_argument, NULL, O_RISK}, {"fold", required_argument, NULL, O_FOLD},
        {"id-col", required_argument, NULL, O_IDCOL}, {"time-col", required_argument, NULL, O_TIME},
        {"event-col", required_argument, NULL, O_EVENT},
        {"event-value", required_argument, NULL, O_EVV},
        {"censored-value", required_argument, NULL, O_CENS},
        {"time-unit", required_argument, NULL, O_UNIT},
        {"conf-type", required_argument, NULL, O_CONFT},
        {"conf-level", required_argument, NULL, O_CONFL},
        {"rho", required_argument, NULL, O_RHO}, {"gamma", required_argument, NULL, O_GAMMA},
        {"tau", required_argument, NULL, O_TAU}, {"title", required_argument, NULL, O_TITLE},
        {"xlabel", required_argument, NULL, O_XLAB}, {"ylabel", required_argument, NULL, O_YLAB},
        {"xmax", required_argument, NULL, O_XMAX}, {"times", required_argument, NULL, O_TIMES},
        {"no-ci", no_argument, NULL, O_NOCI}, {"no-censor-marks", no_argument, NULL, O_NOCENS},
        {"no-risk-table", no_argument, NULL, O_NORISK},
        MM_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    const char *out = NULL, *png = NULL, *tsv = NULL, *group_col = NULL, *split = NULL;
    const char *risk_col = "risk";
    double png_scale = 2, conf = 0.95, rho = 0, gamma = 0, tau = NAN;
    long long fold = -1;
    mm_ci_type ci = MM_CI_LOG;
    mm_colopts co = {0};
    mm_plot_opts po;
    mm_plot_opts_init(&po);
    double times[64];
    int c;
    mm_tool_init("km-plot");
    while ((c = getopt_long(argc, argv, "o:@:vqhV", lopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case O_PNG: png = optarg; break;
        case O_PNGSCALE: png_scale = mm_opt_double("--png-scale", optarg, 0.25, 8); break;
        case O_TSV: tsv = optarg; break;
        case O_GROUP: group_col = optarg; break;
        case O_SPLIT: split = optarg; break;
        case O_RISK: risk_col = optarg; break;
        case O_FOLD: fold = mm_opt_int("--fold", optarg, 0, 1000000); break;
        case O_IDCOL: co.id_col = optarg; break;
        case O_TIME: co.time_col = optarg; break;
        case O_EVENT: co.event_col = optarg; break;
        case O_EVV: co.event_value = optarg; break;
        case O_CENS: co.censored_value = optarg; break;
        case O_UNIT: co.time_unit = optarg; break;
        case O_CONFT:
            if (!strcmp(optarg, "log")) ci = MM_CI_LOG;
            else if (!strcmp(optarg, "log-log")) ci = MM_CI_LOGLOG;
            else if (!strcmp(optarg, "plain")) ci = MM_CI_PLAIN;
            else mm_die_usage("--conf-type: expected log, log-log or plain, got '%s'", optarg);
            break;
        case O_CONFL: conf = mm_opt_double("--conf-level", optarg, 0.5, 0.9999); break;
        case O_RHO: rho = mm_opt_double("--rho", optarg, 0, 10); break;
        case O_GAMMA: gamma = mm_opt_double("--gamma", optarg, 0, 10); break;
        case O_TAU: tau = mm_opt_double("--tau", optarg, 0, 1e300); break;
        case O_TITLE: po.title = optarg; break;
        case O_XLAB: po.xlabel = optarg; break;
        case O_YLAB: po.ylabel = optarg; break;
        case O_XMAX: po.xmax = mm_opt_double("--xmax", optarg, 1e-300, 1e300); break;
        case O_TIMES: {
            char *s = mm_strdup(optarg), *tok, *save = NULL;
            po.ntimes = 0;
            for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (po.ntimes == 64) mm_die_usage("--times: at most 64 times");
                times[po.ntimes++] = mm_opt_double("--times", tok, 0, 1e300);
            }
            free(s);
            po.times = times;
            break;
        }
        case O_NOCI: po.ci = 0; break;
        case O_NOCENS: po.censor_marks = 0; break;
        case O_NORISK: po.risk_table = 0; break;
        case 'h': usage(stdout); return mm_tool_exit(0);
        case 'V': mm_print_version("km-plot"); return mm_tool_exit(0);
        default:
            if (mm_common_opt(c, optarg)) break;
            usage(stderr);
            return MM_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        usage(stderr);
        return MM_EXIT_USAGE;
    }
    if (group_col && split) mm_die_usage("--group and --split exclude each other");
    if (co.event_value && co.censored_value)
        mm_die_usage("--event-value and --censored-value exclude each other");
    int split_mode = 0, nq = 2;
    double cutoff = 0;
    if (split) {
        if (!strcmp(split, "median")) split_mode = 1;
        else if (!strncmp(split, "quantiles:", 10)) { split_mode = 2; nq = (int)mm_opt_int("--split quantiles", split + 10, 2, 10); }
        else if (!strncmp(split, "cutoff:", 7)) { split_mode = 3; cutoff = mm_opt_double("--split cutoff", split + 7, -1e300, 1e300); }
        else mm_die_usage("--split: expected median, quantiles:K or cutoff:X, got '%s'", split);
    }
    if (out && !ends_with(out, ".svg") && !ends_with(out, ".png"))
        mm_die_usage("-o: name the picture FILE.svg or FILE.png, got '%s'", out);
    const char *in = argv[optind];
    if (!strcmp(in, "-") && isatty(STDIN_FILENO)) {
        usage(stderr);
        return MM_EXIT_USAGE;
    }

    cohort co_ = {0};
    size_t skipped = 0;
    char note[256] = "";
    if (mm_stream_sniff(in)) read_stream(in, group_col, risk_col, fold, &co_, &skipped);
    else read_table(in, &co, group_col, risk_col, &co_, &skipped, note, sizeof note);
    if (note[0]) mm_note(2, "%s", note);
    if (skipped) mm_warn("%s: %zu subjects skipped (missing time, event or risk)", in, skipped);
    if (co_.n == 0) mm_die("%s: no subjects with a time and an event", in);
    if (split && !co_.has_risk) mm_die("%s: --split needs a risk score ('%s')", in, risk_col);
    if (co.time_unit) snprintf(co_.unit, sizeof co_.unit, "%s", co.time_unit);

    /* groups */
    int ng = 1;
    int *gid = mm_calloc(co_.n, sizeof(int));
    char **names;
    char label[64];
    if (group_col) {
        /* sort subjects by group value once (numbers as numbers), then
         * number the runs: O(n log n) with each value parsed once */
        g_keys = mm_malloc(co_.n * sizeof(gkey));
        size_t *ord = mm_malloc(co_.n * sizeof(size_t));
        for (size_t i = 0; i < co_.n; i++) {
            g_keys[i].s = co_.group[i];
            g_keys[i].isnum = mm_cell_number(co_.group[i], &g_keys[i].num) == 0;
            ord[i] = i;
        }
        qsort(ord, co_.n, sizeof(size_t), cmp_gkey);
        names = mm_malloc(co_.n * sizeof(char *));
        ng = 0;
        for (size_t k = 0; k < co_.n; k++) {
            if (k == 0 || gkey_cmp(&g_keys[ord[k]], &g_keys[ord[k - 1]]) != 0) {
                if (ng == 64) mm_die("%s: --group %s has more than 64 values", in, group_col);
                char buf[300];
                snprintf(buf, sizeof buf, "%s=%s", group_col, co_.group[ord[k]]);
                names[ng++] = mm_strdup(buf);
            }
            gid[ord[k]] = ng - 1;
        }
        free(ord);
        free(g_keys);
    } else if (split_mode) {
        double *sorted = mm_malloc(co_.n * sizeof(double));
        memcpy(sorted, co_.risk, co_.n * sizeof(double));
        qsort(sorted, co_.n, sizeof(double), cmp_double);
        double cuts[10];
        int ncut;
        if (split_mode == 1) { cuts[0] = quantile7(sorted, co_.n, 0.5); ncut = 1; }
        else if (split_mode == 3) { cuts[0] = cutoff; ncut = 1; }
        else {
            ncut = nq - 1;
            for (int q = 1; q < nq; q++) cuts[q - 1] = quantile7(sorted, co_.n, (double)q / nq);
        }
        ng = ncut + 1;
        for (size_t i = 0; i < co_.n; i++) {
            int g = 0;
            while (g < ncut && co_.risk[i] > cuts[g]) g++;
            gid[i] = g;
        }
        names = mm_malloc((size_t)ng * sizeof(char *));
        for (int g = 0; g < ng; g++) {
            if (ng == 2) snprintf(label, sizeof label, "%s risk", g ? "high" : "low");
            else snprintf(label, sizeof label, "Q%d%s", g + 1, g == 0 ? " (lowest risk)" :
                          g == ng - 1 ? " (highest risk)" : "");
            names[g] = mm_strdup(label);
        }
        free(sorted);
        po.legend_title = "Risk group (higher risk = worse)";
    } else {
        names = mm_malloc(sizeof(char *));
        names[0] = mm_strdup("all");
    }

    /* fits */
    mm_km *km = mm_calloc((size_t)ng, sizeof(mm_km));
    double *gt = mm_malloc(co_.n * sizeof(double));
    int *ge = mm_malloc(co_.n * sizeof(int));
    for (int g = 0; g < ng; g++) {
        size_t m = 0;
        for (size_t i = 0; i < co_.n; i++)
            if (gid[i] == g) { gt[m] = co_.time[i]; ge[m] = co_.event[i]; m++; }
        if (mm_km_fit(gt, ge, m, ci, conf, &km[g]) != 0) mm_die("%s", mm_strerror());
    }
    size_t events = 0;
    for (size_t i = 0; i < co_.n; i++) events += co_.event[i] == 1;
    printf("n=%zu\nevents=%zu\ngroups=%d\n", co_.n, events, ng);
    if (co_.unit[0] && strcmp(co_.unit, "unknown") != 0) printf("time_unit=%s\n", co_.unit);
    for (int g = 0; g < ng; g++) {
        printf("group=%s n=%zu events=%zu median=", names[g], km[g].n, km[g].events);
        printf(isnan(km[g].median) ? "NA" : "%.17g", km[g].median);
        printf(" median_lower=");
        printf(isnan(km[g].median_lower) ? "NA" : "%.17g", km[g].median_lower);
        printf(" median_upper=");
        printf(isnan(km[g].median_upper) ? "NA" : "%.17g", km[g].median_upper);
        printf("\n");
    }
    /* number at risk (and S) at the --times, as summary(fit, times = ...) */
    for (int g = 0; g < ng; g++)
        for (int k = 0; po.times && k < po.ntimes; k++) {
            printf("at_risk group=%s time=%.17g n_risk=%.17g surv=", names[g], times[k],
                   mm_km_n_risk_at(&km[g], times[k]));
            printf(isnan(mm_km_surv_at(&km[g], times[k])) ? "NA\n" : "%.17g\n",
                   mm_km_surv_at(&km[g], times[k]));
        }
    char ptext[64] = "";
    if (ng > 1) {
        mm_logrank lr;
        if (mm_logrank_test(co_.time, co_.event, gid, co_.n, ng, rho, gamma, &lr) != 0)
            mm_die("%s", mm_strerror());
        const char *test = rho == 0 && gamma == 0 ? "logrank" : "fh";
        char key[64];
        if (rho != 0 || gamma != 0) printf("fh_rho=%.17g\nfh_gamma=%.17g\n", rho, gamma);
        snprintf(key, sizeof key, "%s_chisq", test);
        print_num(key, lr.chisq);
        printf("%s_df=%d\n", test, lr.df);
        snprintf(key, sizeof key, "%s_p", test);
        print_num(key, lr.p);
        char pbuf[32];
        snprintf(ptext, sizeof ptext, "%s %s", rho == 0 && gamma == 0 ? "Log-rank" : "Fleming-Harrington",
                 mm_format_pvalue(lr.p, pbuf, sizeof pbuf));
        po.pvalue = ptext;
        mm_logrank_free(&lr);
    }
    if (co_.has_risk) {
        mm_cindex ch;
        if (mm_cindex_harrell(co_.time, co_.event, co_.risk, co_.n, &ch) != 0)
            mm_die("%s", mm_strerror());
        printf("cindex_direction=higher risk = shorter survival\n");
        print_num("cindex", ch.c);
        printf("cindex_concordant=%.17g\ncindex_discordant=%.17g\ncindex_tied_risk=%.17g\n"
               "cindex_tied_time=%.17g\n", ch.concordant, ch.discordant, ch.tied_risk, ch.tied_time);
        if (isnan(tau)) {
            tau = 0;
            for (size_t i = 0; i < co_.n; i++)
                if (co_.event[i] == 1 && co_.time[i] > tau) tau = co_.time[i];
        }
        double uno;
        if (mm_cindex_uno(co_.time, co_.event, co_.risk, co_.n, tau, &uno) != 0)
            mm_die("%s", mm_strerror());
        print_num("uno_c", uno);
        print_num("uno_tau", tau);
    }
    if (tsv) write_tsv(tsv, km, names, ng);

    if (out || png) {
        char xlabel[128];
        if (!po.xlabel) {
            if (co_.unit[0] && strcmp(co_.unit, "unknown") != 0) {
                snprintf(xlabel, sizeof xlabel, "Time (%s)", co_.unit);
                po.xlabel = xlabel;
            } else {
                po.xlabel = "Time";
            }
        }
        mm_plot_group *pg = mm_malloc((size_t)ng * sizeof(mm_plot_group));
        char **legend = mm_malloc((size_t)ng * sizeof(char *));
        for (int g = 0; g < ng; g++) {
            char buf[400];
            snprintf(buf, sizeof buf, "%s (n = %zu)", names[g], km[g].n);
            legend[g] = mm_strdup(buf);
            pg[g].name = legend[g];
            pg[g].short_name = names[g];
            pg[g].km = &km[g];
        }
        char *svg = NULL;
        size_t svgn = 0;
        FILE *m = open_memstream(&svg, &svgn);
        if (mm_km_svg(m, pg, ng, &po) != 0) mm_die("%s", mm_strerror());
        fclose(m);
        if (out && ends_with(out, ".svg")) write_file(out, svg, svgn);
        if (out && ends_with(out, ".png") && mm_svg_to_png(svg, svgn, out, png_scale) != 0)
            mm_die("%s", mm_strerror());
        if (png && mm_svg_to_png(svg, svgn, png, png_scale) != 0) mm_die("%s", mm_strerror());
        free(svg);
        for (int g = 0; g < ng; g++) free(legend[g]);
        free(legend);
        free(pg);
    }
    for (int g = 0; g < ng; g++) {
        mm_km_free(&km[g]);
        free(names[g]);
    }
    for (size_t i = 0; i < co_.n; i++) free(co_.group[i]);
    free(names);
    free(km);
    free(gt);
    free(ge);
    free(gid);
    free(co_.time);
    free(co_.risk);
    free(co_.event);
    free(co_.group);
    return mm_tool_exit(0);
}
