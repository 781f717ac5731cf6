/* int8 convolutions chained the way a QDQ backbone chains them (tests/conformance/quant/
 * qdq_conv_chain_silu: three QDQ convs with SiLU between them, which the graph passes fold
 * into QLinearConvs handing uint8 codes to each other), on every CPU path:
 * - the im2col path (oneDNN convolutions off): NCHW everywhere, the reference, itself checked
 *   against onnxruntime's integers by conformance_quant_ort;
 * - oneDNN's int8 convolution where the machine allows it, with the codes kept NHWC from the
 *   input's QuantizeLinear through the convs (cpu_qconv_link_nhwc);
 * - oneDNN's float convolution of the zero-point-corrected values (the bench hook standing for
 *   a machine without VNNI), also linked NHWC.
 * All three must give the same codes, bit for bit (every K here is <= 258, where the float
 * path is exact), on random non-zero inputs, with the output poisoned before each run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backends/backend.h"
#include "graph/graph.h"
#include "runtime/session.h"

const char *sh_backend_cpu_node_path(const sh_program *p, int node);
void sh_backend_cpu_set_conv_impl(sh_backend *b, int impl);
/* cpu_conv_impl (backends/cpu/cpu_impl.h) */
enum { IMPL_DNNL = 0, IMPL_BLAS = 1, IMPL_INT8_AS_F32 = 3 };

#define MODEL SHOAL_SOURCE_DIR "/tests/conformance/quant/qdq_conv_chain_silu/model.onnx"

typedef struct chain_run {
    uint8_t *out;
    size_t n;
    int n_qconv, n_nhwc_in, n_f32;
} chain_run;

static void run_chain(int impl, const float *x, size_t nx, uint8_t poison, chain_run *r)
{
    sh_allocator *a = sh_allocator_create();
    sh_backend cpu;
    sh_backend_params bp = {.alloc = a, .n_threads = 2};
    sh_err err = {0};
    assert_int_equal(sh_backend_cpu_create(&bp, &cpu, &err), 0);
    sh_backend_cpu_set_conv_impl(&cpu, impl);
    sh_session_params sp = sh_session_default_params();
    sp.alloc = a;
    sp.backend = &cpu;
    sh_session *s = NULL;
    if (sh_session_create_file(&sp, MODEL, &s, &err))
        fail_msg("%s: %s", MODEL, err.msg);
    const sh_graph *g = sh_session_graph(s);
    const sh_program *prog = sh_session_program(s);
    memset(r, 0, sizeof *r);
    for (int k = 0; k < g->n_nodes; k++) {
        const char *path = sh_backend_cpu_node_path(prog, k);
        if (!path || g->nodes[k].dead)
            continue;
        r->n_qconv++;
        r->n_nhwc_in += strstr(path, "int8 NHWC in") != NULL;
        r->n_f32 += strncmp(path, "fp32 oneDNN (exact)", 19) == 0;
    }
    sh_tensor_info in;
    assert_int_equal(sh_session_input(s, 0, &in), 0);
    assert_int_equal(sh_shape_numel(&in.shape), (int64_t)nx);
    /* a first run gives the output's buffer, poisoned before the run that counts */
    assert_int_equal(sh_session_set_input(s, 0, SH_DT_FLOAT32, &in.shape, x, nx * sizeof(float), &err), 0);
    assert_int_equal(sh_session_run(s, &err), 0);
    const void *out;
    size_t nbytes;
    sh_tensor_info oi;
    assert_int_equal(sh_session_get_output(s, 0, &oi, &out, &nbytes, &err), 0);
    assert_int_equal(oi.dtype, SH_DT_UINT8);
    memset((void *)out, poison, nbytes);
    assert_int_equal(sh_session_run(s, &err), 0);
    assert_int_equal(sh_session_get_output(s, 0, &oi, &out, &nbytes, &err), 0);
    r->out = malloc(nbytes);
    memcpy(r->out, out, nbytes);
    r->n = nbytes;
    sh_session_destroy(s);
    sh_backend_destroy(&cpu);
    sh_allocator_destroy(a);
}

static void paths_agree_bit_for_bit(void **state)
{
    enum { NX = 1 * 5 * 21 * 18 };
    float x[NX];
    uint64_t rng = 0x243F6A8885A308D3ull;
    for (int i = 0; i < NX; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        float u = (float)((rng >> 40) & 0xFFFFFF) / 16777216.0f;   /* [0, 1) */
        x[i] = (u - 0.5f) * 7.0f + 0.01f;
    }
    chain_run ref, i8, f32;
    run_chain(IMPL_BLAS, x, NX, 0xA5, &ref);
    run_chain(IMPL_DNNL, x, NX, 0x5A, &i8);
    run_chain(IMPL_INT8_AS_F32, x, NX, 0x3C, &f32);
    assert_int_equal(ref.n_qconv, 3);
    assert_int_equal(ref.n_nhwc_in, 0);
    /* the input's QuantizeLinear and the two requantizing convs hand codes on NHWC */
    assert_int_equal(i8.n_nhwc_in, 3);
    assert_int_equal(f32.n_nhwc_in, 3);
    assert_int_equal(f32.n_f32, 3);
    assert_true(ref.n > 0);
    int distinct = 0;
    bool seen[256] = {false};
    for (size_t i = 0; i < ref.n; i++) {
        distinct += !seen[ref.out[i]];
        seen[ref.out[i]] = true;
    }
    assert_true(distinct > 32);   /* codes over a real range, not a saturated constant */
    assert_int_equal(i8.n, ref.n);
    assert_int_equal(f32.n, ref.n);
    assert_memory_equal(i8.out, ref.out, ref.n);
    assert_memory_equal(f32.out, ref.out, ref.n);
    free(ref.out);
    free(i8.out);
    free(f32.out);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(paths_agree_bit_for_bit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
