/* Activation planner: lifetimes, views, in-place reuse and arena placement. See plan.h. */
#include "plan/plan.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* A block is what gets an offset: the root tensor of a lifetime class (a tensor plus every
 * view and in-place output living in its bytes) or one node's workspace. */
typedef struct block {
    int id;          /* root tensor index, or n_tensors + node for a workspace */
    int first, last; /* steps, inclusive */
    size_t size;     /* aligned */
    size_t offset;
    double key;      /* placement order of the jittered trials (larger first) */
} block;

typedef struct scratch {
    int *tfirst, *tlast;   /* [nt] per-tensor steps */
    int *cfirst, *clast;   /* [nt] per-class steps, valid at class roots */
    char *cout;            /* [nt] class holds a graph output */
    size_t *roff;          /* [nt] offset inside the root */
    int *blk_of;           /* [nt + nn] block index of a root / workspace */
    block *blocks;
} scratch;

static void scratch_free(sh_allocator *a, scratch *s)
{
    sh_free(a, s->tfirst);
    sh_free(a, s->tlast);
    sh_free(a, s->cfirst);
    sh_free(a, s->clast);
    sh_free(a, s->cout);
    sh_free(a, s->roff);
    sh_free(a, s->blk_of);
    sh_free(a, s->blocks);
}

void sh_plan_destroy(sh_allocator *a, sh_plan *plan)
{
    if (!plan)
        return;
    sh_free(a, plan->offset);
    sh_free(a, plan->bytes);
    sh_free(a, plan->root);
    sh_free(a, plan->first);
    sh_free(a, plan->last);
    sh_free(a, plan->ws_offset);
    sh_free(a, plan->ws_bytes);
    sh_free(a, plan);
}

static sh_plan *plan_alloc(sh_allocator *a, size_t nt, size_t nn)
{
    sh_plan *p = sh_calloc(a, 1, sizeof *p);
    if (!p)
        return NULL;
    p->offset = sh_calloc(a, nt, sizeof(size_t));
    p->bytes = sh_calloc(a, nt, sizeof(size_t));
    p->root = sh_calloc(a, nt, sizeof(int));
    p->first = sh_calloc(a, nt, sizeof(int));
    p->last = sh_calloc(a, nt, sizeof(int));
    p->ws_offset = sh_calloc(a, nn, sizeof(size_t));
    p->ws_bytes = sh_calloc(a, nn, sizeof(size_t));
    if (!p->offset || !p->bytes || !p->root || !p->first || !p->last || !p->ws_offset || !p->ws_bytes) {
        sh_plan_destroy(a, p);
        return NULL;
    }
    return p;
}

/* Follows alias_of from t to the tensor that owns the bytes, summing offsets and checking
 * that each view fits inside its parent. */
static int resolve_root(const sh_graph *g, const sh_program *p, int t, int *root, size_t *off, sh_err *err)
{
    int cur = t;
    size_t o = 0;
    for (int hops = 0; p->alias_of[cur] >= 0; hops++) {
        int par = p->alias_of[cur];
        if (par >= g->n_tensors || par == cur || hops > g->n_tensors)
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "graph '%s': tensor '%s' has a bad or cyclic alias chain",
                           g->name, g->tensors[t].name);
        size_t end;
        if (!g->tensors[par].is_const &&
            (!sh_add_size(p->alias_offset[cur], p->tensor_bytes[cur], &end) || end > p->tensor_bytes[par]))
            return sh_errf(err, SHOAL_ERR_INVALID_ARG,
                           "graph '%s': view '%s' (%zu bytes at offset %zu) does not fit in '%s' (%zu bytes)",
                           g->name, g->tensors[cur].name, p->tensor_bytes[cur], p->alias_offset[cur],
                           g->tensors[par].name, p->tensor_bytes[par]);
        if (!sh_add_size(o, p->alias_offset[cur], &o))
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "graph '%s': alias offsets of '%s' overflow", g->name,
                           g->tensors[t].name);
        cur = par;
    }
    *root = cur;
    *off = o;
    return 0;
}

/* ---- placement ------------------------------------------------------------------------
 *
 * Placing blocks (size x [first, last] step interval) in the smallest arena is dynamic storage
 * allocation, NP-hard; the known good heuristics each fail on some shapes, so the planner runs
 * four and keeps the smallest arena (AUTO, the default). Planning runs once per model load and
 * each heuristic is O(B^2) over B blocks (a few hundred to a few thousand), i.e. milliseconds.
 *
 * GREEDY_SIZE (TFLite Micro's greedy_memory_planner, "greedy by size" in Pisarchyk & Lee 2020):
 * sort blocks largest first and give each the lowest offset where it collides with no placed
 * block whose lifetime overlaps its own. It sees the whole lifetime table at once, so the big
 * early maps (a 640x640 stem) go down first and the many small late tensors fill holes.
 * GREEDY_SIZE_TIGHT takes the tightest fitting hole instead of the lowest (TFLite's variant).
 * GREEDY_BREADTH orders by size x lifetime: long-lived blocks (skip connections, concat
 * outputs written in place from their first producer on) go first and the short ones pack
 * around them; that fixes the cases where plain greedy-by-size strands a long block high up.
 * BEST_FIT (ggml-alloc's dynamic allocator): walk the steps in order, allocate each block at
 * its first step from the smallest free hole that fits (else grow the arena), free it after
 * its last step with coalescing. It knows only the past, so a freed mid-size hole is often
 * too small for the next big tensor and the arena grows past the peak.
 *
 * Numbers (tests/plan/test_plan.c prints them; arena / lower bound, lower is better):
 *   60 random DAGs (mean / worst):  greedy-by-size 1.021 / 1.109, -tight 1.023 / 1.109,
 *                                   breadth 1.056 / 1.359, best-fit 1.158 / 1.502,
 *                                   auto 1.016 / 1.088.
 *   YOLOv8-like 640, all backend features (views, concat in place, in place, im2col
 *   workspaces): greedy 1.000, best-fit 1.590. Views + in place only: greedy 1.143,
 *   breadth 1.000, best-fit 1.000. Views + concat in place (w48): greedy 1.333, breadth
 *   1.000, best-fit 1.167. Auto is 1.000 on every YOLO-like case.
 * No single heuristic wins everywhere, greedy-by-size is the most robust one on its own, and
 * running all four costs nothing that matters, hence AUTO. Sizes and offsets stay multiples
 * of the alignment in all four, so every block is aligned. */

static int cmp_size_desc(const void *pa, const void *pb)
{
    const block *a = pa, *b = pb;
    if (a->size != b->size)
        return a->size < b->size ? 1 : -1;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    return a->id < b->id ? -1 : (a->id > b->id);
}

static int cmp_key_desc(const void *pa, const void *pb)
{
    const block *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key < b->key ? 1 : -1;
    return a->id < b->id ? -1 : (a->id > b->id);
}

static int cmp_breadth_desc(const void *pa, const void *pb)
{
    const block *a = pa, *b = pb;
    /* size x lifetime, in long double: the product of two size_t-ish values may overflow. */
    long double ba = (long double)a->size * (a->last - a->first + 1), bb = (long double)b->size * (b->last - b->first + 1);
    if (ba != bb)
        return ba < bb ? 1 : -1;
    return cmp_size_desc(pa, pb);
}

/* Greedy placement in the order given by `cmp`. With `tight`, a block takes the smallest
 * hole (between placed blocks alive with it) that fits, as TFLite Micro does; otherwise the
 * lowest hole that fits. Either way the top of the pile when no hole fits. */
static int place_greedy_in_order(sh_allocator *a, block *b, int nb, bool tight, size_t *arena);

static int place_greedy(sh_allocator *a, block *b, int nb, int (*cmp)(const void *, const void *), bool tight,
                        size_t *arena)
{
    qsort(b, (size_t)nb, sizeof *b, cmp);
    return place_greedy_in_order(a, b, nb, tight, arena);
}

static int place_greedy_in_order(sh_allocator *a, block *b, int nb, bool tight, size_t *arena)
{
    int *by_off = sh_alloc(a, sizeof(int) * (size_t)(nb ? nb : 1));
    if (!by_off)
        return SHOAL_ERR_NO_MEMORY;
    int np = 0;
    size_t end = 0;
    for (int i = 0; i < nb; i++) {
        block *bi = &b[i];
        size_t cand = 0, best = SIZE_MAX, best_gap = SIZE_MAX;
        for (int j = 0; j < np; j++) {
            const block *q = &b[by_off[j]];
            if (q->last < bi->first || q->first > bi->last)
                continue;
            if (q->offset >= cand + bi->size && q->offset - cand < best_gap) {
                best_gap = q->offset - cand;
                best = cand;
                if (!tight)
                    break;   /* the lowest hole; later blocks all start higher */
            }
            if (q->offset + q->size > cand)
                cand = q->offset + q->size;
        }
        if (best != SIZE_MAX)
            cand = best;
        bi->offset = cand;
        int pos = np;
        while (pos > 0 && b[by_off[pos - 1]].offset > cand) {
            by_off[pos] = by_off[pos - 1];
            pos--;
        }
        by_off[pos] = i;
        np++;
        if (cand + bi->size > end)
            end = cand + bi->size;
    }
    sh_free(a, by_off);
    *arena = end;
    return 0;
}

typedef struct hole {
    size_t off, size;
} hole;

static int cmp_first(const void *pa, const void *pb)
{
    const block *a = pa, *b = pb;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    return cmp_size_desc(pa, pb);
}

static int place_best_fit(sh_allocator *a, block *b, int nb, int n_steps, size_t *arena)
{
    qsort(b, (size_t)nb, sizeof *b, cmp_first);
    size_t cap = (size_t)nb + 1;
    hole *h = sh_alloc(a, sizeof *h * cap);
    int *by_last = sh_alloc(a, sizeof(int) * cap);
    if (!h || !by_last) {
        sh_free(a, h);
        sh_free(a, by_last);
        return SHOAL_ERR_NO_MEMORY;
    }
    /* Counting sort of block indices by last step. */
    int *cnt = sh_calloc(a, (size_t)n_steps + 1, sizeof(int));
    if (!cnt) {
        sh_free(a, h);
        sh_free(a, by_last);
        return SHOAL_ERR_NO_MEMORY;
    }
    for (int i = 0; i < nb; i++)
        cnt[b[i].last + 1]++;
    for (int s = 0; s < n_steps; s++)
        cnt[s + 1] += cnt[s];
    for (int i = 0; i < nb; i++)
        by_last[cnt[b[i].last]++] = i;
    sh_free(a, cnt);

    int nh = 0, next_alloc = 0, next_free = 0;
    size_t end = 0;
    for (int step = 0; step < n_steps; step++) {
        for (; next_alloc < nb && b[next_alloc].first == step; next_alloc++) {
            block *bi = &b[next_alloc];
            int best = -1;
            for (int j = 0; j < nh; j++)
                if (h[j].size >= bi->size && (best < 0 || h[j].size < h[best].size))
                    best = j;
            if (best < 0 && nh > 0 && h[nh - 1].off + h[nh - 1].size == end) {
                /* Nothing fits: grow the arena, starting inside the free tail. */
                bi->offset = h[nh - 1].off;
                end = bi->offset + bi->size;
                nh--;
            } else if (best < 0) {
                bi->offset = end;
                end += bi->size;
            } else {
                bi->offset = h[best].off;
                h[best].off += bi->size;
                h[best].size -= bi->size;
                if (h[best].size == 0) {
                    memmove(&h[best], &h[best + 1], sizeof *h * (size_t)(nh - best - 1));
                    nh--;
                }
            }
        }
        for (; next_free < nb && b[by_last[next_free]].last == step; next_free++) {
            const block *bf = &b[by_last[next_free]];
            int pos = 0;
            while (pos < nh && h[pos].off < bf->offset)
                pos++;
            memmove(&h[pos + 1], &h[pos], sizeof *h * (size_t)(nh - pos));
            h[pos].off = bf->offset;
            h[pos].size = bf->size;
            nh++;
            if (pos + 1 < nh && h[pos].off + h[pos].size == h[pos + 1].off) {
                h[pos].size += h[pos + 1].size;
                memmove(&h[pos + 1], &h[pos + 2], sizeof *h * (size_t)(nh - pos - 2));
                nh--;
            }
            if (pos > 0 && h[pos - 1].off + h[pos - 1].size == h[pos].off) {
                h[pos - 1].size += h[pos].size;
                memmove(&h[pos], &h[pos + 1], sizeof *h * (size_t)(nh - pos - 1));
                nh--;
            }
        }
    }
    sh_free(a, h);
    sh_free(a, by_last);
    *arena = end;
    return 0;
}

/* GREEDY_JITTER: greedy-by-size with the order perturbed. The four heuristics above each
 * strand a block on some graphs (on the CPU backend's YOLO11n/s plans all four stop at 1.09x
 * the bound: a long neck tensor lands above a workspace of a later peak). Sizes jittered by
 * up to +-30% reorder blocks of similar size; the best of 48 seeded trials is kept, which
 * costs milliseconds and is deterministic. */
static int place_jitter(sh_allocator *a, block *b, int nb, size_t *arena)
{
    block *trial = sh_alloc(a, sizeof *trial * (size_t)(nb ? nb : 1));
    block *best_order = sh_alloc(a, sizeof *best_order * (size_t)(nb ? nb : 1));
    if (!trial || !best_order) {
        sh_free(a, trial);
        sh_free(a, best_order);
        return SHOAL_ERR_NO_MEMORY;
    }
    size_t best = SIZE_MAX;
    for (uint64_t seed = 1; seed <= 48; seed++) {
        memcpy(trial, b, sizeof *trial * (size_t)nb);
        uint64_t x = seed * 0x9E3779B97F4A7C15ull;
        for (int i = 0; i < nb; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            trial[i].key = (double)trial[i].size * (0.7 + 0.6 * (double)(x >> 11) / 9007199254740992.0);
        }
        qsort(trial, (size_t)nb, sizeof *trial, cmp_key_desc);
        size_t got;
        int rc = place_greedy_in_order(a, trial, nb, false, &got);
        if (rc) {
            sh_free(a, trial);
            sh_free(a, best_order);
            return rc;
        }
        if (got < best) {
            best = got;
            memcpy(best_order, trial, sizeof *trial * (size_t)nb);
        }
    }
    memcpy(b, best_order, sizeof *b * (size_t)nb);
    sh_free(a, trial);
    sh_free(a, best_order);
    *arena = best == SIZE_MAX ? 0 : best;
    return 0;
}

static int place_one(sh_allocator *a, block *b, int nb, int n_steps, sh_plan_strategy st, size_t *arena)
{
    switch (st) {
    case SH_PLAN_GREEDY_SIZE: return place_greedy(a, b, nb, cmp_size_desc, false, arena);
    case SH_PLAN_GREEDY_SIZE_TIGHT: return place_greedy(a, b, nb, cmp_size_desc, true, arena);
    case SH_PLAN_GREEDY_BREADTH: return place_greedy(a, b, nb, cmp_breadth_desc, true, arena);
    case SH_PLAN_BEST_FIT: return place_best_fit(a, b, nb, n_steps, arena);
    case SH_PLAN_GREEDY_JITTER: return place_jitter(a, b, nb, arena);
    default: return SHOAL_ERR_INVALID_ARG;
    }
}

const char *sh_plan_strategy_name(sh_plan_strategy st)
{
    static const char *const names[] = {"greedy-by-size", "greedy-by-size-tight", "greedy-by-breadth", "best-fit",
                                        "greedy-jitter", "auto"};
    _Static_assert(sizeof names / sizeof names[0] == SH_PLAN_STRATEGY_COUNT, "update the strategy names");
    return (unsigned)st < SH_PLAN_STRATEGY_COUNT ? names[st] : "?";
}

/* AUTO runs every heuristic on a copy and keeps the smallest arena (the first on a tie). */
static int place(sh_allocator *a, scratch *s, int nb, int n_steps, sh_plan_strategy st, size_t *arena,
                 sh_plan_strategy *used)
{
    *used = st;
    if (st != SH_PLAN_AUTO)
        return place_one(a, s->blocks, nb, n_steps, st, arena);
    block *trial = sh_alloc(a, sizeof *trial * (size_t)(nb ? nb : 1));
    if (!trial)
        return SHOAL_ERR_NO_MEMORY;
    size_t best = SIZE_MAX;
    for (int k = SH_PLAN_GREEDY_SIZE; k < SH_PLAN_AUTO; k++) {
        size_t got;
        memcpy(trial, s->blocks, sizeof *trial * (size_t)nb);
        int rc = place_one(a, trial, nb, n_steps, (sh_plan_strategy)k, &got);
        if (rc) {
            sh_free(a, trial);
            return rc;
        }
        if (got < best) {
            best = got;
            *used = (sh_plan_strategy)k;
        }
    }
    sh_free(a, trial);
    return place_one(a, s->blocks, nb, n_steps, *used, arena);
}

/* ---- lifetimes ------------------------------------------------------------------------ */

static bool in_arena_root(const sh_graph *g, const sh_program *p, const scratch *s, int r)
{
    return !g->tensors[r].is_const && p->tensor_bytes[r] > 0 && s->cfirst[r] != INT_MAX;
}

/* Grants node k's in-place request when the input's whole class dies at k, is no graph
 * output, and output 0 is a fresh class of the same size starting at k: output 0's class is
 * then folded into the input's class at the input's offset. */
/* The step through which what step k reads stays reserved (backend.h, release_step). */
static int release_of(const sh_program *p, int k)
{
    return p->release_step && p->release_step[k] > k ? p->release_step[k] : k;
}

static void try_inplace(const sh_graph *g, const sh_program *p, scratch *s, sh_plan *plan, int k)
{
    const sh_node *n = &g->nodes[k];
    int slot = p->inplace_input[k];
    if (n->dead || slot < 0 || slot >= n->n_inputs || n->n_outputs < 1)
        return;
    int x = n->inputs[slot], y = n->outputs[0];
    if (x < 0 || y < 0)
        return;
    int rx = plan->root[x], ry = plan->root[y];
    if (rx < 0 || ry != y || rx == ry || !in_arena_root(g, p, s, rx) || !in_arena_root(g, p, s, ry))
        return;
    if (s->clast[rx] != release_of(p, k) || s->cout[rx] || s->cfirst[ry] != k ||
        p->tensor_bytes[x] != p->tensor_bytes[y])
        return;
    for (int t = 0; t < g->n_tensors; t++)
        if (plan->root[t] == ry) {
            plan->root[t] = rx;
            s->roff[t] += s->roff[x];
        }
    if (s->clast[ry] > s->clast[rx])
        s->clast[rx] = s->clast[ry];
    s->cout[rx] |= s->cout[ry];
    s->cfirst[ry] = INT_MAX;
    plan->n_inplace++;
}

static int lifetimes(const sh_graph *g, const sh_program *p, scratch *s, sh_plan *plan, sh_err *err)
{
    int nt = g->n_tensors, last_step = plan->n_steps - 1;
    for (int t = 0; t < nt; t++) {
        const sh_tensor *x = &g->tensors[t];
        s->tfirst[t] = x->is_input ? 0 : INT_MAX;
        s->tlast[t] = -1;
        s->cfirst[t] = INT_MAX;
        s->clast[t] = -1;
        plan->root[t] = -1;
        if (x->is_const && p->alias_of[t] < 0)
            continue;
        int rc = resolve_root(g, p, t, &plan->root[t], &s->roff[t], err);
        if (rc)
            return rc;
    }
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        if (n->dead)
            continue;
        /* what a step writes, too, stays reserved while a step beside it may run */
        int rel = release_of(p, k);
        for (int o = 0; o < n->n_outputs; o++) {
            if (n->outputs[o] < 0)
                continue;
            if (s->tfirst[n->outputs[o]] > k)
                s->tfirst[n->outputs[o]] = k;
            if (rel > k && s->tlast[n->outputs[o]] < rel)
                s->tlast[n->outputs[o]] = rel;
        }
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i] >= 0 && s->tlast[n->inputs[i]] < rel)
                s->tlast[n->inputs[i]] = rel;
    }
    for (int t = 0; t < nt; t++) {
        int r = plan->root[t];
        if (r < 0 || s->tfirst[t] == INT_MAX)
            continue;   /* constant, or a tensor nothing writes (unused) */
        int last = s->tlast[t] > s->tfirst[t] ? s->tlast[t] : s->tfirst[t];
        if (g->tensors[t].is_output) {
            last = last_step;
            s->cout[r] = 1;
        }
        if (s->tfirst[t] < s->cfirst[r])
            s->cfirst[r] = s->tfirst[t];
        if (last > s->clast[r])
            s->clast[r] = last;
    }
    for (int t = 0; t < nt; t++) {
        int r = plan->root[t];
        if (r >= 0 && !g->tensors[r].is_const && p->tensor_bytes[r] == 0 && p->alias_of[t] >= 0)
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "graph '%s': view '%s' lives in '%s', which has no bytes",
                           g->name, g->tensors[t].name, g->tensors[r].name);
    }
    for (int k = 0; k < g->n_nodes; k++)
        try_inplace(g, p, s, plan, k);
    return 0;
}

/* ---- build ---------------------------------------------------------------------------- */

int sh_plan_build(sh_allocator *a, const sh_graph *g, const sh_program *p, size_t alignment, sh_plan **out,
                  sh_err *err)
{
    return sh_plan_build_strategy(a, g, p, alignment, SH_PLAN_AUTO, out, err);
}

int sh_plan_build_strategy(sh_allocator *a, const sh_graph *g, const sh_program *p, size_t alignment,
                           sh_plan_strategy strategy, sh_plan **out, sh_err *err)
{
    if (out)
        *out = NULL;
    if (!g || !p || !out || p->graph != g || alignment == 0 || (alignment & (alignment - 1)) ||
        (unsigned)strategy >= SH_PLAN_STRATEGY_COUNT)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG,
                       "plan: needs a graph, its program, a power-of-two alignment and a known strategy");
    size_t nt = (size_t)(g->n_tensors ? g->n_tensors : 1);
    size_t nn = (size_t)(g->n_nodes ? g->n_nodes : 1);
    sh_plan *plan = plan_alloc(a, nt, nn);
    scratch s = {0};
    int rc = SHOAL_ERR_NO_MEMORY;
    if (!plan)
        goto oom;
    plan->graph = g;
    plan->strategy = strategy;
    plan->n_tensors = g->n_tensors;
    plan->n_nodes = g->n_nodes;
    plan->n_steps = g->n_nodes > 0 ? g->n_nodes : 1;
    plan->alignment = alignment;
    s.tfirst = sh_alloc(a, nt * sizeof(int));
    s.tlast = sh_alloc(a, nt * sizeof(int));
    s.cfirst = sh_alloc(a, nt * sizeof(int));
    s.clast = sh_alloc(a, nt * sizeof(int));
    s.cout = sh_calloc(a, nt, 1);
    s.roff = sh_calloc(a, nt, sizeof(size_t));
    s.blk_of = sh_alloc(a, (nt + nn) * sizeof(int));
    s.blocks = sh_alloc(a, (nt + nn) * sizeof(block));
    if (!s.tfirst || !s.tlast || !s.cfirst || !s.clast || !s.cout || !s.roff || !s.blk_of || !s.blocks)
        goto oom;
    rc = lifetimes(g, p, &s, plan, err);
    if (rc)
        goto fail;

    /* Blocks: class roots, then workspaces. The total bounds every offset, so once it is
     * overflow-checked the placement arithmetic cannot overflow. */
    int nb = 0;
    size_t total = 0;
    for (int t = 0; t < g->n_tensors; t++) {
        s.blk_of[t] = -1;
        if (plan->root[t] != t || !in_arena_root(g, p, &s, t))
            continue;
        block *b = &s.blocks[nb++];
        b->id = t;
        b->first = s.cfirst[t];
        b->last = s.clast[t];
        if (p->tensor_bytes[t] > SIZE_MAX - alignment || !sh_add_size(total, sh_align_up(p->tensor_bytes[t], alignment), &total))
            goto too_big;
        b->size = sh_align_up(p->tensor_bytes[t], alignment);
    }
    for (int k = 0; k < g->n_nodes; k++) {
        s.blk_of[g->n_tensors + k] = -1;
        plan->ws_offset[k] = SIZE_MAX;
        if (g->nodes[k].dead || p->workspace_bytes[k] == 0)
            continue;
        block *b = &s.blocks[nb++];
        b->id = g->n_tensors + k;
        b->first = k;
        b->last = release_of(p, k);
        if (p->workspace_bytes[k] > SIZE_MAX - alignment ||
            !sh_add_size(total, sh_align_up(p->workspace_bytes[k], alignment), &total))
            goto too_big;
        b->size = sh_align_up(p->workspace_bytes[k], alignment);
        plan->ws_bytes[k] = p->workspace_bytes[k];
    }
    plan->n_blocks = nb;

    /* Lower bound: the most aligned bytes alive at any one step. */
    {
        size_t *live = sh_calloc(a, (size_t)plan->n_steps + 1, sizeof(size_t));
        if (!live)
            goto oom;
        for (int i = 0; i < nb; i++)
            for (int st = s.blocks[i].first; st <= s.blocks[i].last; st++)
                live[st] += s.blocks[i].size;   /* <= total: no overflow */
        for (int st = 0; st < plan->n_steps; st++)
            if (live[st] > plan->lower_bound)
                plan->lower_bound = live[st];
        sh_free(a, live);
    }

    rc = place(a, &s, nb, plan->n_steps, strategy, &plan->arena_bytes, &plan->strategy);
    if (rc)
        goto oom;
    for (int i = 0; i < nb; i++)
        s.blk_of[s.blocks[i].id] = i;

    for (int t = 0; t < g->n_tensors; t++) {
        int r = plan->root[t];
        int bi = r >= 0 ? s.blk_of[r] : -1;
        if (bi < 0) {
            plan->offset[t] = SIZE_MAX;
            plan->bytes[t] = 0;
            plan->first[t] = plan->last[t] = -1;
            if (r >= 0 && g->tensors[r].is_const)
                continue;   /* view of a weight: bind resolves it through root */
            plan->root[t] = -1;
            continue;
        }
        plan->offset[t] = s.blocks[bi].offset + s.roff[t];
        plan->bytes[t] = p->tensor_bytes[t];
        plan->first[t] = s.blocks[bi].first;
        plan->last[t] = s.blocks[bi].last;
    }
    for (int k = 0; k < g->n_nodes; k++) {
        int bi = s.blk_of[g->n_tensors + k];
        if (bi >= 0)
            plan->ws_offset[k] = s.blocks[bi].offset;
    }
    scratch_free(a, &s);
    *out = plan;
    return 0;

too_big:
    rc = sh_errf(err, SHOAL_ERR_INVALID_ARG, "graph '%s': activation sizes overflow size_t", g->name);
    goto fail;
oom:
    rc = sh_errf(err, SHOAL_ERR_NO_MEMORY, "graph '%s': out of memory while planning", g ? g->name : "?");
fail:
    scratch_free(a, &s);
    sh_plan_destroy(a, plan);
    return rc;
}

/* ---- binding, sharing, checking -------------------------------------------------------- */

int sh_plan_bind(const sh_plan *plan, const sh_program *p, void *arena_base, void *const *weight_ptrs,
                 void **tensor_ptrs_out, void **workspace_ptrs_out)
{
    if (!plan || !p || p->graph != plan->graph || plan->n_tensors != p->graph->n_tensors ||
        (plan->arena_bytes > 0 && !arena_base) || !tensor_ptrs_out || (plan->n_nodes > 0 && !workspace_ptrs_out))
        return SHOAL_ERR_INVALID_ARG;
    const sh_graph *g = plan->graph;
    char *base = arena_base;
    for (int t = 0; t < plan->n_tensors; t++) {
        void *ptr = NULL;
        if (plan->offset[t] != SIZE_MAX) {
            ptr = base + plan->offset[t];
        } else if (g->tensors[t].is_const && p->alias_of[t] < 0) {
            ptr = weight_ptrs ? weight_ptrs[t] : NULL;
        } else if (plan->root[t] >= 0 && weight_ptrs && weight_ptrs[plan->root[t]]) {
            size_t off = 0;
            for (int c = t; p->alias_of[c] >= 0; c = p->alias_of[c])
                off += p->alias_offset[c];
            ptr = (char *)weight_ptrs[plan->root[t]] + off;
        }
        tensor_ptrs_out[t] = ptr;
    }
    for (int k = 0; k < plan->n_nodes; k++)
        workspace_ptrs_out[k] = plan->ws_offset[k] != SIZE_MAX ? base + plan->ws_offset[k] : NULL;
    return 0;
}

size_t sh_plan_shared_arena_bytes(const sh_plan *const *plans, int n)
{
    size_t m = 0;
    for (int i = 0; i < n; i++)
        if (plans[i] && plans[i]->arena_bytes > m)
            m = plans[i]->arena_bytes;
    return m;
}

int sh_plan_contexts_arena_bytes(const sh_plan *const *plans, int n, int n_contexts, size_t *out)
{
    if (n_contexts < 0 || !out || !sh_mul_size(sh_plan_shared_arena_bytes(plans, n), (size_t)n_contexts, out))
        return SHOAL_ERR_INVALID_ARG;
    return 0;
}

static const char *item_name(const sh_plan *pl, int id, char *buf, size_t cap)
{
    if (id < pl->n_tensors)
        return pl->graph->tensors[id].name;
    snprintf(buf, cap, "workspace of node '%s'", pl->graph->nodes[id - pl->n_tensors].name);
    return buf;
}

int sh_plan_verify(const sh_plan *pl, sh_err *err)
{
    if (!pl)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "plan_verify: NULL plan");
    int n = pl->n_tensors + pl->n_nodes;
    char b1[160], b2[160];
    for (int i = 0; i < n; i++) {
        size_t oi, si;
        int fi, li, ri;
        if (i < pl->n_tensors) {
            oi = pl->offset[i], si = pl->bytes[i], fi = pl->first[i], li = pl->last[i], ri = pl->root[i];
        } else {
            int k = i - pl->n_tensors;
            oi = pl->ws_offset[k], si = pl->ws_bytes[k], fi = li = k, ri = i;
        }
        if (oi == SIZE_MAX)
            continue;
        if (oi > pl->arena_bytes || si > pl->arena_bytes - oi)
            return sh_errf(err, SHOAL_ERR_INTERNAL, "plan: %s [%zu, +%zu) leaves the %zu-byte arena",
                           item_name(pl, i, b1, sizeof b1), oi, si, pl->arena_bytes);
        if (ri == i && oi % pl->alignment)
            return sh_errf(err, SHOAL_ERR_INTERNAL, "plan: %s at %zu is not %zu-aligned",
                           item_name(pl, i, b1, sizeof b1), oi, pl->alignment);
        for (int j = i + 1; j < n; j++) {
            size_t oj, sj;
            int fj, lj, rj;
            if (j < pl->n_tensors) {
                oj = pl->offset[j], sj = pl->bytes[j], fj = pl->first[j], lj = pl->last[j], rj = pl->root[j];
            } else {
                int k = j - pl->n_tensors;
                oj = pl->ws_offset[k], sj = pl->ws_bytes[k], fj = lj = k, rj = j;
            }
            if (oj == SIZE_MAX || ri == rj || lj < fi || fj > li)
                continue;
            if (oi < oj + sj && oj < oi + si)
                return sh_errf(err, SHOAL_ERR_INTERNAL,
                               "plan: %s [%zu, +%zu) steps %d-%d overlaps %s [%zu, +%zu) steps %d-%d",
                               item_name(pl, i, b1, sizeof b1), oi, si, fi, li, item_name(pl, j, b2, sizeof b2),
                               oj, sj, fj, lj);
        }
    }
    return 0;
}
