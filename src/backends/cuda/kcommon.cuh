/* Device-side helpers shared by the kernel files (not included from C). */
#ifndef SHOAL_CUDA_KCOMMON_CUH
#define SHOAL_CUDA_KCOMMON_CUH

#include <cuda_fp16.h>
#include <stdlib.h>
#include "backends/cuda/ktypes.h"

/* sh_act values (graph.h); static_assert in cuda_compile.c keeps them in step. */
enum { K_ACT_NONE = 0, K_ACT_RELU, K_ACT_SIGMOID, K_ACT_SILU, K_ACT_HARD_SWISH, K_ACT_HARD_SIGMOID,
       K_ACT_CLIP, K_ACT_EXP };

__device__ __forceinline__ float k_sigmoid(float x) { return 1.f / (1.f + __expf(-x)); }

__device__ __forceinline__ float k_act(float x, sh_k_act a)
{
    switch (a.act) {
    case K_ACT_RELU: return fmaxf(x, 0.f);
    case K_ACT_SIGMOID: return k_sigmoid(x);
    case K_ACT_SILU: return x * k_sigmoid(x);
    case K_ACT_HARD_SWISH: return x * fminf(fmaxf(x * (1.f / 6.f) + 0.5f, 0.f), 1.f);
    case K_ACT_HARD_SIGMOID: return fminf(fmaxf(a.a * x + a.b, 0.f), 1.f);
    case K_ACT_CLIP: return fminf(fmaxf(x, a.a), a.b);
    case K_ACT_EXP: return __expf(x);
    default: return x;
    }
}

/* fp16 saturates instead of overflowing to inf (a finite fp32 value stays finite); NaN stays. */
__device__ __forceinline__ __half k_h(float x)
{
    return __float2half_rn(x != x ? x : fminf(fmaxf(x, -65504.f), 65504.f));
}

/* Programmatic dependent launch (sm_90) for the small kernels, as the own conv has it: a
 * kernel launched by k_launch may start while the stream's previous kernel finishes, so its
 * first statement is k_pdl_begin(), which waits for that kernel's results, then lets the next
 * kernel launch in turn (it waits for this one's the same way). Elsewhere both are no-ops. */
__device__ __forceinline__ void k_pdl_begin()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

/* kernel<<<grid, block, smem, s>>>(args...), as a programmatic dependent of the stream's
 * previous kernel when pdl (the kernel then waits for that one's results itself). */
template <typename... P, typename... A>
static inline cudaError_t k_launch_ex(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                                      bool pdl, A... args)
{
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, args...);
}

/* A small kernel (beginning with k_pdl_begin()), as a programmatic dependent where s.pdl. */
template <typename... P, typename... A>
static inline cudaError_t k_launch(void (*kernel)(P...), dim3 grid, dim3 block, sh_k_stream s, A... args)
{
    return k_launch_ex(kernel, grid, block, 0, s.s, s.pdl, args...);
}

static inline unsigned k_blocks(long n, int threads)
{
    long b = (n + threads - 1) / threads;
    return (unsigned)(b > 0x7fffffffL ? 0x7fffffffL : (b < 1 ? 1 : b));
}

#endif
