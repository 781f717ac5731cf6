#include "vision/draw.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* 5x7 font for ASCII 32..126: seven rows per glyph, bit 4 is the leftmost column. */
static const uint8_t font5x7[95][7] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ' ' */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04}, /* ! */
    {0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00}, /* " */
    {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A}, /* # */
    {0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04}, /* $ */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}, /* % */
    {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D}, /* & */
    {0x0C, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00}, /* ' */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}, /* ( */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}, /* ) */
    {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00}, /* * */
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}, /* + */
    {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}, /* , */
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}, /* - */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}, /* . */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}, /* / */
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, /* 0 */
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}, /* 1 */
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, /* 2 */
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}, /* 3 */
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, /* 4 */
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}, /* 5 */
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, /* 6 */
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, /* 7 */
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, /* 8 */
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}, /* 9 */
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}, /* : */
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08}, /* ; */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02}, /* < */
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}, /* = */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08}, /* > */
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}, /* ? */
    {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E}, /* @ */
    {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11}, /* A */
    {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}, /* B */
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}, /* C */
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}, /* D */
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}, /* E */
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}, /* F */
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}, /* G */
    {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}, /* H */
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, /* I */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}, /* J */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, /* K */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}, /* L */
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}, /* M */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}, /* N */
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, /* O */
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}, /* P */
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}, /* Q */
    {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}, /* R */
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}, /* S */
    {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* T */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, /* U */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}, /* V */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}, /* W */
    {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}, /* X */
    {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}, /* Y */
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}, /* Z */
    {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E}, /* [ */
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00}, /* \ */
    {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E}, /* ] */
    {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00}, /* ^ */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}, /* _ */
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00}, /* ` */
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}, /* a */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E}, /* b */
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E}, /* c */
    {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F}, /* d */
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}, /* e */
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08}, /* f */
    {0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E}, /* g */
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}, /* h */
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E}, /* i */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C}, /* j */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}, /* k */
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, /* l */
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11}, /* m */
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}, /* n */
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}, /* o */
    {0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10}, /* p */
    {0x00, 0x00, 0x0D, 0x13, 0x0F, 0x01, 0x01}, /* q */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}, /* r */
    {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E}, /* s */
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06}, /* t */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D}, /* u */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04}, /* v */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A}, /* w */
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11}, /* x */
    {0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E}, /* y */
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F}, /* z */
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02}, /* { */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* | */
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08}, /* } */
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00}, /* ~ */
};

#define GLYPH_W 5
#define GLYPH_H 7
#define GLYPH_ADVANCE 6

const char *const sh_coco80_names[80] = {
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
};

sh_draw_params sh_draw_default_params(void)
{
    sh_draw_params p = {.thickness = 0, .font_scale = 0, .mask_alpha = 0.45f};
    return p;
}

/* Saturated hues spaced by the golden angle, so neighbouring ids never look alike. */
sh_rgb sh_class_color(int class_id)
{
    static const sh_rgb palette[20] = {
        {255, 56, 56},  {255, 157, 151}, {255, 112, 31}, {255, 178, 29}, {207, 210, 49},
        {72, 249, 10},  {146, 204, 23},  {61, 219, 134}, {26, 147, 52},  {0, 212, 187},
        {44, 153, 168}, {0, 194, 255},   {52, 69, 147},  {100, 115, 255}, {0, 24, 236},
        {132, 56, 255}, {82, 0, 133},    {203, 56, 255}, {255, 149, 200}, {255, 55, 199},
    };
    unsigned i = (unsigned)(class_id < 0 ? -class_id : class_id);
    return palette[i % 20];
}

static inline void put(sh_image *img, int x, int y, sh_rgb c)
{
    if (x < 0 || y < 0 || x >= img->width || y >= img->height)
        return;
    uint8_t *p = img->data + ((size_t)y * img->width + x) * 3;
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
}

void sh_draw_fill_rect(sh_image *img, int x1, int y1, int x2, int y2, sh_rgb c)
{
    if (!img || !img->data)
        return;
    x1 = x1 < 0 ? 0 : x1;
    y1 = y1 < 0 ? 0 : y1;
    x2 = x2 > img->width ? img->width : x2;
    y2 = y2 > img->height ? img->height : y2;
    for (int y = y1; y < y2; y++)
        for (int x = x1; x < x2; x++)
            put(img, x, y, c);
}

void sh_draw_rect(sh_image *img, int x1, int y1, int x2, int y2, sh_rgb c, int t)
{
    if (t < 1)
        t = 1;
    sh_draw_fill_rect(img, x1, y1, x2 + 1, y1 + t, c);
    sh_draw_fill_rect(img, x1, y2 + 1 - t, x2 + 1, y2 + 1, c);
    sh_draw_fill_rect(img, x1, y1, x1 + t, y2 + 1, c);
    sh_draw_fill_rect(img, x2 + 1 - t, y1, x2 + 1, y2 + 1, c);
}

void sh_draw_disc(sh_image *img, float cx, float cy, float radius, sh_rgb c)
{
    if (!img || !img->data || !isfinite(cx) || !isfinite(cy))
        return;
    int x0 = (int)floorf(cx - radius), x1 = (int)ceilf(cx + radius);
    int y0 = (int)floorf(cy - radius), y1 = (int)ceilf(cy + radius);
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            float dx = x + 0.5f - cx, dy = y + 0.5f - cy;
            if (dx * dx + dy * dy <= radius * radius)
                put(img, x, y, c);
        }
}

void sh_draw_line(sh_image *img, float x0, float y0, float x1, float y1, sh_rgb c, int t)
{
    if (!img || !img->data || !isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1))
        return;
    float dx = x1 - x0, dy = y1 - y0;
    float len = sqrtf(dx * dx + dy * dy);
    int steps = (int)ceilf(len) + 1;
    if (steps > 1 << 16)
        steps = 1 << 16;
    /* 0.75 rather than 0.5 so a one-pixel line on integer coordinates still covers a pixel
     * centre at every step. */
    float r = t > 1 ? t / 2.0f : 0.75f;
    for (int i = 0; i <= steps; i++) {
        float f = (float)i / steps;
        sh_draw_disc(img, x0 + dx * f, y0 + dy * f, r, c);
    }
}

int sh_text_width(const char *text, int scale)
{
    size_t n = text ? strlen(text) : 0;
    return n ? (int)(n * GLYPH_ADVANCE - 1) * scale : 0;
}

int sh_draw_text(sh_image *img, int x, int y, const char *text, int scale, sh_rgb c)
{
    if (!img || !img->data || !text)
        return 0;
    if (scale < 1)
        scale = 1;
    int cx = x;
    for (const unsigned char *s = (const unsigned char *)text; *s; s++, cx += GLYPH_ADVANCE * scale) {
        unsigned ch = *s;
        const uint8_t *g = font5x7[(ch >= 32 && ch <= 126 ? ch : '?') - 32];
        for (int row = 0; row < GLYPH_H; row++)
            for (int col = 0; col < GLYPH_W; col++)
                if (g[row] & (0x10 >> col))
                    sh_draw_fill_rect(img, cx + col * scale, y + row * scale, cx + (col + 1) * scale,
                                      y + (row + 1) * scale, c);
    }
    return sh_text_width(text, scale);
}

void sh_draw_mask(sh_image *img, const sh_mask *m, sh_rgb c, float alpha)
{
    if (!img || !img->data || !m || m->width <= 0)
        return;
    int a = (int)lrintf(fminf(fmaxf(alpha, 0.0f), 1.0f) * 256);
    size_t pos = 0;
    for (size_t r = 0; r < m->n_runs; r++) {
        size_t len = m->runs[r];
        if (r & 1)
            for (size_t k = pos; k < pos + len; k++) {
                int x = m->x + (int)(k % (size_t)m->width), y = m->y + (int)(k / (size_t)m->width);
                if (x < 0 || y < 0 || x >= img->width || y >= img->height)
                    continue;
                uint8_t *p = img->data + ((size_t)y * img->width + x) * 3;
                p[0] = (uint8_t)((p[0] * (256 - a) + c.r * a) >> 8);
                p[1] = (uint8_t)((p[1] * (256 - a) + c.g * a) >> 8);
                p[2] = (uint8_t)((p[2] * (256 - a) + c.b * a) >> 8);
            }
        pos += len;
    }
}

static int auto_scale(const sh_image *img, int given, int divisor)
{
    if (given > 0)
        return given;
    int s = (img->width < img->height ? img->width : img->height) / divisor;
    return s < 1 ? 1 : s;
}

void sh_draw_detections(sh_image *img, const sh_detections *dets, const sh_draw_params *p)
{
    if (!img || !img->data || !dets)
        return;
    sh_draw_params def = sh_draw_default_params();
    if (!p)
        p = &def;
    int t = auto_scale(img, p->thickness, 240);
    int fs = auto_scale(img, p->font_scale, 300);
    for (size_t i = 0; i < dets->count; i++)
        if (dets->items[i].mask)
            sh_draw_mask(img, dets->items[i].mask, sh_class_color(dets->items[i].class_id), p->mask_alpha);
    for (size_t i = 0; i < dets->count; i++) {
        const sh_detection *d = &dets->items[i];
        sh_draw_rect(img, (int)lrintf(d->x1), (int)lrintf(d->y1), (int)lrintf(d->x2) - 1, (int)lrintf(d->y2) - 1,
                     sh_class_color(d->class_id), t);
    }
    /* Labels last so no box line crosses a label; lowest score first so that where labels
     * overlap, the most confident one stays readable. */
    for (size_t i = dets->count; i-- > 0;) {
        const sh_detection *d = &dets->items[i];
        char label[96];
        if (p->class_names && d->class_id >= 0 && d->class_id < p->n_class_names && p->class_names[d->class_id])
            snprintf(label, sizeof label, "%s %.2f", p->class_names[d->class_id], d->score);
        else
            snprintf(label, sizeof label, "class %d %.2f", d->class_id, d->score);
        sh_rgb bg = sh_class_color(d->class_id);
        int lum = (299 * bg.r + 587 * bg.g + 114 * bg.b) / 1000;
        sh_rgb fg = lum > 140 ? (sh_rgb){0, 0, 0} : (sh_rgb){255, 255, 255};
        int pad = fs, tw = sh_text_width(label, fs) + 2 * pad, th = GLYPH_H * fs + 2 * pad;
        int x = (int)lrintf(d->x1), y = (int)lrintf(d->y1) - th;
        if (y < 0) /* no room above: put the label inside the box */
            y = (int)lrintf(d->y1);
        if (x + tw > img->width)
            x = img->width - tw;
        if (x < 0)
            x = 0;
        sh_draw_fill_rect(img, x, y, x + tw, y + th, bg);
        sh_draw_text(img, x + pad, y + pad, label, fs, fg);
    }
}

void sh_draw_hand(sh_image *img, const sh_hand_landmarks *hand, const sh_draw_params *p)
{
    if (!img || !img->data || !hand)
        return;
    sh_draw_params def = sh_draw_default_params();
    if (!p)
        p = &def;
    int t = auto_scale(img, p->thickness, 240);
    sh_rgb line = {255, 255, 255}, dot = {230, 30, 60};
    for (int e = 0; e < SH_HAND_EDGES; e++) {
        int a = sh_hand_edges[e][0], b = sh_hand_edges[e][1];
        sh_draw_line(img, hand->x[a], hand->y[a], hand->x[b], hand->y[b], line, t);
    }
    for (int i = 0; i < SH_HAND_POINTS; i++)
        sh_draw_disc(img, hand->x[i], hand->y[i], 1.5f * t + 1.5f, dot);
}
