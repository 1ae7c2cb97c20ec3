# km_anchor.R: the R anchor for bench/km.sh: what km-plot computes, done
# the way an R user would with the survival package: Kaplan-Meier curves by
# group (survfit, log-scale CI), the log-rank test (survdiff) and Harrell's
# C (concordance, reverse = TRUE: higher risk = shorter survival, the
# direction km-plot assumes). Measured with R 4.2.2 and survival 3.5-3
# (Debian r-base-core, r-cran-survival); data.table's fread is used for
# the input when it is installed, else read.delim.
#
# Usage: Rscript bench/km_anchor.R INPUT.tsv CURVE.tsv [TIMES]
#        Rscript bench/km_anchor.R versions
# INPUT has the columns time, status (1 = event), group and risk. CURVE
# gets the survfit table (strata, time, n.risk, n.event, n.censor, surv,
# std.err, lower, upper). TIMES is a comma-separated list of times at which
# to print each curve's survival. Prints key=value lines: the results, then
# read_seconds (reading INPUT) and compute_seconds (fit, test, C-index and
# writing CURVE), both from proc.time()'s elapsed clock.
# SPDX-License-Identifier: MIT

suppressPackageStartupMessages(library(survival))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) >= 1 && args[1] == "versions") {
    cat(sprintf("%s, survival %s%s\n", R.version.string,
                packageDescription("survival")$Version,
                if (requireNamespace("data.table", quietly = TRUE))
                    paste0(", data.table ", packageVersion("data.table"))
                else ", read.delim"))
    quit(status = 0)
}
if (length(args) < 2) {
    cat("usage: Rscript km_anchor.R INPUT.tsv CURVE.tsv [TIMES] | versions\n",
        file = stderr())
    quit(status = 2)
}
input <- args[1]
curve <- args[2]
times <- if (length(args) >= 3) as.numeric(strsplit(args[3], ",")[[1]]) else numeric(0)

clock <- function() proc.time()[["elapsed"]]

t0 <- clock()
if (requireNamespace("data.table", quietly = TRUE)) {
    d <- as.data.frame(data.table::fread(input, sep = "\t"))
} else {
    d <- read.delim(input, colClasses = c("numeric", "integer", "character", "numeric"))
}
t1 <- clock()

fit <- survfit(Surv(time, status) ~ group, data = d)
lr <- survdiff(Surv(time, status) ~ group, data = d)
cc <- concordance(Surv(time, status) ~ risk, data = d, reverse = TRUE)
# the curve table, as km-plot's --tsv: one row per group and distinct time
strata <- rep(names(fit$strata), fit$strata)
tab <- data.frame(strata = strata, time = fit$time, n.risk = fit$n.risk,
                  n.event = fit$n.event, n.censor = fit$n.censor,
                  surv = fit$surv, std.err = fit$std.err,
                  lower = fit$lower, upper = fit$upper)
write.table(tab, curve, sep = "\t", quote = FALSE, row.names = FALSE)
t2 <- clock()

p <- function(key, value) cat(key, "=", format(value, digits = 17), "\n", sep = "")
p("n", nrow(d))
p("rows", nrow(tab))
p("logrank_chisq", lr$chisq)
p("logrank_p", pchisq(lr$chisq, length(lr$n) - 1, lower.tail = FALSE))
p("cindex", cc$concordance)
p("cindex_concordant", cc$count[["concordant"]])
p("cindex_discordant", cc$count[["discordant"]])
p("cindex_tied_risk", cc$count[["tied.x"]])
p("cindex_tied_time", cc$count[["tied.y"]])
if (length(times) > 0) {
    s <- summary(fit, times = times, extend = TRUE)
    for (i in seq_along(s$time))
        cat(sprintf("surv group=%s time=%s surv=%s\n",
                    sub("^group=", "", as.character(s$strata[i])),
                    format(s$time[i]), format(s$surv[i], digits = 17)))
}
p("read_seconds", t1 - t0)
p("compute_seconds", t2 - t1)
