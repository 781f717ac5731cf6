/* Types shared by the launchers of shoal's own CUDA kernels, callable from C. Every launcher
 * enqueues on `s` and returns cudaGetLastError(), which the host side checks with SH_CU (call
 * text, file, line). Activations are fp16 (passed as void *), arithmetic fp32. Index arithmetic
 * is 32-bit: supports_node refuses tensors of 2^31 elements or more. */
#ifndef SHOAL_CUDA_KTYPES_H
#define SHOAL_CUDA_KTYPES_H

#include <stdbool.h>
#include <stdint.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SH_K_MAX_DIMS 8

/* Where a small kernel goes: its stream, and whether it may launch as a programmatic dependent
 * of the stream's previous kernel (kcommon.cuh k_launch; the backend decides once, at create,
 * from the device and its tuning). */
typedef struct sh_k_stream {
    cudaStream_t s;
    bool pdl;
} sh_k_stream;

/* Activation codes match sh_act (graph.h); kept numeric so the .cu files need no graph.h. */
typedef struct sh_k_act {
    int act;
    float a, b;
} sh_k_act;

/* A strided copy: for every multi-index i < shape, dst[dst_off + i.dst_stride] =
 * src[src_off + i.src_stride]. Slice, split, concat, transpose, expand and gather are this. */
typedef struct sh_k_copy {
    int ndim;
    int shape[SH_K_MAX_DIMS];
    int dst_stride[SH_K_MAX_DIMS];
    int src_stride[SH_K_MAX_DIMS];
    int dst_off, src_off;
} sh_k_copy;

/* Binary element-wise op with broadcasting; strides are in elements, 0 on broadcast dims. */
typedef struct sh_k_bcast {
    int ndim;
    int shape[SH_K_MAX_DIMS];
    int sa[SH_K_MAX_DIMS];
    int sb[SH_K_MAX_DIMS];
} sh_k_bcast;

enum { SH_K_ADD = 0, SH_K_SUB, SH_K_MUL, SH_K_DIV };

typedef struct sh_k_pool {
    int n, c, h, w, oh, ow;
    int kh, kw, sh, sw, ph, pw, dh, dw;
    int is_max, count_include_pad;
    int nhwc;            /* x and y channels-last ([n, h, w, c]) */
} sh_k_pool;

typedef struct sh_k_resize {
    int nc, h, w, oh, ow;
    int linear;          /* 0 nearest, 1 bilinear */
    int coord;           /* 0 half_pixel, 1 asymmetric, 2 align_corners, 3 pytorch_half_pixel,
                            4 tf_half_pixel_for_nearest */
    int nearest_mode;    /* 0 round_prefer_floor, 1 round_prefer_ceil, 2 floor, 3 ceil */
    float scale_h, scale_w;  /* output/input */
    int c, nhwc;         /* channels-last: nc = n * c, element (n, y, x, ch) at ((n*h + y)*w + x)*c + ch */
} sh_k_resize_p;

typedef struct sh_k_gemm {
    int batch, m, n, k;
    /* element strides: A[b][i][p] at a_off(b) + i*a_rs + p*a_cs, likewise B[p][j], C[i][j] */
    int a_rs, a_cs, b_rs, b_cs;
    int nbd;                          /* batch dims (broadcast), <= 4 */
    int bdim[4], a_bs[4], b_bs[4];
    float alpha, beta;
    int c_rs, c_cs;                   /* bias/C broadcast strides; has_c when c != NULL */
    sh_k_act act;
} sh_k_gemm_p;


#ifdef __cplusplus
}
#endif
#endif
