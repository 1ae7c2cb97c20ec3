#!/usr/bin/env Rscript
# survival_refs.R: writes the reference fixtures of tests/unit/t-survival.c
# into tests/fixtures/survival/: the lung Cox linear predictor (risk only,
# keyed by lung row, lung_cox_risk.tsv) with R's
# concordance counts and Uno's C, and small synthetic cases (ties, zero
# times, missing values, an all-censored and an empty group, flat medians,
# curves that reach 0) with survfit / survdiff / concordance results.
# Not run by make check: the fixtures it writes are committed. Real data is
# not: lung_cox_risk.tsv holds the risk and the lung row number only, and
# tests/gen/real_inputs.sh pastes lung's time and status (0/1) back from
# $MMPATH_TEST_DATA/survival/lung.tsv to rebuild the tests' lung_cox_lp.tsv
# (time, status, risk), which is no longer committed.
#
# Interpreter: R 4.2.2 (Debian 12 r-base), package survival 3.5-3
# (Debian r-cran-survival 3.5-3-1); nothing else.
# Run from the top of the source tree:  Rscript tests/gen/survival_refs.R
# Values are written with sprintf("%.17g") (they read back bit for bit);
# R's NA is written "NA", NaN "NaN", Inf "Inf".
# SPDX-License-Identifier: MIT
suppressPackageStartupMessages(library(survival))
stopifnot(as.character(packageVersion("survival")) == "3.5.3")

out <- "tests/fixtures/survival"
dir.create(out, recursive = TRUE, showWarnings = FALSE)
magic <- sprintf("# mmpath survival fixture v1: tests/gen/survival_refs.R, %s, survival %s",
                 sub(" \\(.*", "", R.version.string), packageVersion("survival"))

num <- function(x) {
    s <- sprintf("%.17g", as.double(x))
    s[is.na(x) & !is.nan(x)] <- "NA"
    s
}
put <- function(df, file) {
    con <- file(file.path(out, file), "w")
    writeLines(magic, con)
    writeLines(paste(names(df), collapse = "\t"), con)
    cols <- lapply(df, function(v) if (is.character(v)) v else num(v))
    writeLines(do.call(paste, c(cols, sep = "\t")), con)
    close(con)
}

# ---- synthetic inputs (written out, so the C test needs no R RNG)
set.seed(20240607)
n <- 40
ties <- data.frame(case = "ties",
                   time = sample(c(0, 1, 2, 3, 5, 8, 13), n, replace = TRUE),
                   status = rbinom(n, 1, 0.6),
                   group = sample(0:1, n, replace = TRUE),
                   risk = sample(c(-1, 0, 0.5, 1, 2), n, replace = TRUE))
# group 2: censored only (S stays 1); group 3 is declared but empty
ties <- rbind(ties, data.frame(case = "ties", time = c(1, 2, 2, 5, 8),
                               status = 0, group = 2,
                               risk = c(0, 1, 1, 2, -1)))
zero <- data.frame(case = "zero", time = c(0, 0, 0, 0, 1, 1, 2, 3, 3, 4, 6, 6),
                   status = c(1, 1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1),
                   group = c(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1), risk = NA)
missing <- data.frame(case = "missing",
                      time = c(5, NA, 3, 8, 2, 9, 4, NA, 7, 1, 6, 10, 3),
                      status = c(1, 1, NA, 0, 1, 1, 0, 0, 1, 1, NA, 0, 1),
                      group = c(0, 1, 1, NA, 0, 1, 0, 1, 1, 0, 0, 1, 1),
                      risk = c(1, 2, 3, 1, 5, 0, 2, 1, 1, 4, 2, 0, NA))
flat <- data.frame(case = "flat", time = 1:6, status = c(1, 1, 1, 0, 1, 1),
                   group = 0, risk = NA)      # S = 0.5 on [3, 5): median 4
flatend <- data.frame(case = "flatend", time = 1:4, status = c(1, 1, 0, 0),
                      group = 0, risk = NA)   # S ends at 0.5
tozero <- data.frame(case = "tozero", time = c(1, 2, 2, 3, 4, 4),
                     status = c(1, 0, 1, 1, 1, 1), group = 0, risk = NA)
# group 2 is censored before the first event: expected 0, left out of df
expzero <- data.frame(case = "expzero",
                      time = c(0.5, 0.5, 1, 2, 2, 3, 4, 5, 6, 7),
                      status = c(0, 0, 1, 0, 1, 1, 0, 1, 0, 1),
                      group = c(2, 2, 0, 0, 1, 1, 0, 1, 0, 1), risk = NA)
cases <- rbind(ties, zero, missing, flat, flatend, tozero, expzero)
put(cases, "cases_input.tsv")
ngroups <- c(ties = 4, zero = 2, missing = 2, flat = 1, flatend = 1,
             tozero = 1, expzero = 3)

# ---- Kaplan-Meier tables and medians (per group; conf.type log, log-log, plain)
km_rows <- list(); km_med <- list()
for (cs in names(ngroups)) {
    d <- cases[cases$case == cs, ]
    for (ct in c("log", "log-log", "plain")) {
        for (g in 0:(ngroups[[cs]] - 1)) {
            dg <- d[!is.na(d$group) & d$group == g, ]
            dg <- dg[!is.na(dg$time) & !is.na(dg$status), ]
            if (nrow(dg) == 0) {
                km_med[[length(km_med) + 1]] <- data.frame(case = cs,
                    conf = ct, group = g, n = 0, events = 0,
                    median = NA, lower = NA, upper = NA)
                next
            }
            f <- survfit(Surv(time, status) ~ 1, dg, conf.type = ct)
            s <- summary(f, censored = TRUE)
            stopifnot(isTRUE(all.equal(s$std.err, f$surv * f$std.err)))
            km_rows[[length(km_rows) + 1]] <- data.frame(case = cs, conf = ct,
                group = g, time = f$time, n.risk = f$n.risk,
                n.event = f$n.event, n.censor = f$n.censor, surv = f$surv,
                std.err = f$surv * f$std.err, std.err.logS = f$std.err,
                lower = f$lower, upper = f$upper)
            tb <- summary(f)$table
            km_med[[length(km_med) + 1]] <- data.frame(case = cs, conf = ct,
                group = g, n = tb[["records"]], events = tb[["events"]],
                median = tb[["median"]], lower = tb[["0.95LCL"]],
                upper = tb[["0.95UCL"]])
        }
    }
}
# lung overall, the conf.types the shared references do not cover
lung2 <- survival::lung
for (ct in c("log-log", "plain")) {
    f <- survfit(Surv(time, status) ~ 1, lung2, conf.type = ct)
    tb <- summary(f)$table
    km_med[[length(km_med) + 1]] <- data.frame(case = "lung", conf = ct,
        group = 0, n = tb[["records"]], events = tb[["events"]],
        median = tb[["median"]], lower = tb[["0.95LCL"]],
        upper = tb[["0.95UCL"]])
    put(data.frame(time = f$time, lower = f$lower, upper = f$upper),
        sprintf("lung_km_overall_%s.tsv", sub("-", "", ct)))
}
put(do.call(rbind, km_rows), "km_expected.tsv")
put(do.call(rbind, km_med), "km_median.tsv")

# ---- survdiff, and the G(rho, gamma) test written out by hand for gamma
# (survdiff has no gamma): the same sums as survival's survdiff2.c with
# weight S(t-)^rho (1 - S(t-))^gamma, S the pooled KM. Checked against
# survdiff for gamma = 0 below.
fh <- function(time, status, group, rho, gamma) {
    lev <- sort(unique(group)); k <- length(lev); g <- match(group, lev)
    ut <- sort(unique(time[status == 1]))
    obs <- exp <- numeric(k); V <- matrix(0, k, k); S <- 1
    for (t in ut) {
        at <- time >= t; nr <- sum(at); dd <- sum(time == t & status == 1)
        w <- S^rho * (1 - S)^gamma
        nk <- tabulate(g[at], k); dk <- tabulate(g[time == t & status == 1], k)
        obs <- obs + w * dk; exp <- exp + w * dd * nk / nr
        if (nr > 1) {
            kt <- w^2 * dd * (nr - dd) / (nr * (nr - 1))
            V <- V + kt * (diag(nk) - outer(nk, nk) / nr)
        }
        S <- S * (nr - dd) / nr
    }
    keep <- exp > 0
    o <- (obs - exp)[keep][-1]
    chisq <- if (sum(keep) < 2) 0 else
        sum(solve(V[keep, keep][-1, -1, drop = FALSE], o) * o)
    df <- sum(keep) - 1
    list(obs = obs, exp = exp, var = V, chisq = chisq, df = df,
         p = pchisq(chisq, df, lower.tail = FALSE))
}
lr_rows <- list()
lr_add <- function(cs, rho, gamma, ng, obs, exp, V, chisq, df, p) {
    r <- data.frame(case = cs, rho = rho, gamma = gamma,
                    key = c("ngroups", "chisq", "df", "p"), i = -1, j = -1,
                    value = c(ng, chisq, df, p))
    r <- rbind(r, data.frame(case = cs, rho = rho, gamma = gamma, key = "obs",
                             i = seq_along(obs) - 1, j = -1, value = obs))
    r <- rbind(r, data.frame(case = cs, rho = rho, gamma = gamma, key = "exp",
                             i = seq_along(exp) - 1, j = -1, value = exp))
    r <- rbind(r, data.frame(case = cs, rho = rho, gamma = gamma, key = "var",
                             i = rep(seq_len(nrow(V)) - 1, ncol(V)),
                             j = rep(seq_len(ncol(V)) - 1, each = nrow(V)),
                             value = as.vector(V)))
    lr_rows[[length(lr_rows) + 1]] <<- r
}
# groups are written as the C side numbers them (0..ngroups-1); R drops
# empty groups, so its rows are put back in place
lr_survdiff <- function(cs, d, rho, ng) {
    d <- d[!is.na(d$time) & !is.na(d$status) & !is.na(d$group), ]
    x <- survdiff(Surv(time, status) ~ factor(group), d, rho = rho)
    present <- sort(unique(d$group)) + 1
    obs <- exp <- numeric(ng); V <- matrix(0, ng, ng)
    obs[present] <- x$obs; exp[present] <- x$exp
    V[present, present] <- x$var
    h <- fh(d$time, d$status, d$group, rho, 0)
    stopifnot(isTRUE(all.equal(h$chisq, x$chisq, tolerance = 1e-12)),
              isTRUE(all.equal(h$exp, x$exp, tolerance = 1e-12)))
    df <- sum(x$exp > 0) - 1
    lr_add(cs, rho, 0, ng, obs, exp, V, x$chisq, df, x$pvalue)
}
lung <- survival::lung
lung$sex0 <- lung$sex - 1
lr_survdiff("lung_sex", data.frame(time = lung$time, status = lung$status - 1,
                                   group = lung$sex0), 1, 2)
lr_survdiff("lung_sex", data.frame(time = lung$time, status = lung$status - 1,
                                   group = lung$sex0), 0.5, 2)
# ph.ecog 0/1/2 (the one ecog 3 subject and the NA dropped), then 0..3
e3 <- lung[!is.na(lung$ph.ecog) & lung$ph.ecog < 3, ]
lr_survdiff("lung_ecog012", data.frame(time = e3$time, status = e3$status - 1,
                                       group = e3$ph.ecog), 0, 3)
e4 <- lung[!is.na(lung$ph.ecog), ]
lr_survdiff("lung_ecog0123", data.frame(time = e4$time, status = e4$status - 1,
                                        group = e4$ph.ecog), 0, 4)
for (cs in c("ties", "zero", "missing", "expzero"))
    for (rho in c(0, 1))
        lr_survdiff(cs, cases[cases$case == cs, ], rho, ngroups[[cs]])
# gamma: the hand-written test only (no R function has it)
for (rg in list(c(0, 1), c(1, 1))) {
    h <- fh(lung$time, lung$status - 1, lung$sex0, rg[1], rg[2])
    lr_add("lung_sex", rg[1], rg[2], 2, h$obs, h$exp, h$var, h$chisq,
           h$df, h$p)
}
put(do.call(rbind, lr_rows), "logrank_expected.tsv")

# ---- concordance: Harrell's counts and Uno's C (timewt = "n/G2", ymax = tau)
fit <- coxph(Surv(time, status) ~ age + sex + ph.ecog, data = lung)
lp <- predict(fit, type = "lp")
stopifnot(identical(unname(lp), unname(fit$linear.predictors)))
cc <- lung[!is.na(lung$ph.ecog), ]
stopifnot(nrow(cc) == 227)
# the lung row numbers (1-based, as in lung.tsv) of the complete cases
lrow <- which(!is.na(lung$ph.ecog))
stopifnot(length(lrow) == length(lp), identical(lung[lrow, "time"], cc$time))
put(data.frame(row = lrow, risk = unname(lp)), "lung_cox_risk.tsv")
con_rows <- list()
con_add <- function(cs, d) {
    f <- Surv(time, status) ~ risk
    h <- concordance(f, data = d, reverse = TRUE)
    r <- data.frame(case = cs, key = c(names(h$count), "C"),
                    tau = NA, value = c(unname(h$count), h$concordance))
    for (tau in c(Inf, sort(unique(d$time[d$status == 1]))[c(2, 4)], 365)) {
        u <- if (is.finite(tau)) concordance(f, data = d, reverse = TRUE,
                                             timewt = "n/G2", ymax = tau)
             else concordance(f, data = d, reverse = TRUE, timewt = "n/G2")
        r <- rbind(r, data.frame(case = cs, key = "uno", tau = tau,
                                 value = u$concordance))
    }
    con_rows[[length(con_rows) + 1]] <<- r
}
con_add("lung", data.frame(time = cc$time, status = cc$status - 1, risk = lp))
stopifnot(all(concordance(fit)$count == c(12544, 7117, 126, 28, 0)))
for (cs in c("ties", "missing")) {
    d <- cases[cases$case == cs, ]
    con_add(cs, d[complete.cases(d[, c("time", "status", "risk")]), ])
}
put(do.call(rbind, con_rows), "concordance_expected.tsv")

# ---- pchisq upper tail and qnorm
pq <- expand.grid(x = c(1e-300, 1e-10, 0.001, 0.5, 1, 2.5, 10.3267419548856,
                        30, 100, 700, 1500), df = c(1, 2, 3, 4, 7, 10, 31, 100))
pq <- data.frame(fn = "pchisq", x = pq$x, df = pq$df,
                 value = pchisq(pq$x, pq$df, lower.tail = FALSE))
qp <- c(1e-300, 1e-20, 1e-10, 1e-5, 0.001, 0.025, 0.07, 0.075, 0.3, 0.5,
        0.6, 0.925, 0.93, 0.975, 0.999, 1 - 1e-10)
pq <- rbind(pq, data.frame(fn = "qnorm", x = qp, df = -1, value = qnorm(qp)))
put(pq, "pchisq_qnorm.tsv")
