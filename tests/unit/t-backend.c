/* t-backend.c: the CUDA probe and one cuBLAS sgemm against a plain CPU
 * product. Skips (TAP SKIP) where the backend is not built or no GPU is
 * present, as on CI.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "mm/backend.h"
#include "../tap.h"

int main(void)
{
    char desc[512];
    int n = mm_cuda_probe(desc, sizeof desc);
    if (!mm_cuda_built()) {
        ok(n == 0, "probe without the backend reports 0 devices: %s", desc);
        ok(mm_cuda_sgemm_check(1, 1, 1, NULL, NULL, NULL) != 0, "sgemm refuses");
        return done_testing();
    }
    if (n == 0) {
        printf("1..0 # SKIP %s\n", desc);
        return 0;
    }
    ok(n > 0, "CUDA devices: %s", desc);
    enum { M = 67, N = 45, K = 129 };
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
    float *c = malloc(sizeof(float) * M * N);
    for (int i = 0; i < M * K; i++) a[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    for (int i = 0; i < K * N; i++) b[i] = (float)((i * 53) % 97) / 48.0f - 1.0f;
    ok(mm_cuda_sgemm_check(M, N, K, a, b, c) == 0, "cuBLAS sgemm runs");
    double maxdiff = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)a[i * K + k] * b[k * N + j];
            double dlt = fabs(s - c[i * N + j]);
            if (dlt > maxdiff) maxdiff = dlt;
        }
    diag("max |cuBLAS - CPU| = %.3g", maxdiff);
    ok(maxdiff < 1e-3, "sgemm matches the CPU product (max diff %.3g)", maxdiff);
    free(a);
    free(b);
    free(c);
    return done_testing();
}
