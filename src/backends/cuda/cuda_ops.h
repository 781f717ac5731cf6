/* Shared between cuda_compile.c and cuda_ops.c: per-op builders and attribute helpers. */
#ifndef SHOAL_CUDA_OPS_H
#define SHOAL_CUDA_OPS_H

#include "backends/cuda/cuda_impl.h"

int sh_cuda_const_ints(const sh_tensor *t, int64_t *v, int cap);      /* count or -1 */
int sh_cuda_const_floats(const sh_tensor *t, float *v, int cap);      /* count or -1 */
float sh_cuda_const_scalar(const sh_tensor *t, float dflt);
bool sh_cuda_is_param_slot(const sh_node *n, int slot);
void sh_cuda_kernel_geom(const sh_node *n, const sh_tensor *w, int ns, int64_t *k, int64_t *s,
                         int64_t *dil);
bool sh_cuda_spatial_pads(const sh_node *n, const sh_shape *in, const sh_shape *out,
                          const int64_t *k, const int64_t *s, const int64_t *dil, int64_t *pb,
                          int64_t *pe, bool need_sym);
sh_k_act sh_cuda_node_act(const sh_node *n);
int sh_cuda_slice_params(const sh_graph *g, const sh_node *n, int64_t *start, int64_t *step);

#define SH_CUDA_ALIGN 256

sh_k_copy sh_cuda_layout_copy(int64_t nn, int64_t cc, int64_t hh, int64_t ww, bool from_cl);
/* Whether the transposed conv n runs as the own kernel's upsampling GEMM (kernel == stride). */
bool sh_cuda_convt_gemm_fits(const sh_cuda_ctx *c, const sh_graph *g, const sh_node *n);
int sh_cuda_build_conv(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn,
                       sh_cuda_prog *cp, sh_err *err);
void sh_cuda_fuse_residual(const sh_cuda_ctx *c, const sh_graph *g, sh_program *p, sh_cuda_prog *cp, int k);
int sh_cuda_build_concat(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn,
                         const bool *aliased_in, bool cl, sh_err *err);
int sh_cuda_build_split(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn,
                        const bool *aliased_out, bool cl, sh_err *err);
int sh_cuda_build_slice(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn, sh_err *err);
int sh_cuda_build_transpose(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn, sh_err *err);
int sh_cuda_build_expand(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn, sh_err *err);
int sh_cuda_build_gather(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn, sh_err *err);
int sh_cuda_build_pad(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn, sh_err *err);
void sh_cuda_build_bcast(const sh_shape *a, const sh_shape *b, const sh_shape *y, bool a_cl, bool b_cl,
                         bool y_cl, sh_k_bcast *bc, bool *flat);
void sh_cuda_storage_shape(const sh_shape *s, bool cl, sh_shape *out);
int sh_cuda_storage_axis(int axis, int ndim, bool cl);
int sh_cuda_build_pool(const sh_graph *g, const sh_node *n, sh_cuda_node *cn, bool cl, sh_err *err);
int sh_cuda_build_reduce(const sh_graph *g, const sh_node *n, sh_cuda_node *cn, sh_err *err);
int sh_cuda_build_resize(const sh_graph *g, const sh_node *n, sh_cuda_node *cn, bool cl, sh_err *err);
int sh_cuda_build_softmax(const sh_graph *g, const sh_node *n, sh_cuda_node *cn, sh_err *err);
/* tview: per tensor, 1 where it is its source with the last two axes swapped (read so). */
int sh_cuda_build_gemm(const sh_graph *g, const sh_node *n, sh_cuda_node *cn, const unsigned char *tview,
                       sh_err *err);

/* The frame ops (cuda_frame.c): which nodes they are and whether this backend runs one; the
 * storage of their own tensors (after the default fp16/fp32 choice); whether graph input t is
 * one of theirs (u8 frame, i32 size); a node's parameters and workspace; its launches. */
bool sh_cuda_is_frame_op(sh_op op);
bool sh_cuda_frame_supports(const sh_graph *g, const sh_node *n);
void sh_cuda_frame_storage(const sh_graph *g, sh_program *p, sh_cuda_prog *cp);
bool sh_cuda_frame_input_ok(const sh_graph *g, int t);
int sh_cuda_build_frame(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, const sh_cuda_prog *cp,
                        sh_cuda_node *cn, sh_err *err);
int sh_cuda_run_frame(sh_cuda_ctx *c, cudaStream_t s, const sh_node *n, const sh_cuda_node *cn, void *const *tp,
                      char *ws, sh_err *err);

#endif
