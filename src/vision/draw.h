/* Annotating images: boxes with "name 0.87" labels, translucent instance masks, hand
 * landmarks and skeletons. For debugging, demos and the server's preview; pure CPU, no
 * allocation (everything is drawn in place on an sh_image).
 *
 *   sh_draw_params dp = sh_draw_default_params();
 *   dp.class_names = sh_coco80_names; dp.n_class_names = 80;
 *   sh_draw_detections(&img, dets, &dp);
 *   sh_image_write_png(&img, "out.png", &err);
 *
 * Text uses a built-in 5x7 bitmap font (ASCII 32..126; other bytes draw as '?'),
 * magnified by an integer factor. */
#ifndef SHOAL_VISION_DRAW_H
#define SHOAL_VISION_DRAW_H

#include <stdint.h>

#include "vision/decode.h"
#include "vision/image.h"

typedef struct sh_rgb {
    uint8_t r, g, b;
} sh_rgb;

typedef struct sh_draw_params {
    int thickness;                   /* box and skeleton line width, 0 = from image size */
    int font_scale;                  /* pixels per font dot, 0 = from image size */
    float mask_alpha;                /* opacity of mask overlays, 0..1 (0.45) */
    const char *const *class_names;  /* may be NULL: labels then read "class 3 0.87" */
    int n_class_names;
} sh_draw_params;

sh_draw_params sh_draw_default_params(void);

/* The 80 COCO class names in the order YOLO/YOLOX models use. */
extern const char *const sh_coco80_names[80];

/* A stable, distinct colour per class id. */
sh_rgb sh_class_color(int class_id);

void sh_draw_rect(sh_image *img, int x1, int y1, int x2, int y2, sh_rgb c, int thickness);
void sh_draw_fill_rect(sh_image *img, int x1, int y1, int x2, int y2, sh_rgb c);
void sh_draw_line(sh_image *img, float x0, float y0, float x1, float y1, sh_rgb c, int thickness);
void sh_draw_disc(sh_image *img, float cx, float cy, float radius, sh_rgb c);
/* Draws text with its top-left at (x, y); returns the width drawn in pixels. */
int sh_draw_text(sh_image *img, int x, int y, const char *text, int scale, sh_rgb c);
int sh_text_width(const char *text, int scale);
/* Blends colour c over the pixels a mask covers. */
void sh_draw_mask(sh_image *img, const sh_mask *m, sh_rgb c, float alpha);

/* Masks first (so outlines stay crisp), then boxes, then labels. */
void sh_draw_detections(sh_image *img, const sh_detections *dets, const sh_draw_params *p);
/* Skeleton lines and a dot per landmark. */
void sh_draw_hand(sh_image *img, const sh_hand_landmarks *hand, const sh_draw_params *p);

#endif
