/* t-toolutil.c: strict number parsing and the provenance argv filter.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdlib.h>

#include "toolutil.h"
#include "../tap.h"

int main(void)
{
    long long i;
    double d;
    ok(mm_parse_int("42", 0, 100, &i) == 0 && i == 42, "42");
    ok(mm_parse_int("-3", -5, 5, &i) == 0 && i == -3, "-3");
    ok(mm_parse_int("4x", 0, 100, &i) != 0, "trailing junk refused");
    ok(mm_parse_int("", 0, 100, &i) != 0, "empty refused");
    ok(mm_parse_int(" 4", 0, 100, &i) != 0, "leading space refused");
    ok(mm_parse_int("101", 0, 100, &i) != 0, "out of range refused");
    ok(mm_parse_int("99999999999999999999", 0, 100, &i) != 0, "overflow refused");
    ok(mm_parse_double("0.5", 0, 1, &d) == 0 && d == 0.5, "0.5");
    ok(mm_parse_double("1e-3", 0, 1, &d) == 0 && d == 1e-3, "1e-3");
    ok(mm_parse_double("nan", 0, 1, &d) != 0, "nan refused");
    ok(mm_parse_double("inf", 0, 1e308, &d) != 0, "inf refused");
    ok(mm_parse_double("0.5.", 0, 1, &d) != 0, "junk refused");

    static const struct option lopts[] = {
        {"kind", required_argument, NULL, 'k'}, {"output", required_argument, NULL, 'o'},
        {"full", no_argument, NULL, 'f'}, MM_COMMON_LONGOPTS, {NULL, 0, NULL, 0}};
    char *argv[] = {"pack", "-@", "4", "--kind", "omics", "-vq", "-o", "x.mpk",
                    "--threads=2", "-f", "--output", "y", "-@8", "-ox", "in.tsv", NULL};
    int n;
    char **p = mm_argv_provenance(15, argv, "k:o:f@:vqhV", lopts, &n);
    char joined[256] = "";
    for (int k = 0; k < n; k++) {
        strcat(joined, p[k]);
        strcat(joined, k + 1 < n ? " " : "");
    }
    is_str(joined, "pack --kind omics -f in.tsv", "provenance drops -@ -v -q -o");
    ok(p[n] == NULL, "NULL-ended");
    free(p);
    return done_testing();
}
