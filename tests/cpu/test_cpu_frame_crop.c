/* FrameCrop (graph/frame_ops.h sh_graph_add_frame_crop) on the CPU against sh_hand_crop, the
 * host crop the hand landmarker made before: every sample bit-identical, for both borders,
 * rotated rects, rects partly or wholly outside the frame, odd frame sizes, a frame smaller
 * than the frame input's capacity and a crop that is not square. The crop feeds a Relu (what
 * the op is for: a network's first node; Relu keeps the crop's non-negative values as they
 * are), every activation is NaN-poisoned before the first run, and each graph runs several
 * rects in turn so an unwritten sample would keep the previous rect's value. Frames hold
 * random bytes from 1 to 255. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "graph/frame_ops.h"
#include "graph/passes.h"
#include "harness.h"
#include "vision/hands.h"

typedef struct crop_graph {
    th h;
    int frame, size, rect, out;
} crop_graph;

/* x [1, out_h, out_w, 3] -> Relu -> y, then the crop in front of x. */
static void crop_graph_build(crop_graph *c, int out_w, int out_h, int64_t max_pixels, bool zero_border)
{
    th_init(&c->h, 1);
    const int64_t d[4] = {1, out_h, out_w, 3};
    int x = th_tensor(&c->h, "x", 4, d);
    c->out = th_tensor(&c->h, "y", 4, d);
    sh_graph_add_node(c->h.g, "relu", SH_OP_RELU, &x, 1, &c->out, 1);
    sh_graph_set_inputs(c->h.g, &x, 1);
    c->h.g->tensors[x].is_input = true;
    sh_err err = {0};
    if (sh_graph_add_frame_crop(c->h.g, max_pixels, zero_border, &err) || sh_graph_infer_shapes(c->h.g, &err))
        fail_msg("%s", err.msg);
    c->frame = c->h.g->inputs[0];
    c->size = c->h.g->inputs[1];
    c->rect = c->h.g->inputs[2];
    int in[3] = {c->frame, c->size, c->rect};
    assert_int_equal(th_compile(&c->h, in, 3, &c->out, 1), 0);
}

static void random_frame(th *h, uint8_t *px, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h->rng ^= h->rng << 13;
        h->rng ^= h->rng >> 7;
        h->rng ^= h->rng << 17;
        px[i] = (uint8_t)(1 + (h->rng >> 33) % 255);
    }
}

/* Runs rect r on the frame in the graph's frame input and compares with sh_hand_crop. */
static void check_rect(crop_graph *c, int fw, int fh, const sh_hand_rect *r, int out_w, int out_h, bool zero_border)
{
    int32_t *size = c->h.ptr[c->size];
    size[0] = fw;
    size[1] = fh;
    sh_hand_crop_words(r, c->h.ptr[c->rect]);
    assert_int_equal(th_run(&c->h), 0);
    size_t n = 3 * (size_t)out_w * (size_t)out_h;
    float *ref = malloc(n * sizeof *ref);
    sh_image img = {.width = fw, .height = fh, .channels = 3, .data = c->h.ptr[c->frame]};
    sh_hand_crop(&img, r, out_w, out_h, zero_border, ref);
    const float *got = c->h.ptr[c->out];
    size_t inside = 0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&got[i], &ref[i], sizeof(float)) != 0)
            fail_msg("frame %dx%d, rect (%g, %g, %g, %g, %g), %s border: sample %zu is %.9g, sh_hand_crop %.9g", fw,
                     fh, r->x_center, r->y_center, r->width, r->height, r->rotation, zero_border ? "zero" : "edge", i,
                     got[i], ref[i]);
        inside += ref[i] > 0.0f;
    }
    assert_true(inside > 0);   /* every rect here overlaps the frame: some samples are not border */
    free(ref);
}

static const sh_hand_rect rects[] = {
    {0.5f, 0.5f, 1.0f, 1.0f, 0.0f},           /* the whole frame */
    {0.4f, 0.55f, 0.3f, 0.45f, 0.7f},         /* rotated, inside */
    {0.1f, 0.9f, 0.6f, 0.5f, -2.5f},          /* partly outside, bottom left */
    {0.95f, 0.05f, 0.8f, 0.8f, 3.1f},         /* mostly outside, top right */
    {0.5f, 0.5f, 1.6f, 1.6f, 1.5707964f},     /* larger than the frame, a quarter turn */
    {0.3f, 0.6f, 0.02f, 0.03f, -0.3f},        /* a few pixels upscaled */
};
#define N_RECTS ((int)(sizeof rects / sizeof rects[0]))

static void run_case(int fw, int fh, int64_t spare_pixels, int out_w, int out_h, bool zero_border)
{
    crop_graph c;
    crop_graph_build(&c, out_w, out_h, (int64_t)fw * fh + spare_pixels, zero_border);
    random_frame(&c.h, c.h.ptr[c.frame], 3 * ((size_t)fw * fh + (size_t)spare_pixels));
    for (int k = 0; k < N_RECTS; k++)
        check_rect(&c, fw, fh, &rects[k], out_w, out_h, zero_border);
    /* the palm detector's letterbox of this frame */
    sh_hand_rect whole = sh_palm_input_rect(fw, fh);
    check_rect(&c, fw, fh, &whole, out_w, out_h, zero_border);
    th_free(&c.h);
}

static void test_zero_border(void **state)
{
    (void)state;
    run_case(97, 61, 0, 24, 24, true);
    run_case(61, 97, 500, 17, 23, true);
    run_case(3, 5, 0, 16, 16, true);
}

static void test_edge_border(void **state)
{
    (void)state;
    run_case(97, 61, 0, 24, 24, false);
    run_case(128, 33, 77, 31, 19, false);
    run_case(1, 1, 3, 8, 8, false);
}

/* A frame size the frame input cannot hold is an error of the run, not a read past the end. */
static void test_frame_too_large(void **state)
{
    (void)state;
    crop_graph c;
    crop_graph_build(&c, 8, 8, 100, true);
    random_frame(&c.h, c.h.ptr[c.frame], 300);
    int32_t *size = c.h.ptr[c.size];
    sh_hand_crop_words(&rects[1], c.h.ptr[c.rect]);
    const int32_t bad[][2] = {{11, 10}, {0, 5}, {5, -1}, {100000, 1}};
    for (int k = 0; k < 4; k++) {
        size[0] = bad[k][0];
        size[1] = bad[k][1];
        assert_int_equal(th_run(&c.h), SHOAL_ERR_INVALID_ARG);
    }
    size[0] = 10;
    size[1] = 10;
    assert_int_equal(th_run(&c.h), 0);
    th_free(&c.h);
}

/* The crop feeds float32 NHWC [1,H,W,3] inputs only. */
static void test_refuses_other_inputs(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    const int64_t shapes[][4] = {{1, 3, 16, 16}, {2, 16, 16, 3}, {1, 16, 16, 4}};
    for (int k = 0; k < 3; k++) {
        sh_graph *g = sh_graph_create(a, "g");
        sh_shape s = {4, {shapes[k][0], shapes[k][1], shapes[k][2], shapes[k][3]}};
        int x = sh_graph_add_tensor(g, "x", SH_DT_FLOAT32, &s);
        sh_graph_set_inputs(g, &x, 1);
        sh_err err = {0};
        assert_int_equal(sh_graph_add_frame_crop(g, 100, true, &err), SHOAL_ERR_SHAPE);
        assert_non_null(strstr(err.msg, "'x'"));
        sh_graph_destroy(g);
    }
    sh_graph *g = sh_graph_create(a, "g");
    sh_shape s = {4, {1, 16, 16, 3}};
    int x = sh_graph_add_tensor(g, "x", SH_DT_FLOAT32, &s);
    sh_graph_set_inputs(g, &x, 1);
    sh_err err = {0};
    assert_int_equal(sh_graph_add_frame_crop(g, -1, true, &err), SHOAL_ERR_INVALID_ARG);
    sh_graph_destroy(g);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_border),
        cmocka_unit_test(test_edge_border),
        cmocka_unit_test(test_frame_too_large),
        cmocka_unit_test(test_refuses_other_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
