#include "backends/cuda/kcommon.cuh"
#include "backends/cuda/decode.cuh"

/* Score filtering on the device so that only survivors cross PCIe (backend.h
 * download_filtered). The host decoder keeps an anchor when best >= thresh, best being the
 * first class score and then every strictly greater one (vision/yolo.c best_update): that is,
 * when the first score is not NaN and some score is >= thresh. The comparisons run on the bits:
 * this file is built with --use_fast_math, whose float compares flush denormals to zero, and
 * the host's do not. */
__device__ __forceinline__ bool k_is_nan(unsigned u)
{
    return (u & 0x7fffffffu) > 0x7f800000u;
}

/* Non-NaN floats in IEEE order as integers (sign-magnitude to two's complement): -0 and +0
 * both map to 0, as they compare equal. */
__device__ __forceinline__ int k_order(unsigned u)
{
    return u & 0x80000000u ? -(int)(u & 0x7fffffffu) : (int)u;
}

__device__ bool k_yolo_keeps(const float *col, int n, int n_cls, int thresh_order)
{
    if (k_is_nan(__float_as_uint(col[4 * n])))
        return false;
    for (int k = 0; k < n_cls; k++) {
        unsigned u = __float_as_uint(col[(4 + k) * n]);
        if (!k_is_nan(u) && k_order(u) >= thresh_order)
            return true;
    }
    return false;
}

/* A thread per anchor, reading its column with the warp (consecutive anchors are adjacent in
 * every row). Survivors append through one atomic per warp: with random weights every anchor
 * passes, and one atomic per anchor would serialize thousands of them on one word. Rows past
 * `rows` are counted but not written. */
__global__ void k_yolo_filter(int *out, const float *x, sh_k_yolo_filter_p p)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j == 0) {
        out[SH_K_YC_CHANNELS] = p.channels;
        out[SH_K_YC_ANCHORS] = p.n;
        out[SH_K_YC_CLASSES] = p.n_cls;
        out[SH_K_YC_ROWS] = p.rows;
        out[SH_K_YC_THRESHOLD] = __float_as_int(p.thresh);
        for (int w = SH_K_YC_THRESHOLD + 1; w < SH_K_YC_HEADER_WORDS; w++)
            out[w] = 0;
    }
    /* every lane reaches the ballot: the grid is whole warps, lanes past n vote no */
    bool keep = j < p.n && k_yolo_keeps(x + j, p.n, p.n_cls, k_order(__float_as_uint(p.thresh)));
    unsigned votes = __ballot_sync(0xffffffffu, keep);
    if (!votes)
        return;
    int lane = threadIdx.x & 31, leader = __ffs(votes) - 1, base = 0;
    if (lane == leader)
        base = atomicAdd(&out[SH_K_YC_COUNT], __popc(votes));
    base = __shfl_sync(0xffffffffu, base, leader);
    int slot = base + __popc(votes & ((1u << lane) - 1u));
    if (!keep || slot >= p.rows)
        return;
    int *row = out + SH_K_YC_HEADER_WORDS + (long)slot * (1 + p.channels);
    row[0] = j;
    for (int c = 0; c < p.channels; c++)
        row[1 + c] = __float_as_int(x[c * p.n + j]);   /* the bits as they are, NaN payloads too */
}

extern "C" cudaError_t sh_k_yolo_filter(void *out, const float *x, const sh_k_yolo_filter_p *p, cudaStream_t s)
{
    cudaError_t e = cudaMemsetAsync(out, 0, sizeof(int), s);   /* the count */
    if (e != cudaSuccess)
        return e;
    k_yolo_filter<<<k_blocks(p->n, 256), 256, 0, s>>>((int *)out, x, *p);
    return cudaGetLastError();
}
