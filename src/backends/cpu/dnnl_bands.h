/* Row bands of the oneDNN convolutions: the float Conv (conv.c) and the int8 ConvInteger /
 * QLinearConv (qconv_dnnl.c) share this planner.
 *
 * Debian's oneDNN runs on OpenMP, whose idle threads spin; on a loaded machine they halved
 * whole-model speed (docs/cpu-perf.md, v2/v3). So OpenMP stays at one thread and a conv is cut
 * into bands of output rows, one oneDNN primitive per band, run over shoal's pool: one band
 * per pool thread, never more bands than rows. An NHWC band of rows is contiguous, and so are
 * the input rows it reads, so a band is described by its rows alone; the band's padding is the
 * node's only where the band meets the image's top or bottom edge.
 *
 * Thin bands (a row or two, at many threads) may get only oneDNN's reference kernel with band
 * 0's weight layout, 50-100x slower, and the conv waits for its slowest band (docs/cpu-perf.md,
 * v10). A plan with more than one band whose band gets that kernel is dropped and made again
 * with half the bands; a single band takes whatever oneDNN offers. Every band reads the one
 * packed weight, so every band must accept the weight layout band 0 chose.
 *
 * The geometry and the retry's control (cpu_band_span_of, cpu_bands_plan) know nothing of
 * oneDNN; cpu_dnnl_bands_create drives them with oneDNN's primitives. */
#ifndef SHOAL_CPU_DNNL_BANDS_H
#define SHOAL_CPU_DNNL_BANDS_H

#include "backends/cpu/cpu_impl.h"

#include <oneapi/dnnl/dnnl.h>

#define CPU_DNNL_MAX_BANDS 64
/* Workspace offsets of the oneDNN convs: a cache line, and oneDNN's preferred alignment. */
#define CPU_DNNL_ALIGN 64

/* A conv along its rows (H), all that decides how bands cut it. */
typedef struct cpu_band_rows {
    int64_t in_rows, out_rows;
    int64_t stride, pad_top;
    int64_t extent;                 /* rows one output reads: (kernel - 1) * dilation + 1 */
} cpu_band_rows;

/* One band: output rows [oh0, oh1), the input rows [ih0, ih1) they read, and the rows of
 * padding above and below them (non-zero only at the image's edges). */
typedef struct cpu_band_span {
    int64_t oh0, oh1, ih0, ih1;
    int64_t pad_top, pad_bottom;
} cpu_band_span;

/* The bands a plan starts with: one per thread, at most one per output row and at most
 * CPU_DNNL_MAX_BANDS (0 when there are no output rows). */
int cpu_bands_first_count(int n_threads, int64_t out_rows);

/* Band b of nb (0 <= b < nb <= rows->out_rows): output rows split as evenly as they go. */
void cpu_band_span_of(const cpu_band_rows *rows, int nb, int b, cpu_band_span *span);

/* What cpu_band_make_fn reports for a band. */
enum {
    CPU_BAND_MADE = 0,
    CPU_BAND_THIN = 1,              /* only the reference kernel, and refused: nothing kept */
};

/* Makes band b of a plan (its span given) or fails (negative); may answer CPU_BAND_THIN only
 * when refuse_reference is set. */
typedef int (*cpu_band_make_fn)(void *user, int b, const cpu_band_span *span, bool refuse_reference);
/* Drops every band made so far, leaving none. */
typedef void (*cpu_band_drop_fn)(void *user);

/* Plans the bands of a conv for n_threads: starts with cpu_bands_first_count bands and makes
 * them in order; a thin band drops the plan and starts again with half as many. Returns the
 * number of bands made (>= 1), or -1 when a band failed or there are no rows (what was made is
 * then left for the caller's cleanup, as make left it). */
int cpu_bands_plan(const cpu_band_rows *rows, int n_threads, cpu_band_make_fn make, cpu_band_drop_fn drop,
                   void *user);

/* ---- the bands as oneDNN primitives ---------------------------------------------------- */

typedef struct cpu_dnnl_band {
    dnnl_primitive_t conv;
    dnnl_memory_t m_src, m_dst, m_scratch;
    int64_t oh0, oh1, ih0;          /* output rows [oh0, oh1); first input row read */
    size_t off_scratch;             /* its scratchpad in the node's workspace */
} cpu_dnnl_band;

typedef struct cpu_dnnl_bands {
    int n;
    cpu_dnnl_band band[CPU_DNNL_MAX_BANDS];
    dnnl_memory_desc_t weights;     /* the layout band 0 chose, which every band reads */
    size_t scratch_bytes;           /* the bands' scratchpads, from offset 0 of the workspace */
} cpu_dnnl_bands;

/* One NHWC image's 2-D convolution, everything about it but the bands. */
typedef struct cpu_dnnl_band_conv {
    cpu_band_rows rows;
    int64_t src_channels, src_width, dst_channels, dst_width;
    int64_t pad_left, pad_right;
    dnnl_dims_t strides, dilates;   /* oneDNN's dilates: dilation - 1 */
    dnnl_data_type_t src_type, dst_type;
    const dnnl_memory_desc_t *weights;  /* what band 0 asks for (format_tag_any lets it choose) */
    const dnnl_memory_desc_t *bias;     /* NULL without a bias */
    const_dnnl_primitive_attr_t attr;
} cpu_dnnl_band_conv;

/* The conv's bands for ctx's threads, each a primitive with its memories (handles bound at run
 * time by cpu_dnnl_band_execute). 0 on success; -1 when oneDNN has no such convolution or the
 * bands disagree on the weight layout, with nothing left in bands. Call with OpenMP at one
 * thread: oneDNN sizes its blocking for the threads it sees. */
int cpu_dnnl_bands_create(cpu_dnnl_bands *bands, cpu_ctx *ctx, const cpu_dnnl_band_conv *conv);
/* Destroys the bands' primitives and memories, leaving none. */
void cpu_dnnl_bands_free(cpu_dnnl_bands *bands);

/* Runs one band from src (its first input row) into dst (its first output row) with its
 * scratchpad in ws, reading weights and, when extra is not NULL, extra as argument extra_arg
 * (the bias, or the source zero point). false when oneDNN failed. */
bool cpu_dnnl_band_execute(const cpu_dnnl_band *band, cpu_ctx *ctx, const void *src, void *dst, char *ws,
                           dnnl_memory_t weights, int extra_arg, dnnl_memory_t extra);

/* ---- the one weight every band reads -------------------------------------------------- */

/* A band conv's weight, [groups, out/groups, group_in, kh, kw] ([out, group_in, kh, kw] with
 * one group): plain (goihw / oihw), or with any, format_tag_any for oneDNN to choose. */
void cpu_dnnl_weight_desc(dnnl_memory_desc_t *md, int64_t groups, int64_t out_channels, int64_t group_in_channels,
                          int64_t kh, int64_t kw, dnnl_data_type_t type, bool any);

/* The pack-time reorder of a plain weight into the layout the bands chose. */
typedef struct cpu_dnnl_weight_pack {
    dnnl_primitive_t reorder;
    dnnl_memory_t m_from, m_to;     /* its endpoints, handles bound per pack */
} cpu_dnnl_weight_pack;

/* 0, or -1 when oneDNN has no such reorder (what was made is left for _free). */
int cpu_dnnl_weight_pack_create(cpu_dnnl_weight_pack *wp, cpu_ctx *ctx, const dnnl_memory_desc_t *from,
                                const dnnl_memory_desc_t *to);
void cpu_dnnl_weight_pack_free(cpu_dnnl_weight_pack *wp);
/* Reorders src into dst; SHOAL_ERR_INTERNAL naming what ("a conv weight") when oneDNN fails. */
int cpu_dnnl_weight_pack_run(const cpu_dnnl_weight_pack *wp, cpu_ctx *ctx, const void *src, void *dst,
                             const char *what, sh_err *err);

#endif
