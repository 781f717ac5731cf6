#include "backends/cuda/kcommon.cuh"
#include "backends/cuda/copy.cuh"

/* One kernel serves slice, split, concat, transpose, expand, gather and pad: every one is a
 * copy between two strided views. */
__global__ void k_copy_strided(__half *dst, const __half *src, int n, sh_k_copy p)
{
    k_pdl_begin();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        unsigned r = (unsigned)i;   /* unsigned: a cheaper division than the signed one */
        int od = p.dst_off, os = p.src_off;
#pragma unroll
        for (int d = SH_K_MAX_DIMS - 1; d >= 0; d--) {
            if (d >= p.ndim)
                continue;
            unsigned next = r / (unsigned)p.shape[d];
            int q = (int)(r - next * (unsigned)p.shape[d]);
            r = next;
            od += q * p.dst_stride[d];
            os += q * p.src_stride[d];
        }
        dst[od] = src[os];
    }
}

/* Rows of 8-half (16-byte) vectors: the channel-slice copies of concat/split in channels-last
 * storage, and any contiguous copy. */
__global__ void k_copy_rows_v8(int4 *dst, const int4 *src, int rows, int row_v, int dst_rs_v, int src_rs_v)
{
    k_pdl_begin();
    unsigned n = (unsigned)rows * (unsigned)row_v;   /* under 2^31 elements (ktypes.h) */
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        unsigned r = i / (unsigned)row_v, c = i - r * (unsigned)row_v;
        dst[(size_t)r * dst_rs_v + c] = src[(size_t)r * src_rs_v + c];
    }
}

extern "C" cudaError_t sh_k_copy_strided(void *dst, const void *src, const sh_k_copy *p,
                                         sh_k_stream s)
{
    int n = 1;
    for (int d = 0; d < p->ndim; d++)
        n *= p->shape[d];
    if (n <= 0)
        return cudaSuccess;
    int rows = -1, len = 0, drs = 0, srs = 0;
    if (p->ndim == 1 && p->dst_stride[0] == 1 && p->src_stride[0] == 1) {
        rows = 1;
        len = p->shape[0];
    } else if (p->ndim == 2 && p->dst_stride[1] == 1 && p->src_stride[1] == 1) {
        rows = p->shape[0];
        len = p->shape[1];
        drs = p->dst_stride[0];
        srs = p->src_stride[0];
    }
    const __half *sp = (const __half *)src + p->src_off;
    __half *dp = (__half *)dst + p->dst_off;
    if (rows > 0 && len % 8 == 0 && drs % 8 == 0 && srs % 8 == 0 && ((uintptr_t)sp & 15) == 0 &&
        ((uintptr_t)dp & 15) == 0) {
        long nv = (long)rows * (len / 8);
        return k_launch(k_copy_rows_v8, k_blocks(nv, 256), 256, s, (int4 *)dp, (const int4 *)sp, rows, len / 8,
                        drs / 8, srs / 8);
    }
    return k_launch(k_copy_strided, k_blocks(n, 256), 256, s, (__half *)dst, (const __half *)src, n, *p);
}

__global__ void k_fill(__half *d, __half v, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        d[i] = v;
}

extern "C" cudaError_t sh_k_fill(void *dst, float value, int n, cudaStream_t s)
{
    if (n <= 0)
        return cudaSuccess;
    k_fill<<<k_blocks(n, 256), 256, 0, s>>>((__half *)dst, __float2half_rn(value), n);
    return cudaGetLastError();
}
