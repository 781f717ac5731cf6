/* Packing a program's constants for the device (backend.h pack_weight): fp16, in the layout
 * the step reading them wants (cuda_impl.h sh_cuda_wpack), or the raw bytes quantized nodes
 * read (int8 weights, int32 biases, float32 scales, zero points). */
#include "backends/cuda/cuda_quant.h"
#include "core/half.h"

#include <string.h>

static int64_t numel(const sh_tensor *t) { return sh_shape_numel(&t->shape); }

/* Every element of a non-float16 constant through the one rounding routine. */
static int pack_elements(const sh_tensor *ts, int64_t n, uint16_t *d, sh_err *err)
{
    if (ts->dtype == SH_DT_FLOAT32) {
        sh_f32_to_f16_n(d, ts->data, (size_t)n);
        return 0;
    }
    if (ts->dtype == SH_DT_FLOAT16) {
        memcpy(d, ts->data, (size_t)n * 2);
        return 0;
    }
    for (int64_t i = 0; i < n; i++) {
        float f;
        switch (ts->dtype) {
        case SH_DT_FLOAT64: f = (float)((const double *)ts->data)[i]; break;
        case SH_DT_INT64: f = (float)((const int64_t *)ts->data)[i]; break;
        case SH_DT_INT32: f = (float)((const int32_t *)ts->data)[i]; break;
        case SH_DT_INT8: f = (float)((const int8_t *)ts->data)[i]; break;
        case SH_DT_UINT8: case SH_DT_BOOL: f = (float)((const uint8_t *)ts->data)[i]; break;
        default:
            return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "pack_weight: tensor %s has dtype %s", ts->name,
                           sh_dtype_name(ts->dtype));
        }
        d[i] = sh_cuda_f32_to_f16(f);
    }
    return 0;
}

/* Every packed constant is fp16 row-major; deterministic, so equal bytes dedupe. Thread-safe
 * (it reads the program and the tensor only): the runtime packs several models at once. */
int sh_cuda_pack_weight(void *vctx, const sh_program *p, int t, void *dst, sh_err *err)
{
    const sh_tensor *ts = &p->graph->tensors[t];
    int64_t n = numel(ts);
    const sh_cuda_prog *cp0 = p->impl;
    if (cp0 && cp0->wpack[t] == SH_WPACK_RAW && ts->is_const && ts->data && n >= 0 &&
        p->weight_bytes[t] == (size_t)n * sh_dtype_size(ts->dtype)) {
        memcpy(dst, ts->data, p->weight_bytes[t]);
        return 0;
    }
    if (cp0 && cp0->wpack[t] == SH_WPACK_Q8)
        return sh_cuda_pack_q8_weight(ts, dst, err);
    if (!ts->is_const || !ts->data || n < 0 || p->weight_bytes[t] != (size_t)n * 2)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "pack_weight: tensor %s is not a packed constant", ts->name);
    uint16_t *d = dst;
    const sh_cuda_prog *cp = p->impl;
    int pack = cp && ts->shape.ndim == 4 ? cp->wpack[t] : SH_WPACK_PLAIN;
    /* [A, B, R, S] -> KRSC [A][R*S][B], or taps first [R*S][B][A] (cuda_impl.h) */
    int64_t A = ts->shape.d[0], B = ts->shape.d[1];
    int64_t RS = pack ? ts->shape.d[2] * ts->shape.d[3] : 1;
    if (!pack || (pack == SH_WPACK_KRSC && (RS == 1 || B == 1)))   /* already KRSC */
        return pack_elements(ts, n, d, err);
    /* converted contiguously first (the fast path), then transposed one filter at a time: a
     * filter is a few KiB, in cache */
    sh_allocator *al = vctx ? ((sh_cuda_ctx *)vctx)->alloc : NULL;
    uint16_t *tmp = sh_alloc(al, (size_t)n * 2);
    if (!tmp)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "pack_weight: %s", ts->name);
    int rc = pack_elements(ts, n, tmp, err);
    for (int64_t a = 0; !rc && a < A; a++) {
        const uint16_t *src = tmp + a * B * RS;
        for (int64_t b = 0; b < B; b++)
            for (int64_t rs = 0; rs < RS; rs++) {
                size_t at = pack == SH_WPACK_KRSC ? (size_t)((a * RS + rs) * B + b) : (size_t)((rs * B + b) * A + a);
                d[at] = src[b * RS + rs];
            }
    }
    sh_free(al, tmp);
    return rc;
}
