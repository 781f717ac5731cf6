/* Dead-node removal and the sh_graph_optimize pipeline. */
#include "graph/passes-impl.h"

#include <string.h>

/* A node is live when one of its outputs is a graph output or is read by a live node. Runs
 * to a fixed point instead of relying on order, so it is correct on an unsorted graph too. */
int sh_graph_remove_dead(sh_graph *g, sh_err *err)
{
    if (g->n_tensors == 0)
        return 0;
    int *uses = sh_calloc(g->alloc, (size_t)g->n_tensors, sizeof *uses);
    if (!uses)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "graph '%s': out of memory removing dead nodes", g->name);
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        if (n->dead)
            continue;
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i] >= 0)
                uses[n->inputs[i]]++;
    }
    bool changed = true;
    while (changed) {
        changed = false;
        for (int k = g->n_nodes - 1; k >= 0; k--) {
            sh_node *n = &g->nodes[k];
            if (n->dead)
                continue;
            bool live = false;
            for (int i = 0; i < n->n_outputs && !live; i++) {
                int t = n->outputs[i];
                live = t >= 0 && (uses[t] > 0 || g->tensors[t].is_output);
            }
            if (live)
                continue;
            n->dead = true;
            changed = true;
            for (int i = 0; i < n->n_inputs; i++)
                if (n->inputs[i] >= 0)
                    uses[n->inputs[i]]--;
        }
    }
    sh_free(g->alloc, uses);
    return 0;
}

int sh_graph_optimize(sh_graph *g, const sh_optimize_params *p, sh_err *err)
{
    sh_optimize_params def = sh_optimize_default_params();
    if (!p)
        p = &def;
    int rc;
    if ((rc = sh_graph_infer_fold(g, p, err)) || (rc = sh_graph_remove_dead(g, err)))
        return rc;
    /* before fusion, which would fuse activations into the Convs the fold looks for */
    if (p->fold_qdq && ((rc = sh_graph_fold_qdq(g, NULL, err)) || (rc = sh_graph_remove_dead(g, err))))
        return rc;
    if (p->fuse && ((rc = sh_graph_fuse(g, err)) || (rc = sh_graph_remove_dead(g, err))))
        return rc;
    /* after fusion, which puts the activation between the two into the QLinearConv's table */
    if (p->fold_qdq && ((rc = sh_graph_fold_qdq_requantize(g, NULL, err)) || (rc = sh_graph_remove_dead(g, err))))
        return rc;
    if ((rc = sh_graph_compact(g, err)))
        return rc;
    return sh_graph_finalize(g, err);
}
