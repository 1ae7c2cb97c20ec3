/* probe.cu: the first piece of the CUDA backend: count and describe the
 * devices, and run one cuBLAS sgemm end to end. The real backend (tensor
 * ops, cuDNN convolutions) is its own issue and grows beside this file.
 * SPDX-License-Identifier: MIT */
#include <stdio.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#ifndef MM_NO_CUDNN
#include <cudnn.h>
#endif

extern "C" int mm__cuda_probe(char *desc, size_t n, char *err, size_t errn);
extern "C" int mm__cuda_sgemm(int m, int n, int k, const float *a,
                              const float *b, float *c, char *err, size_t errn);

extern "C" int mm__cuda_probe(char *desc, size_t n, char *err, size_t errn)
{
    int count = 0, rt = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ||
        (e == cudaSuccess && count == 0)) {
        snprintf(desc, n, "no CUDA device (%s)",
                 e == cudaSuccess ? "none found" : cudaGetErrorString(e));
        return 0;
    }
    if (e != cudaSuccess) {
        snprintf(err, errn, "CUDA: %s", cudaGetErrorString(e));
        return -1;
    }
    cudaRuntimeGetVersion(&rt);
    cudaDeviceProp p;
    if ((e = cudaGetDeviceProperties(&p, 0)) != cudaSuccess) {
        snprintf(err, errn, "CUDA: %s", cudaGetErrorString(e));
        return -1;
    }
#ifndef MM_NO_CUDNN
    size_t dnn = cudnnGetVersion();
#else
    size_t dnn = 0;
#endif
    snprintf(desc, n, "%d device(s); 0: %s (sm_%d%d, %.0f GiB), CUDA runtime "
             "%d.%d, cuDNN %zu", count, p.name, p.major, p.minor,
             p.totalGlobalMem / 1073741824.0, rt / 1000, rt % 1000 / 10, dnn);
    return count;
}

extern "C" int mm__cuda_sgemm(int m, int n, int k, const float *a,
                              const float *b, float *c, char *err, size_t errn)
{
    float *da = NULL, *db = NULL, *dc = NULL;
    cublasHandle_t h = NULL;
    int ret = -1;
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t st;
#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
        snprintf(err, errn, "CUDA: %s", cudaGetErrorString(e_)); goto out; } } while (0)
    CK(cudaMalloc(&da, sizeof(float) * m * k));
    CK(cudaMalloc(&db, sizeof(float) * k * n));
    CK(cudaMalloc(&dc, sizeof(float) * m * n));
    CK(cudaMemcpy(da, a, sizeof(float) * m * k, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(db, b, sizeof(float) * k * n, cudaMemcpyHostToDevice));
    if ((st = cublasCreate(&h)) != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, errn, "cuBLAS: %s", cublasGetStatusString(st));
        goto out;
    }
    /* row-major C = A B is column-major C^T = B^T A^T */
    st = cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, db, n, da, k,
                     &zero, dc, n);
    if (st != CUBLAS_STATUS_SUCCESS) {
        snprintf(err, errn, "cuBLAS: %s", cublasGetStatusString(st));
        goto out;
    }
    CK(cudaMemcpy(c, dc, sizeof(float) * m * n, cudaMemcpyDeviceToHost));
    ret = 0;
out:
    if (h) cublasDestroy(h);
    cudaFree(da);
    cudaFree(db);
    cudaFree(dc);
    return ret;
#undef CK
}
