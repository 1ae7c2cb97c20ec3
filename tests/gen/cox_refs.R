#!/usr/bin/env Rscript
# cox_refs.R: writes the reference fixtures of tests/unit/t-cox.c into
# tests/fixtures/cox/: univariate coxph(Surv(time, event) ~ x) fits (Efron
# and Breslow) on R's lung data, on ten genes of the TCGA BLCA RNA table
# joined with its survival metadata, and on edge cases (heavy ties, a 0/1
# covariate, a constant, no events, monotone likelihoods, near-tied times).
# Not run by make check: the results it writes are committed. The real-data
# inputs (lung_input.tsv, blca_input.tsv) are not: they copy R's lung data
# and the SurvPath BLCA tables (licensed non-commercial), so this script
# writes them to $MMPATH_INPUT_DIR (by default a temporary directory), and
# tests/gen/real_inputs.sh rebuilds the same content from $MMPATH_TEST_DATA
# for the tests. Never copy them into tests/fixtures.
#
# Interpreter: R 4.2.2 (Debian 12 r-base), package survival 3.5-3
# (Debian r-cran-survival 3.5-3-1); nothing else.
# Run from the top of the source tree:  Rscript tests/gen/cox_refs.R
# The BLCA tables are read from $MMPATH_BLCA_DIR, by default
# /work/shared/data/paired/survpath_blca.
# Numbers are written with sprintf("%.17g") (they read back bit for bit),
# except the RNA values, which keep the table's 4 decimals; NA is "NA".
# SPDX-License-Identifier: MIT
suppressPackageStartupMessages(library(survival))
stopifnot(as.character(packageVersion("survival")) == "3.5.3")

out <- "tests/fixtures/cox"
dir.create(out, recursive = TRUE, showWarnings = FALSE)
magic <- sprintf("# mmpath cox fixture v1: tests/gen/cox_refs.R, %s, survival %s",
                 sub(" \\(.*", "", R.version.string), packageVersion("survival"))

num <- function(x) {
    s <- sprintf("%.17g", as.double(x))
    s[is.na(x) & !is.nan(x)] <- "NA"
    s
}
indir <- Sys.getenv("MMPATH_INPUT_DIR", file.path(tempdir(), "real_inputs"))
dir.create(indir, recursive = TRUE, showWarnings = FALSE)
put <- function(df, file, dir = out) {
    con <- file(file.path(dir, file), "w")
    writeLines(magic, con)
    writeLines(paste(names(df), collapse = "\t"), con)
    cols <- lapply(df, function(v) if (is.character(v)) v else num(v))
    writeLines(do.call(paste, c(cols, sep = "\t")), con)
    close(con)
}

# One fit, as the C side reports it. coxph's defaults: eps 1e-9, iter.max
# 20, timefix = TRUE, nocenter = c(-1, 0, 1). "warn" is the warning R gave:
# "iter" (ran out of iterations), "infinite" (loglik converged before the
# variable; coefficient may be infinite) or "none"; "converged" is 0 when
# R ran out of iterations (its fit$iter is then iter.max + 1 = 21).
fit1 <- function(set, case, time, event, x, ties) {
    d <- data.frame(time = time, event = event, x = x)
    warn <- "none"
    f <- withCallingHandlers(
        coxph(Surv(time, event) ~ x, data = d, ties = ties),
        warning = function(w) {
            m <- conditionMessage(w)
            warn <<- if (grepl("Ran out of iterations", m)) "iter"
                     else if (grepl("may be infinite", m)) "infinite"
                     else stop("unexpected warning: ", m)
            invokeRestart("muffleWarning")
        })
    s <- summary(f)$coefficients
    b <- as.double(unname(coef(f))); se <- unname(sqrt(diag(f$var)))
    stopifnot(identical(unname(s[1, "coef"]), b),
              identical(unname(s[1, "se(coef)"]), se))
    data.frame(set = set, case = case, ties = ties, n = f$n,
               nevent = f$nevent, coef = b, se = se,
               z = unname(s[1, "z"]), p = unname(s[1, "Pr(>|z|)"]),
               loglik0 = f$loglik[1], loglik = f$loglik[2], iter = f$iter,
               converged = as.integer(f$iter <= coxph.control()$iter.max),
               warn = warn)
}
rows <- list()
add <- function(...) rows[[length(rows) + 1]] <<- fit1(...)

# ---- (a) lung, one covariate at a time (status 1/2 -> event 0/1)
lung <- survival::lung
lin <- data.frame(time = lung$time, status = lung$status - 1, age = lung$age,
                  sex = lung$sex, ph.ecog = lung$ph.ecog,
                  ph.karno = lung$ph.karno, wt.loss = lung$wt.loss)
put(lin, "lung_input.tsv", indir)   # not committed: see the top
for (v in c("age", "sex", "ph.ecog", "ph.karno", "wt.loss"))
    for (ties in c("efron", "breslow"))
        add("lung", v, lin$time, lin$status, lin[[v]], ties)
# the same fit with R's own 1/2 status coding
stopifnot(isTRUE(all.equal(coef(coxph(Surv(time, status) ~ age, lung)),
                           coef(coxph(Surv(time, status) ~ age, lin)),
                           tolerance = 0)))

# ---- (b) TCGA BLCA: RNA (360 cases x 1577 genes) joined with the metadata
# (several slides per case: the first row of each case_id; survival agrees).
# An inner join: one RNA case (TCGA-C4-A0F6) has no metadata row.
dir <- Sys.getenv("MMPATH_BLCA_DIR", "/work/shared/data/paired/survpath_blca")
rna <- read.csv(file.path(dir, "tcga_blca_xena_rna_clean.csv"),
                check.names = FALSE, colClasses = c("character"))
names(rna)[1] <- "case_id"
meta <- read.csv(file.path(dir, "tcga_blca_metadata.csv"))
for (k in c("survival_months", "censorship"))
    stopifnot(all(tapply(meta[[k]], meta$case_id,
                         function(v) length(unique(v)) == 1)))
meta <- meta[!duplicated(meta$case_id), ]
stopifnot(!anyDuplicated(rna$case_id))
rna <- rna[rna$case_id %in% meta$case_id, ]
stopifnot(nrow(rna) == 359)
m <- match(rna$case_id, meta$case_id)
btime <- meta$survival_months[m]
bevent <- 1L - meta$censorship[m]
stopifnot(!anyNA(btime), all(bevent %in% 0:1))
genes <- names(rna)[-1]
rnum <- lapply(rna[genes], as.numeric)
stopifnot(!anyNA(unlist(rnum)))
# every gene, Efron, to pick the extreme ones
allp <- sapply(genes, function(g) {
    f <- suppressWarnings(coxph(Surv(btime, bevent) ~ rnum[[g]]))
    c(p = summary(f)$coefficients[1, "Pr(>|z|)"], iter = f$iter)
})
ndist <- sapply(rnum, function(v) length(unique(v)))
# The rule: the first 6 genes of the table; the one with the fewest
# distinct values (VAMP7: constant, R's coefficient is NA) and the next
# one (CYP11B2: two values, 356 of 359 tied); the smallest and the largest
# Efron p; the most Newton iterations. Draws and repeats: the next one in
# table order.
pick <- genes[1:6]
take <- function(ord) {
    g <- genes[ord][!(genes[ord] %in% pick)][1]
    pick <<- c(pick, g)
}
take(order(ndist))
take(order(ndist))
take(order(allp["p", ]))
take(order(-allp["p", ]))
take(order(-allp["iter", ]))
stopifnot(length(unique(pick)) == 11)
bin <- data.frame(case_id = rna$case_id, time = btime, event = bevent)
for (g in pick) bin[[g]] <- rna[[g]]   # the table's own strings
# the C side parses these with strtod; R read the same strings
for (g in pick) stopifnot(identical(as.numeric(bin[[g]]), rnum[[g]]))
put(bin, "blca_input.tsv", indir)   # not committed: see the top
for (g in pick)
    for (ties in c("efron", "breslow"))
        add("blca", g, btime, bevent, rnum[[g]], ties)

# ---- (c) edge cases (written out, so the C test needs no R RNG)
set.seed(20240611)
n <- 80
tt <- sample(1:8, n, replace = TRUE)
ee <- rbinom(n, 1, 0.7)
edge <- list(
    # heavy ties in time and in x
    ties = data.frame(time = tt, event = ee,
                      x = sample(c(-2, -0.5, 0, 0.5, 1.5, 3), n,
                                 replace = TRUE)),
    # 0/1 covariate: R neither centres nor scales it (nocenter)
    ties01 = data.frame(time = tt, event = ee, x = rbinom(n, 1, 0.4)),
    # constant covariate: R's coefficient is NA
    const = data.frame(time = lin$time, event = lin$status, x = 3.7),
    # no events: R returns NA with loglik 0, 0 and 0 iterations
    allcens = data.frame(time = 1:10, event = 0L,
                         x = c(1, 3, 2, 5, 4, 6, 8, 7, 9, 10)),
    # perfect separation, x decreasing in time: out of iterations
    monotone = data.frame(time = 1:10, event = c(1, 1, 1, 0, 1, 1, 0, 1, 1, 1),
                          x = 10:1),
    # perfect separation, 0/1: loglik converges, coefficient may be infinite
    monotone01 = data.frame(time = 1:10,
                            event = c(1, 1, 1, 0, 1, 1, 0, 1, 1, 1),
                            x = c(1, 1, 1, 1, 1, 0, 0, 0, 0, 0)),
    # a single event: the likelihood is monotone too
    oneevent = data.frame(time = 1:10, event = c(0, 0, 0, 0, 1, 0, 0, 0, 0, 0),
                          x = c(1, 3, 2, 5, 4, 6, 8, 7, 9, 10)),
    # the only event is the last time: loglik is 0 for every beta, R's
    # |1 - 0/0| <= eps never holds: out of iterations, coef 0, se 0, p NaN
    onlylast = data.frame(time = 1:3, event = c(0, 0, 1), x = c(1, 2, 3)),
    # times 1e-10 apart are one time to R (timefix = TRUE, aeqSurv)
    timefix = data.frame(time = c(1, 1 + 1e-10, 2, 2 - 1e-12, 3, 4, 4 + 3e-9,
                                  5, 6, 6 + 1e-10, 7, 8),
                         event = c(1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0),
                         x = c(0.3, 1.2, -0.4, 2.2, 0.8, -1.1, 0.5, 1.7,
                               -0.2, 0.9, 0.1, -0.6)),
    # far from 0 and wide: centring and scaling matter
    bigx = data.frame(time = lin$time, event = lin$status,
                      x = lin$age * 1e6 + 1e9),
    # missing values: NA x and NA time rows are dropped
    missing = data.frame(time = c(5, NA, 3, 8, 2, 9, 4, 11, 7, 1, 6, 10, 3, 12),
                         event = c(1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1),
                         x = c(1, 2, NA, 1, 5, 0.5, 2, 1, 1, 4, 2, 0, 7, NA))
)
ein <- do.call(rbind, lapply(names(edge), function(k)
    data.frame(case = k, edge[[k]])))
put(ein, "edge_input.tsv")
for (k in names(edge))
    for (ties in c("efron", "breslow"))
        add("edge", k, edge[[k]]$time, edge[[k]]$event, edge[[k]]$x, ties)
# the timefix case is a real test: without it R's answer differs
e <- edge$timefix
stopifnot(coef(coxph(Surv(time, event) ~ x, e)) !=
          coef(coxph(Surv(time, event) ~ x, e,
                     control = coxph.control(timefix = FALSE))))

res <- do.call(rbind, rows)
put(res, "cox_expected.tsv")
print(res[, c("set", "case", "ties", "coef", "p", "iter", "warn")])
