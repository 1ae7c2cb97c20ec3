/* mm/resnet_cuda.h: the ResNet-50 trunk of mm/resnet.h on cuDNN (issue 11).
 *
 *   char why[256];
 *   if (!mm_resnet_cuda_available(why, sizeof why)) fail(why);
 *   mm_resnet *m = mm_resnet_load("random:42", 3);
 *   mm_resnet_cuda *g = mm_resnet_cuda_new(m, 128, 256, 256);
 *   mm_resnet_cuda_forward_u8(g, tiles, n, feats);   // u8 RGB -> f32
 *   mm_resnet_cuda_free(g);
 *
 * The network is built from the folded convolutions (mm_resnet_conv_at):
 * NHWC activations, FP16 storage with FP32 accumulation on the tensor
 * cores (default), or FP32 storage with TF32 tensor-core products. Each
 * convolution's algorithm is chosen once per shape (cudnnFind, timed on
 * the device) when the handle is made. Bias, shortcut and ReLU run in one
 * epilogue kernel after each cuDNN convolution; ImageNet normalisation
 * (mm_resnet_preprocess's), the 3x3/2 max-pool and the global average
 * pool are own kernels. The stem's 3 input channels are padded to 8 with
 * zero weights so that it too runs on the tensor cores.
 *
 * Overlap: the handle has two slots, each with its own CUDA stream,
 * pinned host buffers, activations and cuDNN handle. mm_resnet_cuda_submit
 * copies a batch into a slot's pinned buffer and queues upload, network and
 * download without waiting, so the caller decodes the next batch (and the
 * other slot's upload runs) while this one computes; mm_resnet_cuda_collect
 * waits for the oldest batch. forward_u8 is submit + collect.
 *
 * Without the CUDA build or without a device every call fails with one
 * line in mm_strerror() (mm_resnet_cuda_available says why beforehand).
 * SPDX-License-Identifier: MIT */
#ifndef MM_RESNET_CUDA_H
#define MM_RESNET_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "mm/defs.h"
#include "mm/resnet.h"

typedef struct mm_resnet_cuda mm_resnet_cuda;

typedef enum {
    MM_CUDA_FP16 = 0, /* half activations and weights, FP32 accumulation */
    MM_CUDA_TF32 = 1  /* float activations, TF32 tensor-core products */
} mm_cuda_precision;

/* 1 when this build has the CUDA backend and a CUDA device answers; else 0
 * with one line in WHY ("CUDA backend not built", "no CUDA device (...)"). */
int mm_resnet_cuda_available(char *why, size_t n);

/* Build M's trunk on device 0 for batches of up to MAX_BATCH tiles of
 * H x W (both multiples of 32, as CLAM's 224 and 256). M may be freed
 * afterwards: its weights are copied. Choosing the algorithms runs each
 * convolution shape a few times (a second or two).
 * @return the handle, or NULL with the reason in mm_strerror(). */
mm_resnet_cuda *mm_resnet_cuda_new(const mm_resnet *m, int max_batch, int h,
                                   int w) MM_RESULT_USED;
mm_resnet_cuda *mm_resnet_cuda_new_ex(const mm_resnet *m, int max_batch,
                                      int h, int w,
                                      mm_cuda_precision prec) MM_RESULT_USED;
void mm_resnet_cuda_free(mm_resnet_cuda *g); /* NULL is a no-op */

/* Features of N (1..max_batch) RGB tiles (N, H, W, 3) u8 into OUT
 * (N, dim) f32, preprocessed as mm_resnet_preprocess. Synchronous.
 * @return 0, or -1 with the reason in mm_strerror(). */
int mm_resnet_cuda_forward_u8(mm_resnet_cuda *g, const uint8_t *tiles, int n,
                              float *out) MM_RESULT_USED;

/* Queue N tiles (copied before the call returns) on the next free slot;
 * when both slots are busy the older batch must be collected first.
 * @return 0, or -1 (both slots busy, bad N, CUDA error). */
int mm_resnet_cuda_submit(mm_resnet_cuda *g, const uint8_t *tiles,
                          int n) MM_RESULT_USED;
/* Wait for the oldest queued batch and copy its features to OUT.
 * @return its N, 0 when nothing is queued, -1 on a CUDA error. */
int mm_resnet_cuda_collect(mm_resnet_cuda *g, float *out) MM_RESULT_USED;
/* Batches queued and not yet collected (0, 1 or 2). */
int mm_resnet_cuda_pending(const mm_resnet_cuda *g);

int mm_resnet_cuda_dim(const mm_resnet_cuda *g);
/* One line: device, cuDNN version, precision, batch, workspace. */
const char *mm_resnet_cuda_describe(const mm_resnet_cuda *g);

#endif
