/* resnet.cu: the ResNet-50 trunk on cuDNN (mm/resnet_cuda.h).
 *
 * Each folded convolution of mm_resnet_conv_at() runs as a legacy cuDNN
 * convolution (cudnnConvolutionForward, NHWC tensors, KRSC filters) with
 * the algorithm cudnnFind picked once per shape, followed by one epilogue
 * kernel: y = act(y + bias[c] (+ shortcut)). The fused
 * cudnnConvolutionBiasActivationForward is not used: with an identity
 * activation cuDNN restricts it to one algorithm, and the epilogue costs
 * one pass over memory-bound activations that are a small share of the
 * convolutions' time.
 * SPDX-License-Identifier: MIT */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

extern "C" {
#include "mm/resnet.h"
#include "mm/resnet_cuda.h"
}

#define NSLOT 2
#define STEM_C 8 /* the stem's 3 channels padded for the tensor cores */

namespace {

struct conv {
    int cin, cout, k, stride, pad, relu;
    int down; /* a block's shortcut conv ("layerL.0.downsample.0") */
    int ih, iw, oh, ow;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnTensorDescriptor_t xd, yd;
    cudnnConvolutionFwdAlgo_t algo;
    cudnnMathType_t math;
    size_t ws;
    void *w;     /* device, KRSC, element type of the precision */
    float *b;    /* device, f32 */
};

struct slot {
    cudaStream_t st;
    cudnnHandle_t dnn;
    cudaEvent_t done;
    uint8_t *h_in, *d_in; /* pinned host and device tiles */
    float *h_out, *d_out;
    void *buf[5];         /* activations: X, Y, T1, T2, S */
    void *ws;
    int n;                /* tiles of the queued batch; 0 when free */
};

} // namespace

struct mm_resnet_cuda {
    mm_cuda_precision prec;
    int max_batch, h, w, dim, nconv;
    size_t esize, act_elems, ws;
    conv *cv;
    slot sl[NSLOT];
    int next, oldest, pending;
    char desc[512];
};

extern "C" void mm__set_error(const char *fmt, ...);

static int cuda_fail(cudaError_t e, const char *what)
{
    mm__set_error("CUDA: %s: %s", what, cudaGetErrorString(e));
    return -1;
}
static int dnn_fail(cudnnStatus_t s, const char *what)
{
    mm__set_error("cuDNN: %s: %s", what, cudnnGetErrorString(s));
    return -1;
}
#define CK(x, what) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) return cuda_fail(e_, what); } while (0)
#define DK(x, what) do { cudnnStatus_t s_ = (x); if (s_ != CUDNN_STATUS_SUCCESS) return dnn_fail(s_, what); } while (0)

// ---------------------------------------------------------------- kernels

template <typename T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }

/* u8 (n, h, w, 3) -> (n, h, w, STEM_C), channels 3.. zero; the arithmetic
 * of mm_resnet_preprocess: (v / 255 - mean) / std in float */
template <typename T>
__global__ void k_preprocess(const uint8_t *in, T *out, long npix)
{
    const float mean[3] = {0.485f, 0.456f, 0.406f};
    const float sd[3] = {0.229f, 0.224f, 0.225f};
    for (long p = blockIdx.x * (long)blockDim.x + threadIdx.x; p < npix;
         p += (long)gridDim.x * blockDim.x) {
        T *o = out + p * STEM_C;
        for (int c = 0; c < 3; c++)
            o[c] = from_f<T>(((float)in[p * 3 + c] / 255.0f - mean[c]) / sd[c]);
        for (int c = 3; c < STEM_C; c++) o[c] = from_f<T>(0.0f);
    }
}

/* y = act(y + b[c] + z), NHWC so c = i % C; z may be NULL */
template <typename T>
__global__ void k_epilogue(T *y, const float *b, const T *z, long n, int C,
                           int relu)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        float v = to_f(y[i]) + b[i % C];
        if (z) v += to_f(z[i]);
        if (relu && v < 0.0f) v = 0.0f;
        y[i] = from_f<T>(v);
    }
}

/* torch's max_pool2d(3, 2, 1): padding never wins (-inf) */
template <typename T>
__global__ void k_maxpool(const T *x, T *y, int n, int h, int w, int C,
                          int oh, int ow)
{
    long total = (long)n * oh * ow * C;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total;
         i += (long)gridDim.x * blockDim.x) {
        int c = (int)(i % C);
        long r = i / C;
        int ox = (int)(r % ow);
        r /= ow;
        int oy = (int)(r % oh);
        int b = (int)(r / oh);
        float m = -INFINITY;
        for (int dy = 0; dy < 3; dy++) {
            int yy = oy * 2 - 1 + dy;
            if (yy < 0 || yy >= h) continue;
            for (int dx = 0; dx < 3; dx++) {
                int xx = ox * 2 - 1 + dx;
                if (xx < 0 || xx >= w) continue;
                float v = to_f(x[(((long)b * h + yy) * w + xx) * C + c]);
                if (v > m || v != v) m = v;
            }
        }
        y[i] = from_f<T>(m);
    }
}

/* (n, hw, C) -> (n, C) f32 mean, summed in float in a fixed order */
template <typename T>
__global__ void k_avgpool(const T *x, float *out, int hw, int C)
{
    int b = blockIdx.y;
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const T *p = x + (long)b * hw * C + c;
    float s = 0.0f;
    for (int i = 0; i < hw; i++) s += to_f(p[(long)i * C]);
    out[(long)b * C + c] = s / (float)hw;
}

static int grid_for(long n)
{
    long g = (n + 255) / 256;
    return (int)(g > 65535 ? 65535 : g < 1 ? 1 : g);
}

// ---------------------------------------------------------------- build

static cudnnDataType_t dtype_of(mm_cuda_precision p)
{
    return p == MM_CUDA_FP16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
}

/* Weights OIHW f32 -> KRSC (OHWI) in the precision's type, CIN padded to
 * CINP with zeros. */
static void *upload_w(const mm_resnet_conv *c, int cinp, mm_cuda_precision p,
                      int *err)
{
    size_t n = (size_t)c->cout * c->k * c->k * cinp;
    size_t es = p == MM_CUDA_FP16 ? 2 : 4;
    void *h = calloc(n, es), *d = NULL;
    if (!h) abort();
    for (int o = 0; o < c->cout; o++)
        for (int i = 0; i < c->cin; i++)
            for (int y = 0; y < c->k; y++)
                for (int x = 0; x < c->k; x++) {
                    float v = c->w[(((size_t)o * c->cin + i) * c->k + y) * c->k + x];
                    size_t j = (((size_t)o * c->k + y) * c->k + x) * cinp + i;
                    if (p == MM_CUDA_FP16) ((__half *)h)[j] = __float2half_rn(v);
                    else ((float *)h)[j] = v;
                }
    cudaError_t e = cudaMalloc(&d, n * es);
    if (e == cudaSuccess) e = cudaMemcpy(d, h, n * es, cudaMemcpyHostToDevice);
    free(h);
    if (e != cudaSuccess) {
        cuda_fail(e, "weights");
        cudaFree(d);
        *err = 1;
        return NULL;
    }
    return d;
}

/* Descriptors and the algorithm of one convolution at batch N; shapes seen
 * before reuse the earlier choice. */
static int plan_conv(mm_resnet_cuda *g, int i, cudnnHandle_t dnn)
{
    conv *c = &g->cv[i];
    cudnnDataType_t dt = dtype_of(g->prec);
    int cin = i == 0 ? STEM_C : c->cin;
    DK(cudnnCreateFilterDescriptor(&c->wd), "filter descriptor");
    DK(cudnnSetFilter4dDescriptor(c->wd, dt, CUDNN_TENSOR_NHWC, c->cout, cin, c->k, c->k), "filter");
    DK(cudnnCreateConvolutionDescriptor(&c->cd), "convolution descriptor");
    DK(cudnnSetConvolution2dDescriptor(c->cd, c->pad, c->pad, c->stride, c->stride, 1, 1,
                                       CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT), "convolution");
    /* FP16: tensor cores; FP32: the default math lets cuDNN use TF32 */
    DK(cudnnSetConvolutionMathType(c->cd, g->prec == MM_CUDA_FP16 ? CUDNN_TENSOR_OP_MATH
                                                                   : CUDNN_DEFAULT_MATH), "math type");
    DK(cudnnCreateTensorDescriptor(&c->xd), "tensor descriptor");
    DK(cudnnSetTensor4dDescriptor(c->xd, CUDNN_TENSOR_NHWC, dt, g->max_batch, cin, c->ih, c->iw), "input");
    DK(cudnnCreateTensorDescriptor(&c->yd), "tensor descriptor");
    DK(cudnnSetTensor4dDescriptor(c->yd, CUDNN_TENSOR_NHWC, dt, g->max_batch, c->cout, c->oh, c->ow), "output");
    for (int j = 0; j < i; j++) {
        conv *o = &g->cv[j];
        if (o->cin == c->cin && o->cout == c->cout && o->k == c->k && o->stride == c->stride &&
            o->pad == c->pad && o->ih == c->ih && o->iw == c->iw) {
            c->algo = o->algo;
            c->math = o->math;
            c->ws = o->ws;
            return cudnnSetConvolutionMathType(c->cd, c->math) == CUDNN_STATUS_SUCCESS ? 0 : -1;
        }
    }
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0;
    const size_t ws_max = (size_t)1 << 30;
    cudnnStatus_t s = cudnnFindConvolutionForwardAlgorithm(dnn, c->xd, c->wd, c->cd, c->yd,
                                                           CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf);
    int pick = -1;
    if (s == CUDNN_STATUS_SUCCESS)
        for (int j = 0; j < got && pick < 0; j++)
            if (perf[j].status == CUDNN_STATUS_SUCCESS && perf[j].memory <= ws_max) pick = j;
    if (pick < 0) {
        /* the heuristic, when timing failed (e.g. out of memory) */
        DK(cudnnGetConvolutionForwardAlgorithm_v7(dnn, c->xd, c->wd, c->cd, c->yd,
                                                  CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf),
           "choose an algorithm");
        for (int j = 0; j < got && pick < 0; j++)
            if (perf[j].status == CUDNN_STATUS_SUCCESS && perf[j].memory <= ws_max) pick = j;
        if (pick < 0) {
            mm__set_error("cuDNN: no algorithm for %dx%d conv %d->%d at %dx%d", c->k, c->k,
                          c->cin, c->cout, c->ih, c->iw);
            return -1;
        }
    }
    c->algo = perf[pick].algo;
    c->math = perf[pick].mathType;
    DK(cudnnSetConvolutionMathType(c->cd, c->math), "math type");
    DK(cudnnGetConvolutionForwardWorkspaceSize(dnn, c->xd, c->wd, c->cd, c->yd, c->algo, &c->ws),
       "workspace size");
    return 0;
}

static void destroy(mm_resnet_cuda *g)
{
    for (int i = 0; i < g->nconv; i++) {
        conv *c = &g->cv[i];
        if (c->wd) cudnnDestroyFilterDescriptor(c->wd);
        if (c->cd) cudnnDestroyConvolutionDescriptor(c->cd);
        if (c->xd) cudnnDestroyTensorDescriptor(c->xd);
        if (c->yd) cudnnDestroyTensorDescriptor(c->yd);
        cudaFree(c->w);
        cudaFree(c->b);
    }
    free(g->cv);
    for (int s = 0; s < NSLOT; s++) {
        slot *q = &g->sl[s];
        if (q->st) cudaStreamSynchronize(q->st);
        if (q->dnn) cudnnDestroy(q->dnn);
        if (q->done) cudaEventDestroy(q->done);
        if (q->st) cudaStreamDestroy(q->st);
        cudaFreeHost(q->h_in);
        cudaFreeHost(q->h_out);
        cudaFree(q->d_in);
        cudaFree(q->d_out);
        for (int j = 0; j < 5; j++) cudaFree(q->buf[j]);
        cudaFree(q->ws);
    }
    free(g);
}

static int build(mm_resnet_cuda *g, const mm_resnet *m)
{
    g->nconv = mm_resnet_n_convs(m);
    g->cv = (conv *)calloc((size_t)g->nconv, sizeof(conv));
    if (!g->cv) abort();
    for (int s = 0; s < NSLOT; s++) {
        slot *q = &g->sl[s];
        CK(cudaStreamCreateWithFlags(&q->st, cudaStreamNonBlocking), "stream");
        CK(cudaEventCreateWithFlags(&q->done, cudaEventDisableTiming), "event");
        DK(cudnnCreate(&q->dnn), "create handle");
        DK(cudnnSetStream(q->dnn, q->st), "set stream");
    }
    /* shapes through the network, in mm_resnet_conv_at's order */
    int h = g->h, w = g->w;
    size_t most = (size_t)h * w * STEM_C;
    int bh = 0, bw = 0; /* the current block's input size */
    for (int i = 0; i < g->nconv; i++) {
        const mm_resnet_conv *mc = mm_resnet_conv_at(m, i);
        conv *c = &g->cv[i];
        c->cin = mc->cin;
        c->cout = mc->cout;
        c->k = mc->k;
        c->stride = mc->stride;
        c->pad = mc->pad;
        c->relu = mc->relu;
        const char *nm = mc->name;
        const char *last = strrchr(nm, '.');
        int is_down = strstr(nm, "downsample") != NULL;
        c->down = is_down;
        int is_c1 = last && !strcmp(last, ".conv1") && strncmp(nm, "layer", 5) == 0;
        if (i == 0) {
            c->ih = h;
            c->iw = w;
        } else if (is_down) {
            c->ih = bh;
            c->iw = bw;
        } else if (is_c1) {
            c->ih = bh = h;
            c->iw = bw = w;
        } else {
            c->ih = h;
            c->iw = w;
        }
        c->oh = (c->ih + 2 * c->pad - c->k) / c->stride + 1;
        c->ow = (c->iw + 2 * c->pad - c->k) / c->stride + 1;
        size_t e = (size_t)c->oh * c->ow * c->cout;
        if (e > most) most = e;
        if (!is_down) {
            h = c->oh;
            w = c->ow;
        }
        if (i == 0) { /* max-pool 3/2/1 */
            h = (h + 2 - 3) / 2 + 1;
            w = (w + 2 - 3) / 2 + 1;
        }
        int err = 0;
        c->w = upload_w(mc, i == 0 ? STEM_C : c->cin, g->prec, &err);
        if (err) return -1;
        CK(cudaMalloc(&c->b, sizeof(float) * c->cout), "bias");
        CK(cudaMemcpy(c->b, mc->b, sizeof(float) * c->cout, cudaMemcpyHostToDevice), "bias");
        g->dim = c->cout;
    }
    g->act_elems = most;
    size_t act = most * g->max_batch * g->esize;
    size_t tiles = (size_t)g->max_batch * g->h * g->w * 3;
    for (int s = 0; s < NSLOT; s++) {
        slot *q = &g->sl[s];
        CK(cudaMallocHost(&q->h_in, tiles), "pinned tiles");
        CK(cudaMallocHost(&q->h_out, sizeof(float) * g->max_batch * g->dim), "pinned features");
        CK(cudaMalloc(&q->d_in, tiles), "tiles");
        CK(cudaMalloc(&q->d_out, sizeof(float) * g->max_batch * g->dim), "features");
        /* zeroed once: rows past a short batch's N then hold finite values */
        for (int j = 0; j < 5; j++) {
            CK(cudaMalloc(&q->buf[j], act), "activations");
            CK(cudaMemset(q->buf[j], 0, act), "activations");
        }
    }
    /* algorithms, timed on slot 0's buffers by cudnnFind */
    for (int i = 0; i < g->nconv; i++) {
        if (plan_conv(g, i, g->sl[0].dnn) != 0) return -1;
        if (g->cv[i].ws > g->ws) g->ws = g->cv[i].ws;
    }
    for (int s = 0; s < NSLOT; s++)
        if (g->ws) CK(cudaMalloc(&g->sl[s].ws, g->ws), "workspace");
    cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0), "device properties");
    snprintf(g->desc, sizeof g->desc,
             "%.200s, cuDNN %zu, %s NHWC, batch %d, %dx%d, %d convs, workspace %.0f MiB",
             p.name, cudnnGetVersion(), g->prec == MM_CUDA_FP16 ? "FP16" : "TF32",
             g->max_batch, g->h, g->w, g->nconv, g->ws / 1048576.0);
    return 0;
}

// ---------------------------------------------------------------- run

template <typename T>
static int run_conv(mm_resnet_cuda *g, slot *q, int i, const void *x, void *y, const void *z)
{
    conv *c = &g->cv[i];
    const float one = 1.0f, zero = 0.0f;
    DK(cudnnConvolutionForward(q->dnn, &one, c->xd, x, c->wd, c->w, c->cd, c->algo, q->ws,
                               g->ws, &zero, c->yd, y), "convolution");
    long n = (long)g->max_batch * c->oh * c->ow * c->cout;
    k_epilogue<T><<<grid_for(n), 256, 0, q->st>>>((T *)y, c->b, (const T *)z, n, c->cout,
                                                  c->relu || z != NULL);
    return 0;
}

template <typename T>
static int enqueue(mm_resnet_cuda *g, slot *q)
{
    size_t tiles = (size_t)q->n * g->h * g->w * 3;
    CK(cudaMemcpyAsync(q->d_in, q->h_in, tiles, cudaMemcpyHostToDevice, q->st), "upload");
    /* rows past N keep whatever the last batch left: computed, never read */
    long npix = (long)q->n * g->h * g->w;
    T *X = (T *)q->buf[0], *Y = (T *)q->buf[1], *T1 = (T *)q->buf[2], *T2 = (T *)q->buf[3],
      *S = (T *)q->buf[4];
    k_preprocess<T><<<grid_for(npix), 256, 0, q->st>>>(q->d_in, T2, npix);
    if (run_conv<T>(g, q, 0, T2, T1, NULL) != 0) return -1;
    conv *c0 = &g->cv[0];
    int ph = (c0->oh + 2 - 3) / 2 + 1, pw = (c0->ow + 2 - 3) / 2 + 1;
    long np = (long)g->max_batch * ph * pw * c0->cout;
    k_maxpool<T><<<grid_for(np), 256, 0, q->st>>>(T1, X, g->max_batch, c0->oh, c0->ow, c0->cout, ph, pw);
    int hw = ph * pw, C = c0->cout;
    for (int i = 1; i < g->nconv;) {
        /* a bottleneck: conv1, conv2, conv3 and, on block 0, downsample */
        int down = i + 3 < g->nconv && g->cv[i + 3].down;
        if (run_conv<T>(g, q, i, X, T1, NULL) != 0) return -1;
        if (run_conv<T>(g, q, i + 1, T1, T2, NULL) != 0) return -1;
        const T *sc = X;
        if (down) {
            if (run_conv<T>(g, q, i + 3, X, S, NULL) != 0) return -1;
            sc = S;
        }
        if (run_conv<T>(g, q, i + 2, T2, Y, sc) != 0) return -1;
        hw = g->cv[i + 2].oh * g->cv[i + 2].ow;
        C = g->cv[i + 2].cout;
        T *t = X;
        X = Y;
        Y = t;
        i += down ? 4 : 3;
    }
    dim3 grid((C + 255) / 256, q->n);
    k_avgpool<T><<<grid, 256, 0, q->st>>>(X, q->d_out, hw, C);
    CK(cudaGetLastError(), "kernel launch");
    CK(cudaMemcpyAsync(q->h_out, q->d_out, sizeof(float) * q->n * g->dim, cudaMemcpyDeviceToHost,
                       q->st), "download");
    CK(cudaEventRecord(q->done, q->st), "event");
    return 0;
}

// ---------------------------------------------------------------- API

extern "C" int mm_resnet_cuda_available(char *why, size_t n)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        snprintf(why, n, "no CUDA device (%s)", e == cudaSuccess ? "none found" : cudaGetErrorString(e));
        return 0;
    }
    snprintf(why, n, "%d CUDA device(s), cuDNN %zu", count, cudnnGetVersion());
    return 1;
}

extern "C" mm_resnet_cuda *mm_resnet_cuda_new_ex(const mm_resnet *m, int max_batch, int h, int w,
                                                 mm_cuda_precision prec)
{
    if (!m || max_batch < 1 || h < 32 || w < 32 || h % 32 || w % 32 ||
        (prec != MM_CUDA_FP16 && prec != MM_CUDA_TF32)) {
        mm__set_error("cuDNN ResNet: bad arguments (batch %d, %dx%d; tiles must be multiples of 32)",
                      max_batch, h, w);
        return NULL;
    }
    char why[256];
    if (!mm_resnet_cuda_available(why, sizeof why)) {
        mm__set_error("%s", why);
        return NULL;
    }
    mm_resnet_cuda *g = (mm_resnet_cuda *)calloc(1, sizeof *g);
    if (!g) abort();
    g->prec = prec;
    g->max_batch = max_batch;
    g->h = h;
    g->w = w;
    g->esize = prec == MM_CUDA_FP16 ? 2 : 4;
    if (build(g, m) != 0) {
        destroy(g);
        return NULL;
    }
    return g;
}

extern "C" mm_resnet_cuda *mm_resnet_cuda_new(const mm_resnet *m, int max_batch, int h, int w)
{
    return mm_resnet_cuda_new_ex(m, max_batch, h, w, MM_CUDA_FP16);
}

extern "C" void mm_resnet_cuda_free(mm_resnet_cuda *g)
{
    if (g) destroy(g);
}

extern "C" int mm_resnet_cuda_submit(mm_resnet_cuda *g, const uint8_t *tiles, int n)
{
    if (n < 1 || n > g->max_batch) {
        mm__set_error("cuDNN ResNet: batch of %d tiles (1..%d)", n, g->max_batch);
        return -1;
    }
    if (g->pending == NSLOT) {
        mm__set_error("cuDNN ResNet: both slots busy: collect first");
        return -1;
    }
    slot *q = &g->sl[g->next];
    memcpy(q->h_in, tiles, (size_t)n * g->h * g->w * 3);
    q->n = n;
    int r = g->prec == MM_CUDA_FP16 ? enqueue<__half>(g, q) : enqueue<float>(g, q);
    if (r != 0) {
        q->n = 0;
        return -1;
    }
    g->next = (g->next + 1) % NSLOT;
    g->pending++;
    return 0;
}

extern "C" int mm_resnet_cuda_collect(mm_resnet_cuda *g, float *out)
{
    if (g->pending == 0) return 0;
    slot *q = &g->sl[g->oldest];
    CK(cudaEventSynchronize(q->done), "run");
    int n = q->n;
    memcpy(out, q->h_out, sizeof(float) * n * g->dim);
    q->n = 0;
    g->oldest = (g->oldest + 1) % NSLOT;
    g->pending--;
    return n;
}

extern "C" int mm_resnet_cuda_pending(const mm_resnet_cuda *g) { return g->pending; }
extern "C" int mm_resnet_cuda_dim(const mm_resnet_cuda *g) { return g->dim; }
extern "C" const char *mm_resnet_cuda_describe(const mm_resnet_cuda *g) { return g->desc; }

extern "C" int mm_resnet_cuda_forward_u8(mm_resnet_cuda *g, const uint8_t *tiles, int n, float *out)
{
    /* earlier queued batches would come back first: refuse the mix */
    if (g->pending) {
        mm__set_error("cuDNN ResNet: forward_u8 with batches queued");
        return -1;
    }
    if (mm_resnet_cuda_submit(g, tiles, n) != 0) return -1;
    return mm_resnet_cuda_collect(g, out) == n ? 0 : -1;
}
