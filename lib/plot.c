/* plot.c: Kaplan-Meier figures (mm/plot.h) in survminer's ggsurvplot style:
 * step curves, censor marks, confidence bands, legend on top, p-value
 * inside the panel, number-at-risk table below. The SVG is written by hand;
 * the PNG is that SVG rendered by libvips (librsvg). Not a plotting
 * library: one figure, laid out from DejaVu Sans advance widths (no font
 * is opened), numbers printed without the C locale's help.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MM_HAVE_VIPS
#include <vips/vips.h>
#endif

#include "mm/io.h"
#include "mm/plot.h"

// ---------------------------------------------------------------- style

#define FONT_FAMILY "DejaVu Sans, Helvetica, Arial, sans-serif"
#define FS_TITLE 18.0
#define FS_LABEL 16.0   /* axis labels */
#define FS_TICK 14.0    /* tick labels, legend, risk table */
#define FS_PVAL 15.0
#define INK "#222222"   /* text and axes */
#define PAD 12.0        /* figure edge to anything drawn */
#define TICK_LEN 5.0
#define INSET 6.0       /* least gap: t = 0 to the y axis, S = 0 to the x axis */
#define ROW_H 22.0      /* legend and risk-table rows */
#define SWATCH 22.0     /* legend line length */
#define MARK 5.0        /* censor '+' half-width */
#define MAX_TICKS 64

/* Okabe-Ito, yellow (#F0E442) last: it is weak on white. */
static const char *const palette[] = {
    "#E69F00", "#56B4E9", "#009E73", "#0072B2",
    "#D55E00", "#CC79A7", "#000000", "#F0E442",
};
#define NPALETTE ((int)(sizeof palette / sizeof palette[0]))

// ---------------------------------------------------------------- numbers

/* Numbers go into the SVG as text: printed from integers so that the
 * output does not depend on LC_NUMERIC and never reads "-0". */
typedef struct { char s[48]; } numstr;

/* Q / 10^DEC, trailing fractional zeros cut. */
static numstr fixed_str(long long q, int dec)
{
    numstr r;
    dec = dec < 0 ? 0 : dec > 18 ? 18 : dec;
    unsigned long long a = q < 0 ? 0ULL - (unsigned long long)q : (unsigned long long)q;
    unsigned long long p10 = 1;
    for (int i = 0; i < dec; i++) p10 *= 10;
    unsigned long long ip = a / p10, fp = a % p10;
    while (dec > 0 && fp % 10 == 0 && fp != 0) fp /= 10, dec--;
    if (fp == 0)
        snprintf(r.s, sizeof r.s, "%s%llu", q < 0 ? "-" : "", ip);
    else
        snprintf(r.s, sizeof r.s, "%s%llu.%0*llu", q < 0 ? "-" : "", ip, dec, fp);
    return r;
}

/* V rounded to DEC (0..9) decimals. */
static numstr fnum(double v, int dec)
{
    double p10 = 1;
    for (int i = 0; i < dec; i++) p10 *= 10;
    if (!isfinite(v) || fabs(v) * p10 > 9e17) v = 0; /* callers keep V sane */
    return fixed_str(llround(v * p10), dec);
}

/* a coordinate: two decimals */
static numstr cs(double v) { return fnum(v, 2); }

/* A count for the risk table: whole numbers as such, weights to 0.1. */
static numstr count_str(double v)
{
    return fnum(v, fabs(v - nearbyint(v)) < 1e-9 ? 0 : 1);
}

const char *mm_format_pvalue(double p, char *buf, size_t n)
{
    if (!buf || n == 0) return buf;
    if (isnan(p)) {
        snprintf(buf, n, "p = NA");
        return buf;
    }
    if (p < 1e-4) {
        snprintf(buf, n, "p < 0.0001");
        return buf;
    }
    /* R's signif(p, 2) (fprec: scale, nearbyint, unscale), printed as
     * as.character() would, except that 1e-4 reads "0.0001", not "1e-04". */
    int e10 = 2 - 1 - (int)floor(log10(p));
    long long q;
    int dec;
    if (e10 > 0) {
        q = llround(nearbyint(p * pow(10, e10)));
        dec = e10;
    } else {
        q = llround(nearbyint(p / pow(10, -e10)) * pow(10, -e10));
        dec = 0;
    }
    snprintf(buf, n, "p = %s", fixed_str(q, dec).s);
    return buf;
}

int mm_pretty_ticks(double xmax, double *ticks, int maxn)
{
    /* R_pretty() (src/appl/pretty.c) for lo = 0, up = XMAX, n = 5,
     * min.n = 1, high.u.bias = 1.5, u5.bias = .5 + 1.5 * 1.5. */
    const double h = 1.5, h5 = 0.5 + 1.5 * h, eps = 1e-10;
    if (!(xmax > 1e-290) || !isfinite(xmax)) xmax = 1; /* no subnormal cell: log10 stays finite */
    double cell = xmax / 5;
    int e = (int)floor(log10(cell));
    double base = pow(10, e), unit = base, ns;
    int m = 1;
    if ((ns = 2 * base) - cell < h * (cell - unit)) {
        unit = ns, m = 2;
        if ((ns = 5 * base) - cell < h5 * (cell - unit)) {
            unit = ns, m = 5;
            if ((ns = 10 * base) - cell < h * (cell - unit)) unit = ns, m = 10;
        }
    }
    double nu = ceil(xmax / unit - eps);
    while (nu * unit < xmax - eps * unit) nu++;
    int count = 0;
    for (int i = 0; i <= (int)nu && count < maxn; i++) {
        /* i * m * 10^e, divided rather than multiplied by a negative power
         * of ten so that 0.6 reads 0.6 and not 0.6000000000000001 */
        double v = e >= 0 ? (double)i * m * pow(10, e) : (double)i * m / pow(10, -e);
        ticks[count++] = v;
    }
    return count;
}

/* Decimals that print every multiple of the tick step exactly. */
static int tick_decimals(const double *t, int n)
{
    if (n < 2) return 0;
    double step = t[1] - t[0];
    int dec = 0;
    for (double v = step; dec < 9 && fabs(v - nearbyint(v)) > 1e-6 * v; v *= 10)
        dec++;
    return dec;
}

// ---------------------------------------------------------------- text

/* Advance widths of ASCII 32..126 in DejaVu Sans (Book and Bold), 1/1000
 * em, read from the TTF hmtx tables. Helvetica and Arial are narrower, so
 * the layout errs on the roomy side when they are used instead. */
static const unsigned short adv_book[95] = {
    318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337,
    636, 636, 636, 636, 636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 531,
    1000, 684, 686, 698, 770, 632, 575, 775, 752, 295, 295, 656, 557, 863, 748, 787,
    603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390, 337, 390, 838, 500,
    500, 613, 635, 550, 635, 615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612,
    635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838,
};
static const unsigned short adv_bold[95] = {
    348, 456, 521, 838, 696, 1002, 872, 306, 457, 457, 523, 838, 380, 415, 380, 365,
    696, 696, 696, 696, 696, 696, 696, 696, 696, 696, 400, 400, 838, 838, 838, 580,
    1000, 774, 762, 734, 830, 683, 683, 821, 837, 372, 372, 775, 637, 995, 837, 850,
    733, 850, 770, 720, 682, 812, 774, 1103, 771, 724, 725, 457, 365, 457, 838, 500,
    500, 675, 716, 593, 716, 678, 435, 716, 712, 343, 343, 665, 343, 1042, 712, 687,
    716, 716, 493, 595, 478, 712, 652, 924, 645, 652, 582, 712, 365, 712, 838,
};

static double char_width(const unsigned char *p, int bold)
{
    unsigned c = *p;
    if (c - 32u < 95u) return (bold ? adv_bold : adv_book)[c - 32u];
    if ((*p & 0xC0) == 0x80) return 0; /* UTF-8 continuation byte */
    return bold ? 700 : 640;           /* a character we have no width for */
}

static double text_width(const char *s, double size, int bold)
{
    double w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        w += char_width(p, bold);
    return w * size / 1000;
}

/* Bytes of the valid UTF-8 character at P that XML 1.0 allows, or 0. */
static int utf8_len(const unsigned char *p)
{
    int n;
    unsigned cp;
    if (p[0] < 0x80) return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF) n = 2, cp = p[0] & 0x1Fu;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF) n = 3, cp = p[0] & 0x0Fu;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4) n = 4, cp = p[0] & 0x07u;
    else return 0;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0; /* also stops at the NUL */
        cp = cp << 6 | (p[i] & 0x3Fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF)
        return 0;
    return n;
}

/* S as XML character data: markup characters escaped, control characters
 * as spaces, bytes that are not UTF-8 as U+FFFD, so any name gives a
 * well-formed file. */
static void put_escaped(FILE *fp, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = utf8_len(p);
        if (n == 0) {
            fputs("&#xFFFD;", fp);
            p++;
            continue;
        }
        switch (*p) {
        case '&': fputs("&amp;", fp); break;
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '"': fputs("&quot;", fp); break;
        case '\'': fputs("&apos;", fp); break;
        default:
            if (*p < 0x20) fputc(' ', fp);
            else fwrite(p, 1, (size_t)n, fp);
        }
        p += n;
    }
}

/* <text> at (X, Y) with ANCHOR (start, middle, end) and extra ATTRS. */
static void put_text(FILE *fp, double x, double y, const char *anchor,
                     const char *attrs, const char *s)
{
    fprintf(fp, "<text x=\"%s\" y=\"%s\"", cs(x).s, cs(y).s);
    if (strcmp(anchor, "start") != 0) fprintf(fp, " text-anchor=\"%s\"", anchor);
    fprintf(fp, " %s>", attrs);
    put_escaped(fp, s);
    fputs("</text>\n", fp);
}

/* S cut to at most MAXW wide with a trailing ellipsis; the caller frees. */
static char *fit_text(const char *s, double maxw, double size, int bold)
{
    if (text_width(s, size, bold) <= maxw) return mm_strdup(s);
    const char *ell = "\xE2\x80\xA6"; /* U+2026 */
    double w = 640.0 * size / 1000, room = maxw;
    size_t keep = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int n = utf8_len(p);
        if (n == 0) n = 1;
        double cw = char_width(p, bold) * size / 1000;
        if (w + cw > room) break;
        w += cw;
        p += n;
        keep = (size_t)(p - (const unsigned char *)s);
    }
    char *r = mm_malloc(keep + 4);
    memcpy(r, s, keep);
    memcpy(r + keep, ell, 4);
    return r;
}

// ---------------------------------------------------------------- layout

typedef struct {
    double x, w;   /* left edge and width of the swatch + name */
    int row;
    char *name;    /* cut to the figure's width */
} legend_item;

typedef struct {
    const mm_plot_group *g;
    int ng;
    mm_plot_opts o;
    double W, H, xmax;
    double x0, x1, yt, yb;      /* panel: axes along x0 and yb */
    double px0, py0;            /* t = 0 and S = 0; t = xmax is x1, S = 1 is yt */
    double title_y;
    double ylab_x, ytick_w;
    double legend_y;            /* baseline of the first legend row */
    double legend_title_x;
    legend_item *items;         /* ng */
    double caption_y;           /* "Number at risk" baseline; rows below */
    double risk_row_h;
    char **risk_names;          /* ng, fitted to the left margin */
    /* the caller's labels cut to the room they have (NULL: none) */
    char *title, *xlabel, *ylabel, *legend_title, *pvalue;
    double ticks[MAX_TICKS];
    int nticks, tick_dec, tick_stride;
    double rtimes[MAX_TICKS];   /* number-at-risk times */
    int nrtimes;
} layout;

/* data to pixels and back */
static double xpix(const layout *L, double t)
{
    return L->px0 + t / L->xmax * (L->x1 - L->px0);
}
static double ypix(const layout *L, double s) { return L->py0 - s * (L->py0 - L->yt); }
static double t_of(const layout *L, double x)
{
    return (x - L->px0) / (L->x1 - L->px0) * L->xmax;
}
static double s_of(const layout *L, double y) { return (L->py0 - y) / (L->py0 - L->yt); }

static const char *group_name(const layout *L, int i, char *buf, size_t n)
{
    if (L->g[i].name) return L->g[i].name;
    snprintf(buf, n, "group %d", i + 1);
    return buf;
}

/* Number at risk at T, as R's summary(fit, times = T, extend = TRUE): the
 * first row at or after T, 0 past the last. mm_km_n_risk_at's rule, kept
 * here so that drawing does not need the fitter. */
static double n_risk_at(const mm_km *km, double t)
{
    size_t lo = 0, hi = km->nrows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (km->rows[mid].time < t) lo = mid + 1;
        else hi = mid;
    }
    return lo < km->nrows ? km->rows[lo].n_risk : 0;
}

/* The row in force at T (last with time <= T), or -1 before the first. */
static long row_at(const mm_km *km, double t)
{
    size_t lo = 0, hi = km->nrows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (km->rows[mid].time <= t) lo = mid + 1;
        else hi = mid;
    }
    return (long)lo - 1;
}

static int check_input(const mm_plot_group *g, int ng, const mm_plot_opts *o)
{
    if (ng <= 0 || !g) {
        mm__set_error("no Kaplan-Meier curves to draw");
        return -1;
    }
    if (!(o->width >= 200 && o->width <= 20000) ||
        !(o->height >= 150 && o->height <= 20000)) {
        mm__set_error("figure size %gx%g is outside 200x150 .. 20000x20000",
                      o->width, o->height);
        return -1;
    }
    if (!isnan(o->xmax) && !(o->xmax > 0 && isfinite(o->xmax))) {
        mm__set_error("xmax must be a positive number, got %g", o->xmax);
        return -1;
    }
    if (o->ntimes < 0 || (o->ntimes > 0 && !o->times)) {
        mm__set_error("%d number-at-risk times but no array of them", o->ntimes);
        return -1;
    }
    for (int i = 0; i < ng; i++) {
        const mm_km *km = g[i].km;
        const char *name = g[i].name ? g[i].name : "";
        if (!km || (km->nrows > 0 && !km->rows)) {
            mm__set_error("group %d '%s' has no Kaplan-Meier curve", i + 1, name);
            return -1;
        }
        for (size_t r = 0; r < km->nrows; r++) {
            const mm_km_row *w = &km->rows[r];
            if (!(isfinite(w->time) && w->time >= 0) ||
                (r > 0 && w->time < km->rows[r - 1].time)) {
                mm__set_error("group '%s', row %zu: time %g is not a finite value >= 0 "
                              "and >= the row above", name, r + 1, w->time);
                return -1;
            }
            if (!(w->surv >= 0 && w->surv <= 1) || !(w->n_risk >= 0) ||
                !isfinite(w->n_risk) || !(w->n_censor >= 0)) {
                mm__set_error("group '%s', row %zu: survival %g is outside [0, 1] or a "
                              "count is negative", name, r + 1, w->surv);
                return -1;
            }
        }
    }
    return 0;
}

/* Left edge of something W wide centred over the panel, or over the
 * figure when the panel's centre would push it off an edge. */
static double centre_x(const layout *L, double w)
{
    double c = (L->x0 + L->x1) / 2;
    if (c - w / 2 < PAD || c + w / 2 > L->W - PAD) c = L->W / 2;
    return c - w / 2;
}

/* The legend above the panel: "[title] -- a  -- b ..." on one row when
 * it fits the figure's width; else the items in a grid of equal columns,
 * the title left of the grid (or on a row of its own when it is long). */
static void layout_legend(layout *L, double y)
{
    const double gap = 20, title_gap = 10, avail = L->W - 2 * PAD;
    if (L->o.legend_title)
        L->legend_title = fit_text(L->o.legend_title, avail, FS_TICK, 0);
    double tw = L->legend_title ? text_width(L->legend_title, FS_TICK, 0) : 0;
    double title_w = L->legend_title ? tw + title_gap : 0;
    double total = title_w, maxw = 0;
    char buf[32];
    for (int i = 0; i < L->ng; i++) {
        legend_item *it = &L->items[i];
        it->name = fit_text(group_name(L, i, buf, sizeof buf), avail - SWATCH - 6,
                            FS_TICK, 0);
        it->w = SWATCH + 6 + text_width(it->name, FS_TICK, 0);
        total += it->w + (i ? gap : 0);
        maxw = fmax(maxw, it->w);
    }
    L->legend_y = y + 15;
    if (total <= avail) {
        double x = centre_x(L, total);
        L->legend_title_x = x;
        x += title_w;
        for (int i = 0; i < L->ng; i++) {
            L->items[i].x = x, L->items[i].row = 0;
            x += L->items[i].w + gap;
        }
        return;
    }
    int inline_title = L->legend_title && tw <= 0.3 * avail && title_w + maxw <= avail;
    double room = avail - (inline_title ? title_w : 0);
    int ncols = (int)((room + gap) / (maxw + gap));
    if (ncols < 1) ncols = 1;
    if (ncols > L->ng) ncols = L->ng;
    /* one long name makes a one-column grid: flowing the items left to
     * right at their own widths then takes fewer rows */
    int flow_rows = 1;
    double rowx = 0, flow_w = 0;
    for (int i = 0; i < L->ng; i++) {
        if (i > 0 && rowx + gap + L->items[i].w > room) flow_rows++, rowx = 0;
        rowx += (rowx > 0 ? gap : 0) + L->items[i].w;
        flow_w = fmax(flow_w, rowx);
    }
    int grid = (L->ng + ncols - 1) / ncols <= flow_rows;
    double block_w = grid ? ncols * maxw + (ncols - 1) * gap : flow_w;
    int row0 = 0;
    double gx;
    if (inline_title) {
        L->legend_title_x = centre_x(L, title_w + block_w);
        gx = L->legend_title_x + title_w;
    } else {
        if (L->legend_title) {
            L->legend_title_x = centre_x(L, tw);
            row0 = 1;
        }
        gx = centre_x(L, block_w);
    }
    rowx = 0;
    int row = row0;
    for (int i = 0; i < L->ng; i++) {
        legend_item *it = &L->items[i];
        if (grid) {
            it->x = gx + (i % ncols) * (maxw + gap);
            it->row = row0 + i / ncols;
            continue;
        }
        if (i > 0 && rowx + gap + it->w > room) row++, rowx = 0;
        if (rowx > 0) rowx += gap;
        it->x = gx + rowx;
        it->row = row;
        rowx += it->w;
    }
}

static int legend_rows(const layout *L)
{
    int rows = L->legend_title ? 1 : 0;
    for (int i = 0; i < L->ng; i++)
        if (L->items[i].row + 1 > rows) rows = L->items[i].row + 1;
    return rows;
}

static int make_layout(layout *L)
{
    const mm_plot_opts *o = &L->o;
    L->W = o->width, L->H = o->height;

    /* x range and ticks */
    L->xmax = o->xmax;
    if (isnan(L->xmax)) {
        L->xmax = 0;
        for (int i = 0; i < L->ng; i++) {
            const mm_km *km = L->g[i].km;
            if (km->nrows) L->xmax = fmax(L->xmax, km->rows[km->nrows - 1].time);
        }
        if (!(L->xmax > 0)) L->xmax = 1;
    }
    double all[MAX_TICKS];
    int nall = mm_pretty_ticks(L->xmax, all, MAX_TICKS);
    L->nticks = 0;
    for (int i = 0; i < nall; i++)
        if (all[i] <= L->xmax * (1 + 1e-9)) L->ticks[L->nticks++] = all[i];
    L->tick_dec = tick_decimals(all, nall);
    double tick_w = 0;
    for (int i = 0; i < L->nticks; i++)
        tick_w = fmax(tick_w, text_width(fnum(L->ticks[i], L->tick_dec).s, FS_TICK, 0));

    /* the widest number in the risk table (n at t = 0 is the largest) */
    double num_w = 0;
    if (o->risk_table)
        for (int i = 0; i < L->ng; i++) {
            numstr n0 = count_str(n_risk_at(L->g[i].km, 0));
            num_w = fmax(num_w, text_width(n0.s, FS_TICK, 0));
        }

    /* horizontal: y label, y tick labels, axis; risk-table names share
     * the tick labels' right edge */
    L->ytick_w = text_width("0.00", FS_TICK, 0);
    double left = PAD + FS_LABEL + 10 + L->ytick_w + TICK_LEN + 3;
    double name_max = 0.36 * L->W - PAD - TICK_LEN - 3;
    L->risk_names = mm_calloc((size_t)L->ng, sizeof *L->risk_names);
    char buf[32];
    for (int i = 0; i < L->ng; i++) {
        const char *full = L->g[i].short_name ? L->g[i].short_name : group_name(L, i, buf, sizeof buf);
        char *name = fit_text(full, name_max, FS_TICK, 1);
        L->risk_names[i] = name;
        if (o->risk_table)
            left = fmax(left, PAD + text_width(name, FS_TICK, 1) + TICK_LEN + 3);
    }
    L->x0 = left;
    L->x1 = L->W - PAD - fmax(tick_w, num_w) / 2 - 2;
    /* t = 0 sits far enough right of the y axis that the first column of
     * the risk table clears the names ending at the tick labels' edge */
    L->px0 = L->x0 + fmax(INSET, num_w / 2 + 2);
    L->ylab_x = L->x0 - TICK_LEN - 3 - L->ytick_w - 10;

    /* vertical, top down: title, legend, panel */
    double y = PAD;
    if (o->title) {
        L->title = fit_text(o->title, L->W - 2 * PAD, FS_TITLE, 1);
        L->title_y = y + FS_TITLE - 3;
        y += FS_TITLE + 10;
    }
    L->items = mm_calloc((size_t)L->ng, sizeof *L->items);
    layout_legend(L, y);
    y += legend_rows(L) * ROW_H + 4;
    L->yt = y + MARK + 4; /* room for a censor mark on S = 1 */

    /* bottom up: risk table, x label, tick labels */
    double bottom = L->H - PAD;
    if (o->risk_table) {
        L->risk_row_h = L->ng > 4 ? 19 : ROW_H;
        bottom -= L->ng * L->risk_row_h + FS_TICK + 4;
        L->caption_y = bottom + FS_TICK;
        bottom -= 12;
    }
    L->yb = bottom - (TICK_LEN + 4 + FS_TICK + 12 + FS_LABEL + 4);
    L->py0 = L->yb - INSET;
    if (L->py0 - L->yt < 60 || L->x1 - L->px0 < 100) {
        mm__set_error("a %gx%g figure is too small for %d Kaplan-Meier curves and "
                      "their labels", L->W, L->H, L->ng);
        return -1;
    }
    L->xlabel = fit_text(o->xlabel ? o->xlabel : "Time", L->x1 - L->x0, FS_LABEL, 0);
    L->ylabel = fit_text(o->ylabel ? o->ylabel : "Survival probability", L->yb - L->yt,
                         FS_LABEL, 0);
    if (o->pvalue) L->pvalue = fit_text(o->pvalue, L->x1 - L->px0 - 24, FS_PVAL, 0);

    /* label every tick whose label fits; the risk table uses the same */
    double step = L->nticks > 1 ? xpix(L, L->ticks[1]) - xpix(L, L->ticks[0]) : 1e9;
    double need = fmax(tick_w, num_w) + 10;
    L->tick_stride = 1;
    while (L->tick_stride * step < need && L->tick_stride < L->nticks) L->tick_stride++;

    L->nrtimes = 0;
    if (o->times) {
        for (int i = 0; i < o->ntimes && L->nrtimes < MAX_TICKS; i++)
            if (o->times[i] >= 0 && o->times[i] <= L->xmax * (1 + 1e-9))
                L->rtimes[L->nrtimes++] = o->times[i];
    } else {
        for (int i = 0; i < L->nticks; i += L->tick_stride)
            L->rtimes[L->nrtimes++] = L->ticks[i];
    }
    return 0;
}

static void free_layout(layout *L)
{
    for (int i = 0; L->items && i < L->ng; i++) free(L->items[i].name);
    for (int i = 0; L->risk_names && i < L->ng; i++) free(L->risk_names[i]);
    free(L->items);
    free(L->risk_names);
    free(L->title);
    free(L->xlabel);
    free(L->ylabel);
    free(L->legend_title);
    free(L->pvalue);
}

// ---------------------------------------------------------------- drawing

/* Rows worth drawing: those up to XMAX, and the first one past it (its
 * step runs into the clip edge). */
static size_t visible_rows(const layout *L, const mm_km *km)
{
    size_t n = 0;
    while (n < km->nrows && km->rows[n].time <= L->xmax) n++;
    return n < km->nrows ? n + 1 : n;
}

static int band_ok(const mm_km_row *r)
{
    return isfinite(r->lower) && isfinite(r->upper) && r->upper >= r->lower;
}

static double clamp01(double v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

/* The confidence band as steps: row i's bounds hold on [t_i, t_i+1); runs
 * of rows with both bounds defined become one closed path each. */
static void draw_band(FILE *fp, const layout *L, const mm_km *km, const char *col)
{
    size_t n = visible_rows(L, km), i = 0;
    const mm_km_row *r = km->rows;
    while (i + 1 < n) {
        if (!band_ok(&r[i])) {
            i++;
            continue;
        }
        size_t a = i, b = i;
        while (b + 2 < n && band_ok(&r[b + 1])) b++;
        fprintf(fp, "<path fill=\"%s\" fill-opacity=\"0.2\" d=\"M%s,%s", col,
                cs(xpix(L, r[a].time)).s, cs(ypix(L, clamp01(r[a].upper))).s);
        for (size_t k = a; k <= b; k++) {
            fprintf(fp, "H%s", cs(xpix(L, r[k + 1].time)).s);
            if (k < b) fprintf(fp, "V%s", cs(ypix(L, clamp01(r[k + 1].upper))).s);
        }
        fprintf(fp, "V%s", cs(ypix(L, clamp01(r[b].lower))).s);
        for (size_t k = b + 1; k-- > a;) {
            fprintf(fp, "H%s", cs(xpix(L, r[k].time)).s);
            if (k > a) fprintf(fp, "V%s", cs(ypix(L, clamp01(r[k - 1].lower))).s);
        }
        fputs("Z\"/>\n", fp);
        i = b + 1;
    }
}

/* Post-step curve from S = 1 at t = 0: across, then down at each event. */
static void draw_curve(FILE *fp, const layout *L, const mm_km *km, const char *col)
{
    size_t n = visible_rows(L, km);
    if (n == 0) return;
    fprintf(fp, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\" d=\"M%s,%s", col,
            cs(xpix(L, 0)).s, cs(ypix(L, 1)).s);
    double s = 1, t = 0;
    for (size_t i = 0; i < n; i++) {
        if (km->rows[i].surv != s) {
            s = km->rows[i].surv, t = km->rows[i].time;
            fprintf(fp, "H%sV%s", cs(xpix(L, t)).s, cs(ypix(L, s)).s);
        }
    }
    if (km->rows[n - 1].time > t) fprintf(fp, "H%s", cs(xpix(L, km->rows[n - 1].time)).s);
    fputs("\"/>\n", fp);
}

static void draw_censor_marks(FILE *fp, const layout *L, const mm_km *km, const char *col)
{
    int any = 0;
    for (size_t i = 0; i < km->nrows && km->rows[i].time <= L->xmax; i++) {
        if (!(km->rows[i].n_censor > 0)) continue;
        if (!any)
            fprintf(fp, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" d=\"",
                    col);
        any = 1;
        double x = xpix(L, km->rows[i].time), y = ypix(L, km->rows[i].surv);
        fprintf(fp, "M%s,%sh%sM%s,%sv%s", cs(x - MARK).s, cs(y).s, cs(2 * MARK).s,
                cs(x).s, cs(y - MARK).s, cs(2 * MARK).s);
    }
    if (any) fputs("\"/>\n", fp);
}

static void draw_axes(FILE *fp, const layout *L)
{
    fprintf(fp, "<g fill=\"none\" stroke=\"" INK "\" stroke-width=\"1\">\n");
    fprintf(fp, "<path d=\"M%s,%sV%sH%s\"/>\n", cs(L->x0).s, cs(ypix(L, 1)).s,
            cs(L->yb).s, cs(L->x1).s);
    fputs("<path d=\"", fp);
    for (int i = 0; i < L->nticks; i++)
        fprintf(fp, "M%s,%sv%s", cs(xpix(L, L->ticks[i])).s, cs(L->yb).s, cs(TICK_LEN).s);
    for (int k = 0; k <= 4; k++)
        fprintf(fp, "M%s,%sh%s", cs(L->x0 - TICK_LEN).s, cs(ypix(L, k / 4.0)).s,
                cs(TICK_LEN).s);
    fputs("\"/>\n</g>\n", fp);

    fprintf(fp, "<g font-size=\"%s\" fill=\"" INK "\">\n", cs(FS_TICK).s);
    double ty = L->yb + TICK_LEN + 3 + FS_TICK - 2;
    for (int i = 0; i < L->nticks; i += L->tick_stride)
        put_text(fp, xpix(L, L->ticks[i]), ty, "middle", "",
                 fnum(L->ticks[i], L->tick_dec).s);
    static const char *const ylabels[] = {"0.00", "0.25", "0.50", "0.75", "1.00"};
    for (int k = 0; k <= 4; k++)
        put_text(fp, L->x0 - TICK_LEN - 3, ypix(L, k / 4.0) + FS_TICK * 0.35, "end", "",
                 ylabels[k]);
    fputs("</g>\n", fp);

    fprintf(fp, "<g font-size=\"%s\" fill=\"" INK "\">\n", cs(FS_LABEL).s);
    put_text(fp, (L->x0 + L->x1) / 2, ty + 12 + FS_LABEL, "middle", "", L->xlabel);
    fprintf(fp, "<text transform=\"translate(%s,%s) rotate(-90)\" "
            "text-anchor=\"middle\">", cs(L->ylab_x).s, cs((ypix(L, 1) + L->yb) / 2).s);
    put_escaped(fp, L->ylabel);
    fputs("</text>\n</g>\n", fp);
}

static void draw_legend(FILE *fp, const layout *L)
{
    fprintf(fp, "<g font-size=\"%s\" fill=\"" INK "\">\n", cs(FS_TICK).s);
    if (L->legend_title)
        put_text(fp, L->legend_title_x, L->legend_y, "start", "", L->legend_title);
    for (int i = 0; i < L->ng; i++) {
        const legend_item *it = &L->items[i];
        double y = L->legend_y + it->row * ROW_H;
        fprintf(fp, "<path stroke=\"%s\" stroke-width=\"2.5\" d=\"M%s,%sh%s\"/>\n",
                palette[i % NPALETTE], cs(it->x).s, cs(y - 5).s, cs(SWATCH).s);
        put_text(fp, it->x + SWATCH + 6, y, "start", "", it->name);
    }
    fputs("</g>\n", fp);
}

static void draw_risk_table(FILE *fp, const layout *L)
{
    fprintf(fp, "<g font-size=\"%s\" fill=\"" INK "\">\n", cs(FS_TICK).s);
    put_text(fp, PAD, L->caption_y, "start", "font-weight=\"bold\"", "Number at risk");
    for (int i = 0; i < L->ng; i++) {
        double y = L->caption_y + (i + 1) * L->risk_row_h;
        char attrs[64];
        snprintf(attrs, sizeof attrs, "font-weight=\"bold\" fill=\"%s\"",
                 palette[i % NPALETTE]);
        put_text(fp, L->x0 - TICK_LEN - 3, y, "end", attrs, L->risk_names[i]);
        for (int k = 0; k < L->nrtimes; k++)
            put_text(fp, xpix(L, L->rtimes[k]), y, "middle", "",
                     count_str(n_risk_at(L->g[i].km, L->rtimes[k])).s);
    }
    fputs("</g>\n", fp);
}

/* Is the box [t0, t1] x [s0, s1] (data units) clear of every curve, band
 * and censor mark? Curves fall, so on [t0, t1] a curve spans
 * [value at t1, value at t0]; nothing is drawn past a curve's last time. */
static int box_clear(const layout *L, double t0, double t1, double s0, double s1)
{
    double margin = (MARK + 3) / (L->py0 - L->yt);
    for (int i = 0; i < L->ng; i++) {
        const mm_km *km = L->g[i].km;
        if (km->nrows == 0 || km->rows[km->nrows - 1].time < t0) continue;
        long a = row_at(km, t0), b = row_at(km, fmin(t1, km->rows[km->nrows - 1].time));
        double hi = a < 0 ? 1 : km->rows[a].surv;
        double lo = b < 0 ? 1 : km->rows[b].surv;
        if (L->o.ci) {
            if (a >= 0 && band_ok(&km->rows[a])) hi = fmax(hi, km->rows[a].upper);
            if (b >= 0 && band_ok(&km->rows[b])) lo = fmin(lo, km->rows[b].lower);
        }
        if (lo <= s1 + margin && hi >= s0 - margin) return 0;
    }
    return 1;
}

/* survminer's place, bottom left inside the panel, when no curve, band
 * or mark is under it; else the first clear one of: top right, bottom
 * right, then up the left and right sides. A white halo keeps the text
 * legible if none is clear. */
static void draw_pvalue(FILE *fp, const layout *L)
{
    const char *s = L->pvalue;
    double w = text_width(s, FS_PVAL, 0);
    double left = L->px0 + 12, right = L->x1 - 8;
    double bottom = L->py0 - 10, top = L->yt + FS_PVAL + 4;
    struct { double x, y; int end; } c[24];
    int n = 0;
    c[n].x = left, c[n].y = bottom, c[n++].end = 0;
    c[n].x = right, c[n].y = top, c[n++].end = 1;
    c[n].x = right, c[n].y = bottom, c[n++].end = 1;
    for (int k = 1; k <= 8 && n + 2 <= 24; k++) {
        double y = bottom - k * (bottom - top) / 9;
        c[n].x = left, c[n].y = y, c[n++].end = 0;
        c[n].x = right, c[n].y = y, c[n++].end = 1;
    }
    int pick = 0;
    for (int i = 0; i < n; i++) {
        double x0 = c[i].end ? c[i].x - w : c[i].x;
        if (box_clear(L, t_of(L, x0 - 4), t_of(L, x0 + w + 4), s_of(L, c[i].y + 4),
                      s_of(L, c[i].y - FS_PVAL))) {
            pick = i;
            break;
        }
    }
    char attrs[160];
    snprintf(attrs, sizeof attrs, "font-size=\"%s\" fill=\"" INK "\" stroke=\"#ffffff\" "
             "stroke-width=\"4\" stroke-linejoin=\"round\" paint-order=\"stroke\"",
             cs(FS_PVAL).s);
    put_text(fp, c[pick].x, c[pick].y, c[pick].end ? "end" : "start", attrs, s);
}

void mm_plot_opts_init(mm_plot_opts *o)
{
    memset(o, 0, sizeof *o);
    o->xmax = NAN;
    o->ci = 1;
    o->censor_marks = 1;
    o->risk_table = 1;
    o->width = 720;
    o->height = 560;
}

int mm_km_svg(FILE *fp, const mm_plot_group *g, int ng, const mm_plot_opts *o)
{
    mm_plot_opts defaults;
    if (!o) {
        mm_plot_opts_init(&defaults);
        o = &defaults;
    }
    if (check_input(g, ng, o) != 0) return -1;
    layout L = {.g = g, .ng = ng, .o = *o};
    if (make_layout(&L) != 0) {
        free_layout(&L);
        return -1;
    }

    fprintf(fp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%s\" height=\"%s\" "
            "viewBox=\"0 0 %s %s\" font-family=\"" FONT_FAMILY "\">\n",
            cs(L.W).s, cs(L.H).s, cs(L.W).s, cs(L.H).s);
    /* curves and bands stop at xmax; S never leaves [0, 1] */
    fprintf(fp, "<defs><clipPath id=\"mm-km-panel\"><rect x=\"%s\" y=\"0\" width=\"%s\" "
            "height=\"%s\"/></clipPath></defs>\n",
            cs(L.x0).s, cs(L.x1 + 1 - L.x0).s, cs(L.yb).s);
    fprintf(fp, "<rect width=\"%s\" height=\"%s\" fill=\"#ffffff\"/>\n", cs(L.W).s,
            cs(L.H).s);
    if (o->title) {
        fprintf(fp, "<g font-size=\"%s\" font-weight=\"bold\" fill=\"" INK "\">\n",
                cs(FS_TITLE).s);
        /* over the panel, or over the figure when that would cut it */
        double tx = (L.x0 + L.x1) / 2, tw = text_width(L.title, FS_TITLE, 1);
        if (tx - tw / 2 < PAD || tx + tw / 2 > L.W - PAD) tx = L.W / 2;
        put_text(fp, tx, L.title_y, "middle", "", L.title);
        fputs("</g>\n", fp);
    }
    draw_legend(fp, &L);
    draw_axes(fp, &L);

    fputs("<g clip-path=\"url(#mm-km-panel)\">\n", fp);
    if (o->ci)
        for (int i = 0; i < ng; i++) draw_band(fp, &L, g[i].km, palette[i % NPALETTE]);
    for (int i = 0; i < ng; i++) draw_curve(fp, &L, g[i].km, palette[i % NPALETTE]);
    fputs("</g>\n", fp);
    if (o->censor_marks)
        for (int i = 0; i < ng; i++)
            draw_censor_marks(fp, &L, g[i].km, palette[i % NPALETTE]);
    if (o->pvalue) draw_pvalue(fp, &L);
    if (o->risk_table) draw_risk_table(fp, &L);
    fputs("</svg>\n", fp);
    free_layout(&L);

    if (fflush(fp) != 0 || ferror(fp)) {
        mm__set_error("cannot write the Kaplan-Meier SVG: %s", strerror(errno));
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------- PNG

#ifdef MM_HAVE_VIPS
/* vips_init() is itself idempotent; the flag only saves the call. */
static int vips_started;

/* vips's error buffer as one line, then cleared. */
static void set_vips_error(const char *path, const char *what)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", vips_error_buffer());
    vips_error_clear();
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
    for (char *p = msg; *p; p++)
        if (*p == '\n') *p = ';';
    mm__set_error("%s: %s%s%s", path, what, n ? ": " : "", msg);
}

int mm_svg_to_png(const char *svg, size_t n, const char *png_path, double scale)
{
    if (!png_path || !svg || n == 0) {
        mm__set_error("%s: no SVG to render", png_path ? png_path : "(null)");
        return -1;
    }
    if (!(scale > 0 && scale <= 10)) { /* 10: 7200 x 5600, 960 dpi at 7.5 in */
        mm__set_error("%s: scale must be in (0, 10], got %g", png_path, scale);
        return -1;
    }
    if (!vips_started) {
        if (VIPS_INIT("mmpath") != 0) {
            set_vips_error(png_path, "libvips failed to start");
            return -1;
        }
        vips_started = 1;
    }

    /* The loader's cache entry keys on the buffer's blob object, made
     * anew each call, so a later SVG at the same address is not mistaken
     * for this one. */
    VipsImage *img = NULL, *flat = NULL;
    void *png = NULL;
    size_t len = 0;
    int ret = -1;
    if (vips_svgload_buffer((void *)svg, n, &img, "scale", scale, NULL) != 0) {
        set_vips_error(png_path, "cannot render the SVG");
        goto done;
    }
    VipsImage *out = img;
    if (vips_image_hasalpha(img)) {
        /* flatten onto white: RGB, whatever the SVG left transparent */
        VipsArrayDouble *white = vips_array_double_newv(1, 255.0);
        int r = vips_flatten(img, &flat, "background", white, NULL);
        vips_area_unref(VIPS_AREA(white));
        if (r != 0) {
            set_vips_error(png_path, "cannot flatten the SVG");
            goto done;
        }
        out = flat;
    }
    if (vips_pngsave_buffer(out, &png, &len, NULL) != 0) {
        set_vips_error(png_path, "cannot render the SVG to PNG");
        goto done;
    }
    /* mm_io writes PATH.tmp.XXXXXX and renames it at close; a failed
     * write or rename removes the temporary file */
    mm_io *io = mm_io_open(png_path, "w");
    if (!io) goto done;
    int w = mm_io_write(io, png, len);
    int c = mm_io_close(io);
    ret = w == 0 && c == 0 ? 0 : -1;
done:
    g_free(png);
    if (flat) g_object_unref(flat);
    if (img) g_object_unref(img);
    return ret;
}
#else
/* A build without libvips (configure --enable-device-build) writes SVG only. */
int mm_svg_to_png(const char *svg, size_t n, const char *png_path, double scale)
{
    (void)svg; (void)n; (void)scale;
    mm__set_error("%s: PNG needs libvips, which this build (--enable-device-build) left out; write SVG",
                  png_path ? png_path : "(null)");
    return -1;
}
#endif
