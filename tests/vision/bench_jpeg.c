/* bench_jpeg [REPS] PHOTO...: JPEG decode of camera-sized frames, libjpeg-turbo (the decoder
 * shoal uses, sh_image_decode_jpeg) beside stb_image (sh_image_decode_stb, what shoal used
 * before), with the largest pixel difference between the two.
 *
 * The frames are made here from real photos, so nothing large is committed: 640x480 is the
 * first photo's centre, 1280x720 a 2x2 mosaic of the photos' centres (native detail, not an
 * upscale, which would be easier to decode). Each is encoded as a camera would: baseline
 * 4:2:0 at quality 85 (phones, ISP encoders), baseline 4:2:2 at 90 (UVC MJPEG webcams) and
 * progressive 4:2:0 at 85. Best and median of REPS decodes each (the best is the steadier
 * figure on a busy machine), the two decoders interleaved so clock changes hit both alike. A tool, not a test: docs/benchmarks.md has the numbers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <turbojpeg.h>

#include "vision/image-decode.h"

/* The thread's CPU time, not the wall clock: on a shared machine the wall clock also counts
 * the time other processes held the core, which drowns a 2 ms decode. */
static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* Copies the centre w x h of `src` (edge pixels repeated where it is smaller) to (x0, y0)
 * of the dst picture, dst_w pixels wide. */
static void paste_centre(const sh_image *src, uint8_t *dst, int dst_w, int x0, int y0, int w, int h)
{
    int ox = (src->width - w) / 2, oy = (src->height - h) / 2;
    for (int y = 0; y < h; y++) {
        int sy = oy + y < 0 ? 0 : oy + y >= src->height ? src->height - 1 : oy + y;
        for (int x = 0; x < w; x++) {
            int sx = ox + x < 0 ? 0 : ox + x >= src->width ? src->width - 1 : ox + x;
            memcpy(dst + ((size_t)(y0 + y) * dst_w + x0 + x) * 3, src->data + ((size_t)sy * src->width + sx) * 3, 3);
        }
    }
}

typedef int (*decode_fn)(sh_allocator *, const void *, size_t, const char *, int, int, sh_image *, sh_err *);

static void bench_frame(sh_allocator *a, const char *what, const uint8_t *rgb, int w, int h, int subsamp,
                        int quality, int flags, int reps)
{
    tjhandle tj = tjInitCompress();
    unsigned char *jpeg = NULL;
    unsigned long size = 0;
    if (!tj || tjCompress2(tj, rgb, w, 0, h, TJPF_RGB, &jpeg, &size, subsamp, quality, flags) != 0) {
        printf("%s: encoding failed: %s\n", what, tj ? tjGetErrorStr2(tj) : "no handle");
        tjDestroy(tj);
        return;
    }
    tjDestroy(tj);
    double *t_stb = malloc(sizeof(double) * (size_t)reps), *t_tj = malloc(sizeof(double) * (size_t)reps);
    sh_image by_stb = {0}, by_tj = {0};
    sh_err err = {0};
    for (int r = 0; r < reps; r++) {
        decode_fn fns[2] = {sh_image_decode_stb, sh_image_decode_jpeg};
        double *ts[2] = {t_stb, t_tj};
        sh_image *outs[2] = {&by_stb, &by_tj};
        for (int k = 0; k < 2; k++) {
            sh_image_free(outs[k]);
            double t0 = now_ms();
            if (fns[k](a, jpeg, size, what, w, h, outs[k], &err) != 0) {
                printf("%s: %s\n", what, err.msg);
                goto done;
            }
            ts[k][r] = now_ms() - t0;
        }
    }
    int max_diff = 0;
    double sum_diff = 0;
    size_t n = (size_t)w * h * 3;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)by_stb.data[i] - (int)by_tj.data[i]);
        max_diff = d > max_diff ? d : max_diff;
        sum_diff += d;
    }
    double med_stb = median(t_stb, reps), med_tj = median(t_tj, reps); /* sorts: [0] is the best */
    printf("| %-30s | %6lu | %6.2f | %6.2f | %5.2fx | %6.2f | %6.2f | %5.2fx | %3d | %.3f |\n", what, size,
           t_tj[0], t_stb[0], t_stb[0] / t_tj[0], med_tj, med_stb, med_stb / med_tj, max_diff, sum_diff / (double)n);
done:
    sh_image_free(&by_stb);
    sh_image_free(&by_tj);
    free(t_stb);
    free(t_tj);
    tjFree(jpeg);
}

int main(int argc, char **argv)
{
    int first = 1, reps = 50;
    if (argc > 1 && argv[1][0] >= '0' && argv[1][0] <= '9') {
        reps = atoi(argv[1]);
        first = 2;
    }
    if (argc <= first || reps < 1) {
        fprintf(stderr, "usage: %s [REPS] PHOTO...  (e.g. ../shared/real-models/images/street/*.jpg)\n", argv[0]);
        return 2;
    }
    sh_allocator *a = sh_allocator_create();
    int n_photos = argc - first > 4 ? 4 : argc - first;
    sh_image photos[4] = {{0}};
    sh_err err = {0};
    for (int i = 0; i < n_photos; i++) {
        if (sh_image_load_file(a, argv[first + i], &photos[i], &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
    }
    uint8_t *vga = malloc((size_t)640 * 480 * 3), *hd = malloc((size_t)1280 * 720 * 3);
    paste_centre(&photos[0], vga, 640, 0, 0, 640, 480);
    for (int q = 0; q < 4; q++)
        paste_centre(&photos[q % n_photos], hd, 1280, (q % 2) * 640, (q / 2) * 360, 640, 360);

    printf("JPEG decode to RGB, best and median of %d (thread CPU ms); ratio = stb_image / libjpeg-turbo;\n"
           "diff = |stb - turbo| over every byte\n", reps);
    printf("| frame | bytes | turbo best | stb best | ratio | turbo median | stb median | ratio | max diff | mean diff |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    struct { const char *name; int subsamp, quality, flags; } kinds[] = {
        {"baseline 4:2:0 q85", TJSAMP_420, 85, 0},
        {"baseline 4:2:2 q90", TJSAMP_422, 90, 0},
        {"progressive 4:2:0 q85", TJSAMP_420, 85, TJFLAG_PROGRESSIVE},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        char what[64];
        snprintf(what, sizeof what, "1280x720 %s", kinds[k].name);
        bench_frame(a, what, hd, 1280, 720, kinds[k].subsamp, kinds[k].quality, kinds[k].flags, reps);
        snprintf(what, sizeof what, "640x480 %s", kinds[k].name);
        bench_frame(a, what, vga, 640, 480, kinds[k].subsamp, kinds[k].quality, kinds[k].flags, reps);
    }
    free(vga);
    free(hd);
    for (int i = 0; i < n_photos; i++)
        sh_image_free(&photos[i]);
    sh_allocator_destroy(a);
    return 0;
}
