/* The malformed-model corpus: every file in corpus/cases.txt either loads ("OK") or fails with
 * the listed message substring, without leaking (the allocator's in_use returns to 0) and, in a
 * sanitizer build, without any ASan/UBSan report. "EXT" cases are loaded from a fresh folder
 * holding the model, w.bin (6 floats 0..5) and link.bin, a symlink to a file outside it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "import/onnx_import.h"

#define CORPUS SHOAL_SOURCE_DIR "/tests/import/corpus"

static char tmp_root[PATH_MAX];

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

static void write_floats(const char *path)
{
    float w[6] = {0, 1, 2, 3, 4, 5};
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(w, sizeof w, 1, f), 1);
    fclose(f);
}

/* Returns the path to load: the corpus file, or a copy in a folder with the side files. */
static const char *prepare(const char *file, int ext, char *path, size_t cap)
{
    if (!ext) {
        snprintf(path, cap, "%s/%s", CORPUS, file);
        return path;
    }
    char dir[PATH_MAX + 64], p[PATH_MAX + 160];
    assert_true(snprintf(dir, sizeof dir, "%s/model_%s", tmp_root, file) < (int)sizeof dir);
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/w.bin", dir);
    write_floats(p);
    snprintf(p, sizeof p, "%s/outside.bin", tmp_root);
    write_floats(p);
    char link_path[PATH_MAX + 160];
    snprintf(link_path, sizeof link_path, "%s/link.bin", dir);
    unlink(link_path);
    assert_int_equal(symlink(p, link_path), 0);
    snprintf(p, sizeof p, "%s/%s", CORPUS, file);
    assert_true(snprintf(path, cap, "%s/%s", dir, file) < (int)cap);
    copy_file(p, path);
    /* w.bin also one level up, so a '../w.bin' escape would find a file if it were allowed */
    snprintf(p, sizeof p, "%s/w.bin", tmp_root);
    write_floats(p);
    return path;
}

static const sh_tensor *tensor(const sh_graph *g, const char *name)
{
    int t = sh_graph_find_tensor(g, name);
    assert_true(t >= 0);
    return &g->tensors[t];
}

/* Values of the "ok_*" models beyond "it loads". */
static void check_ok(const char *file, const sh_graph *g)
{
    assert_int_equal(g->n_outputs >= 1, 1);
    if (strcmp(file, "ok_ir3_weights_as_inputs.onnx") == 0) {
        assert_int_equal(g->n_inputs, 1);
        assert_string_equal(g->tensors[g->inputs[0]].name, "X");
        assert_true(tensor(g, "W")->is_const);
        assert_int_equal(g->nodes[0].opset, 1);     /* Conv-1 at opset 7 */
    } else if (strcmp(file, "ok_dynamic_dims.onnx") == 0) {
        const sh_tensor *x = tensor(g, "X");
        assert_int_equal(x->shape.ndim, 4);
        assert_int_equal(x->shape.d[0], -1);
        assert_int_equal(x->shape.d[1], 3);
        assert_int_equal(x->shape.d[2], -1);
        assert_int_equal(x->shape.d[3], 4);
    } else if (strcmp(file, "ok_opset27.onnx") == 0) {
        assert_int_equal(g->opset, 27);
        for (int k = 0; k < g->n_nodes; k++)
            assert_int_equal(g->nodes[k].opset, g->nodes[k].op == SH_OP_CONV ? 22 : 14);
    } else if (strcmp(file, "ok_dtypes.onnx") == 0) {
        const sh_tensor *t = tensor(g, "t_f16");
        assert_int_equal(t->dtype, SH_DT_FLOAT16);
        assert_int_equal(((uint16_t *)t->data)[0], 0x3c00);
        assert_int_equal(((uint16_t *)t->data)[1], 0xc000);
        t = tensor(g, "t_bf16");
        assert_int_equal(t->dtype, SH_DT_FLOAT32);
        assert_true(((float *)t->data)[0] == 1.5f && ((float *)t->data)[1] == -3.0f);
        assert_true(((float *)tensor(g, "t_bf16_raw")->data)[0] == 1.5f);
        t = tensor(g, "t_bool");
        assert_int_equal(t->dtype, SH_DT_BOOL);
        assert_memory_equal(t->data, "\1\0\1", 3);
        assert_int_equal(((int8_t *)tensor(g, "t_i8")->data)[0], -5);
        assert_int_equal(((uint8_t *)tensor(g, "t_u8")->data)[0], 200);
        assert_int_equal(((int16_t *)tensor(g, "t_i16")->data)[0], -300);
        assert_int_equal(((uint16_t *)tensor(g, "t_u16")->data)[0], 60000);
        assert_int_equal(((int32_t *)tensor(g, "t_i32")->data)[0], -70000);
        assert_true(((int64_t *)tensor(g, "t_i64")->data)[0] == -(INT64_C(1) << 40));
        assert_true(((uint32_t *)tensor(g, "t_u32")->data)[0] == 4000000000u);
        assert_true(((uint64_t *)tensor(g, "t_u64")->data)[0] == (UINT64_C(1) << 63) + 1);
        assert_true(((double *)tensor(g, "t_f64")->data)[0] == 0.125);
        t = tensor(g, "t_scalar");
        assert_int_equal(t->shape.ndim, 0);
        assert_true(((float *)t->data)[0] == 42.0f);
        t = tensor(g, "t_empty");
        assert_int_equal(t->nbytes, 0);
        assert_true(t->is_const);
        t = tensor(g, "k_ints");       /* Constant value_ints */
        assert_true(t->is_const && t->dtype == SH_DT_INT64 && t->shape.ndim == 1 && t->shape.d[0] == 3);
        assert_true(((int64_t *)t->data)[2] == 3);
        t = tensor(g, "k_float");      /* Constant value_float: a scalar */
        assert_true(t->is_const && t->dtype == SH_DT_FLOAT32 && t->shape.ndim == 0);
        int cos_node = -1;
        for (int k = 0; k < g->n_nodes; k++) {
            assert_true(g->nodes[k].op != SH_OP_CONSTANT);
            if (g->nodes[k].op == SH_OP_CONSTANT_OF_SHAPE)
                cos_node = k;
        }
        assert_true(cos_node >= 0);
        const sh_attr *v = sh_node_attr(&g->nodes[cos_node], "value");
        assert_non_null(v);
        assert_int_equal(v->type, SH_ATTR_TENSOR);
        assert_true(g->tensors[v->tensor].is_const && ((float *)g->tensors[v->tensor].data)[0] == 7.0f);
    } else if (strcmp(file, "ext_good.onnx") == 0) {
        const sh_tensor *t = tensor(g, "B");
        assert_true(((float *)t->data)[0] == 2.0f && ((float *)t->data)[1] == 3.0f);
    } else if (strcmp(file, "good.onnx") == 0) {
        assert_int_equal(g->n_inputs, 1);
        assert_int_equal(g->n_nodes, 2);
        const sh_node *c = &g->nodes[0];
        assert_int_equal(c->op, SH_OP_CONV);
        assert_int_equal(c->opset, 11);
        int n;
        const int64_t *ks = sh_node_ints(c, "kernel_shape", &n);
        assert_int_equal(n, 2);
        assert_int_equal(ks[0], 3);
    }
}

static void test_corpus(void **state)
{
    (void)state;
    FILE *f = fopen(CORPUS "/cases.txt", "r");
    assert_non_null(f);
    snprintf(tmp_root, sizeof tmp_root, "%s/shoal_import_XXXXXX", P_tmpdir);
    assert_non_null(mkdtemp(tmp_root));
    char line[1024];
    int n_cases = 0, n_bad = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        line[strcspn(line, "\n")] = '\0';
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = '\0';
        const char *file = line, *expect = tab + 1;
        int ext = strncmp(expect, "EXT ", 4) == 0;
        if (ext)
            expect += 4;
        char path[PATH_MAX + 128];
        prepare(file, ext, path, sizeof path);
        sh_allocator *a = sh_allocator_create();
        sh_graph *g = NULL;
        sh_err err;
        int rc = sh_onnx_load_file(a, path, &g, &err);
        int ok = strcmp(expect, "OK") == 0;
        if (ok && rc) {
            fprintf(stderr, "FAIL %s: expected to load, got %d: %s\n", file, rc, err.msg);
            n_bad++;
        } else if (!ok && (rc == 0 || !strstr(err.msg, expect))) {
            fprintf(stderr, "FAIL %s: expected error containing \"%s\", got %d: %s\n", file, expect, rc,
                    rc ? err.msg : "(loaded)");
            n_bad++;
        } else if (!ok) {
            assert_null(g);
            printf("ok   %-34s %s\n", file, err.msg);
        }
        if (ok && !rc) {
            check_ok(file, g);
            printf("ok   %-34s loaded: %d nodes, %d tensors\n", file, g->n_nodes, g->n_tensors);
        }
        sh_graph_destroy(g);
        assert_int_equal(sh_allocator_stats(a).in_use, 0);
        sh_allocator_destroy(a);
        n_cases++;
    }
    fclose(f);
    printf("%d corpus cases, %d failed\n", n_cases, n_bad);
    assert_true(n_cases >= 30);
    assert_int_equal(n_bad, 0);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    assert_int_equal(system(cmd), 0);
}

/* Byte-level damage of a valid model: every truncation length and single-bit flips must either
 * load or fail cleanly, never crash or leak. */
static void test_mutations(void **state)
{
    (void)state;
    FILE *f = fopen(CORPUS "/ok_dtypes.onnx", "rb");
    assert_non_null(f);
    unsigned char buf[8192];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(len > 100 && len < sizeof buf);
    sh_allocator *a = sh_allocator_create();
    int loaded = 0, failed = 0;
    for (size_t cut = 0; cut < len; cut++) {
        sh_graph *g;
        sh_err err;
        if (sh_onnx_load_buffer(a, buf, cut, NULL, &g, &err) == 0) {
            loaded++;
            sh_graph_destroy(g);
        } else {
            failed++;
            assert_true(err.msg[0] != '\0');
        }
    }
    unsigned char copy[8192];
    for (size_t i = 0; i < len; i += 3) {
        memcpy(copy, buf, len);
        copy[i] ^= (unsigned char)(1u << (i % 8));
        sh_graph *g;
        sh_err err;
        if (sh_onnx_load_buffer(a, copy, len, NULL, &g, &err) == 0) {
            loaded++;
            sh_graph_destroy(g);
        } else {
            failed++;
        }
    }
    printf("mutations: %d loaded, %d rejected\n", loaded, failed);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void test_op_versions(void **state)
{
    (void)state;
    char buf[128], why[256];
    assert_string_equal(sh_onnx_op_versions(SH_OP_SOFTMAX, false, buf, sizeof buf), "1, 11, 13");
    assert_string_equal(sh_onnx_op_versions(SH_OP_UPSAMPLE, true, buf, sizeof buf), "7, 9");
    assert_string_equal(sh_onnx_op_versions(SH_OP_SPLIT, false, buf, sizeof buf), "1, 2, 11, 13, 18");
    assert_string_equal(sh_onnx_op_versions(SH_OP_SILU, false, buf, sizeof buf), "");
    sh_op op;
    int since;
    struct { const char *op; int opset, since; } ok[] = {
        {"Softmax", 12, 11}, {"Softmax", 27, 13}, {"Resize", 11, 11}, {"Resize", 27, 19},
        {"Reshape", 27, 25}, {"Reshape", 13, 13}, {"Conv", 21, 11}, {"Conv", 22, 22},
        {"Clip", 12, 12}, {"Pad", 20, 19}, {"Pad", 27, 25}, {"Squeeze", 22, 21}, {"ReduceMean", 27, 18},
        {"Upsample", 9, 9}, {"Upsample", 8, 7}, {"Split", 17, 13}, {"Add", 6, 6}, {"Add", 27, 14},
        {"HardSwish", 14, 14}, {"GlobalAveragePool", 22, 22}, {"MaxPool", 12, 12}, {"Cast", 20, 19},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int rc = sh_onnx_resolve_op("", ok[i].op, ok[i].opset, &op, &since, why, sizeof why);
        if (rc || since != ok[i].since)
            fail_msg("%s at opset %d: rc %d since %d (%s)", ok[i].op, ok[i].opset, rc, since, why);
    }
    assert_int_equal(sh_onnx_resolve_op("ai.onnx", "Relu", 13, &op, &since, why, sizeof why), 0);
    assert_int_equal(op, SH_OP_RELU);
    assert_int_equal(sh_onnx_resolve_op("", "Upsample", 10, &op, &since, why, sizeof why), SHOAL_ERR_UNSUPPORTED);
    assert_non_null(strstr(why, "opset 10 resolves to Upsample-10, which shoal does not implement (implements 7, 9)"));
    assert_int_equal(sh_onnx_resolve_op("", "Expand", 7, &op, &since, why, sizeof why), SHOAL_ERR_UNSUPPORTED);
    assert_int_equal(sh_onnx_resolve_op("ai.onnx.ml", "Relu", 13, &op, &since, why, sizeof why),
                     SHOAL_ERR_UNSUPPORTED);
    assert_int_equal(sh_onnx_resolve_op("", "shoal.SiLU", 13, &op, &since, why, sizeof why), SHOAL_ERR_UNSUPPORTED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op_versions),
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
