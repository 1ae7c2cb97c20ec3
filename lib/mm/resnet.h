/* mm/resnet.h: ResNet-50 inference for patch features (METHODS.md B2).
 *
 * CLAM's extractor: torchvision ResNet-50 truncated after layer3 (1024-d)
 * or after layer4 (2048-d), then a global average pool; BatchNorm (eval,
 * running statistics, eps 1e-5) folded into the convolutions at load time.
 *
 *   mm_resnet *m = mm_resnet_load("resnet50.safetensors", 3);  // or
 *   mm_resnet *m = mm_resnet_load("random:42", 3);             // tests
 *   mm_resnet_preprocess(rgb, h, w, x);        // u8 HWC -> f32 normalised
 *   mm_resnet_forward(m, n, h, w, x, feats);   // n images -> n x dim
 *
 * Weights come from a safetensors file in torchvision's key layout
 * (conv1.weight, bn1.{weight,bias,running_mean,running_var},
 * layer1.0.conv1.weight, layer1.0.bn1.*, layer1.0.downsample.0.weight,
 * layer1.0.downsample.1.*, ...); other keys (fc.*, num_batches_tracked,
 * layer4.* when LAYER is 3) are ignored; f32, f16 or bf16 tensors.
 *
 * The folded convolutions are public (mm_resnet_conv) so that another
 * backend (cuDNN, lib/cuda) builds the same network from them. Their
 * order is torchvision's module order: "conv1" (the stem, followed by
 * ReLU and max-pool 3/2/1), then for each layer L = 1..LAYER and block
 * B = 0..nblocks(L)-1 (3, 4, 6, 3): "layerL.B.conv1" (1x1, ReLU),
 * "layerL.B.conv2" (3x3, stride on block 0 of layers 2-4, ReLU),
 * "layerL.B.conv3" (1x1, no ReLU), and for B = 0 "layerL.B.downsample.0"
 * (1x1 with the block's stride); the block's output is
 * relu(conv3 + shortcut). Then the global average pool.
 * SPDX-License-Identifier: MIT */
#ifndef MM_RESNET_H
#define MM_RESNET_H

#include <stdint.h>

#include "mm/defs.h"

typedef struct mm_resnet mm_resnet;

/* One convolution with its BatchNorm folded in: y = conv(x, w) + b. */
typedef struct {
    const char *name; /* torchvision prefix, e.g. "layer2.0.downsample.0" */
    int cin, cout, k, stride, pad;
    int relu;        /* 1 when a ReLU follows directly (not conv3) */
    const float *w;  /* (cout, cin, k, k), torch's OIHW order */
    const float *b;  /* (cout) */
} mm_resnet_conv;

/* Load WEIGHTS (a safetensors path, or "random:SEED" for deterministic
 * random weights with non-trivial BatchNorm statistics: tests and the
 * offline demo, never ImageNet features. random:SEED draws one splitmix64
 * stream over all parameters in module order: value i (0-based, counted
 * across tensors) uses u = (mix(SEED + (i + 1) * 0x9E3779B97F4A7C15) >>
 * 40) / 2^24, mix being splitmix64's finaliser; per convolution, in this
 * order, weight (OIHW) = (2u - 1) sqrt(6 / fan_in), then its BatchNorm's
 * weight = 0.5 + u, bias = 0.2 (2u - 1), running_mean = 0.2 (2u - 1),
 * running_var = 0.5 + u, each computed in double and rounded once to f32;
 * tests/gen/resnet_ref.py does the same in numpy) and build the trunk up to LAYER
 * (3 or 4). @return the model, or NULL with one line in mm_strerror()
 * ("missing key layer1.0.conv1.weight", "layer1.0.conv1.weight: shape
 * [64,3,1,1], expected [64,64,1,1]", "not a safetensors file"). */
mm_resnet *mm_resnet_load(const char *weights, int layer) MM_RESULT_USED;
void mm_resnet_free(mm_resnet *m); /* NULL is a no-op */

int mm_resnet_layer(const mm_resnet *m); /* 3 or 4 */
int mm_resnet_dim(const mm_resnet *m);   /* 1024 or 2048 */
/* "sha256:HEX" of the weights file, or "random:SEED". */
const char *mm_resnet_digest(const mm_resnet *m);
int mm_resnet_n_convs(const mm_resnet *m);
const mm_resnet_conv *mm_resnet_conv_at(const mm_resnet *m, int i);

/* ImageNet preprocessing as CLAM (ToTensor, Normalize): RGB (H, W, 3) u8
 * -> X (H, W, 3) f32, (v / 255 - mean[c]) / std[c], mean (0.485, 0.456,
 * 0.406), std (0.229, 0.224, 0.225). */
void mm_resnet_preprocess(const uint8_t *rgb, int h, int w, float *x);

/* torchvision's Resize(SIZE) on a PIL image, as new CLAM's
 * --target_patch_size: the shorter side becomes SIZE, the longer
 * int(SIZE * long / short); *OH, *OW get the output size. */
void mm_resnet_resize_size(int h, int w, int size, int *oh, int *ow);
/* PIL's Image.resize(BILINEAR) of RGB (H, W, 3) u8 to OUT (OH, OW, 3):
 * the triangle filter widened by the scale when reducing (antialiased),
 * horizontal pass then vertical, each rounded to u8 in PIL's 22-bit fixed
 * point, so the bytes are PIL's (Pillow's Resample.c). */
void mm_resnet_resize(const uint8_t *rgb, int h, int w, int oh, int ow,
                      uint8_t *out);

/* Features of N images X (N, H, W, 3) f32 (preprocessed, NHWC) into OUT
 * (N, dim). Uses the OpenMP threads (omp_set_num_threads) it is given;
 * scratch memory is held by M and reused (bounded by N, H, W). Each
 * OpenMP thread calls sgemm on its own chunk, so OpenBLAS's own threads
 * are set to 1 for the call and restored after. The result does not
 * depend on the number of threads (the work is split by shape only).
 * @return 0, or -1 with the reason in mm_strerror(). */
int mm_resnet_forward(mm_resnet *m, int n, int h, int w, const float *x,
                      float *out) MM_RESULT_USED;

#endif
