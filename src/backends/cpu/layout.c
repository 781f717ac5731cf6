/* Activation layouts on the CPU, chosen once per program at compile time.
 *
 * oneDNN's convolutions run in NHWC (brgconv on AVX-512, jit on AVX2); a Conv handed an NCHW
 * tensor transposes it in, and one that hands NCHW on transposes its result back. In a YOLO or
 * SegFormer-like graph most convs sit next to Concat, Split, Add, MaxPool or Resize rather
 * than next to another conv, so keeping NHWC on conv -> conv edges alone left about half the
 * convs transposing. Those ops do not care about the layout (elementwise ops) or have an NHWC
 * kernel (channel Concat/Split, 2-D pooling, Resize over H and W): they are
 * CPU_LAYOUT_FOLLOWS, which ties all their rank-4 activations to one layout.
 *
 * The pass joins tied tensors into groups (union-find) and makes a group NHWC as a whole when
 * every tensor in it is an activation of one float32 image, neither a graph input nor output
 * nor a view, produced and read only by oneDNN convs (as their input 0) or by FOLLOWS nodes.
 * Anything else that touches a group (Reshape, Transpose, MatMul over channels, a GEMM-path
 * conv, an output) keeps it NCHW, and the convs at its edge transpose as before: the layout
 * changes only where an op really needs NCHW. NHWC and NCHW tensors of one image have the same
 * size, so the plan sees the same bytes either way. */
#include "backends/cpu/cpu_impl.h"

static int find_root(int *parent, int t)
{
    while (parent[t] != t) {
        parent[t] = parent[parent[t]];
        t = parent[t];
    }
    return t;
}

static void join(int *parent, int a, int b)
{
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a != b)
        parent[a < b ? b : a] = a < b ? a : b;
}

/* A tensor a FOLLOWS node ties to its layout: rank 4 and more than one value (a single value
 * reads the same in every layout). Constants are never tied. */
static bool tied(const sh_graph *g, int t)
{
    const sh_tensor *x = &g->tensors[t];
    return !x->is_const && x->shape.ndim == 4 && cpu_numel(x) > 1;
}

/* Whether tensor t may be stored NHWC at all, whatever reads it. */
static bool may_be_nhwc(const sh_graph *g, const sh_program *prog, int t)
{
    const sh_tensor *x = &g->tensors[t];
    return !x->is_const && !x->is_input && !x->is_output && x->producer >= 0 && x->dtype == SH_DT_FLOAT32 &&
           x->shape.ndim == 4 && x->shape.d[0] == 1 && prog->alias_of[t] < 0;
}

static cpu_layout_role role_of(const cpu_ctx *ctx, const cpu_layout_node *nd)
{
    if (nd->role == CPU_LAYOUT_FOLLOWS && (ctx->no_layout_flow || !nd->to_nhwc))
        return CPU_LAYOUT_NCHW;
    if (nd->role == CPU_LAYOUT_CONV && !nd->to_nhwc)
        return CPU_LAYOUT_NCHW;
    return nd->role;
}

int cpu_layout_flow(cpu_ctx *ctx, sh_program *prog, const sh_graph *g, cpu_layout_node *nodes,
                    sh_cpu_layout_stats *stats, sh_err *err)
{
    int T = g->n_tensors;
    *stats = (sh_cpu_layout_stats){0};
    int *parent = sh_calloc(ctx->alloc, (size_t)(T ? T : 1), sizeof *parent);
    unsigned char *bad = sh_calloc(ctx->alloc, (size_t)(T ? T : 1), 1);
    if (!parent || !bad) {
        sh_free(ctx->alloc, parent);
        sh_free(ctx->alloc, bad);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cpu compile: out of memory (layout pass, %d tensors)", T);
    }
    for (int t = 0; t < T; t++)
        parent[t] = t;
    /* A tensor another one is a view of keeps the layout the view's reader expects. */
    for (int t = 0; t < T; t++)
        if (prog->alias_of[t] >= 0)
            bad[prog->alias_of[t]] = 1;

    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        if (n->dead || role_of(ctx, &nodes[k]) != CPU_LAYOUT_FOLLOWS)
            continue;
        int first = -1;
        for (int i = 0; i < n->n_inputs + n->n_outputs; i++) {
            int t = i < n->n_inputs ? n->inputs[i] : n->outputs[i - n->n_inputs];
            if (t < 0 || !tied(g, t))
                continue;
            if (first < 0)
                first = t;
            else
                join(parent, first, t);
        }
    }
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        if (n->dead)
            continue;
        cpu_layout_role r = role_of(ctx, &nodes[k]);
        for (int i = 0; i < n->n_inputs; i++) {
            int t = n->inputs[i];
            if (t >= 0 && (r == CPU_LAYOUT_NCHW || (r == CPU_LAYOUT_CONV && i != 0)))
                bad[t] = 1;
        }
        for (int o = 0; o < n->n_outputs; o++) {
            int t = n->outputs[o];
            if (t >= 0 && (r == CPU_LAYOUT_NCHW || (r == CPU_LAYOUT_CONV && o != 0)))
                bad[t] = 1;
        }
    }
    for (int t = 0; t < T; t++)
        if (bad[t] || !may_be_nhwc(g, prog, t))
            bad[find_root(parent, t)] = 1;
    /* From here on bad[] is read at the roots only: a tensor is NHWC when its group is good. */
#define NHWC(t) ((t) >= 0 && may_be_nhwc(g, prog, (t)) && !bad[find_root(parent, (t))])
    for (int t = 0; t < T; t++)
        stats->nhwc_tensors += NHWC(t);
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        if (n->dead)
            continue;
        cpu_layout_role r = role_of(ctx, &nodes[k]);
        if (r == CPU_LAYOUT_CONV) {
            bool in = NHWC(n->inputs[0]), out = NHWC(n->outputs[0]);
            nodes[k].to_nhwc(prog, k, nodes[k].params, in, out);
            stats->transposes += !in + !out;
        } else if (r == CPU_LAYOUT_FOLLOWS && n->n_outputs > 0 && NHWC(n->outputs[0])) {
            nodes[k].to_nhwc(prog, k, nodes[k].params, true, true);
            nodes[k].nhwc = true;
            stats->nhwc_other_ops++;
        }
    }
#undef NHWC
    sh_free(ctx->alloc, parent);
    sh_free(ctx->alloc, bad);
    return 0;
}

void cpu_layout_elementwise(cpu_prep *pp)
{
    const sh_node *n = pp->n;
    const sh_tensor *Y = cpu_out(pp, 0);
    if (!Y || Y->dtype != SH_DT_FLOAT32 || Y->shape.ndim != 4 || Y->shape.d[0] != 1)
        return;
    for (int i = 0; i < n->n_inputs; i++) {
        const sh_tensor *x = cpu_in(pp, i);
        if (!x || x->is_const)
            continue;
        if (cpu_numel(x) == 1)
            continue;
        if (x->dtype != SH_DT_FLOAT32 || !sh_shape_equal(&x->shape, &Y->shape))
            return;
    }
    /* Constants other than single values broadcast along NCHW axes (a per-channel scale). */
    for (int i = 0; i < n->n_inputs; i++) {
        const sh_tensor *x = cpu_in(pp, i);
        if (x && x->is_const && cpu_numel(x) != 1)
            return;
    }
    pp->layout = CPU_LAYOUT_FOLLOWS;
    pp->to_nhwc = cpu_layout_keep;
}

void cpu_layout_keep(sh_program *prog, int k, void *params, bool in_nhwc, bool out_nhwc)
{
    (void)prog;
    (void)k;
    (void)params;
    (void)in_nhwc;
    (void)out_nhwc;
}
