/* What the CUDA backend offers beyond backend.h. Only built with SHOAL_HAVE_CUDA: callers
 * guard their use with #ifdef SHOAL_HAVE_CUDA.
 *
 * Device-side score filtering for YOLO-style heads: the graph output (fp32 on the device,
 * see backend.h) stays where it is; only candidates scoring >= score_threshold cross to the
 * host. Example (YOLOX-Nano output [1,3549,85]: x y w h obj cls0..cls79):
 *
 *   sh_cuda_filter_params fp = { .n = 3549, .attrs = 85, .channels_first = 0, .box_offset = 0,
 *                                .objectness_index = 4, .cls_offset = 5, .n_classes = 80,
 *                                .score_threshold = 0.3f, .max_out = 1000 };
 *   void *scratch;   // sh_cuda_filter_scratch_bytes(1000) bytes from buffer_alloc (budgeted)
 *   sh_cuda_filter_candidates(&backend, output_dev_ptr, &fp, scratch, host, &n, &err);
 */
#ifndef SHOAL_BACKENDS_CUDA_H
#define SHOAL_BACKENDS_CUDA_H

#include <stdint.h>

#include "backends/backend.h"

typedef struct sh_cuda_filter_params {
    int n;                  /* candidates */
    int attrs;              /* values per candidate */
    int channels_first;     /* 1: layout [attrs, n] (YOLOv8); 0: [n, attrs] (YOLOv5, YOLOX) */
    int box_offset;         /* index of the first of 4 box values (copied raw, undecoded) */
    int objectness_index;   /* -1 when the head has none; else score = obj * best class */
    int cls_offset, n_classes;
    float score_threshold;
    int max_out;            /* capacity of host_out */
} sh_cuda_filter_params;

typedef struct sh_cuda_candidate {
    int32_t index;          /* candidate (anchor) index, for grid/stride decoding on the host */
    int32_t cls;
    float score;
    float box[4];
} sh_cuda_candidate;

/* Device scratch the filter needs (the caller allocates it through the budgeted allocator). */
size_t sh_cuda_filter_scratch_bytes(int max_out);

/* Filters on the device and copies the survivors (unordered) to host_out. *n_found is the
 * number of candidates that passed, which may exceed max_out (then max_out were copied).
 * Ordered after runs already enqueued on the backend's compute stream (the synchronous calls
 * and lane 0; wait for other lanes first, backend.h lane_wait); synchronous on return. */
int sh_cuda_filter_candidates(sh_backend *b, const void *dev_output,
                              const sh_cuda_filter_params *p, void *dev_scratch,
                              sh_cuda_candidate *host_out, int *n_found, sh_err *err);

/* GPU time of one graph replay, split by kind of step (index < SH_CUDA_PROFILE_KINDS; names[k]
 * is NULL past the last kind): captures the program with an event between every two nodes,
 * replays it three times and keeps the last. For benchmarks and notes; synchronous. */
#define SH_CUDA_PROFILE_KINDS 16
int sh_cuda_profile(sh_backend *b, sh_program *p, void *const *tensor_ptrs, void *const *workspace_ptrs,
                    double ms_by_kind[SH_CUDA_PROFILE_KINDS], int count_by_kind[SH_CUDA_PROFILE_KINDS],
                    const char **names, sh_err *err);

#endif
