/* Row bands of the oneDNN convolutions (dnnl_bands.h says why bands, and why the retry). */
#include "backends/cpu/dnnl_bands.h"

#include "core/alloc.h"

#include <omp.h>
#include <string.h>

int cpu_bands_first_count(int n_threads, int64_t out_rows)
{
    int64_t nb = n_threads < out_rows ? n_threads : out_rows;
    if (nb > CPU_DNNL_MAX_BANDS)
        nb = CPU_DNNL_MAX_BANDS;
    return nb > 0 ? (int)nb : 0;
}

void cpu_band_span_of(const cpu_band_rows *rows, int nb, int b, cpu_band_span *span)
{
    int64_t OH = rows->out_rows, H = rows->in_rows;
    span->oh0 = OH * b / nb;
    span->oh1 = OH * (b + 1) / nb;
    /* The rows the band's first and last outputs read, before clipping to the image. */
    int64_t lo = span->oh0 * rows->stride - rows->pad_top;
    int64_t hi = (span->oh1 - 1) * rows->stride - rows->pad_top + rows->extent;
    span->ih0 = lo > 0 ? lo : 0;
    span->ih1 = hi < H ? hi : H;
    span->pad_top = lo < 0 ? -lo : 0;
    span->pad_bottom = hi > H ? hi - H : 0;
}

int cpu_bands_plan(const cpu_band_rows *rows, int n_threads, cpu_band_make_fn make, cpu_band_drop_fn drop,
                   void *user)
{
    for (int nb = cpu_bands_first_count(n_threads, rows->out_rows); nb >= 1; nb /= 2) {
        int rc = CPU_BAND_MADE;
        for (int b = 0; b < nb && rc == CPU_BAND_MADE; b++) {
            cpu_band_span span;
            cpu_band_span_of(rows, nb, b, &span);
            rc = make(user, b, &span, nb > 1);
        }
        if (rc < 0)
            return -1;
        if (rc == CPU_BAND_MADE)
            return nb;
        drop(user);
    }
    return -1;
}

/* ---- the bands as oneDNN primitives ---------------------------------------------------- */

/* Destroys a primitive and its memories, any of them NULL. */
static void destroy_primitive(dnnl_primitive_t prim, const dnnl_memory_t *mems, size_t n_mems)
{
    if (prim)
        dnnl_primitive_destroy(prim);
    for (size_t i = 0; i < n_mems; i++)
        if (mems[i])
            dnnl_memory_destroy(mems[i]);
}

void cpu_dnnl_bands_free(cpu_dnnl_bands *bands)
{
    for (int b = 0; b < bands->n; b++) {
        cpu_dnnl_band *bd = &bands->band[b];
        destroy_primitive(bd->conv, (dnnl_memory_t[]){bd->m_src, bd->m_dst, bd->m_scratch}, 3);
        *bd = (cpu_dnnl_band){0};
    }
    bands->n = 0;
    bands->scratch_bytes = 0;
}

typedef struct band_maker {
    cpu_dnnl_bands *bands;
    cpu_ctx *ctx;
    const cpu_dnnl_band_conv *conv;
} band_maker;

static void drop_bands(void *user)
{
    band_maker *m = user;
    cpu_dnnl_bands_free(m->bands);
}

/* Whether oneDNN answered with its reference implementation. */
static bool is_reference(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    return dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
           !strncmp(impl, "ref", 3);
}

/* Band 0 asks for the conv's weight layout; every later band for the one band 0 chose. */
static int describe_band(const band_maker *m, int b, const cpu_band_span *span, dnnl_memory_desc_t *src_md,
                         dnnl_memory_desc_t *dst_md, dnnl_primitive_desc_t *pd)
{
    const cpu_dnnl_band_conv *c = m->conv;
    dnnl_dims_t sd = {1, c->src_channels, span->ih1 - span->ih0, c->src_width};
    dnnl_dims_t dd = {1, c->dst_channels, span->oh1 - span->oh0, c->dst_width};
    dnnl_dims_t pl = {span->pad_top, c->pad_left}, pr = {span->pad_bottom, c->pad_right};
    dnnl_memory_desc_init_by_tag(src_md, 4, sd, c->src_type, dnnl_nhwc);
    dnnl_memory_desc_init_by_tag(dst_md, 4, dd, c->dst_type, dnnl_nhwc);
    dnnl_convolution_desc_t cd;
    if (dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, src_md,
                                                   b == 0 ? c->weights : &m->bands->weights, c->bias, dst_md,
                                                   c->strides, c->dilates, pl, pr) != dnnl_success ||
        dnnl_primitive_desc_create(pd, &cd, c->attr, m->ctx->dnnl_engine, NULL) != dnnl_success)
        return -1;
    return 0;
}

static int make_band(void *user, int b, const cpu_band_span *span, bool refuse_reference)
{
    band_maker *m = user;
    cpu_dnnl_bands *bands = m->bands;
    cpu_dnnl_band *bd = &bands->band[b];
    bands->n = b + 1;
    bd->oh0 = span->oh0;
    bd->oh1 = span->oh1;
    bd->ih0 = span->ih0;
    dnnl_memory_desc_t src_md, dst_md;
    dnnl_primitive_desc_t pd = NULL;
    if (describe_band(m, b, span, &src_md, &dst_md, &pd) < 0)
        return -1;
    if (refuse_reference && is_reference(pd)) {
        dnnl_primitive_desc_destroy(pd);
        return CPU_BAND_THIN;
    }
    const dnnl_memory_desc_t *q_w = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *q_sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    int rc = -1;
    /* Every band reads the one packed weight: they must agree on its layout. */
    if (b == 0)
        bands->weights = *q_w;
    else if (!dnnl_memory_desc_equal(q_w, &bands->weights))
        goto out;
    bd->off_scratch = bands->scratch_bytes;
    bands->scratch_bytes += sh_align_up(dnnl_memory_desc_get_size(q_sp), CPU_DNNL_ALIGN);
    /* Handles are bound per run (cpu_dnnl_band_execute): none are owned here. */
    if (dnnl_primitive_create(&bd->conv, pd) != dnnl_success ||
        dnnl_memory_create(&bd->m_src, &src_md, m->ctx->dnnl_engine, DNNL_MEMORY_NONE) ||
        dnnl_memory_create(&bd->m_dst, &dst_md, m->ctx->dnnl_engine, DNNL_MEMORY_NONE) ||
        dnnl_memory_create(&bd->m_scratch, q_sp, m->ctx->dnnl_engine, DNNL_MEMORY_NONE))
        goto out;
    rc = CPU_BAND_MADE;
out:
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

int cpu_dnnl_bands_create(cpu_dnnl_bands *bands, cpu_ctx *ctx, const cpu_dnnl_band_conv *conv)
{
    band_maker m = {.bands = bands, .ctx = ctx, .conv = conv};
    cpu_dnnl_bands_free(bands);
    if (cpu_bands_plan(&conv->rows, ctx->n_threads, make_band, drop_bands, &m) < 0) {
        cpu_dnnl_bands_free(bands);
        return -1;
    }
    return 0;
}

bool cpu_dnnl_band_execute(const cpu_dnnl_band *band, cpu_ctx *ctx, const void *src, void *dst, char *ws,
                           dnnl_memory_t weights, int extra_arg, dnnl_memory_t extra)
{
    dnnl_memory_set_data_handle(band->m_src, (void *)src);
    dnnl_memory_set_data_handle(band->m_dst, dst);
    dnnl_memory_set_data_handle(band->m_scratch, ws + band->off_scratch);
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, band->m_src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, band->m_dst},
                               {DNNL_ARG_SCRATCHPAD, band->m_scratch}, {extra_arg, extra}};
    return dnnl_primitive_execute(band->conv, ctx->dnnl_stream, extra ? 5 : 4, args) == dnnl_success;
}

/* ---- the one weight every band reads -------------------------------------------------- */

void cpu_dnnl_weight_desc(dnnl_memory_desc_t *md, int64_t groups, int64_t out_channels, int64_t group_in_channels,
                          int64_t kh, int64_t kw, dnnl_data_type_t type, bool any)
{
    dnnl_dims_t grouped = {groups, out_channels / groups, group_in_channels, kh, kw};
    dnnl_dims_t plain = {out_channels, group_in_channels, kh, kw};
    bool g = groups > 1;
    dnnl_format_tag_t tag = any ? dnnl_format_tag_any : g ? dnnl_goihw : dnnl_oihw;
    dnnl_memory_desc_init_by_tag(md, g ? 5 : 4, g ? grouped : plain, type, tag);
}

int cpu_dnnl_weight_pack_create(cpu_dnnl_weight_pack *wp, cpu_ctx *ctx, const dnnl_memory_desc_t *from,
                                const dnnl_memory_desc_t *to)
{
    dnnl_primitive_desc_t rpd = NULL;
    bool ok = dnnl_memory_create(&wp->m_from, from, ctx->dnnl_engine, DNNL_MEMORY_NONE) == dnnl_success &&
              dnnl_memory_create(&wp->m_to, to, ctx->dnnl_engine, DNNL_MEMORY_NONE) == dnnl_success &&
              dnnl_reorder_primitive_desc_create(&rpd, from, ctx->dnnl_engine, to, ctx->dnnl_engine, NULL) ==
                  dnnl_success &&
              dnnl_primitive_create(&wp->reorder, rpd) == dnnl_success;
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    return ok ? 0 : -1;
}

void cpu_dnnl_weight_pack_free(cpu_dnnl_weight_pack *wp)
{
    destroy_primitive(wp->reorder, (dnnl_memory_t[]){wp->m_from, wp->m_to}, 2);
    *wp = (cpu_dnnl_weight_pack){0};
}

int cpu_dnnl_weight_pack_run(const cpu_dnnl_weight_pack *wp, cpu_ctx *ctx, const void *src, void *dst,
                             const char *what, sh_err *err)
{
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, wp->m_from}, {DNNL_ARG_TO, wp->m_to}};
    /* A stream of its own: the runtime packs several models at once, and a load may pack
     * while another thread runs convolutions on ctx->dnnl_stream. */
    dnnl_stream_t st = NULL;
    if (dnnl_stream_create(&st, ctx->dnnl_engine, dnnl_stream_default_flags) != dnnl_success)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "cpu: oneDNN stream for the reorder of %s failed", what);
    int prev = omp_get_max_threads();
    omp_set_num_threads(1);
    bool ok = dnnl_memory_set_data_handle(wp->m_from, (void *)src) == dnnl_success &&
              dnnl_memory_set_data_handle(wp->m_to, dst) == dnnl_success &&
              dnnl_primitive_execute(wp->reorder, st, 2, args) == dnnl_success &&
              dnnl_stream_wait(st) == dnnl_success;
    omp_set_num_threads(prev);
    dnnl_stream_destroy(st);
    if (!ok)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "cpu: oneDNN reorder of %s failed", what);
    return 0;
}
