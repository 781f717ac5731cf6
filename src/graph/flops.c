#include "graph/flops.h"

static void add_node(sh_flops *f, const sh_graph *g, const sh_node *n)
{
    const sh_shape *x = &g->tensors[n->inputs[0]].shape, *w = &g->tensors[n->inputs[1]].shape;
    const sh_shape *y = &g->tensors[n->outputs[0]].shape;
    int64_t out = sh_shape_numel(y);
    if (out <= 0)
        return;
    if (n->op == SH_OP_CONV && w->ndim == 4) {
        /* y [N, M, OH, OW], w [M, C/g, kh, kw] */
        double v = 2.0 * (double)out * (double)(w->d[1] * w->d[2] * w->d[3]);
        if (sh_node_int(n, "group", 1) > 1)
            f->conv_grouped += v;
        else if (w->d[2] == 1 && w->d[3] == 1)
            f->conv_1x1 += v;
        else
            f->conv_kxk += v;
    } else if (n->op == SH_OP_CONV_TRANSPOSE && w->ndim == 4) {
        /* x [N, C, H, W], w [C, M/g, kh, kw]: every input pixel scatters a kh x kw patch */
        f->conv_transpose += 2.0 * (double)sh_shape_numel(x) * (double)(w->d[1] * w->d[2] * w->d[3]);
    } else if ((n->op == SH_OP_MATMUL || n->op == SH_OP_GEMM) && x->ndim >= 1) {
        int64_t kdim = x->d[x->ndim - 1];
        if (n->op == SH_OP_GEMM && sh_node_int(n, "transA", 0) && x->ndim == 2)
            kdim = x->d[0];
        f->matmul += 2.0 * (double)out * (double)kdim;
    }
}

sh_flops sh_graph_flops(const sh_graph *g)
{
    sh_flops f = {0};
    for (int k = 0; g && k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        if (!n->dead && n->n_inputs >= 2 && n->inputs[0] >= 0 && n->inputs[1] >= 0 && n->n_outputs >= 1)
            add_node(&f, g, n);
    }
    return f;
}

double sh_flops_total(const sh_flops *f)
{
    return f->conv_1x1 + f->conv_kxk + f->conv_grouped + f->conv_transpose + f->matmul;
}
