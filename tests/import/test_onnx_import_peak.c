/* What the import holds at once: a model whose weights are most of its bytes must load with the
 * allocator's peak near its constants plus one initializer in flight, not near the file plus a
 * copy of it (protobuf-c copies every bytes field, so unpacking the whole ModelProto held both);
 * from a caller's buffer the same, the buffer not being the importer's. The models are written
 * here by a small protobuf encoder of their own, so the test needs no files; the constants'
 * values are compared with what was written, a file and a buffer of the same model must give the
 * same graph, and a wire error inside an initializer must name its byte offset in the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "import/onnx_import.h"

#define N_WEIGHTS 8
#define WEIGHT_FLOATS (256 * 1024)   /* 1 MiB each */
/* the graph, names, the split's skeleton and index, protobuf-c's small structs */
#define SLACK_BYTES (256 * 1024)

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
} wbuf;

static void put(wbuf *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_varint(wbuf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        tmp[n++] |= v ? 0x80 : 0;
    } while (v);
    put(b, tmp, n);
}

static void put_int(wbuf *b, int field, uint64_t v)
{
    put_varint(b, (uint64_t)field << 3);
    put_varint(b, v);
}

static void put_bytes(wbuf *b, int field, const void *p, size_t n)
{
    put_varint(b, (uint64_t)field << 3 | 2);
    put_varint(b, n);
    put(b, p, n);
}

static void put_str(wbuf *b, int field, const char *s)
{
    put_bytes(b, field, s, strlen(s));
}

static void put_msg(wbuf *b, int field, wbuf *m)
{
    put_bytes(b, field, m->p, m->len);
    free(m->p);
    *m = (wbuf){0};
}

static float weight_value(int w, size_t i)
{
    return (float)(w + 1) * 0.25f + (float)(i % 1021) * 1e-3f;   /* never zero */
}

/* ValueInfoProto: a float tensor of shape [n] */
static void put_value_info(wbuf *b, int field, const char *name, size_t n)
{
    wbuf dim = {0}, shape = {0}, tt = {0}, type = {0}, vi = {0};
    put_int(&dim, 1, n);                 /* dim_value */
    put_msg(&shape, 1, &dim);            /* TensorShapeProto.dim */
    put_int(&tt, 1, 1);                  /* elem_type FLOAT */
    put_msg(&tt, 2, &shape);
    put_msg(&type, 1, &tt);              /* TypeProto.tensor_type */
    put_str(&vi, 1, name);
    put_msg(&vi, 2, &type);
    put_msg(b, field, &vi);
}

/* Y = ((X + W0) + W1) ... + W7, every W a 1 MiB float initializer. `bad_at`, when not NULL,
 * puts a group-start field (wire type 3) in the last initializer and receives its offset. */
static wbuf make_model(size_t *bad_at)
{
    wbuf graph = {0};
    char in[16], out[16], w[16];
    for (int k = 0; k < N_WEIGHTS; k++) {
        wbuf node = {0};
        snprintf(in, sizeof in, k ? "y%d" : "x", k - 1);
        snprintf(w, sizeof w, "w%d", k);
        snprintf(out, sizeof out, "y%d", k);
        put_str(&node, 1, in);
        put_str(&node, 1, w);
        put_str(&node, 2, out);
        put_str(&node, 4, "Add");
        put_msg(&graph, 1, &node);
    }
    put_str(&graph, 2, "peak");
    size_t bad_in_graph = 0;
    float *v = malloc(WEIGHT_FLOATS * sizeof *v);
    assert_non_null(v);
    for (int k = 0; k < N_WEIGHTS; k++) {
        wbuf t = {0};
        for (size_t i = 0; i < WEIGHT_FLOATS; i++)
            v[i] = weight_value(k, i);
        snprintf(w, sizeof w, "w%d", k);
        put_int(&t, 1, WEIGHT_FLOATS);   /* dims */
        put_int(&t, 2, 1);               /* data_type FLOAT */
        put_str(&t, 8, w);
        size_t bad_in_t = 0;
        if (bad_at && k == N_WEIGHTS - 1) {
            bad_in_t = t.len;
            put_varint(&t, 20 << 3 | 3);   /* a group: wire type 3 */
        }
        put_bytes(&t, 9, v, WEIGHT_FLOATS * sizeof(float));   /* raw_data */
        if (bad_in_t) {   /* where t lands: after the graph so far and the field's key and length */
            wbuf hdr = {0};
            put_varint(&hdr, 5 << 3 | 2);
            put_varint(&hdr, t.len);
            bad_in_graph = graph.len + hdr.len + bad_in_t;
            free(hdr.p);
        }
        put_msg(&graph, 5, &t);
    }
    free(v);
    put_value_info(&graph, 11, "x", WEIGHT_FLOATS);
    snprintf(out, sizeof out, "y%d", N_WEIGHTS - 1);
    put_value_info(&graph, 12, out, WEIGHT_FLOATS);

    wbuf model = {0}, opset = {0};
    put_int(&model, 1, 8);   /* ir_version */
    put_str(&model, 2, "test_onnx_import_peak");
    put_varint(&model, 7 << 3 | 2);
    put_varint(&model, graph.len);
    size_t graph_at = model.len;
    put(&model, graph.p, graph.len);
    free(graph.p);
    put_str(&opset, 1, "");
    put_int(&opset, 2, 13);
    put_msg(&model, 8, &opset);
    if (bad_at)
        *bad_at = graph_at + bad_in_graph;
    return model;
}

static void check_weights(const sh_graph *g)
{
    char w[16];
    for (int k = 0; k < N_WEIGHTS; k++) {
        snprintf(w, sizeof w, "w%d", k);
        int t = sh_graph_find_tensor(g, w);
        assert_true(t >= 0);
        const sh_tensor *x = &g->tensors[t];
        assert_true(x->is_const);
        assert_int_equal(x->nbytes, WEIGHT_FLOATS * sizeof(float));
        const float *d = x->data;
        for (size_t i = 0; i < WEIGHT_FLOATS; i++)
            if (d[i] != weight_value(k, i))
                fail_msg("%s[%zu] = %g, written %g", w, i, (double)d[i], (double)weight_value(k, i));
    }
}

static void write_file(const char *path, const wbuf *m)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(m->p, 1, m->len, f), m->len);
    assert_int_equal(fclose(f), 0);
}

static void test_file_peak(void **state)
{
    (void)state;
    wbuf m = make_model(NULL);
    char path[] = "/tmp/shoal_import_peak_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_file(path, &m);

    sh_allocator *a = sh_allocator_create();
    sh_graph *g = NULL;
    sh_err err;
    int rc = sh_onnx_load_file(a, path, &g, &err);
    unlink(path);
    if (rc)
        fail_msg("load: %s", err.msg);
    check_weights(g);
    size_t consts = (size_t)N_WEIGHTS * WEIGHT_FLOATS * sizeof(float);
    size_t one = WEIGHT_FLOATS * sizeof(float);
    sh_alloc_stats st = sh_allocator_stats(a);
    /* the file's bytes and protobuf-c's copy at once would be 2 * consts */
    if (st.peak > consts + 2 * one + SLACK_BYTES)
        fail_msg("import peak %zu bytes for %zu bytes of constants (file %zu): more than one initializer "
                 "(%zu bytes) in flight", st.peak, consts, m.len, one);
    assert_true(st.peak >= consts);
    sh_graph_destroy(g);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
    free(m.p);
}

static void test_buffer_peak(void **state)
{
    (void)state;
    wbuf m = make_model(NULL);
    sh_allocator *a = sh_allocator_create();
    sh_graph *g = NULL;
    sh_err err;
    if (sh_onnx_load_buffer(a, m.p, m.len, NULL, &g, &err))
        fail_msg("load: %s", err.msg);
    check_weights(g);
    size_t consts = (size_t)N_WEIGHTS * WEIGHT_FLOATS * sizeof(float);
    sh_alloc_stats st = sh_allocator_stats(a);
    /* protobuf-c's copy of one initializer besides the constants converted so far */
    if (st.peak > consts + WEIGHT_FLOATS * sizeof(float) + SLACK_BYTES)
        fail_msg("import peak %zu bytes for %zu bytes of constants from a buffer", st.peak, consts);
    sh_graph_destroy(g);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
    free(m.p);
}

/* A chain of many small Adds whose initializers sit between the nodes (protobuf allows repeated
 * fields interleaved): the skeleton is far larger than the importer's read-ahead window of a
 * file, and the file and the buffer must give the same graph with the values written. */
#define CHAIN 3000
#define CHAIN_FLOATS 16

static float chain_value(int k, int i)
{
    return (float)(k % 97 + 1) * 0.5f + (float)i * 0.125f;
}

static wbuf make_chain(void)
{
    wbuf graph = {0};
    char in[32], out[32], w[32];
    float v[CHAIN_FLOATS];
    for (int k = 0; k < CHAIN; k++) {
        wbuf node = {0}, t = {0};
        snprintf(in, sizeof in, k ? "chain_activation_%d" : "x", k - 1);
        snprintf(w, sizeof w, "chain_weight_%d", k);
        snprintf(out, sizeof out, "chain_activation_%d", k);
        put_str(&node, 1, in);
        put_str(&node, 1, w);
        put_str(&node, 2, out);
        put_str(&node, 4, "Add");
        put_msg(&graph, 1, &node);
        for (int i = 0; i < CHAIN_FLOATS; i++)
            v[i] = chain_value(k, i);
        put_int(&t, 1, CHAIN_FLOATS);
        put_int(&t, 2, 1);
        put_str(&t, 8, w);
        put_bytes(&t, 9, v, sizeof v);
        put_msg(&graph, 5, &t);
    }
    put_value_info(&graph, 11, "x", CHAIN_FLOATS);
    snprintf(out, sizeof out, "chain_activation_%d", CHAIN - 1);
    put_value_info(&graph, 12, out, CHAIN_FLOATS);
    wbuf model = {0}, opset = {0};
    put_int(&model, 1, 8);
    put_msg(&model, 7, &graph);
    put_str(&opset, 1, "");
    put_int(&opset, 2, 13);
    put_msg(&model, 8, &opset);
    return model;
}

static void test_file_matches_buffer(void **state)
{
    (void)state;
    wbuf m = make_chain();
    assert_true(m.len > 4 * 65536);
    char path[] = "/tmp/shoal_import_chain_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_file(path, &m);
    sh_allocator *a = sh_allocator_create();
    sh_graph *gf = NULL, *gb = NULL;
    sh_err err;
    int rc = sh_onnx_load_file(a, path, &gf, &err);
    unlink(path);
    if (rc)
        fail_msg("file: %s", err.msg);
    if (sh_onnx_load_buffer(a, m.p, m.len, NULL, &gb, &err))
        fail_msg("buffer: %s", err.msg);
    assert_int_equal(gf->n_nodes, CHAIN);
    assert_int_equal(gf->n_nodes, gb->n_nodes);
    assert_int_equal(gf->n_tensors, gb->n_tensors);
    for (int t = 0; t < gf->n_tensors; t++) {
        const sh_tensor *x = &gf->tensors[t], *y = &gb->tensors[t];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->is_const, y->is_const);
        if (!x->is_const)
            continue;
        int k;
        assert_int_equal(sscanf(x->name, "chain_weight_%d", &k), 1);
        assert_int_equal(x->nbytes, CHAIN_FLOATS * sizeof(float));
        assert_memory_equal(x->data, y->data, x->nbytes);
        for (int i = 0; i < CHAIN_FLOATS; i++)
            assert_true(((const float *)x->data)[i] == chain_value(k, i));
    }
    sh_graph_destroy(gf);
    sh_graph_destroy(gb);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
    free(m.p);
}

/* The initializers are checked when they are read, later than the rest: the error must still
 * give the offset in the file, and nothing may stay allocated. */
static void test_bad_initializer_offset(void **state)
{
    (void)state;
    size_t bad_at = 0;
    wbuf m = make_model(&bad_at);
    char path[] = "/tmp/shoal_import_bad_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_file(path, &m);
    char want[64];
    snprintf(want, sizeof want, "wire type 3 at byte %zu", bad_at);
    for (int from_file = 0; from_file < 2; from_file++) {
        sh_allocator *a = sh_allocator_create();
        sh_graph *g = NULL;
        sh_err err;
        int rc = from_file ? sh_onnx_load_file(a, path, &g, &err) : sh_onnx_load_buffer(a, m.p, m.len, NULL, &g, &err);
        assert_int_equal(rc, SHOAL_ERR_PARSE);
        assert_null(g);
        if (!strstr(err.msg, want))
            fail_msg("%s: '%s' does not say '%s'", from_file ? "file" : "buffer", err.msg, want);
        assert_int_equal(sh_allocator_stats(a).in_use, 0);
        sh_allocator_destroy(a);
    }
    unlink(path);
    free(m.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_peak),
        cmocka_unit_test(test_buffer_peak),
        cmocka_unit_test(test_file_matches_buffer),
        cmocka_unit_test(test_bad_initializer_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
