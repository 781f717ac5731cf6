/* shoal plan: the memory plan of a config without loading anything.
 *
 * The runtime is created with preload off: every model is imported, compiled and planned and
 * its weights registered with the weight store (packed, hashed, deduplicated) but nothing is
 * put on the device. What the budget admits is then computed from the same quantities the
 * residency manager uses: the union of the weights of a set of models (shared tensors once)
 * plus one shared activation arena per execution context. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/tuning_env.h"
#include "core/utf8.h"
#include "runtime/introspect.h"

#define MAX_SET_MODELS 16   /* subsets are enumerated: 2^16 unions at most */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoal plan [--config FILE] [--budget BYTES|PCT] [--contexts N] [--device cpu|cuda|auto]\n"
            "                  [--json] [--svg FILE] [--check]\n"
            "\n"
            "Compiles and plans every model of the config (default configs/aiglasses.yaml) without\n"
            "loading any, and prints per model its weights (unique to it / shared with another\n"
            "model), its activation plan against the plan's lower bound (the most bytes alive at\n"
            "one step), its workspaces; in total the shared activation arena (the largest plan,\n"
            "one per execution context) beside the sum of the plans, the bytes deduplication saves,\n"
            "and what the budget admits: the models that must stay resident (pinned, preloaded),\n"
            "each mode, all models, and the largest sets of models that fit together.\n"
            "--budget overrides the config's budget: bytes (\"1.5GiB\", \"800MB\", 123456) or a share\n"
            "of the device's memory (\"60%%\"; host memory on CPU). --svg draws each plan's arena\n"
            "(x: execution step, y: offset), one lane per model.\n"
            "--check exits with status 3 when the budget cannot hold the pinned and preloaded models\n"
            "or a mode beside the pinned models (each shortfall named on stderr); 0 when all fit.\n");
}

typedef struct plan_opts {
    const char *config, *budget, *svg, *device;
    int contexts;
    int json;
    int check;   /* exit PLAN_DOES_NOT_FIT when the budget cannot hold a mode or the required set */
} plan_opts;

/* The exit status of --check when the budget falls short; 1 and 2 stay config and usage errors. */
#define PLAN_DOES_NOT_FIT 3

typedef struct model_row {
    const char *name;
    int pinned, preload;
    size_t weights, unique, shared;     /* aligned device bytes, from the weight store */
    size_t plan, lower, ws_sum, ws_max;
    const sh_plan *p;
} model_row;

typedef struct plan_report {
    int n;
    model_row *rows;
    const sh_config *cfg;
    sh_weight_store *ws;
    size_t arena_max, arena_sum, arena_total;   /* total: contexts x max */
    int contexts;
    size_t weights_sum, weights_stored;
    size_t host_cache;
    size_t staging;                              /* device transfer buffers, all contexts */
    int have_budget;
    size_t budget;
    const char *budget_source;
} plan_report;

static int parse(int argc, char **argv, plan_opts *o)
{
    memset(o, 0, sizeof *o);
    o->config = "configs/aiglasses.yaml";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--json")) {
            o->json = 1;
            continue;
        }
        if (!strcmp(a, "--check")) {
            o->check = 1;
            continue;
        }
        if (a[0] != '-') {   /* `shoal plan FILE` reads as --config FILE */
            o->config = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "shoal plan: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--config")) o->config = v;
        else if (!strcmp(a, "--budget")) o->budget = v;
        else if (!strcmp(a, "--svg")) o->svg = v;
        else if (!strcmp(a, "--device")) o->device = v;
        else if (!strcmp(a, "--contexts")) {
            if (cli_int32("plan", a, v, 1, 8, &o->contexts))
                return 2;
        } else {
            fprintf(stderr, "shoal plan: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (o->budget) {
        sh_config_size sz;
        if (cli_size("plan", "--budget", o->budget, true, &sz))
            return 2;
    }
    return 0;
}

/* Weights of the models in `mask` together, shared tensors counted once. */
static size_t set_weights(const plan_report *r, unsigned mask, unsigned char *set)
{
    for (int i = 0; i < r->n; i++)
        set[i] = (mask >> i) & 1u;
    return sh_weight_store_set_bytes(r->ws, set);
}

static size_t set_bytes(const plan_report *r, unsigned mask, unsigned char *set)
{
    return set_weights(r, mask, set) + r->arena_total + r->staging;
}

static int fits(const plan_report *r, size_t bytes) { return !r->have_budget || bytes <= r->budget; }

static unsigned required_mask(const plan_report *r)
{
    unsigned m = 0;
    for (int i = 0; i < r->n; i++)
        if (r->rows[i].pinned || r->rows[i].preload)
            m |= 1u << i;
    return m;
}

static unsigned pinned_mask(const plan_report *r)
{
    unsigned m = 0;
    for (int i = 0; i < r->n; i++)
        if (r->rows[i].pinned)
            m |= 1u << i;
    return m;
}

static unsigned mode_mask(const plan_report *r, const sh_mode_config *mc)
{
    unsigned m = pinned_mask(r);   /* pinned models never leave, so every mode runs beside them */
    for (size_t k = 0; k < mc->n_models; k++)
        m |= 1u << mc->models[k];
    return m;
}

/* Sets that fit with no model addable (maximal), pinned models in every one. At most `cap`. */
static int maximal_sets(const plan_report *r, unsigned *out, size_t *bytes, int cap, unsigned char *set)
{
    if (!r->have_budget || r->n > MAX_SET_MODELS)
        return 0;
    unsigned full = r->n == 32 ? ~0u : (1u << r->n) - 1, pin = pinned_mask(r);
    int n = 0;
    for (unsigned m = full;; m--) {
        if ((m & pin) == pin) {
            size_t b = set_bytes(r, m, set);
            if (fits(r, b)) {
                int maximal = 1;
                for (int i = 0; i < r->n && maximal; i++)
                    if (!(m & (1u << i)) && fits(r, set_bytes(r, m | (1u << i), set)))
                        maximal = 0;
                if (maximal && n < cap) {
                    out[n] = m;
                    bytes[n++] = b;
                }
            }
        }
        if (m == 0)
            break;
    }
    return n;
}

static void names_of(const plan_report *r, unsigned mask, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (int i = 0; i < r->n; i++)
        if (mask & (1u << i))
            snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", buf[0] ? ", " : "", r->rows[i].name);
}

static double mb(size_t b) { return (double)b / (1024.0 * 1024.0); }

static double ratio(size_t a, size_t b) { return b ? (double)a / (double)b : 1.0; }

static void print_text(const plan_report *r, const char *config, const char *device, unsigned char *set)
{
    printf("%s on %s: %d model%s, %d execution context%s, sizes in MiB\n\n", config, device, r->n, r->n == 1 ? "" : "s",
           r->contexts, r->contexts == 1 ? "" : "s");
    printf("%-16s %-9s %9s %9s %9s %9s %9s %6s %9s  %s\n", "model", "residency", "weights", "unique", "shared", "plan",
           "lower bd", "ratio", "ws peak", "placement");
    for (int i = 0; i < r->n; i++) {
        const model_row *m = &r->rows[i];
        printf("%-16s %-9s %9.3f %9.3f %9.3f %9.3f %9.3f %6.3f %9.3f  %s, %d in place\n", m->name,
               m->pinned ? "pinned" : m->preload ? "preload" : "on demand", mb(m->weights), mb(m->unique), mb(m->shared),
               mb(m->plan), mb(m->lower), ratio(m->plan, m->lower), mb(m->ws_max), sh_plan_strategy_name(m->p->strategy),
               m->p->n_inplace);
    }
    printf("\nweights: %.3f summed over models, %.3f stored (identical tensors once): %.3f saved\n", mb(r->weights_sum),
           mb(r->weights_stored), mb(r->weights_sum - r->weights_stored));
    printf("(ws peak: the largest node workspace, placed inside the plan like any activation)\n");
    printf("activations: shared arena %.3f (the largest plan) vs %.3f as the sum of the plans: %.3f saved\n",
           mb(r->arena_max), mb(r->arena_sum), mb(r->arena_sum - r->arena_max));
    if (r->contexts > 1)
        printf("             %d contexts x %.3f = %.3f\n", r->contexts, mb(r->arena_max), mb(r->arena_total));
    if (r->host_cache)
        printf("host cache of packed weights: %.3f (host memory, counted apart from the device)\n", mb(r->host_cache));
    unsigned full = r->n == 32 ? ~0u : (1u << r->n) - 1;
    size_t all = set_bytes(r, full, set);
    printf("\nall models resident: %.3f (weights %.3f + arena %.3f", mb(all), mb(r->weights_stored),
           mb(r->arena_total));
    if (r->staging)
        printf(" + staging %.3f: device transfer buffers", mb(r->staging));
    printf(")\n");
    if (!r->have_budget) {
        printf("budget: none (unlimited): everything fits\n");
        return;
    }
    printf("budget: %.3f (%s): %s\n", mb(r->budget), r->budget_source,
           fits(r, all) ? "all models fit together" : "not all models fit together");
    char names[512];
    unsigned req = required_mask(r);
    names_of(r, req, names, sizeof names);
    size_t rb = set_bytes(r, req, set);
    printf("  %-24s %9.3f %-8s [%s]\n", "pinned + preloaded", mb(rb), fits(r, rb) ? "fits" : "TOO BIG", names);
    for (size_t k = 0; k < r->cfg->n_modes; k++) {
        unsigned mm = mode_mask(r, &r->cfg->modes[k]);
        size_t b = set_bytes(r, mm, set);
        char label[64];
        snprintf(label, sizeof label, "mode %s", r->cfg->modes[k].name);
        names_of(r, mm, names, sizeof names);
        printf("  %-24s %9.3f %-8s [%s]\n", label, mb(b), fits(r, b) ? "fits" : "TOO BIG", names);
    }
    unsigned sets[64];
    size_t bytes[64];
    int ns = maximal_sets(r, sets, bytes, 64, set);
    if (ns && !fits(r, all)) {
        printf("  largest sets that fit together (pinned included):\n");
        for (int s = 0; s < ns; s++) {
            names_of(r, sets[s], names, sizeof names);
            printf("    %9.3f  [%s]\n", mb(bytes[s]), names);
        }
    }
}

static cJSON *names_json(const plan_report *r, unsigned mask)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < r->n; i++)
        if (mask & (1u << i))
            cJSON_AddItemToArray(a, cJSON_CreateString(r->rows[i].name));
    return a;
}

static cJSON *set_json(const plan_report *r, const char *name, unsigned mask, unsigned char *set)
{
    cJSON *o = cJSON_CreateObject();
    if (name)
        cJSON_AddStringToObject(o, "name", name);
    cJSON_AddItemToObject(o, "models", names_json(r, mask));
    size_t b = set_bytes(r, mask, set);
    cJSON_AddNumberToObject(o, "bytes", (double)b);
    cJSON_AddBoolToObject(o, "fits", fits(r, b));
    return o;
}

static char *build_json(const plan_report *r, const char *config, const char *device, unsigned char *set)
{
    cJSON *root = cJSON_CreateObject();
    char config_buf[4096];
    cJSON_AddStringToObject(root, "config", sh_utf8_clean(config, config_buf, sizeof config_buf));
    cJSON_AddStringToObject(root, "device", device);
    cJSON_AddNumberToObject(root, "contexts", r->contexts);
    cJSON *models = cJSON_AddArrayToObject(root, "models");
    for (int i = 0; i < r->n; i++) {
        const model_row *m = &r->rows[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", m->name);
        cJSON_AddBoolToObject(o, "pinned", m->pinned);
        cJSON_AddBoolToObject(o, "preload", m->preload);
        cJSON_AddNumberToObject(o, "weights_bytes", (double)m->weights);
        cJSON_AddNumberToObject(o, "weights_unique_bytes", (double)m->unique);
        cJSON_AddNumberToObject(o, "weights_shared_bytes", (double)m->shared);
        cJSON_AddNumberToObject(o, "plan_bytes", (double)m->plan);
        cJSON_AddNumberToObject(o, "plan_lower_bound_bytes", (double)m->lower);
        cJSON_AddNumberToObject(o, "plan_ratio", ratio(m->plan, m->lower));
        cJSON_AddNumberToObject(o, "workspace_bytes", (double)m->ws_sum);
        cJSON_AddNumberToObject(o, "workspace_max_bytes", (double)m->ws_max);
        cJSON_AddStringToObject(o, "placement", sh_plan_strategy_name(m->p->strategy));
        cJSON_AddNumberToObject(o, "alignment", (double)m->p->alignment);
        cJSON_AddNumberToObject(o, "blocks", m->p->n_blocks);
        cJSON_AddNumberToObject(o, "in_place", m->p->n_inplace);
        cJSON_AddNumberToObject(o, "steps", m->p->n_steps);
        cJSON_AddItemToArray(models, o);
    }
    cJSON *w = cJSON_AddObjectToObject(root, "weights");
    cJSON_AddNumberToObject(w, "sum_bytes", (double)r->weights_sum);
    cJSON_AddNumberToObject(w, "stored_bytes", (double)r->weights_stored);
    cJSON_AddNumberToObject(w, "dedup_saved_bytes", (double)(r->weights_sum - r->weights_stored));
    cJSON_AddNumberToObject(w, "host_cache_bytes", (double)r->host_cache);
    cJSON *a = cJSON_AddObjectToObject(root, "arena");
    cJSON_AddNumberToObject(a, "shared_bytes", (double)r->arena_max);
    cJSON_AddNumberToObject(a, "sum_of_plans_bytes", (double)r->arena_sum);
    cJSON_AddNumberToObject(a, "saved_bytes", (double)(r->arena_sum - r->arena_max));
    cJSON_AddNumberToObject(a, "contexts", r->contexts);
    cJSON_AddNumberToObject(a, "total_bytes", (double)r->arena_total);
    cJSON_AddNumberToObject(root, "staging_bytes", (double)r->staging);
    cJSON *b = cJSON_AddObjectToObject(root, "budget");
    unsigned full = r->n == 32 ? ~0u : (1u << r->n) - 1;
    size_t all = set_bytes(r, full, set);
    if (r->have_budget)
        cJSON_AddNumberToObject(b, "bytes", (double)r->budget);
    else
        cJSON_AddNullToObject(b, "bytes");
    cJSON_AddStringToObject(b, "source", r->budget_source);
    cJSON_AddNumberToObject(b, "all_resident_bytes", (double)all);
    cJSON_AddBoolToObject(b, "all_fit", fits(r, all));
    cJSON_AddItemToObject(b, "required", set_json(r, NULL, required_mask(r), set));
    cJSON *modes = cJSON_AddArrayToObject(b, "modes");
    for (size_t k = 0; k < r->cfg->n_modes; k++)
        cJSON_AddItemToArray(modes, set_json(r, r->cfg->modes[k].name, mode_mask(r, &r->cfg->modes[k]), set));
    cJSON *ms = cJSON_AddArrayToObject(b, "largest_fitting_sets");
    unsigned sets[64];
    size_t bytes[64];
    int ns = maximal_sets(r, sets, bytes, 64, set);
    for (int s = 0; s < ns; s++)
        cJSON_AddItemToArray(ms, set_json(r, NULL, sets[s], set));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

static int write_svg(const plan_report *r, const char *path)
{
    const sh_plan **plans = calloc((size_t)r->n, sizeof *plans);
    const char **names = calloc((size_t)r->n, sizeof *names);
    if (!plans || !names) {
        free(plans);
        free(names);
        fprintf(stderr, "shoal plan: out of memory\n");
        return 1;
    }
    for (int i = 0; i < r->n; i++) {
        plans[i] = r->rows[i].p;
        names[i] = r->rows[i].name;
    }
    FILE *f = fopen(path, "w");
    int rc = 1;
    if (!f) {
        fprintf(stderr, "shoal plan: %s: %s\n", path, strerror(errno));
    } else {
        sh_err err = {0};
        if (sh_plan_write_svg(f, plans, names, r->n, r->arena_max, &err) != 0)
            fprintf(stderr, "shoal plan: %s: %s\n", path, err.msg);
        else
            rc = 0;
        if (fclose(f) != 0 && rc == 0) {
            fprintf(stderr, "shoal plan: %s: %s\n", path, strerror(errno));
            rc = 1;
        }
    }
    free(plans);
    free(names);
    return rc;
}

/* --check: the required models (pinned, preloaded) must fit, and so must each mode beside the
 * pinned models, which are never evicted to make room for it. Each shortfall is named on stderr. */
static int check_budget(const plan_report *r, unsigned char *set)
{
    if (!r->have_budget)
        return 0;
    int short_of = 0;
    unsigned req = required_mask(r), pin = pinned_mask(r);
    size_t b = set_bytes(r, req, set);
    if (!fits(r, b)) {
        fprintf(stderr, "shoal plan: the budget of %.3f MiB cannot hold the pinned and preloaded models (%.3f MiB)\n",
                mb(r->budget), mb(b));
        short_of++;
    }
    for (size_t k = 0; k < r->cfg->n_modes; k++) {
        b = set_bytes(r, mode_mask(r, &r->cfg->modes[k]) | pin, set);
        if (!fits(r, b)) {
            fprintf(stderr, "shoal plan: the budget of %.3f MiB cannot hold mode '%s' with the pinned models (%.3f MiB)\n",
                    mb(r->budget), r->cfg->modes[k].name, mb(b));
            short_of++;
        }
    }
    return short_of ? PLAN_DOES_NOT_FIT : 0;
}

static int resolve_budget(shoal_runtime_t rt, const plan_opts *o, plan_report *r)
{
    r->budget_source = "none";
    if (o->budget) {
        sh_config_size sz;
        char why[128];
        if (sh_config_parse_size(o->budget, true, &sz, why, sizeof why) != 0) {
            fprintf(stderr, "shoal plan: --budget %s: %s\n", o->budget, why);
            return 2;
        }
        uint64_t total = sh_runtime_device_total(rt);
        if (sz.kind == SH_SIZE_PERCENT && !total) {
            fprintf(stderr, "shoal plan: --budget %s: the device's memory is unknown\n", o->budget);
            return 2;
        }
        r->budget = (size_t)sh_config_size_bytes(&sz, total, 0);
        r->have_budget = r->budget > 0;
        r->budget_source = "--budget";
        return 0;
    }
    const sh_config_size *cb = &r->cfg->memory.budget;
    if (cb->kind == SH_SIZE_BYTES || cb->kind == SH_SIZE_PERCENT) {
        r->budget = (size_t)sh_config_size_bytes(cb, sh_runtime_device_total(rt), 0);
        r->have_budget = r->budget > 0;
        r->budget_source = "config";
    }
    return 0;
}

static int report(shoal_runtime_t rt, const plan_opts *o)
{
    plan_report r = {0};
    r.cfg = sh_runtime_config(rt);
    r.ws = sh_runtime_weights(rt);
    r.n = shoal_runtime_model_count(rt);
    r.contexts = sh_runtime_context_count(rt);
    if (r.n > 32) {
        fprintf(stderr, "shoal plan: %d models: at most 32\n", r.n);
        return 1;
    }
    int rc = resolve_budget(rt, o, &r);
    if (rc)
        return rc;
    r.rows = calloc((size_t)(r.n ? r.n : 1), sizeof *r.rows);
    unsigned char *set = calloc((size_t)(r.n ? r.n : 1), 1);
    if (!r.rows || !set) {
        free(r.rows);
        free(set);
        fprintf(stderr, "shoal plan: out of memory\n");
        return 1;
    }
    for (int i = 0; i < r.n; i++) {
        model_row *m = &r.rows[i];
        const sh_model_config *mc = &r.cfg->models[i];
        m->name = mc->name;
        m->pinned = mc->pinned;
        m->preload = mc->preload;
        m->p = sh_runtime_model_plan(rt, i);
        sh_weight_model_stats ws;
        sh_weight_store_model_stats(r.ws, i, &ws);
        m->weights = ws.bytes;
        m->unique = ws.unique_bytes;
        m->shared = ws.shared_bytes;
        m->plan = m->p->arena_bytes;
        m->lower = m->p->lower_bound;
        for (int k = 0; k < m->p->n_nodes; k++) {
            m->ws_sum += m->p->ws_bytes[k];
            if (m->p->ws_bytes[k] > m->ws_max)
                m->ws_max = m->p->ws_bytes[k];
        }
        r.arena_sum += m->plan;
        if (m->plan > r.arena_max)
            r.arena_max = m->plan;
        r.weights_sum += set_weights(&r, 1u << i, set);
    }
    unsigned full = r.n == 32 ? ~0u : (1u << r.n) - 1;
    r.weights_stored = set_weights(&r, full, set);
    r.arena_total = sh_runtime_arena_bytes(rt) * (size_t)r.contexts;
    sh_budget_stats bs;
    sh_budget_get_stats(sh_runtime_budget(rt), &bs);
    r.host_cache = bs.in_use[SH_MEM_HOST_CACHE];
    r.staging = bs.in_use[SH_MEM_STAGING];
    const char *device = sh_budget_device_name(sh_runtime_budget(rt));
    rc = 0;
    if (o->json) {
        char *text = build_json(&r, o->config, device, set);
        if (text) {
            printf("%s\n", text);
            free(text);
        } else {
            fprintf(stderr, "shoal plan: out of memory\n");
            rc = 1;
        }
    } else {
        print_text(&r, o->config, device, set);
    }
    if (rc == 0 && o->svg) {
        rc = write_svg(&r, o->svg);
        if (rc == 0 && !o->json)
            printf("\narena drawn to %s\n", o->svg);
    }
    if (rc == 0 && o->check)
        rc = check_budget(&r, set);
    free(r.rows);
    free(set);
    return rc;
}

int cmd_plan(int argc, char **argv)
{
    plan_opts o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc;
    char err[1024] = "";
    shoal_runtime_params p = shoal_runtime_default_params();
    if (cli_runtime_tuning("plan", &p) != 0)
        return 2;
    p.config_path = o.config;
    p.device = o.device;
    p.contexts = o.contexts;
    p.preload = 0;
    /* The runtime itself runs unbudgeted so that a budget too small for the arena is reported
     * below rather than refused at create. */
    p.budget_bytes = INT64_MAX / 2;
    p.error = err;
    p.error_cap = sizeof err;
    shoal_runtime_t rt;
    cli_progress progress;
    cli_progress_start(&progress, stderr, "compiling and planning models", 1.0,
                       cli_progress_wanted(STDERR_FILENO, o.json));
    rc = shoal_runtime_create(&p, &rt);
    cli_progress_stop(&progress);
    if (rc != SHOAL_OK) {
        fprintf(stderr, "shoal plan: %s\n", err);
        return 1;
    }
    rc = report(rt, &o);
    shoal_runtime_destroy(rt);
    return rc;
}
