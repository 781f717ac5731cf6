/* Tile sweep of shoal's own implicit-GEMM conv (src/backends/cuda/igemm.cu) on the conv
 * shapes of the five reference models: every tile shape x K split, each conv launched 300
 * times inside a CUDA graph right after a 96 MB memset that evicts L2 (weights come from
 * DRAM, as in a model), the memset's own time subtracted; then what sh_k_igemm_plan picks.
 * The table in docs/cuda-notes.md ("v3") came from this program.
 *   build: cmake --build build-cu --target igemm_sweep   (a CUDA build; not part of `all`)
 *   run:   build-cu/bench/cuda/igemm_sweep                (on the GPU machine) */
#include "backends/cuda/igemm.cu"
#include "backends/cuda/igemm_wg.cu"
#include "backends/cuda/conv_planar.cu"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
__global__ void k_empty() {}
/* random halves in [-1, 1) (a hash of the index), so the tile check below compares real sums */
__global__ void k_fill(__half *p, long n, unsigned seed)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed; h ^= h >> 15; h *= 2246822519u; h ^= h >> 13;
        p[i] = __float2half((h & 0xffff) / 32768.f - 1.f);
    }
}
/* largest |y - ref| over the largest |ref| of an n-element output */
static float rel_diff(const __half *y, const __half *ref, long n)
{
    __half *a = (__half *)malloc(n * 2), *b = (__half *)malloc(n * 2);
    cudaMemcpy(a, y, n * 2, cudaMemcpyDeviceToHost); cudaMemcpy(b, ref, n * 2, cudaMemcpyDeviceToHost);
    float d = 0, m = 1e-20f;
    for (long i = 0; i < n; i++) {
        float u = __half2float(a[i]), v = __half2float(b[i]);
        d = fmaxf(d, fabsf(u - v)); m = fmaxf(m, fabsf(v));
        if (u != u) d = 1e30f;
    }
    free(a); free(b); return d / m;
}
static float timeit(cudaStream_t s, int reps, void (*f)(cudaStream_t, void *), void *arg, bool graph)
{
    cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
    cudaGraphExec_t ex = nullptr;
    if (graph) {
        cudaGraph_t g; cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
        for (int i = 0; i < 50; i++) f(s, arg);
        cudaStreamEndCapture(s, &g); cudaGraphInstantiate(&ex, g, 0);
        cudaGraphLaunch(ex, s);
    } else for (int i = 0; i < 20; i++) f(s, arg);
    cudaStreamSynchronize(s);
    cudaEventRecord(a, s);
    if (graph) for (int i = 0; i < reps / 50; i++) cudaGraphLaunch(ex, s);
    else for (int i = 0; i < reps; i++) f(s, arg);
    cudaEventRecord(b, s); cudaEventSynchronize(b);
    float ms; cudaEventElapsedTime(&ms, a, b); return ms * 1000.f / reps;
}
static __half *g_flush;
struct conv { sh_k_igemm_p p; __half *x, *w, *b, *y; float *part; int *cnt; };
static void run_flush(cudaStream_t s, void *) { cudaMemsetAsync(g_flush, 1, 96 << 20, s); }
static void run_conv(cudaStream_t s, void *v) { conv *c = (conv *)v; run_flush(s, nullptr); sh_k_igemm(c->y, c->x, c->w, c->b, nullptr, &c->p, c->part, c->cnt, s); }
static void run_empty(cudaStream_t s, void *) { k_empty<<<1, 32, 0, s>>>(); }
/* `igemm_sweep C H W K R S`: that one conv with the plan's tile, three launches each after an
 * L2 flush (for Nsight Compute: --kernel-name regex:k_igemm --launch-skip 2 --launch-count 1). */
static int one_conv(char **v, const cudaDeviceProp &pr, cudaStream_t s)
{
    conv c = {};
    sh_k_igemm_p &p = c.p;
    p.n = 1; p.c = atoi(v[1]); p.h = atoi(v[2]); p.w = atoi(v[3]); p.k = atoi(v[4]); p.kh = p.kw = atoi(v[5]);
    p.sh = p.sw = atoi(v[6]); p.ph = p.pw = p.kh / 2; p.dh = p.dw = 1; p.pdl = 0;
    p.oh = (p.h + 2 * p.ph - p.kh) / p.sh + 1; p.ow = (p.w + 2 * p.pw - p.kw) / p.sw + 1;
    p.x_ld = p.c; p.y_ld = p.r_ld = p.k; p.act.act = 3;
    __half *buf; cudaMalloc(&buf, 256 << 20); cudaMemset(buf, 0, 256 << 20);
    cudaMalloc(&c.part, 64 << 20); cudaMalloc(&c.cnt, 4096 * 4); cudaMemset(c.cnt, 0, 4096 * 4);
    cudaMalloc(&g_flush, 96 << 20);
    c.x = buf; c.w = buf + (64 << 20); c.b = buf + (100 << 20); c.y = buf + (110 << 20);
    sh_k_igemm_plan(&p, pr.multiProcessorCount, (int)pr.sharedMemPerBlockOptin);
    printf("c%d %dx%d k%d r%d s%d: tile %dx%d split %d\n", p.c, p.h, p.w, p.k, p.kh, p.sh, p.bm, p.bn, p.splits);
    for (int i = 0; i < 3; i++)
        run_conv(s, &c);
    cudaStreamSynchronize(s);
    printf("last error: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 0;
}

/* `SWEEP_UP=1 igemm_sweep`: the mask prototypes' transposed conv as the upsampling GEMM
 * (256 -> 4 x 256 columns at 80x80, igemm.cuh up_h/up_w) beside the same GEMM stored plainly
 * and a plain GEMM of the same FLOPs and output bytes (256 -> 256 at 160x160), cold L2. */
static int up_gemm(const cudaDeviceProp &pr, cudaStream_t s, float flush_us)
{
    __half *buf; cudaMalloc(&buf, 256 << 20); float *part; cudaMalloc(&part, 64 << 20);
    int *cnt; cudaMalloc(&cnt, 4096 * 4); cudaMemset(cnt, 0, 4096 * 4);
    int geo[3][4] = {{256, 80, 1024, 2}, {256, 80, 1024, 0}, {256, 160, 256, 0}};   /* c, hw, k, up */
    for (auto &gq : geo) {
        conv c = {};
        sh_k_igemm_p &p = c.p;
        p.n = 1; p.c = gq[0]; p.h = p.w = p.oh = p.ow = gq[1]; p.k = gq[2]; p.kh = p.kw = p.sh = p.sw = 1;
        p.dh = p.dw = 1; p.x_ld = p.c; p.up_h = p.up_w = gq[3]; p.y_ld = p.r_ld = gq[3] ? p.k / 4 : p.k;
        c.x = buf; c.w = buf + (16 << 20); c.b = buf + (20 << 20); c.y = buf + (32 << 20); c.part = part; c.cnt = cnt;
        k_fill<<<1024, 256, 0, s>>>(c.x, (long)p.h * p.w * p.c, 1u);
        k_fill<<<1024, 256, 0, s>>>(c.w, (long)p.k * p.c, 2u);
        k_fill<<<64, 256, 0, s>>>(c.b, p.k, 3u);
        for (int wg = 0; wg <= 1; wg++) {
            p.wg = wg;
            sh_k_igemm_plan(&p, pr.multiProcessorCount, (int)pr.sharedMemPerBlockOptin);
            float us = timeit(s, 300, run_conv, &c, true) - flush_us;
            printf("gemm c%d %dx%d k%d up%d %s: tile %dx%d split %d %.1f us\n", p.c, p.h, p.w, p.k, gq[3],
                   wg ? "wgmma" : "mma.sync", p.bm, p.bn, p.splits, us);
        }
    }
    printf("last error: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 0;
}

int main(int argc, char **argv)
{
    cudaStream_t s; cudaStreamCreate(&s);
    cudaDeviceProp pr; cudaGetDeviceProperties(&pr, 0);
    int wgmma = 0;
    sh_k_igemm_init((int)pr.sharedMemPerBlockOptin, &wgmma);
    printf("wgmma kernel: %s\n", wgmma ? "yes" : "no (not an sm_90a build/device)");
    if (getenv("SHOAL_CUDA_WGMMA") && !strcmp(getenv("SHOAL_CUDA_WGMMA"), "0")) wgmma = 0;
    if (argc == 7)
        return one_conv(argv, pr, s);
    /* c, h, w, k, r, s, pad, count in the five reference models (convcmp) */
    int shapes[][8] = {{128, 20, 20, 128, 3, 1, 1, 32}, {128, 40, 40, 128, 3, 1, 1, 24}, {64, 80, 80, 64, 3, 1, 1, 22},
                       {256, 160, 160, 256, 3, 1, 1, 1}, {64, 40, 40, 64, 3, 1, 1, 13}, {64, 20, 20, 64, 3, 1, 1, 13},
                       {128, 40, 40, 64, 3, 1, 1, 5}, {256, 20, 20, 128, 1, 1, 0, 18}, {512, 20, 20, 256, 1, 1, 0, 9},
                       {512, 20, 20, 512, 1, 1, 0, 9}, {256, 40, 40, 128, 1, 1, 0, 14}, {1024, 20, 20, 512, 1, 1, 0, 6},
                       {256, 80, 80, 256, 3, 2, 1, 3}, {192, 80, 80, 256, 1, 1, 0, 2}, {64, 26, 26, 64, 1, 1, 0, 15},
                       {32, 160, 160, 32, 3, 1, 1, 4}, {16, 320, 320, 32, 3, 2, 1, 2}, {3, 640, 640, 32, 3, 2, 1, 2},
                       {64, 80, 80, 64, 1, 1, 0, 10}, {128, 80, 80, 64, 1, 1, 0, 6},
                       /* above 1 GFLOP (cuDNN's unless the own kernel wins) */
                       {128, 160, 160, 128, 3, 1, 1, 2}, {256, 80, 80, 256, 3, 1, 1, 2}, {512, 40, 40, 512, 3, 2, 1, 2},
                       {1024, 40, 40, 512, 1, 1, 0, 4}, {256, 80, 80, 64, 3, 1, 1, 2}, {128, 80, 80, 128, 3, 1, 1, 2}};
    __half *buf; cudaMalloc(&buf, 512 << 20); cudaMemset(buf, 0, 512 << 20);   /* x, w, b, y, ref */
    float *part; cudaMalloc(&part, 256 << 20);   /* split-K partials: 4 x 25600 x 256 floats */ int *cnt; cudaMalloc(&cnt, 4096 * 4); cudaMemset(cnt, 0, 4096 * 4);
    cudaMalloc(&g_flush, 96 << 20);
    float flush_us = timeit(s, 300, run_flush, nullptr, true);
    printf("L2 flush (96 MB memset) %.1f us, subtracted: every conv below runs with cold L2\n", flush_us);
    if (getenv("SWEEP_UP"))
        return up_gemm(pr, s, flush_us);
    printf("empty kernel: %.2f us graph\n", timeit(s, 2000, run_empty, nullptr, true));
    int cfg[4][2] = {{128, 64}, {64, 64}, {64, 32}, {32, 32}};
    int cfg_wg[4][2] = {{128, 64}, {64, 64}, {64, 32}, {64, 16}};
    double tot_pick[2] = {0, 0}, tot_best[2] = {0, 0};
    for (auto &sh : shapes) {
        conv c = {};
        sh_k_igemm_p &p = c.p;
        p.n = 1; p.c = sh[0]; p.h = sh[1]; p.w = sh[2]; p.k = sh[3]; p.kh = p.kw = sh[4]; p.sh = p.sw = sh[5]; p.ph = p.pw = sh[6];
        p.oh = (p.h + 2 * p.ph - p.kh) / p.sh + 1; p.ow = (p.w + 2 * p.pw - p.kw) / p.sw + 1; p.dh = p.dw = 1;
        p.x_ld = p.c; p.y_ld = p.r_ld = p.k; p.act.act = 3;
        c.x = buf; c.w = buf + (64 << 20); c.b = buf + (100 << 20); c.y = buf + (110 << 20); c.part = part; c.cnt = cnt;
        double fl = 2.0 * p.oh * p.ow * p.k * p.c * p.kh * p.kw;
        printf("c%d %dx%d k%d r%d s%d:", p.c, p.h, p.w, p.k, p.kh, p.sh);
        /* the mma.sync 64x32 unsplit result is the reference every other tile must match */
        long ny = (long)p.oh * p.ow * p.k;
        __half *ref = buf + (200 << 20);
        k_fill<<<1024, 256, 0, s>>>(c.x, (long)p.h * p.w * p.c, 1u);
        k_fill<<<1024, 256, 0, s>>>(c.w, (long)p.k * p.kh * p.kw * p.c, 2u);
        k_fill<<<64, 256, 0, s>>>(c.b, p.k, 3u);
        p.wg = 0; p.bm = 64; p.bn = 32; p.splits = 1;
        c.y = ref; run_conv(s, &c); c.y = buf + (110 << 20);
        cudaStreamSynchronize(s);
        float worst = 0;
        for (int wg = 0; wg <= wgmma; wg++) {
            const int (*cf)[2] = wg ? cfg_wg : cfg;
            float best = 1e9, per_cfg[4] = {1e9f, 1e9f, 1e9f, 1e9f}; int bi = 0, bs = 0;
            p.wg = wg;
            for (int ci = 0; ci < 4; ci++) for (int sp : {1, 2, 4}) {
                p.bm = cf[ci][0]; p.bn = cf[ci][1]; p.splits = sp;
                cudaMemsetAsync(c.y, 0xff, ny * 2, s);   /* NaN poison */
                run_conv(s, &c); cudaStreamSynchronize(s);
                worst = fmaxf(worst, rel_diff(c.y, ref, ny));
                float us = timeit(s, 300, run_conv, &c, true) - flush_us;
                if (us < best) { best = us; bi = ci; bs = sp; }
                per_cfg[ci] = fminf(per_cfg[ci], us);
            }
            sh_k_igemm_plan(&p, pr.multiProcessorCount, (int)pr.sharedMemPerBlockOptin);
            float pick = timeit(s, 300, run_conv, &c, true) - flush_us;
            printf(" %s best %dx%d/%d %.1f us %.0f TF, plan %dx%d/%d %.1f |", wg ? "wgmma" : "mma.sync", cf[bi][0], cf[bi][1], bs,
                   best, fl / best * 1e-6, p.bm, p.bn, p.splits, pick);
            tot_pick[wg] += pick * sh[7]; tot_best[wg] += best * sh[7];
            if (wg)   /* every wgmma tile, best over its splits */
                printf(" [%.1f %.1f %.1f %.1f]", per_cfg[0], per_cfg[1], per_cfg[2], per_cfg[3]);
        }
        printf(" max rel diff to the reference %.2e%s\n", worst, worst > 1e-2f ? " MISMATCH" : "");
    }
    printf("weighted total mma.sync: plan %.0f us, best %.0f us\n", tot_pick[0], tot_best[0]);
    if (wgmma)
        printf("weighted total wgmma: plan %.0f us, best %.0f us\n", tot_pick[1], tot_best[1]);
    /* the first layer (conv_planar.cu): 640x640 RGB, fp32 planes in, 3x3/2 into k channels */
    for (int k : {16, 32, 64}) {
        static sh_k_planar_p q;
        q = {1, 3, 640, 640, 320, 320, k, 3, 3, 2, 2, 1, 1, 1, 1, k, {3, 0, 0}};
        static float *xf; if (!xf) cudaMalloc(&xf, 3 * 640 * 640 * 4);
        static __half *wb, *yb; if (!wb) { wb = buf; yb = buf + (110 << 20); }
        float us = timeit(s, 300, [](cudaStream_t st, void *) { run_flush(st, nullptr); sh_k_conv_planar(yb, xf, wb, wb, &q, st); }, nullptr, true) - flush_us;
        printf("planar c3 640x640 -> k%d 320x320: %.1f us (%.1f GB/s of output)\n", k, us, 320.0 * 320 * k * 2 / us * 1e-3);
    }
    printf("last error: %s\n", cudaGetErrorString(cudaGetLastError()));
}
