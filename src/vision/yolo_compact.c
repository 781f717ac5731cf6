/* The compact YOLOv8 output of device-side score filtering (decode.h sh_yolo_compact): a
 * downloaded buffer is checked word by word (it comes from another device, and a wrong size
 * must read as a message, not as garbage detections), then its survivors are put in anchor
 * order, the order the device's atomic appends lost and the full output's decode visits. */
#include "vision/decode-impl.h"

#include <stdlib.h>
#include <string.h>

#define HEADER_BYTES (SH_YOLO_COMPACT_HEADER_WORDS * sizeof(int32_t))

size_t sh_yolo_compact_bytes(int64_t channels, int64_t rows)
{
    if (channels <= 4 || channels > SH_YOLO_MAX_CHANNELS || rows < 0 || rows > INT32_MAX)
        return 0;
    /* at most 2^31 rows of 65537 words: far inside size_t */
    return HEADER_BYTES + (size_t)rows * (size_t)(1 + channels) * sizeof(int32_t);
}

/* Word i of the buffer (bytes written by a copy: read through memcpy, whatever they were). */
static int32_t word_at(const void *data, size_t i)
{
    int32_t v;
    memcpy(&v, (const char *)data + i * sizeof v, sizeof v);
    return v;
}

static int read_header(const sh_yolo_compact *c, const char *who, size_t *count, size_t *held, sh_err *err)
{
    if (!c || !c->data)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "%s: compact output is NULL", who);
    if ((uintptr_t)c->data % sizeof(int32_t))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "%s: compact output is not 4-byte aligned", who);
    if (c->bytes < HEADER_BYTES)
        return sh_errf(err, SHOAL_ERR_SHAPE, "%s: compact output of %zu bytes is shorter than its %zu-byte header", who,
                       c->bytes, HEADER_BYTES);
    int32_t ch = word_at(c->data, SH_YOLO_COMPACT_CHANNELS), n = word_at(c->data, SH_YOLO_COMPACT_ANCHORS);
    int32_t nc = word_at(c->data, SH_YOLO_COMPACT_CLASSES), rows = word_at(c->data, SH_YOLO_COMPACT_ROWS);
    int32_t passed = word_at(c->data, SH_YOLO_COMPACT_COUNT);
    if (ch <= 4 || ch > SH_YOLO_MAX_CHANNELS || n <= 0)
        return sh_errf(err, SHOAL_ERR_SHAPE, "%s: compact output of [%d, %d] is not [4+nc, N]", who, ch, n);
    if (nc < 1 || nc > ch - 4)
        return sh_errf(err, SHOAL_ERR_SHAPE, "%s: compact output scanned %d classes of %d channels", who, nc, ch);
    if (rows < 0 || passed < 0 || passed > n)
        return sh_errf(err, SHOAL_ERR_SHAPE, "%s: compact output counts %d survivors of %d anchors (room for %d)", who,
                       passed, n, rows);
    size_t h = (size_t)(passed < rows ? passed : rows), need = sh_yolo_compact_bytes(ch, (int64_t)h);
    if (c->bytes < need)
        return sh_errf(err, SHOAL_ERR_SHAPE,
                       "%s: compact output of %zu bytes is cut short: its %zu rows of %d channels take %zu", who,
                       c->bytes, h, ch, need);
    *count = (size_t)passed;
    *held = h;
    return 0;
}

int sh_yolo_compact_survivors(const sh_yolo_compact *c, size_t *count, size_t *held, sh_err *err)
{
    return read_header(c, "yolov8", count, held, err);
}

/* What the filter scanned must be what the decoder reads, or the survivors differ. */
static int check_filter(const sh_yolo_compact *c, int64_t extra, float threshold, const char *who, sh_err *err)
{
    int32_t ch = word_at(c->data, SH_YOLO_COMPACT_CHANNELS), nc = word_at(c->data, SH_YOLO_COMPACT_CLASSES);
    if ((int64_t)nc != ch - 4 - extra)
        return sh_errf(err, SHOAL_ERR_SHAPE, "%s: compact output was filtered over %d classes, the decoder reads %lld "
                       "(%d channels, %lld after the classes)", who, nc, (long long)(ch - 4 - extra), ch,
                       (long long)extra);
    float at;
    int32_t bits = word_at(c->data, SH_YOLO_COMPACT_THRESHOLD);
    memcpy(&at, &bits, sizeof at);
    if (!(at == threshold))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "%s: compact output was filtered at score %g, decoding at %g", who,
                       (double)at, (double)threshold);
    return 0;
}

static int by_anchor(const void *pa, const void *pb)
{
    int32_t a = ((const sh_yolo_held *)pa)->anchor, b = ((const sh_yolo_held *)pb)->anchor;
    return (a > b) - (a < b);
}

/* Anchors in range and each once: sorted, a repeat sits next to its twin. */
static int check_anchors(const sh_yolo_cols *src, const char *who, sh_err *err)
{
    for (size_t i = 0; i < src->n_held; i++) {
        int32_t j = src->held[i].anchor;
        if (j < 0 || j >= src->n_anchors)
            return sh_errf(err, SHOAL_ERR_SHAPE, "%s: compact output names anchor %d of %lld", who, j,
                           (long long)src->n_anchors);
        if (i > 0 && src->held[i - 1].anchor == j)
            return sh_errf(err, SHOAL_ERR_SHAPE, "%s: compact output lists anchor %d twice", who, j);
    }
    return 0;
}

int sh_yolo_cols_compact(sh_allocator *a, const sh_yolo_compact *c, int64_t extra, float threshold, const char *who,
                         sh_yolo_cols *src, sh_err *err)
{
    memset(src, 0, sizeof *src);
    size_t count = 0, held = 0;
    int rc = read_header(c, who, &count, &held, err);
    if (rc == 0 && held < count)
        rc = sh_errf(err, SHOAL_ERR_INVALID_ARG, "%s: compact output holds %zu of its %zu survivors: decode the full "
                     "output instead", who, held, count);
    if (rc || (rc = check_filter(c, extra, threshold, who, err)))
        return rc;
    src->channels = word_at(c->data, SH_YOLO_COMPACT_CHANNELS);
    src->n_anchors = word_at(c->data, SH_YOLO_COMPACT_ANCHORS);
    src->held = sh_alloc(a, (held ? held : 1) * sizeof *src->held);
    if (!src->held)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: cannot allocate %zu survivors", who, held);
    src->n_held = held;
    size_t row_words = 1 + (size_t)src->channels;
    for (size_t i = 0; i < held; i++) {
        size_t at = SH_YOLO_COMPACT_HEADER_WORDS + i * row_words;
        src->held[i].anchor = word_at(c->data, at);
        src->held[i].values = (const float *)((const int32_t *)c->data + at + 1);
    }
    qsort(src->held, held, sizeof *src->held, by_anchor);
    if ((rc = check_anchors(src, who, err)))
        sh_yolo_cols_free(a, src);
    return rc;
}

void sh_yolo_cols_free(sh_allocator *a, sh_yolo_cols *src)
{
    sh_free(a, src->held);
    memset(src, 0, sizeof *src);
}
