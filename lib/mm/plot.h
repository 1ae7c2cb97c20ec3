/* mm/plot.h: Kaplan-Meier pictures: SVG written by hand (always), PNG by
 * rendering that SVG with libvips (librsvg). Step curves with censor marks,
 * shaded confidence bands, a number-at-risk table under the plot, legend,
 * p-value, colour-blind-safe palette (Okabe-Ito). Not a general plotting
 * library.
 * SPDX-License-Identifier: MIT */
#ifndef MM_PLOT_H
#define MM_PLOT_H

#include <stdio.h>

#include "mm/defs.h"
#include "mm/survival.h"

typedef struct {
    const char *name;   /* legend label, e.g. "high risk (n = 114)" */
    const mm_km *km;
    const char *short_name; /* number-at-risk row label, e.g. "high risk";
                             * NULL: NAME */
} mm_plot_group;

typedef struct {
    const char *title;         /* NULL: none */
    const char *xlabel;        /* NULL: "Time" */
    const char *ylabel;        /* NULL: "Survival probability" */
    const char *legend_title;  /* NULL: none; e.g. "Risk group (higher risk = worse)" */
    const char *pvalue;        /* text shown in the plot, e.g. "Log-rank p = 0.0013"; NULL: none */
    double xmax;               /* NAN: the largest time */
    const double *times;       /* number-at-risk times; NULL: the x-axis ticks */
    int ntimes;
    int ci;                    /* shade confidence bands */
    int censor_marks;          /* '+' at censoring times */
    int risk_table;            /* number-at-risk table under the plot */
    double width, height;      /* SVG user units (px at 96 dpi): default 720 x 560 */
} mm_plot_opts;

/* Defaults: everything on, 720 x 560, no title. */
void mm_plot_opts_init(mm_plot_opts *o);

/* Write the SVG of NG curves to FP. @return 0, or -1 (mm_strerror()). */
int mm_km_svg(FILE *fp, const mm_plot_group *g, int ng, const mm_plot_opts *o)
    MM_RESULT_USED;

/* Render SVG (N bytes) to a PNG file at SCALE x its size (2 = 1440 x 1120
 * for the default), through a temporary name renamed on success.
 * @return 0, or -1 (mm_strerror()). */
int mm_svg_to_png(const char *svg, size_t n, const char *png_path, double scale)
    MM_RESULT_USED;

/* survminer's p-value text: "p < 0.0001" below 1e-4, else "p = " and two
 * significant digits ("p = 0.0013", "p = 0.13", "p = 1"). */
const char *mm_format_pvalue(double p, char *buf, size_t n);

/* "Nice" axis ticks from 0 to at least XMAX (R's pretty()): fills up to
 * MAXN values in TICKS. @return the count. */
int mm_pretty_ticks(double xmax, double *ticks, int maxn);

#endif
