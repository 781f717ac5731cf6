/* The tiny exports of gen_export_models.py on the CPU backend against PyTorch's outputs:
 * a plain detect export (fp32 bound), its fp16 twin (fp16 bound, widened at load as the
 * runtime does), the dynamic export at the metadata's size, and the YOLOv10-style NMS-free
 * head (TopK, GatherElements, ReduceMax, Tile, Mod on real data). Every activation and
 * workspace is poisoned with NaN bytes before the run. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backends/backend.h"
#include "core/npy.h"
#include "graph/passes.h"
#include "import/onnx_import.h"

#define DATA SHOAL_SOURCE_DIR "/tests/exports/data/"

typedef struct run_out {
    sh_shape shape;
    sh_dtype dtype;
    float *data;            /* malloc'ed copy of output 0 */
    bool widened;
} run_out;

/* Imports `model`, widens fp16, gives the input the shape of `input`, optimizes, compiles and
 * runs on poisoned buffers; output 0 into *o. */
static void run_model(const char *model, const char *input, run_out *o)
{
    sh_allocator *a = sh_allocator_create();
    sh_err err = {0};
    sh_backend be;
    sh_backend_params bp = {.alloc = a, .n_threads = 1};
    assert_int_equal(sh_backend_cpu_create(&bp, &be, &err), 0);
    sh_graph *g;
    assert_int_equal(sh_onnx_load_file(a, model, &g, &err), 0);
    assert_int_equal(sh_graph_widen_fp16(g, &o->widened, &err), 0);
    sh_npy x;
    assert_int_equal(sh_npy_read_file(a, input, &x, &err), 0);
    assert_int_equal(x.dtype, SH_DT_FLOAT32);
    assert_int_equal(g->n_inputs, 1);
    sh_tensor *in = &g->tensors[g->inputs[0]];
    assert_int_equal(in->dtype, SH_DT_FLOAT32);   /* widened when the export was fp16 */
    in->shape = x.shape;
    sh_optimize_params op = sh_optimize_default_params();
    int rc = sh_graph_optimize(g, &op, &err);
    if (rc)
        fail_msg("%s: %s", model, err.msg);
    sh_program *p;
    rc = be.iface->compile(be.ctx, g, &p, &err);
    if (rc)
        fail_msg("%s: %s", model, err.msg);
    void **ptr = calloc((size_t)g->n_tensors, sizeof *ptr), **ws = calloc((size_t)g->n_nodes + 1, sizeof *ws);
    assert_non_null(ptr);
    assert_non_null(ws);
    for (int t = 0; t < g->n_tensors; t++) {
        if (g->tensors[t].is_const) {
            if (p->weight_bytes[t]) {
                ptr[t] = malloc(p->weight_bytes[t]);
                assert_int_equal(be.iface->pack_weight(be.ctx, p, t, ptr[t], &err), 0);
            }
        } else if (p->alias_of[t] < 0 && p->tensor_bytes[t]) {
            ptr[t] = malloc(p->tensor_bytes[t]);
            memset(ptr[t], 0xFF, p->tensor_bytes[t]);
        }
    }
    for (int t = 0; t < g->n_tensors; t++)
        if (p->alias_of[t] >= 0)
            ptr[t] = (char *)ptr[p->alias_of[t]] + p->alias_offset[t];
    for (int k = 0; k < g->n_nodes; k++)
        if (p->workspace_bytes[k]) {
            ws[k] = malloc(p->workspace_bytes[k]);
            memset(ws[k], 0xFF, p->workspace_bytes[k]);
        }
    int xi = g->inputs[0], yi = g->outputs[0];
    memcpy(ptr[xi], x.data, x.nbytes);
    rc = be.iface->run(be.ctx, p, ptr, ws, 1, &err);
    if (rc)
        fail_msg("%s: %s", model, err.msg);
    o->shape = g->tensors[yi].shape;
    o->dtype = g->tensors[yi].dtype;
    size_t nb = (size_t)sh_shape_numel(&o->shape) * sizeof(float);
    o->data = malloc(nb);
    memcpy(o->data, ptr[yi], nb);
    for (int t = 0; t < g->n_tensors; t++)
        if (!g->tensors[t].is_const ? p->alias_of[t] < 0 : p->weight_bytes[t] > 0)
            free(ptr[t]);
    for (int k = 0; k < g->n_nodes; k++)
        free(ws[k]);
    free(ptr);
    free(ws);
    sh_npy_free(a, &x);
    be.iface->program_free(be.ctx, p);
    sh_graph_destroy(g);
    sh_backend_destroy(&be);
    sh_allocator_destroy(a);
}

/* ||out - ref|| / ||ref|| against the .npy reference, after checking the shape. */
static double rel_l2(const run_out *o, const char *ref_path)
{
    sh_allocator *a = sh_allocator_create();
    sh_err err;
    sh_npy r;
    assert_int_equal(sh_npy_read_file(a, ref_path, &r, &err), 0);
    assert_int_equal(o->dtype, SH_DT_FLOAT32);
    assert_true(sh_shape_equal(&o->shape, &r.shape));
    const float *ref = r.data;
    double se = 0, sr = 0;
    for (int64_t i = 0; i < sh_shape_numel(&r.shape); i++) {
        assert_false(isnan(o->data[i]));
        se += ((double)o->data[i] - ref[i]) * ((double)o->data[i] - ref[i]);
        sr += (double)ref[i] * ref[i];
    }
    sh_npy_free(a, &r);
    sh_allocator_destroy(a);
    assert_true(sr > 0);
    return sqrt(se / sr);
}

static void test_detect_fp32(void **state)
{
    (void)state;
    run_out o;
    run_model(DATA "det.onnx", DATA "det_input.npy", &o);
    assert_false(o.widened);
    double e = rel_l2(&o, DATA "det_output.npy");
    free(o.data);
    if (!(e < 1e-4))
        fail_msg("det.onnx: rel L2 %g against PyTorch", e);
}

/* The half export: fp16 weights, input and output, Casts both ways; PyTorch's fp32 output
 * within the fp16 bound. */
static void test_detect_fp16(void **state)
{
    (void)state;
    run_out o;
    run_model(DATA "det_fp16.onnx", DATA "det_input.npy", &o);
    assert_true(o.widened);
    double e = rel_l2(&o, DATA "det_output.npy");
    free(o.data);
    if (!(e < 1e-2))
        fail_msg("det_fp16.onnx: rel L2 %g against PyTorch's fp32 output", e);
}

/* The dynamic export at 48x64, a size its static twin cannot take. */
static void test_detect_dynamic(void **state)
{
    (void)state;
    run_out o;
    run_model(DATA "det_dynamic.onnx", DATA "dynamic_input.npy", &o);
    assert_int_equal(o.shape.d[2], (48 / 8) * (64 / 8));
    double e = rel_l2(&o, DATA "dynamic_output.npy");
    free(o.data);
    if (!(e < 1e-4))
        fail_msg("det_dynamic.onnx: rel L2 %g against PyTorch", e);
}

/* An NMS-free tail: the rows must be PyTorch's, class ids exactly. */
static void check_end2end(const char *model, const char *ref_path)
{
    run_out o;
    run_model(model, DATA "det_input.npy", &o);
    double e = rel_l2(&o, ref_path);
    sh_allocator *a = sh_allocator_create();
    sh_err err;
    sh_npy r;
    assert_int_equal(sh_npy_read_file(a, ref_path, &r, &err), 0);
    const float *ref = r.data;
    int64_t w = r.shape.d[2];
    for (int64_t j = 0; j < r.shape.d[1]; j++)
        assert_true(o.data[w * j + 5] == ref[w * j + 5]);
    sh_npy_free(a, &r);
    sh_allocator_destroy(a);
    free(o.data);
    if (!(e < 1e-4))
        fail_msg("%s: rel L2 %g against PyTorch", model, e);
}

/* YOLOv10's v10postprocess */
static void test_end2end_head(void **state)
{
    (void)state;
    check_end2end(DATA "e2e.onnx", DATA "e2e_output.npy");
}

/* ultralytics 8.3's end-to-end Detect.postprocess */
static void test_end2end_v8_head(void **state)
{
    (void)state;
    check_end2end(DATA "e2e_v8.onnx", DATA "e2e_v8_output.npy");
}

/* A segmenting NMS-free head (class by ArgMax): its rows */
static void test_end2end_seg_head(void **state)
{
    (void)state;
    check_end2end(DATA "e2e_seg.onnx", DATA "e2e_seg_output0.npy");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect_fp32),
        cmocka_unit_test(test_detect_fp16),
        cmocka_unit_test(test_detect_dynamic),
        cmocka_unit_test(test_end2end_head),
        cmocka_unit_test(test_end2end_v8_head),
        cmocka_unit_test(test_end2end_seg_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
