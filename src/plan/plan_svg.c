/* Plans drawn as SVG: one lane per model, x = step, y = arena offset. See plan.h. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "plan/plan.h"

#define SVG_W 1400.0
#define LEFT 110.0
#define RIGHT 30.0
#define LANE_H 320.0
#define LANE_HEAD 58.0
#define LANE_FOOT 42.0
#define TOP 56.0

static void xml_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t')
                fputc(*s, f);
        }
    }
}

static double mb(size_t b) { return (double)b / (1024.0 * 1024.0); }

/* A tick step of 1, 2 or 5 x 10^k MB giving at most 8 ticks. */
static double tick_step(double max_mb)
{
    double mag = pow(10.0, floor(log10(max_mb / 8.0)));
    static const double m[] = {1.0, 2.0, 5.0, 10.0};
    for (int i = 0; i < 4; i++)
        if (max_mb / (m[i] * mag) <= 8.0)
            return m[i] * mag;
    return 10.0 * mag;
}

/* A stable, well-spread hue per block so neighbours differ. */
static int hue_of(int id) { return (int)(((unsigned)id * 137u) % 360u); }

static int members(const sh_plan *pl, int root)
{
    int n = 0;
    for (int t = 0; t < pl->n_tensors; t++)
        n += pl->root[t] == root && t != root;
    return n;
}

static void lane(FILE *f, const sh_plan *pl, const char *name, double y0, size_t scale_bytes)
{
    double w = SVG_W - LEFT - RIGHT, h = LANE_H;
    double top = y0 + LANE_HEAD;
    double xs = w / (double)pl->n_steps;
    double ys = scale_bytes ? h / (double)scale_bytes : 0.0;
    double ratio = pl->lower_bound ? (double)pl->arena_bytes / (double)pl->lower_bound : 1.0;

    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"lane\">", LEFT, y0 + 22);
    xml_text(f, name);
    fprintf(f, "</text>\n<text x=\"%.1f\" y=\"%.1f\" class=\"legend\">arena %.2f MB · lower bound %.2f MB "
               "(arena/bound %.3f) · %d blocks · %d in-place · %d steps · %s</text>\n",
            LEFT, y0 + 42, mb(pl->arena_bytes), mb(pl->lower_bound), ratio, pl->n_blocks, pl->n_inplace,
            pl->n_steps, sh_plan_strategy_name(pl->strategy));
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"frame\"/>\n", LEFT, top, w, h);

    /* y axis in MB, offset 0 at the top like a memory map. */
    double max_mb = mb(scale_bytes);
    double st = tick_step(max_mb > 0 ? max_mb : 1.0);
    for (double v = 0; v <= max_mb + 1e-9; v += st) {
        double y = top + v * 1024.0 * 1024.0 * ys;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"end\">%g MB</text>\n",
                LEFT - 4, y, LEFT + w, y, LEFT - 8, y + 4, v);
    }
    fprintf(f, "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" class=\"axis\" text-anchor=\"middle\">"
               "arena offset (MB = 2^20 bytes)</text>\n", LEFT - 78, top + h / 2);
    /* x axis: about ten step ticks. */
    int xstep = pl->n_steps > 10 ? (pl->n_steps + 9) / 10 : 1;
    for (int s = 0; s <= pl->n_steps; s += xstep)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"middle\">%d</text>\n",
                LEFT + s * xs, top + h + 14, s);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"axis\" text-anchor=\"middle\">step (node index)</text>\n",
            LEFT + w / 2, top + h + 32);

    /* Blocks: each lifetime class once (its root), then workspaces. */
    fprintf(f, "<g class=\"blocks\">\n");
    for (int t = 0; t < pl->n_tensors; t++) {
        if (pl->root[t] != t || pl->offset[t] == SIZE_MAX)
            continue;
        double x = LEFT + pl->first[t] * xs, bw = (pl->last[t] - pl->first[t] + 1) * xs;
        double y = top + (double)pl->offset[t] * ys;
        double bh = (double)sh_align_up(pl->bytes[t], pl->alignment) * ys;
        fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"hsl(%d,62%%,62%%)\">"
                   "<title>", x, y, bw, bh > 0.6 ? bh : 0.6, hue_of(t));
        xml_text(f, pl->graph->tensors[t].name);
        int m = members(pl, t);
        fprintf(f, "\n%zu bytes (%.3f MB) at offset %zu\nsteps %d-%d", pl->bytes[t], mb(pl->bytes[t]),
                pl->offset[t], pl->first[t], pl->last[t]);
        if (m)
            fprintf(f, "\n+%d view(s) / in-place output(s) in the same bytes", m);
        fprintf(f, "</title></rect>\n");
    }
    for (int k = 0; k < pl->n_nodes; k++) {
        if (pl->ws_offset[k] == SIZE_MAX)
            continue;
        double bh = (double)sh_align_up(pl->ws_bytes[k], pl->alignment) * ys;
        fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" class=\"ws\"><title>workspace of ",
                LEFT + k * xs, top + (double)pl->ws_offset[k] * ys, xs, bh > 0.6 ? bh : 0.6);
        xml_text(f, pl->graph->nodes[k].name);
        fprintf(f, "\n%zu bytes (%.3f MB) at offset %zu\nstep %d</title></rect>\n", pl->ws_bytes[k],
                mb(pl->ws_bytes[k]), pl->ws_offset[k], k);
    }
    fprintf(f, "</g>\n");
    /* This model's arena and bound as horizontal markers against the shared scale. */
    double ya = top + (double)pl->arena_bytes * ys, yb = top + (double)pl->lower_bound * ys;
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"arena\"/>"
               "<text x=\"%.1f\" y=\"%.1f\" class=\"mark\" text-anchor=\"end\">arena</text>\n",
            LEFT, ya, LEFT + w, ya, LEFT + w - 4, ya - 3);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"bound\"/>"
               "<text x=\"%.1f\" y=\"%.1f\" class=\"mark\" text-anchor=\"end\">lower bound</text>\n",
            LEFT, yb, LEFT + w, yb, LEFT + w - 60, yb - 3);
}

int sh_plan_write_svg(FILE *f, const sh_plan *const *plans, const char *const *names, int n,
                      size_t shared_arena_bytes, sh_err *err)
{
    if (!f || n < 0 || (n > 0 && !plans))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "plan svg: needs a stream and plans");
    for (int i = 0; i < n; i++)
        if (!plans[i])
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "plan svg: plan %d is NULL", i);
    size_t maxa = sh_plan_shared_arena_bytes(plans, n);
    size_t shared = shared_arena_bytes ? shared_arena_bytes : maxa;
    size_t scale = shared > maxa ? shared : maxa;
    double lane_total = LANE_HEAD + LANE_H + LANE_FOOT;
    double height = TOP + lane_total * n + 16;
    errno = 0;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
            SVG_W, height, SVG_W, height);
    fputs("<style>\n"
          ".title{font-size:20px;font-weight:bold}.lane{font-size:16px;font-weight:bold}\n"
          ".legend{font-size:13px;fill:#333}.tick{font-size:11px;fill:#555}.axis{font-size:12px;fill:#333}\n"
          ".frame{fill:#fafafa;stroke:#999;stroke-width:1}.grid{stroke:#e2e2e2;stroke-width:1}\n"
          ".blocks rect{stroke:#333;stroke-width:0.4}.ws{fill:#bbb;fill-opacity:0.8}\n"
          ".arena{stroke:#c00;stroke-width:1.5}.bound{stroke:#06c;stroke-width:1.2;stroke-dasharray:6 4}\n"
          ".mark{font-size:11px;fill:#333}\n"
          "</style>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n", f);
    fprintf(f, "<text x=\"%.1f\" y=\"30\" class=\"title\">shoal activation plans: shared arena %.2f MB "
               "(max of %d plan%s)</text>\n",
            LEFT, mb(shared), n, n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        const char *nm = names && names[i] ? names[i] : plans[i]->graph ? plans[i]->graph->name : "model";
        lane(f, plans[i], nm, TOP + lane_total * i, scale);
    }
    fputs("</svg>\n", f);
    if (ferror(f))
        return sh_errf(err, SHOAL_ERR_IO, "plan svg: write failed: %s", errno ? strerror(errno) : "stream error");
    return 0;
}
