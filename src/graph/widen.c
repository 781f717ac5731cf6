/* fp16 exports (ultralytics half=True) computed in float32.
 *
 * A half export stores its weights, its input and its outputs as float16 and casts to
 * float16 wherever the traced code made a float. shoal's backends pick their own precision
 * (the CPU computes in float32, CUDA packs weights to fp16 itself), so the graph is widened
 * once after import: fp16 constants become float32 values (exact), every tensor typed float16
 * becomes float32, and Cast to float16 becomes Cast to float32. The runtime then feeds and
 * reads float32 at the boundary as for any model. The result differs from a true fp16 run
 * only by the roundings fp16 would have added. */
#include "graph/passes-impl.h"

#include <string.h>

#include "core/half.h"

#define ONNX_FLOAT 1
#define ONNX_FLOAT16 10

int sh_graph_widen_fp16(sh_graph *g, bool *widened, sh_err *err)
{
    bool any = false;
    for (int t = 0; t < g->n_tensors; t++) {
        sh_tensor *x = &g->tensors[t];
        if (x->dtype != SH_DT_FLOAT16)
            continue;
        any = true;
        if (x->is_const && x->data) {
            size_t n = x->nbytes / 2, bytes;
            if (!sh_mul_size(n, sizeof(float), &bytes))
                return sh_errf(err, SHOAL_ERR_NO_MEMORY, "fp16 constant '%s' is too large to widen", x->name);
            float *w = sh_alloc(g->alloc, bytes ? bytes : 1);
            if (!w)
                return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory widening fp16 constant '%s' (%zu bytes)",
                               x->name, bytes);
            const uint16_t *h = x->data;
            for (size_t i = 0; i < n; i++)
                w[i] = sh_f16_to_f32(h[i]);
            sh_free(g->alloc, x->data);
            x->data = w;
            x->nbytes = bytes;
        }
        x->dtype = SH_DT_FLOAT32;
    }
    for (int k = 0; k < g->n_nodes; k++) {
        sh_node *n = &g->nodes[k];
        if (n->op != SH_OP_CAST)
            continue;
        for (int i = 0; i < n->n_attrs; i++)
            if (n->attrs[i].type == SH_ATTR_INT && n->attrs[i].i == ONNX_FLOAT16 && !strcmp(n->attrs[i].name, "to")) {
                n->attrs[i].i = ONNX_FLOAT;
                any = true;
            }
    }
    if (widened)
        *widened = any;
    return 0;
}
