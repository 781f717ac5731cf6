/* task: classify. A classifier's output is one score per class; the runtime reports its
 * top_k classes as probabilities, each as a detection whose box is the whole picture the
 * model saw, so the results, JSON and drawing paths need nothing of their own. */
#include "runtime/runtime-impl.h"
#include "vision/classify.h"

/* The class count when the output is one vector of scores ([C], [1, C], [1, C, 1, 1]: every
 * dimension but one is 1), else 0. */
static int64_t class_count(const sh_shape *s)
{
    int64_t classes = 1;
    int wide = 0;
    for (int i = 0; i < s->ndim; i++) {
        if (s->d[i] != 1) {
            classes = s->d[i];
            wide++;
        }
    }
    return s->ndim >= 1 && wide <= 1 && classes >= 1 ? classes : 0;
}

int sh_rt_classify_check(const sh_rt_model *m, sh_err *err)
{
    const sh_model_config *c = m->cfg;
    const sh_tensor *t = &m->graph->tensors[m->outputs[0]];
    char buf[64];
    int64_t classes = class_count(&t->shape);
    if (classes == 0)
        return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': output '%s' is %s; task classify expects one score per class "
                       "([1, classes])", c->name, t->name, sh_shape_str(&t->shape, buf, sizeof buf));
    if (c->n_classes && (int64_t)c->n_classes != classes)
        return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': output has %lld classes but the config names %zu", c->name,
                       (long long)classes, c->n_classes);
    return 0;
}

/* scores: auto reads the graph: a Softmax producing the output means probabilities. */
static sh_class_scores scores_kind(const sh_rt_model *m)
{
    switch (m->cfg->scores) {
    case SH_CLASS_OUTPUT_LOGITS: return SH_SCORES_LOGITS;
    case SH_CLASS_OUTPUT_PROBABILITIES: return SH_SCORES_PROBABILITIES;
    case SH_CLASS_OUTPUT_AUTO: break;
    }
    int producer = m->graph->tensors[m->outputs[0]].producer;
    return producer >= 0 && m->graph->nodes[producer].op == SH_OP_SOFTMAX ? SH_SCORES_PROBABILITIES : SH_SCORES_LOGITS;
}

int sh_rt_classify(shoal_runtime_t rt, const sh_rt_model *m, const float *out, const sh_transform *xf,
                   sh_rt_result *r, sh_err *err)
{
    const sh_model_config *c = m->cfg;
    size_t classes = (size_t)class_count(&m->graph->tensors[m->outputs[0]].shape);
    if (!(r->dets = sh_detections_create(rt->alloc)))
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "model '%s': out of memory for the classes", c->name);
    int rc = sh_decode_classify(out, classes, scores_kind(m), (size_t)c->top_k, c->score_threshold, xf, r->dets, err);
    return rc ? sh_err_prefix(err, rc, "model '%s': ", c->name) : 0;
}
