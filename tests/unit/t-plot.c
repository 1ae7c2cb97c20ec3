/* t-plot.c: Kaplan-Meier figures from hand-built curves (no fitter): the
 * p-value text and pretty() ticks as R gives them, a well-formed escaped
 * deterministic SVG with the risk table under the ticks, a golden SVG
 * (MM_REGEN=1 rewrites it), PNGs at scale 1 and 2 read back with libvips.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm/plot.h"
#include "../tap.h"

#if defined(__has_include)
#if __has_include(<glib.h>)
#define HAVE_VIPS_H 1
#endif
#endif
#ifdef HAVE_VIPS_H
#include <vips/vips.h>
#else
/* Makefile.am gives VIPS_CFLAGS to lib/plot.c only; the few libvips 8.x
 * exports this test reads PNGs with, declared as libvips declares them. */
typedef struct _VipsImage VipsImage;
VipsImage *vips_image_new_from_file(const char *name, ...);
int vips_image_get_width(const VipsImage *image);
int vips_image_get_height(const VipsImage *image);
int vips_image_get_bands(const VipsImage *image);
int vips_image_get_format(const VipsImage *image);
void *vips_image_write_to_memory(VipsImage *in, size_t *size);
const char *vips_error_buffer(void);
void g_object_unref(void *object);
void g_free(void *mem);
#endif

/* Under LeakSanitizer (make check-asan): fontconfig, reached through
 * librsvg and pango, keeps its caches until the process ends. The hook is
 * read only by sanitizer runtimes. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig.so\n"; }

// ---------------------------------------------------------------- curves

/* time, n_risk, n_event, n_censor, surv, std_err, std_err_logS, lower, upper */
static mm_km_row rows_a[] = {
    {1, 10, 1, 0, 0.9, 0, 0, 0.7, 1},
    {2, 9, 0, 1, 0.9, 0, 0, 0.7, 1},
    {3, 8, 2, 0, 0.675, 0, 0, 0.45, 0.95},
    {5, 6, 1, 1, 0.5625, 0, 0, 0.3, 0.85},
    {8, 4, 0, 2, 0.5625, 0, 0, 0.3, 0.85},
    {9, 2, 2, 0, 0, 0, 0, NAN, NAN},        /* S reaches 0: no band */
};
static mm_km_row rows_b[] = {
    {0.5, 8, 0, 1, 1, 0, 0, 1, 1},
    {4, 7, 1, 0, 0.857142857142857, 0, 0, 0.65, 1},
    {6, 6, 1, 2, 0.714285714285714, 0, 0, 0.5, 1},
    {7.5, 3, 1, 0, 0.476190476190476, 0, 0, 0.2, 0.9},
    {12, 2, 0, 2, 0.476190476190476, 0, 0, 0.2, 0.9}, /* past xmax: clipped */
};
#define KM(r, nsub, nev) \
    {.n = (nsub), .events = (nev), .nrows = sizeof(r) / sizeof(r)[0], .rows = (r), \
     .ci = MM_CI_LOG, .conf = 0.95, .median = NAN, .median_lower = NAN, \
     .median_upper = NAN}
static mm_km km_a = KM(rows_a, 10, 6);
static mm_km km_b = KM(rows_b, 8, 3);
static mm_km km_empty = {.ci = MM_CI_LOG, .conf = 0.95, .median = NAN};

static const mm_plot_group groups[] = {
    {"A&B <1>", &km_a, NULL},
    {"Control", &km_b, NULL},
    {"empty", &km_empty, NULL},
};

static void test_opts(mm_plot_opts *o)
{
    mm_plot_opts_init(o);
    o->title = "Overall survival";
    o->xlabel = "Time (months)";
    o->legend_title = "Risk group (\"higher\" = worse)";
    o->pvalue = "Log-rank p = 0.0013";
    o->xmax = 10;
}

/* The SVG in a malloc'd NUL-terminated string, or NULL. */
static char *render(const mm_plot_group *g, int ng, const mm_plot_opts *o, size_t *n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    if (!fp) return NULL;
    int r = mm_km_svg(fp, g, ng, o);
    fclose(fp);
    if (r != 0) {
        free(buf);
        return NULL;
    }
    if (n) *n = len;
    return buf;
}

// ---------------------------------------------------------------- SVG text

typedef struct {
    char x[32], y[32], body[128];
} svg_text;

/* The <text> elements of SVG in order: x, y and the (escaped) content. */
static int texts(const char *svg, svg_text *t, int max)
{
    int n = 0;
    for (const char *p = svg; n < max && (p = strstr(p, "<text ")) != NULL; n++) {
        const char *end = strchr(p, '>'), *close = strstr(p, "</text>");
        if (!end || !close) break;
        memset(&t[n], 0, sizeof t[n]);
        const char *x = strstr(p, " x=\""), *y = strstr(p, " y=\"");
        if (x && x < end) sscanf(x + 4, "%31[^\"]", t[n].x);
        if (y && y < end) sscanf(y + 4, "%31[^\"]", t[n].y);
        size_t len = (size_t)(close - end - 1);
        if (len >= sizeof t[n].body) len = sizeof t[n].body - 1;
        memcpy(t[n].body, end + 1, len);
        p = close;
    }
    return n;
}

static void test_svg(const char *dir)
{
    mm_plot_opts o;
    test_opts(&o);
    size_t n1 = 0, n2 = 0;
    char *svg = render(groups, 3, &o, &n1);
    if (!ok(svg != NULL, "mm_km_svg renders 3 groups")) {
        diag("%s", mm_strerror());
        return;
    }
    char *again = render(groups, 3, &o, &n2);
    ok(again && n1 == n2 && memcmp(svg, again, n1) == 0,
       "two renders are byte-identical");
    free(again);

    ok(strncmp(svg, "<?xml", 5) == 0 && strstr(svg, "</svg>\n") != NULL,
       "an SVG document");
    like(svg, "width=\"720\" height=\"560\"", "720 x 560 by default");
    like(svg, ">A&amp;B &lt;1&gt;</text>", "'&' and '<' '>' in a name are escaped");
    ok(strstr(svg, "A&B") == NULL && strstr(svg, "<1>") == NULL,
       "no raw markup characters");
    like(svg, "Risk group (&quot;higher&quot; = worse)",
         "the legend title, '\"' escaped");
    like(svg, ">Control</text>", "legend: Control");
    like(svg, ">empty</text>", "legend: the group with no rows");
    like(svg, ">Log-rank p = 0.0013</text>", "the p-value text");
    like(svg, ">Overall survival</text>", "the title");
    like(svg, ">Time (months)</text>", "the x label");
    like(svg, ">Survival probability</text>", "the default y label");
    like(svg, ">Number at risk</text>", "the risk table caption");
    like(svg, "clip-path=\"url(#mm-km-panel)\"", "curves are clipped to the panel");
    like(svg, "fill-opacity=\"0.2\"", "confidence bands");
    like(svg, "#E69F00", "Okabe-Ito orange for the first group");
    ok(!tap_has(svg, "nan") && !tap_has(svg, "NaN") && !tap_has(svg, "inf"),
       "no NaN or inf in the file");

    /* the risk table: after the caption, each name then one number per
     * tick, centred on the tick label above it */
    svg_text t[128];
    int nt = texts(svg, t, 128), cap = -1;
    for (int i = 0; i < nt; i++)
        if (strcmp(t[i].body, "Number at risk") == 0) cap = i;
    const char *tick_y = NULL;
    const char *tick_x[16];
    int nticks = 0;
    for (int i = 0; i < nt; i++) {
        if (!tick_y && strcmp(t[i].body, "0") == 0) tick_y = t[i].y;
        if (tick_y && i < cap && strcmp(t[i].y, tick_y) == 0 && nticks < 16)
            tick_x[nticks++] = t[i].x;
    }
    is_int(nticks, 6, "x ticks 0, 2, ..., 10");
    static const char *const want[3][7] = {
        {"A&amp;B &lt;1&gt;", "10", "9", "6", "4", "4", "0"},
        {"Control", "8", "7", "7", "6", "2", "2"},
        {"empty", "0", "0", "0", "0", "0", "0"},
    };
    int good = cap >= 0 && nt - cap - 1 == 3 * 7, aligned = good;
    for (int g = 0; good && g < 3; g++)
        for (int k = 0; k < 7; k++) {
            const svg_text *e = &t[cap + 1 + g * 7 + k];
            if (strcmp(e->body, want[g][k]) != 0) {
                diag("risk row %d column %d: got '%s', want '%s'", g, k, e->body,
                     want[g][k]);
                good = 0;
            }
            if (k > 0 && (k - 1 >= nticks || strcmp(e->x, tick_x[k - 1]) != 0))
                aligned = 0;
            if (k > 0 && strcmp(e->y, t[cap + 1 + g * 7].y) != 0) aligned = 0;
        }
    ok(good, "number at risk at t = 0, 2, ..., 10 for each group");
    ok(aligned, "each number sits under its tick, each row on one line");

    /* well-formed XML, when xmllint is there to say so */
    char path[512], cmd[600];
    snprintf(path, sizeof path, "%s/km.svg", dir);
    FILE *fp = fopen(path, "w");
    if (fp) {
        fwrite(svg, 1, n1, fp);
        fclose(fp);
    }
    if (system("command -v xmllint >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path);
        ok(system(cmd) == 0, "xmllint: well-formed");
    } else {
        ok(1, "xmllint: well-formed # SKIP xmllint not installed");
    }
    unlink(path);

    /* the golden file: any change to the drawing shows up as its diff */
    const char *top = getenv("top_srcdir");
    char golden[512];
    snprintf(golden, sizeof golden, "%s/tests/fixtures/plot/km-golden.svg",
             top ? top : ".");
    const char *regen = getenv("MM_REGEN");
    if (regen && strcmp(regen, "1") == 0) {
        char d[520];
        snprintf(d, sizeof d, "%s/tests/fixtures", top ? top : ".");
        mkdir(d, 0777);
        snprintf(d, sizeof d, "%s/tests/fixtures/plot", top ? top : ".");
        mkdir(d, 0777);
        fp = fopen(golden, "w");
        ok(fp && fwrite(svg, 1, n1, fp) == n1 && fclose(fp) == 0, "rewrote %s", golden);
    } else {
        char *want_svg = NULL;
        size_t wn = 0;
        fp = fopen(golden, "r");
        if (fp) {
            want_svg = malloc(n1 + 2);
            wn = fread(want_svg, 1, n1 + 1, fp);
            fclose(fp);
        }
        if (!ok(want_svg && wn == n1 && memcmp(want_svg, svg, n1) == 0,
                "matches the golden %s", golden))
            diag("rendered %zu bytes, golden %zu; MM_REGEN=1 rewrites it", n1, wn);
        free(want_svg);
    }
    free(svg);

    /* a curve alone, the defaults, no options at all */
    svg = render(groups, 1, NULL, NULL);
    ok(svg && tap_has(svg, ">Time</text>") && !tap_has(svg, "Log-rank"),
       "NULL options: defaults, no p-value");
    free(svg);
}

static void test_errors(void)
{
    mm_plot_opts o;
    mm_plot_opts_init(&o);
    FILE *fp = fopen("/dev/null", "w");
    ok(mm_km_svg(fp, groups, 0, &o) == -1, "no groups: -1");
    like(mm_strerror(), "no Kaplan-Meier curves", "... and says so");
    o.xmax = -1;
    ok(mm_km_svg(fp, groups, 1, &o) == -1, "xmax < 0: -1");
    like(mm_strerror(), "xmax", "... naming xmax");
    mm_plot_opts_init(&o);
    o.width = 50;
    ok(mm_km_svg(fp, groups, 1, &o) == -1, "a 50 px wide figure: -1");
    mm_km_row bad[] = {
        {3, 5, 1, 0, 0.8, 0, 0, NAN, NAN},
        {1, 4, 1, 0, 0.6, 0, 0, NAN, NAN},
    };
    mm_km km_bad = KM(bad, 5, 2);
    mm_plot_group g = {"unsorted", &km_bad, NULL};
    mm_plot_opts_init(&o);
    ok(mm_km_svg(fp, &g, 1, &o) == -1, "times out of order: -1");
    like(mm_strerror(), "unsorted", "... naming the group");
    fclose(fp);
}

static void test_format(void)
{
    char b[32];
    is_str(mm_format_pvalue(0.00131116452035549, b, sizeof b), "p = 0.0013", "p 0.00131");
    is_str(mm_format_pvalue(5e-5, b, sizeof b), "p < 0.0001", "p 5e-5");
    is_str(mm_format_pvalue(0.049999, b, sizeof b), "p = 0.05", "p 0.049999");
    is_str(mm_format_pvalue(0.5, b, sizeof b), "p = 0.5", "p 0.5");
    is_str(mm_format_pvalue(1, b, sizeof b), "p = 1", "p 1");
    is_str(mm_format_pvalue(0.13, b, sizeof b), "p = 0.13", "p 0.13");
    is_str(mm_format_pvalue(0.995, b, sizeof b), "p = 1", "p 0.995 (R's signif: 1)");
    is_str(mm_format_pvalue(0.0135, b, sizeof b), "p = 0.014", "p 0.0135");
    is_str(mm_format_pvalue(0.00012, b, sizeof b), "p = 0.00012", "p 0.00012");
    is_str(mm_format_pvalue(1e-4, b, sizeof b), "p = 0.0001", "p 1e-4 (R: 1e-04)");
    is_str(mm_format_pvalue(NAN, b, sizeof b), "p = NA", "p NaN");
}

/* pretty(c(0, XMAX)) in R, as "a b c" */
static void check_ticks(double xmax, const char *want)
{
    double t[32];
    int n = mm_pretty_ticks(xmax, t, 32);
    char got[256] = "";
    for (int i = 0; i < n; i++) {
        size_t len = strlen(got);
        snprintf(got + len, sizeof got - len, "%s%.10g", i ? " " : "", t[i]);
    }
    is_str(got, want, "pretty(c(0, %g))", xmax);
}

static void test_ticks(void)
{
    check_ticks(1022, "0 200 400 600 800 1000 1200");
    check_ticks(7.3, "0 2 4 6 8");
    check_ticks(4795, "0 1000 2000 3000 4000 5000");
    check_ticks(0.37, "0 0.1 0.2 0.3 0.4");
    check_ticks(1825, "0 500 1000 1500 2000");
    check_ticks(100, "0 20 40 60 80 100");
    check_ticks(1, "0 0.2 0.4 0.6 0.8 1");
    check_ticks(55, "0 10 20 30 40 50 60");
    check_ticks(0.0042, "0 0.001 0.002 0.003 0.004 0.005");
    double t[3];
    is_int(mm_pretty_ticks(1022, t, 3), 3, "stops at maxn");
}

/* Entries of DIR other than . and .. */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

/* Open PATH with libvips and check size, bands, and that both curve
 * colours are there. */
static void check_png(const char *path, int w, int h)
{
    VipsImage *im = vips_image_new_from_file(path, NULL);
    if (!ok(im != NULL, "libvips reads %s", path)) {
        diag("%s", vips_error_buffer());
        return;
    }
    is_int(vips_image_get_width(im), w, "width %d", w);
    is_int(vips_image_get_height(im), h, "height %d", h);
    int bands = vips_image_get_bands(im);
    ok(bands == 3 || bands == 4, "3 or 4 bands (got %d)", bands);
    size_t n = 0;
    unsigned char *px = vips_image_write_to_memory(im, &n);
    long orange = 0, blue = 0, ink = 0;
    if (px && vips_image_get_format(im) == 0 /* uchar */ && n == (size_t)w * h * bands) {
        for (size_t i = 0; i + (size_t)bands <= n; i += (size_t)bands) {
            int r = px[i], g = px[i + 1], b = px[i + 2];
            if (abs(r - 0xE6) < 12 && abs(g - 0x9F) < 12 && b < 12) orange++;
            if (abs(r - 0x56) < 12 && abs(g - 0xB4) < 12 && abs(b - 0xE9) < 12) blue++;
            if (r < 128 && g < 128 && b < 128) ink++;
        }
    }
    ok(orange > 100 * (w / 720) && blue > 100 * (w / 720),
       "both curves are drawn (%ld orange, %ld blue pixels)", orange, blue);
    ok(ink > 1000, "text and axes are drawn (%ld dark pixels)", ink);
    g_free(px);
    g_object_unref(im);
}

static void test_png(const char *dir)
{
    mm_plot_opts o;
    test_opts(&o);
    size_t n = 0;
    char *svg = render(groups, 3, &o, &n);
    if (!svg) {
        ok(0, "render for PNG");
        return;
    }
    char p1[512], p2[512], bad[512];
    snprintf(p1, sizeof p1, "%s/km.png", dir);
    snprintf(p2, sizeof p2, "%s/km@2x.png", dir);
    int r1 = mm_svg_to_png(svg, n, p1, 1);
    if (!ok(r1 == 0, "PNG at scale 1")) diag("%s", mm_strerror());
    int r2 = mm_svg_to_png(svg, n, p2, 2);
    if (!ok(r2 == 0, "PNG at scale 2")) diag("%s", mm_strerror());
    is_int(dir_entries(dir), 2, "no temporary file left beside them");
    if (r1 == 0) check_png(p1, 720, 560);
    if (r2 == 0) check_png(p2, 1440, 1120);

    snprintf(bad, sizeof bad, "%s/no/such/dir/km.png", dir);
    ok(mm_svg_to_png(svg, n, bad, 1) == -1, "an unwritable path: -1");
    like(mm_strerror(), bad, "... and the message names the path");
    ok(mm_svg_to_png(svg, n, p1, 0) == -1, "scale 0: -1");
    like(mm_strerror(), "scale", "... naming the scale");
    snprintf(bad, sizeof bad, "%s/broken.png", dir);
    const char *junk = "<svg xmlns=\"http://www.w3.org/2000/svg\"><rect";
    ok(mm_svg_to_png(junk, strlen(junk), bad, 1) == -1, "a broken SVG: -1");
    like(mm_strerror(), bad, "... naming the output");
    is_int(dir_entries(dir), 2, "failures leave no file behind");
    unlink(p1);
    unlink(p2);
    free(svg);
}

int main(void)
{
    char dir[] = "/tmp/t-plot.XXXXXX";
    if (!mkdtemp(dir)) return 99;
    test_format();
    test_ticks();
    test_svg(dir);
    test_errors();
    test_png(dir);
    if (rmdir(dir) != 0) diag("cannot remove %s: %s", dir, strerror(errno));
    return done_testing();
}
