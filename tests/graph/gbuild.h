/* Tiny graph builder for the graph-pass tests (one static graph per test function). */
#ifndef SHOAL_TESTS_GBUILD_H
#define SHOAL_TESTS_GBUILD_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "graph/passes.h"

static sh_allocator *AL;
static sh_graph *G;
static sh_err ERR;
static int INS[32], N_INS, OUTS[32], N_OUTS;

#define IDS(...) (int[]){__VA_ARGS__}, (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int))
#define I64(...) (int64_t[]){__VA_ARGS__}, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))

static inline void begin(int opset)
{
    AL = sh_allocator_create();
    G = sh_graph_create(AL, "t");
    G->opset = opset;
    N_INS = N_OUTS = 0;
    memset(&ERR, 0, sizeof ERR);
}

static inline void end(void)
{
    sh_graph_destroy(G);
    assert_int_equal(sh_allocator_stats(AL).in_use, 0);
    sh_allocator_destroy(AL);
    G = NULL;
}

static inline sh_shape S(int n, ...)
{
    sh_shape s = {n, {0}};
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        s.d[i] = va_arg(ap, int);   /* dims are passed as int literals */
    va_end(ap);
    return s;
}

static inline int input(const char *name, sh_dtype dt, sh_shape s)
{
    int t = sh_graph_add_tensor(G, name, dt, &s);
    INS[N_INS++] = t;
    return t;
}

static inline int cst(const char *name, sh_dtype dt, sh_shape s, const void *data)
{
    int t = sh_graph_add_tensor(G, name, dt, &s);
    size_t n = (size_t)sh_shape_numel(&s) * sh_dtype_size(dt);
    assert_int_equal(sh_graph_set_const(G, t, data, n, &ERR), 0);
    return t;
}

static inline int ci64(const char *name, const int64_t *v, int n)
{
    return cst(name, SH_DT_INT64, S(1, n), v);
}

static inline int sc64(const char *name, int64_t v)   /* scalar */
{
    return cst(name, SH_DT_INT64, S(0), &v);
}

static inline int tens(const char *name)
{
    sh_shape u = {-1, {0}};
    return sh_graph_add_tensor(G, name, SH_DT_UNDEFINED, &u);
}

/* Adds node `name` reading ins, writing fresh tensors named after the node ("name", or
 * "name:1".. for extra outputs); returns the node index, output 0 in *out when out != NULL. */
static inline int node(sh_op op, const char *name, const int *ins, int nin, int nout, int *out)
{
    int o[8];
    for (int i = 0; i < nout; i++) {
        char nm[64];
        if (i == 0)
            snprintf(nm, sizeof nm, "%s", name);
        else
            snprintf(nm, sizeof nm, "%s:%d", name, i);
        o[i] = tens(nm);
    }
    int k = sh_graph_add_node(G, name, op, ins, nin, o, nout);
    assert_true(k >= 0);
    if (out)
        *out = o[0];
    return k;
}

static inline int un(sh_op op, const char *name, int x)
{
    int y;
    node(op, name, &x, 1, 1, &y);
    return y;
}

static inline int bin(sh_op op, const char *name, int a, int b)
{
    int y;
    node(op, name, IDS(a, b), 1, &y);
    return y;
}

static inline void output(int t)
{
    OUTS[N_OUTS++] = t;
}

static inline int infer(void)
{
    sh_graph_set_inputs(G, INS, N_INS);
    sh_graph_set_outputs(G, OUTS, N_OUTS);
    return sh_graph_infer_shapes(G, &ERR);
}

static inline int optimize(const sh_optimize_params *p)
{
    sh_graph_set_inputs(G, INS, N_INS);
    sh_graph_set_outputs(G, OUTS, N_OUTS);
    return sh_graph_optimize(G, p, &ERR);
}

/* the tensor named `name` (indices change when passes compact the graph) */
static inline const sh_tensor *T(const char *name)
{
    int t = sh_graph_find_tensor(G, name);
    if (t < 0)
        fail_msg("no tensor '%s'", name);
    return &G->tensors[t];
}

/* the live node named `name`, or NULL */
static inline const sh_node *N(const char *name)
{
    for (int k = 0; k < G->n_nodes; k++)
        if (!G->nodes[k].dead && strcmp(G->nodes[k].name, name) == 0)
            return &G->nodes[k];
    return NULL;
}

#define expect_shape(name, dt, ...)                                                     \
    do {                                                                                \
        const sh_tensor *x_ = T(name);                                                  \
        sh_shape want_ = S(__VA_ARGS__);                                                \
        char b1_[128], b2_[128];                                                        \
        if (x_->dtype != (dt) || !sh_shape_equal(&x_->shape, &want_))                   \
            fail_msg("'%s': got %s %s, want %s %s", name, sh_dtype_name(x_->dtype),     \
                     sh_shape_str(&x_->shape, b1_, 128), sh_dtype_name(dt),             \
                     sh_shape_str(&want_, b2_, 128));                                   \
    } while (0)

#define expect_infer_error(status, ...)                                                 \
    do {                                                                                \
        int rc_ = infer();                                                              \
        if (rc_ != (status))                                                            \
            fail_msg("status %d, want %d (%s)", rc_, status, ERR.msg);                  \
        const char *parts_[] = {__VA_ARGS__};                                           \
        for (size_t i_ = 0; i_ < sizeof parts_ / sizeof parts_[0]; i_++)                \
            if (!strstr(ERR.msg, parts_[i_]))                                           \
                fail_msg("error '%s' lacks '%s'", ERR.msg, parts_[i_]);                 \
    } while (0)

static inline int count_live(sh_op op)
{
    int c = 0;
    for (int k = 0; k < G->n_nodes; k++)
        c += !G->nodes[k].dead && G->nodes[k].op == op;
    return c;
}

#endif
