#include "backends/cuda/quant_dev.cuh"

#define KQ_LOOP(i, n) for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (n); i += (long)gridDim.x * blockDim.x)

__global__ void kq_quantize(void *y, int ydt, const float *x, sh_kq_axis ax, const float *scale, const void *zp,
                            int zdt)
{
    KQ_LOOP(i, ax.n)
    {
        int c = ax.ns > 1 ? (int)((i / ax.inner) % ax.ns) : 0;
        float v = __fadd_rn(rintf(__fdiv_rn(x[i], scale[c])), (float)kq_zp(zp, zdt, c));
        kq_put(y, ydt, i, v);
    }
}

extern "C" cudaError_t sh_kq_quantize(void *y, int ydt, const float *x, sh_kq_axis ax, const float *scale,
                                      const void *zp, int zdt, cudaStream_t s)
{
    if (ax.n <= 0)
        return cudaSuccess;
    kq_quantize<<<k_blocks(ax.n, 256), 256, 0, s>>>(y, ydt, x, ax, scale, zp, zdt);
    return cudaGetLastError();
}

__global__ void kq_dequantize(float *y, const void *x, int xdt, sh_kq_axis ax, const float *scale, const void *zp)
{
    KQ_LOOP(i, ax.n)
    {
        int c = ax.ns > 1 ? (int)((i / ax.inner) % ax.ns) : 0;
        y[i] = __fmul_rn(__fsub_rn((float)kq_get(x, xdt, i), (float)kq_zp(zp, xdt, c)), scale[c]);
    }
}

extern "C" cudaError_t sh_kq_dequantize(float *y, const void *x, int xdt, sh_kq_axis ax, const float *scale,
                                        const void *zp, cudaStream_t s)
{
    if (ax.n <= 0)
        return cudaSuccess;
    kq_dequantize<<<k_blocks(ax.n, 256), 256, 0, s>>>(y, x, xdt, ax, scale, zp);
    return cudaGetLastError();
}

/* ---- DynamicQuantizeLinear: min and max are order-free, so partials per block are exact ---- */
__device__ __forceinline__ void kq_block_range(float *lo, float *hi)
{
    __shared__ float slo[32], shi[32];
    for (int o = 16; o > 0; o >>= 1) {
        float l = __shfl_down_sync(0xffffffffu, *lo, o), h = __shfl_down_sync(0xffffffffu, *hi, o);
        *lo = l < *lo ? l : *lo;
        *hi = h > *hi ? h : *hi;
    }
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    if (lane == 0) {
        slo[wid] = *lo;
        shi[wid] = *hi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++) {
            *lo = slo[w] < *lo ? slo[w] : *lo;
            *hi = shi[w] > *hi ? shi[w] : *hi;
        }
    }
}

__global__ void kq_dyn_range(float *part, const float *x, int n)
{
    /* the range always includes 0 (quant.c dql_run) */
    float lo = 0.f, hi = 0.f;
    KQ_LOOP(i, n)
    {
        float v = x[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    kq_block_range(&lo, &hi);
    if (threadIdx.x == 0) {
        part[2 * blockIdx.x] = lo;
        part[2 * blockIdx.x + 1] = hi;
    }
}

__global__ void kq_dyn_quantize(unsigned char *y, float *ys, unsigned char *yz, const float *x, int n,
                                const float *part)
{
    __shared__ float s_scale;
    __shared__ int s_zp;
    if (threadIdx.x == 0) {
        float lo = 0.f, hi = 0.f;
        for (int b = 0; b < SH_KQ_DYN_BLOCKS; b++) {
            lo = part[2 * b] < lo ? part[2 * b] : lo;
            hi = part[2 * b + 1] > hi ? part[2 * b + 1] : hi;
        }
        float scale = __fdiv_rn(__fsub_rn(hi, lo), 255.f);
        int zp = 0;
        if (scale > 0.f) {
            float z = rintf(__fsub_rn(0.f, __fdiv_rn(lo, scale)));
            zp = (int)(z < 0.f ? 0.f : z > 255.f ? 255.f : z);
        } else {
            scale = 1.f;   /* all zeros: 1 keeps the division defined */
        }
        s_scale = scale;
        s_zp = zp;
        if (blockIdx.x == 0) {
            if (ys)
                *ys = scale;
            if (yz)
                *yz = (unsigned char)zp;
        }
    }
    __syncthreads();
    float scale = s_scale, z = (float)s_zp;
    KQ_LOOP(i, n)
    y[i] = (unsigned char)kq_code(SH_KQ_U8, __fadd_rn(rintf(__fdiv_rn(x[i], scale)), z));
}

extern "C" cudaError_t sh_kq_dynamic_quantize(unsigned char *y, float *ys, unsigned char *yz, const float *x, int n,
                                              float *ws, cudaStream_t s)
{
    kq_dyn_range<<<SH_KQ_DYN_BLOCKS, 256, 0, s>>>(ws, x, n);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return e;
    kq_dyn_quantize<<<k_blocks(n, 256), 256, 0, s>>>(y, ys, yz, x, n, ws);
    return cudaGetLastError();
}

/* ---- ConvInteger / QLinearConv, direct: one thread per output element ------------------------ */
__global__ void kq_conv(sh_kq_conv_io io, sh_kq_conv_p p, sh_kq_qconv_tab tab, long total)
{
    KQ_LOOP(i, total)
    {
        int ox = (int)(i % p.ow);
        long r = i / p.ow;
        int oy = (int)(r % p.oh);
        r /= p.oh;
        int m = (int)(r % p.m), b = (int)(r / p.m);
        int g = m / p.mg;
        int xz = kq_zp(io.xz, p.xdt, 0), wz = kq_zp(io.wz, p.wdt, p.n_wz > 1 ? m : 0);
        int acc = 0;
        const long ktap = (long)p.kh * p.kw;
        for (int c = 0; c < p.cg; c++) {
            long xc = ((long)b * p.c + g * p.cg + c) * p.h;
            long wc = ((long)m * p.cg + c) * ktap;
            for (int ky = 0; ky < p.kh; ky++) {
                int iy = oy * p.sh - p.pt + ky * p.dh;
                if (iy < 0 || iy >= p.h)
                    continue;
                for (int kx = 0; kx < p.kw; kx++) {
                    int ix = ox * p.sw - p.pl + kx * p.dw;
                    if (ix < 0 || ix >= p.w)
                        continue;
                    acc += (kq_get(io.x, p.xdt, (xc + iy) * p.w + ix) - xz) *
                           (kq_get(io.w, p.wdt, wc + ky * p.kw + kx) - wz);
                }
            }
        }
        kq_conv_store(io, p, tab, i, m, acc);
    }
}

extern "C" cudaError_t sh_kq_conv(const sh_kq_conv_io *io, const sh_kq_conv_p *p, const sh_kq_qconv_tab *tab,
                                  cudaStream_t s)
{
    long total = (long)p->n * p->m * p->oh * p->ow;
    if (total <= 0)
        return cudaSuccess;
    kq_conv<<<k_blocks(total, 128), 128, 0, s>>>(*io, *p, *tab, total);
    return cudaGetLastError();
}

/* ---- MatMulInteger / QLinearMatMul -------------------------------------------------------------- */
__global__ void kq_matmul(sh_kq_mm_io io, sh_kq_mm_p p, long total)
{
    KQ_LOOP(o, total)
    {
        int c = (int)(o % p.n);
        long r = o / p.n;
        int i = (int)(r % p.m);
        long bi = r / p.m, oa = 0, ob = 0, rem = bi;
        for (int d = p.nb - 1; d >= 0; d--) {
            long q = rem % p.bdims[d];
            rem /= p.bdims[d];
            oa += q * p.sa[d];
            ob += q * p.sb[d];
        }
        long a0 = (oa * p.m + i) * p.k, b0 = ob * p.k * p.n;
        int az = kq_zp(io.az, p.adt, p.n_az > 1 ? i : 0), bz = kq_zp(io.bz, p.bdt, p.n_bz > 1 ? c : 0);
        long long acc = 0;
        for (int k = 0; k < p.k; k++)
            acc += (long long)(kq_get(io.a, p.adt, a0 + k) - az) * (kq_get(io.b, p.bdt, b0 + (long)k * p.n + c) - bz);
        if (!p.qlinear) {
            ((int *)io.y)[o] = (int)acc;
            continue;
        }
        float sc = __fdiv_rn(__fmul_rn(io.as[0], io.bs[p.n_bs > 1 ? c : 0]), io.ys[0]);
        kq_put(io.y, p.ydt, o, __fadd_rn(rintf(__fmul_rn((float)(int)acc, sc)), (float)kq_zp(io.yz, p.ydt, 0)));
    }
}

extern "C" cudaError_t sh_kq_matmul(const sh_kq_mm_io *io, const sh_kq_mm_p *p, cudaStream_t s)
{
    long total = (long)p->batches * p->m * p->n;
    if (total <= 0)
        return cudaSuccess;
    kq_matmul<<<k_blocks(total, 128), 128, 0, s>>>(*io, *p, total);
    return cudaGetLastError();
}

/* Element i of the output's offsets into the two broadcast operands. A fixed trip count: the
 * parameter arrays stay in registers, not copied to the stack. */
__device__ __forceinline__ void kq_bcast_offsets(long i, const sh_kq_bin_p &p, long *oa, long *ob)
{
    long r = i;
    *oa = *ob = 0;
#pragma unroll
    for (int d = SH_K_MAX_DIMS - 1; d >= 0; d--) {
        if (d >= p.nd)
            continue;
        long q = r % p.dims[d];
        r /= p.dims[d];
        *oa += q * p.sa[d];
        *ob += q * p.sb[d];
    }
}

/* ---- QLinearAdd / QLinearMul ------------------------------------------------------------------- */
__global__ void kq_binary(void *y, const void *a, const void *b, int n, sh_kq_bin_p p)
{
    KQ_LOOP(i, n)
    {
        long oa, ob;
        kq_bcast_offsets(i, p, &oa, &ob);
        int va = kq_get(a, p.dt, oa), vb = kq_get(b, p.dt, ob);
        float v;
        if (p.mul)
            v = __fadd_rn(rintf(__fmul_rn((float)((va - p.za) * (vb - p.zb)), p.ra)), p.fixed);
        else
            v = rintf(__fadd_rn(__fadd_rn(__fmul_rn((float)va, p.ra), __fmul_rn((float)vb, p.rb)), p.fixed));
        kq_put(y, p.dt, i, v);
    }
}

extern "C" cudaError_t sh_kq_binary(void *y, const void *a, const void *b, int n, const sh_kq_bin_p *p,
                                    cudaStream_t s)
{
    if (n <= 0)
        return cudaSuccess;
    kq_binary<<<k_blocks(n, 256), 256, 0, s>>>(y, a, b, n, *p);
    return cudaGetLastError();
}

__global__ void kq_int_binary(unsigned char *y, const void *a, const void *b, int n, sh_kq_bin_p p)
{
    KQ_LOOP(i, n)
    {
        long oa, ob;
        kq_bcast_offsets(i, p, &oa, &ob);
        int va = kq_get(a, p.dt, oa), vb = kq_get(b, p.dt, ob), v;
        switch (p.mul) {
        case SH_K_ADD: v = va + vb; break;
        case SH_K_SUB: v = va - vb; break;
        case SH_K_MUL: v = va * vb; break;
        default: v = vb ? va / vb : 0; break;
        }
        y[i] = (unsigned char)(v & 0xff);
    }
}

extern "C" cudaError_t sh_kq_int_binary(void *y, const void *a, const void *b, int n, const sh_kq_bin_p *p,
                                        cudaStream_t s)
{
    if (n <= 0)
        return cudaSuccess;
    kq_int_binary<<<k_blocks(n, 256), 256, 0, s>>>((unsigned char *)y, a, b, n, *p);
    return cudaGetLastError();
}

/* ---- tables: QLinearSigmoid / QLinearLeakyRelu, QLinearConcat ------------------------------------ */
__global__ void kq_lut(unsigned char *y, const unsigned char *x, int n, sh_kq_lut lut)
{
    __shared__ unsigned char t[256];
    for (int j = threadIdx.x; j < 256; j += blockDim.x)
        t[j] = lut.b[j];
    __syncthreads();
    KQ_LOOP(i, n)
    y[i] = t[x[i]];
}

extern "C" cudaError_t sh_kq_lookup(void *y, const void *x, int n, const sh_kq_lut *lut, cudaStream_t s)
{
    if (n <= 0)
        return cudaSuccess;
    kq_lut<<<k_blocks(n, 256), 256, 0, s>>>((unsigned char *)y, (const unsigned char *)x, n, *lut);
    return cudaGetLastError();
}

__global__ void kq_concat_part(unsigned char *y, const unsigned char *x, long total, int len, int out_len, int off,
                               int copy, sh_kq_lut lut)
{
    KQ_LOOP(i, total)
    {
        long r = i / len;
        int e = (int)(i - r * len);
        unsigned char v = x[i];
        y[r * out_len + off + e] = copy ? v : lut.b[v];
    }
}

extern "C" cudaError_t sh_kq_concat_part(void *y, const void *x, int outer, int len, int out_len, int off, int copy,
                                         const sh_kq_lut *lut, cudaStream_t s)
{
    long total = (long)outer * len;
    if (total <= 0)
        return cudaSuccess;
    kq_concat_part<<<k_blocks(total, 256), 256, 0, s>>>((unsigned char *)y, (const unsigned char *)x, total, len,
                                                        out_len, off, copy, *lut);
    return cudaGetLastError();
}

/* ---- QLinearGlobalAveragePool: onnxruntime's integer sum, one float rescale --------------------- */
__global__ void kq_gap(void *y, const void *x, int dt, int n, int c, int hw, int channels_last, int zx, int zy,
                       float scale)
{
    KQ_LOOP(i, (long)n * c)
    {
        long b = i / c, ch = i - b * c;
        long long sum = 0;
        for (int j = 0; j < hw; j++)
            sum += kq_get(x, dt, channels_last ? (b * hw + j) * c + ch : i * hw + j);
        sum -= (long long)zx * hw;
        kq_put(y, dt, i, __fadd_rn(rintf(__fmul_rn((float)sum, scale)), (float)zy));
    }
}

extern "C" cudaError_t sh_kq_gap(void *y, const void *x, int dt, int n, int c, int hw, int channels_last, int zx,
                                 int zy, float scale, cudaStream_t s)
{
    if ((long)n * c <= 0)
        return cudaSuccess;
    kq_gap<<<k_blocks((long)n * c, 128), 128, 0, s>>>(y, x, dt, n, c, hw, channels_last, zx, zy, scale);
    return cudaGetLastError();
}

__global__ void kq_to_float(float *y, const void *x, int xdt, int n)
{
    KQ_LOOP(i, n)
    y[i] = (float)kq_get(x, xdt, i);
}

extern "C" cudaError_t sh_kq_to_float(float *y, const void *x, int xdt, int n, cudaStream_t s)
{
    if (n <= 0)
        return cudaSuccess;
    kq_to_float<<<k_blocks(n, 256), 256, 0, s>>>(y, x, xdt, n);
    return cudaGetLastError();
}

/* ---- int8 data movement: MaxPool and the strided copy over bytes ------------------------------- */
__global__ void kq_max_pool(void *y, const void *x, int dt, sh_k_pool p, long total)
{
    KQ_LOOP(i, total)
    {
        int ox = (int)(i % p.ow);
        long r = i / p.ow;
        int oy = (int)(r % p.oh);
        long plane = r / p.oh;
        long xo = plane * p.h * p.w;
        int m = -2147483647 - 1;
        for (int ky = 0; ky < p.kh; ky++) {
            int iy = oy * p.sh - p.ph + ky * p.dh;
            if (iy < 0 || iy >= p.h)
                continue;
            for (int kx = 0; kx < p.kw; kx++) {
                int ix = ox * p.sw - p.pw + kx * p.dw;
                if (ix < 0 || ix >= p.w)
                    continue;
                int v = kq_get(x, dt, xo + (long)iy * p.w + ix);
                m = v > m ? v : m;
            }
        }
        kq_put(y, dt, i, (float)(m == -2147483647 - 1 ? 0 : m));
    }
}

extern "C" cudaError_t sh_kq_max_pool(void *y, const void *x, int dt, const sh_k_pool *p, cudaStream_t s)
{
    long total = (long)p->n * p->c * p->oh * p->ow;
    if (total <= 0)
        return cudaSuccess;
    kq_max_pool<<<k_blocks(total, 256), 256, 0, s>>>(y, x, dt, *p, total);
    return cudaGetLastError();
}

__global__ void kq_copy_bytes(unsigned char *dst, const unsigned char *src, int n, sh_k_copy p)
{
    KQ_LOOP(i, n)
    {
        long r = i, od = p.dst_off, os = p.src_off;
#pragma unroll
        for (int d = SH_K_MAX_DIMS - 1; d >= 0; d--) {
            if (d >= p.ndim)
                continue;
            long q = r % p.shape[d];
            r /= p.shape[d];
            od += q * p.dst_stride[d];
            os += q * p.src_stride[d];
        }
        dst[od] = src[os];
    }
}

extern "C" cudaError_t sh_kq_copy_bytes(void *dst, const void *src, const sh_k_copy *p, cudaStream_t s)
{
    int n = 1;
    for (int d = 0; d < p->ndim; d++)
        n *= p->shape[d];
    if (n <= 0)
        return cudaSuccess;
    kq_copy_bytes<<<k_blocks(n, 256), 256, 0, s>>>((unsigned char *)dst, (const unsigned char *)src, n, *p);
    return cudaGetLastError();
}
