#include "backends/cuda/kcommon.cuh"
#include "backends/cuda/decode.cuh"

/* Score filtering on the device so that only survivors cross PCIe: a thread per candidate,
 * best class (times objectness), an atomic append. Survivor order is not deterministic; the
 * host sorts by score before NMS. */
__global__ void k_filter(sh_k_candidate *out, int *count, const float *x, sh_k_filter_p p)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= p.n)
        return;
    long es = p.channels_first ? p.n : 1;                      /* stride between attributes */
    const float *c = x + (p.channels_first ? (long)i : (long)i * p.attrs);
    float obj = p.obj_idx >= 0 ? c[p.obj_idx * es] : 1.f;
    if (obj < p.thresh)
        return;
    float best = -INFINITY;
    int bc = 0;
    for (int k = 0; k < p.n_cls; k++) {
        float v = c[(p.cls_off + k) * es];
        if (v > best) {
            best = v;
            bc = k;
        }
    }
    float score = best * obj;
    if (!(score >= p.thresh))
        return;
    int slot = atomicAdd(count, 1);
    if (slot >= p.max_out)
        return;
    sh_k_candidate r;
    r.index = i;
    r.cls = bc;
    r.score = score;
    for (int k = 0; k < 4; k++)
        r.box[k] = c[(p.box_off + k) * es];
    out[slot] = r;
}

extern "C" cudaError_t sh_k_filter(sh_k_candidate *out, int *count, const float *x,
                                   const sh_k_filter_p *p, cudaStream_t s)
{
    cudaError_t e = cudaMemsetAsync(count, 0, sizeof(int), s);
    if (e != cudaSuccess)
        return e;
    if (p->n > 0)
        k_filter<<<k_blocks(p->n, 256), 256, 0, s>>>(out, count, x, *p);
    return cudaGetLastError();
}
