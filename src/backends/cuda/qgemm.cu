#include "backends/cuda/qgemm.cuh"
#include "backends/cuda/quant_dev.cuh"

/* int8 implicit GEMM: C[pixel][channel] = sum over k of X[pixel][k] * W[channel][k], k running
 * over (tap, input channel), on mma.sync m16n8k32 with int32 accumulators.
 *
 * The input is first copied into a padded NHWC buffer (qg_pad): channels padded to 16, and every
 * row and column the windows reach, the halo filled with the input's zero point. So each
 * 16-byte chunk of a pixel's K row is one aligned load inside the buffer, and the product sums
 * x * w over every tap with padding standing for the zero point, as ONNX defines it. The tensor
 * cores multiply the raw codes (int8 or uint8 on either side); the zero points come out of the
 * sums afterwards, exactly:
 *   sum((x - xz) * (w - wz)) = sum(x * w) - wz * sum(x) - xz * sum(w) + K * xz * wz
 * over the K = kh * kw * c real taps and channels, with sum(w) packed beside each filter and
 * sum(x) gathered per pixel from the tiles as they pass (only where the weights have a zero
 * point). The requantization is the direct kernel's (quant_dev.cuh kq_conv_store), so both
 * give the CPU backend's integers.
 *
 * Tiles: 64 pixels x 64 channels per block of 4 warps, each warp 32 x 32 (2 x 4 MMAs per K32),
 * K steps of 64 bytes, shared-memory rows of 80 bytes (the 8 rows one fragment load touches
 * fall on distinct banks). */
#define QG_BM 64
#define QG_BN 64
#define QG_BK SH_KQG_KSTEP
#define QG_PITCH 80
#define QG_THREADS 128

static_assert(QG_BK == 64 && SH_KQG_CALIGN == 16, "the loads below move 4 chunks of 16 bytes per row");

struct qg_args {
    sh_kq_conv_io io;
    sh_kq_conv_p p;
    sh_kqg_geom gm;
    const unsigned char *xp;
    const int *wsum;
    int npix, ktot;
};

#define QG_MMA(TA, TB)                                                                                       \
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32." TA "." TB ".s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "       \
                 "{%8,%9}, {%0,%1,%2,%3};\n"                                                                     \
                 : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])                                                 \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]))

/* d += A (16 x 32 codes of x) * B (32 x 8 codes of w), each side int8 or uint8 */
template <bool XU8, bool WU8> __device__ __forceinline__ void qg_mma(int d[4], const unsigned a[4], const unsigned b[2])
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    if (XU8 && WU8)
        QG_MMA("u8", "u8");
    else if (XU8)
        QG_MMA("u8", "s8");
    else if (WU8)
        QG_MMA("s8", "u8");
    else
        QG_MMA("s8", "s8");
#endif
}

/* The sum of a 16-byte chunk's codes. */
template <bool XU8> __device__ __forceinline__ int qg_sum16(uint4 v)
{
    int s = 0;
    if (XU8) {
        s = (int)__dp4a(v.x, 0x01010101u, (unsigned)s);
        s = (int)__dp4a(v.y, 0x01010101u, (unsigned)s);
        s = (int)__dp4a(v.z, 0x01010101u, (unsigned)s);
        s = (int)__dp4a(v.w, 0x01010101u, (unsigned)s);
    } else {
        s = __dp4a((int)v.x, 0x01010101, s);
        s = __dp4a((int)v.y, 0x01010101, s);
        s = __dp4a((int)v.z, 0x01010101, s);
        s = __dp4a((int)v.w, 0x01010101, s);
    }
    return s;
}

/* x (NCHW codes) into the padded NHWC buffer, 16 channels (one 16-byte store) a thread. */
__global__ void qg_pad(uint4 *xp, const unsigned char *x, const void *xz, int xdt, sh_kq_conv_p p, sh_kqg_geom gm,
                       long total16)
{
    unsigned char z = (unsigned char)kq_zp(xz, xdt, 0);
    int c16 = gm.cp / 16;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total16; i += (long)gridDim.x * blockDim.x) {
        long pix = i / c16;
        int cg = (int)(i - pix * c16);
        int xx = (int)(pix % gm.wp);
        long r = pix / gm.wp;
        int yy = (int)(r % gm.hp), b = (int)(r / gm.hp);
        int iy = yy - p.pt, ix = xx - p.pl;
        bool in = iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
        union {
            uint4 v;
            unsigned char c[16];
        } u;
#pragma unroll
        for (int j = 0; j < 16; j++) {
            int c = cg * 16 + j;
            u.c[j] = in && c < p.c ? x[(((long)b * p.c + c) * p.h + iy) * p.w + ix] : z;
        }
        xp[i] = u.v;
    }
}

template <bool XU8, bool WU8>
__global__ void __launch_bounds__(QG_THREADS) qg_conv(qg_args a, sh_kq_qconv_tab tab)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    __shared__ __align__(16) unsigned char sa[QG_BM * QG_PITCH];
    __shared__ __align__(16) unsigned char sb[QG_BN * QG_PITCH];
    __shared__ int xsum[QG_BM];   /* per pixel: the sum of its K row (weights with zero points) */
    const bool wzp = a.io.wz != NULL;
    const sh_kq_conv_p &p = a.p;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp >> 1, wn = warp & 1, g = lane >> 2, t = lane & 3;
    const int p0 = blockIdx.x * QG_BM, m0 = blockIdx.y * QG_BN;
    const int ohw = p.oh * p.ow, cp = a.gm.cp, wp = a.gm.wp;
    if (threadIdx.x < QG_BM)
        xsum[threadIdx.x] = 0;
    __syncthreads();
    /* this thread's two 16-byte chunks of each tile: row c / 4, K chunk c % 4 */
    long a_base[2];
    bool a_ok[2], b_ok[2];
    const signed char *wrow[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int c = tid + i * QG_THREADS, row = c >> 2;
        int pix = p0 + row, n = m0 + row;
        a_ok[i] = pix < a.npix;
        a_base[i] = 0;
        if (a_ok[i]) {
            int b = pix / ohw, q = pix - b * ohw, oy = q / p.ow, ox = q - oy * p.ow;
            a_base[i] = (((long)b * a.gm.hp + (long)oy * p.sh) * wp + (long)ox * p.sw) * cp;
        }
        b_ok[i] = n < p.m;
        wrow[i] = (const signed char *)a.io.w + (size_t)(b_ok[i] ? n : 0) * a.gm.kp;
    }
    int acc[2][4][4];
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++)
#pragma unroll
            for (int r = 0; r < 4; r++)
                acc[mi][ni][r] = 0;
    /* The next K step's chunks are loaded into registers while this step's MMAs run; they go
     * to shared memory once every warp has read the tiles (the barrier closing the step). */
    uint4 va[2], vb[2];
    auto fetch = [&](int k0) {
#pragma unroll
        for (int i = 0; i < 2; i++) {
            int k = k0 + ((tid + i * QG_THREADS) & 3) * 16;
            va[i] = vb[i] = make_uint4(0, 0, 0, 0);
            if (a_ok[i] && k < a.ktot) {
                int tap = k / cp, ci = k - tap * cp, ky = tap / p.kw, kx = tap - ky * p.kw;
                va[i] = __ldg((const uint4 *)(a.xp + a_base[i] + ((long)ky * p.dh * wp + (long)kx * p.dw) * cp + ci));
            }
            if (b_ok[i])
                vb[i] = __ldg((const uint4 *)(wrow[i] + k));
        }
    };
    fetch(0);
    for (int k0 = 0; k0 < a.gm.kp; k0 += QG_BK) {
#pragma unroll
        for (int i = 0; i < 2; i++) {
            int c = tid + i * QG_THREADS, row = c >> 2, kc = c & 3;
            *(uint4 *)(sa + row * QG_PITCH + kc * 16) = va[i];
            *(uint4 *)(sb + row * QG_PITCH + kc * 16) = vb[i];
            if (wzp)
                atomicAdd(&xsum[row], qg_sum16<XU8>(va[i]));
        }
        __syncthreads();
        if (k0 + QG_BK < a.gm.kp)
            fetch(k0 + QG_BK);
#pragma unroll
        for (int kk = 0; kk < QG_BK; kk += 32) {
            unsigned af[2][4], bf[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                const unsigned char *r0 = sa + (wm * 32 + mi * 16 + g) * QG_PITCH + kk + t * 4;
                af[mi][0] = *(const unsigned *)r0;
                af[mi][1] = *(const unsigned *)(r0 + 8 * QG_PITCH);
                af[mi][2] = *(const unsigned *)(r0 + 16);
                af[mi][3] = *(const unsigned *)(r0 + 8 * QG_PITCH + 16);
            }
#pragma unroll
            for (int ni = 0; ni < 4; ni++) {
                const unsigned char *r0 = sb + (wn * 32 + ni * 8 + g) * QG_PITCH + kk + t * 4;
                bf[ni][0] = *(const unsigned *)r0;
                bf[ni][1] = *(const unsigned *)(r0 + 16);
            }
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++)
                    qg_mma<XU8, WU8>(acc[mi][ni], af[mi], bf[ni]);
        }
        __syncthreads();
    }
    /* epilogue: d0, d1 at (row g, columns 2t, 2t+1), d2, d3 at row g + 8; the padded channels'
     * zero points leave sum(x) (kh * kw * (cp - c) of them per pixel) */
    const int xz = kq_zp(a.io.xz, p.xdt, 0);
    const int kreal = p.kh * p.kw * p.c, kpadded = p.kh * p.kw * (cp - p.c);
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++)
#pragma unroll
            for (int r = 0; r < 4; r++) {
                int pix = p0 + wm * 32 + mi * 16 + g + (r >= 2 ? 8 : 0);
                int ch = m0 + wn * 32 + ni * 8 + t * 2 + (r & 1);
                if (pix >= a.npix || ch >= p.m)
                    continue;
                int b = pix / ohw, q = pix - b * ohw;
                int v = acc[mi][ni][r] - xz * a.wsum[ch];
                if (wzp) {
                    int wz = kq_zp(a.io.wz, p.wdt, p.n_wz > 1 ? ch : 0);
                    int sx = xsum[pix - p0] - kpadded * xz;
                    v += -wz * sx + kreal * xz * wz;
                }
                kq_conv_store(a.io, p, tab, ((long)b * p.m + ch) * ohw + q, ch, v);
            }
#endif
}

extern "C" cudaError_t sh_kq_conv_tc(const sh_kq_conv_io *io, const sh_kq_conv_p *p, const sh_kqg_geom *gm,
                                     const sh_kq_qconv_tab *tab, void *xpad, cudaStream_t s)
{
    long total16 = (long)p->n * gm->hp * gm->wp * (gm->cp / 16);
    long npix = (long)p->n * p->oh * p->ow;
    if (npix <= 0 || p->m <= 0)
        return cudaSuccess;
    qg_pad<<<k_blocks(total16, 256), 256, 0, s>>>((uint4 *)xpad, (const unsigned char *)io->x, io->xz, p->xdt, *p,
                                                    *gm, total16);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return e;
    qg_args a;
    a.io = *io;
    a.p = *p;
    a.gm = *gm;
    a.xp = (const unsigned char *)xpad;
    a.wsum = (const int *)((const signed char *)io->w + (size_t)p->m * gm->kp);
    a.npix = (int)npix;
    a.ktot = p->kh * p->kw * gm->cp;
    dim3 grid((unsigned)((npix + QG_BM - 1) / QG_BM), (unsigned)((p->m + QG_BN - 1) / QG_BN));
    bool xu8 = p->xdt == SH_KQ_U8, wu8 = p->wdt == SH_KQ_U8;
    if (xu8 && wu8)
        qg_conv<true, true><<<grid, QG_THREADS, 0, s>>>(a, *tab);
    else if (xu8)
        qg_conv<true, false><<<grid, QG_THREADS, 0, s>>>(a, *tab);
    else if (wu8)
        qg_conv<false, true><<<grid, QG_THREADS, 0, s>>>(a, *tab);
    else
        qg_conv<false, false><<<grid, QG_THREADS, 0, s>>>(a, *tab);
    return cudaGetLastError();
}
