/* resnet_wino.h: the Winograd F(4x4, 3x3) input and output transforms of
 * lib/resnet.c, included there once per vector width: WV, a GCC vector
 * of WW floats (WVI: of WW int32); WLD / WST load and store one; WFN(name)
 * the function's name for this width; WATTR its attributes (the target).
 * Channels go WW at a time (cin, cout multiples of WW). The parameters are
 * undefined at the end, ready for the next width.
 * SPDX-License-Identifier: MIT */

/* B^T d B for input tile Q (its 6x6 pixels, zeros outside the image) into
 * V[xi * VST], xi = 0..35. */
static WATTR void WFN(wino_in)(const float *x, int h, int w, int th,
                               int tw, int cin, size_t q, float *V,
                               size_t vst)
{
    int tx = (int)(q % tw), ty = (int)(q / tw % th);
    size_t b = q / ((size_t)tw * th);
    const float *px[6][6];
    for (int a = 0; a < 6; a++)
        for (int e = 0; e < 6; e++) {
            int iy = ty * 4 - 1 + a, ix = tx * 4 - 1 + e;
            px[a][e] = iy < 0 || iy >= h || ix < 0 || ix >= w
                           ? NULL
                           : x + ((b * h + iy) * w + ix) * cin;
        }
    const WV z = {0};
    for (int ci = 0; ci < cin; ci += WW) {
        WV u[6][6];
        for (int e = 0; e < 6; e++) {
            WV d[6];
            for (int a = 0; a < 6; a++)
                d[a] = px[a][e] ? WLD(px[a][e] + ci) : z;
            u[0][e] = 4 * d[0] - 5 * d[2] + d[4];
            u[1][e] = -4 * (d[1] + d[2]) + d[3] + d[4];
            u[2][e] = 4 * (d[1] - d[2]) - d[3] + d[4];
            u[3][e] = -2 * (d[1] - d[3]) - d[2] + d[4];
            u[4][e] = 2 * (d[1] - d[3]) - d[2] + d[4];
            u[5][e] = 4 * d[1] - 5 * d[3] + d[5];
        }
        for (int a = 0; a < 6; a++) {
            WV *d = u[a];
            float *v = V + (size_t)(a * 6) * vst + ci;
            WST(v, 4 * d[0] - 5 * d[2] + d[4]);
            WST(v + vst, -4 * (d[1] + d[2]) + d[3] + d[4]);
            WST(v + 2 * vst, 4 * (d[1] - d[2]) - d[3] + d[4]);
            WST(v + 3 * vst, -2 * (d[1] - d[3]) - d[2] + d[4]);
            WST(v + 4 * vst, 2 * (d[1] - d[3]) - d[2] + d[4]);
            WST(v + 5 * vst, 4 * d[1] - 5 * d[3] + d[5]);
        }
    }
}

/* A^T m A + bias (and ReLU) of tile Q from M[xi * MST] into Y. */
static WATTR void WFN(wino_out)(const float *M, size_t mst,
                                const float *bias, int relu, int h, int w,
                                int th, int tw, int cout, size_t q, float *y)
{
    int tx = (int)(q % tw), ty = (int)(q / tw % th);
    size_t b = q / ((size_t)tw * th);
    const WV z = {0};
    for (int o = 0; o < cout; o += WW) {
        WV r[4][6], bb = WLD(bias + o);
        for (int e = 0; e < 6; e++) {
            WV m0 = WLD(M + (size_t)e * mst + o),
               m1 = WLD(M + (size_t)(6 + e) * mst + o),
               m2 = WLD(M + (size_t)(12 + e) * mst + o),
               m3 = WLD(M + (size_t)(18 + e) * mst + o),
               m4 = WLD(M + (size_t)(24 + e) * mst + o),
               m5 = WLD(M + (size_t)(30 + e) * mst + o);
            r[0][e] = m0 + m1 + m2 + m3 + m4;
            r[1][e] = m1 - m2 + 2 * (m3 - m4);
            r[2][e] = m1 + m2 + 4 * (m3 + m4);
            r[3][e] = m1 - m2 + 8 * (m3 - m4) + m5;
        }
        for (int a = 0; a < 4; a++) {
            int oy = ty * 4 + a;
            if (oy >= h) break;
            WV *d = r[a], out[4];
            out[0] = d[0] + d[1] + d[2] + d[3] + d[4];
            out[1] = d[1] - d[2] + 2 * (d[3] - d[4]);
            out[2] = d[1] + d[2] + 4 * (d[3] + d[4]);
            out[3] = d[1] - d[2] + 8 * (d[3] - d[4]) + d[5];
            for (int e = 0; e < 4; e++) {
                int ox = tx * 4 + e;
                if (ox >= w) break;
                WV v = out[e] + bb;
                WST(y + ((b * h + oy) * w + ox) * cout + o,
                    relu ? (WV)((WVI)v & (WVI)(v > z)) : v);
            }
        }
    }
}

#undef WV
#undef WVI
#undef WW
#undef WLD
#undef WST
#undef WSUF
#undef WATTR
