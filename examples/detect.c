/* A program built against an installed shoal (pkg-config or find_package): runs one mode of a
 * config on a frame and prints what each model found.
 *
 *   detect CONFIG.yaml MODE [FRAME.jpg|png]     (without a frame: a synthetic gray picture)
 */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>

#include <shoal.h>

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s CONFIG.yaml MODE [FRAME]\n", argv[0]);
        return 2;
    }
    printf("shoal %s\n", shoal_version());
    shoal_image frame;
    static uint8_t gray[320 * 240 * 3];
    if (argc == 4) {
        if (shoal_image_load(argv[3], &frame, NULL, 0) != SHOAL_OK) {
            fprintf(stderr, "detect: %s\n", shoal_last_error());
            return 1;
        }
    } else {
        for (size_t i = 0; i < sizeof gray; i++)
            gray[i] = (uint8_t)(96 + i % 64);
        frame = shoal_image_wrap(gray, 320, 240);
    }
    shoal_runtime_params p = shoal_runtime_default_params();
    p.config_path = argv[1];
    shoal_runtime_t rt = NULL;
    shoal_results_t res = NULL;
    int rc = shoal_runtime_create(&p, &rt);
    if (rc == SHOAL_OK)
        rc = shoal_runtime_run_mode(rt, argv[2], &frame, &res);
    if (rc != SHOAL_OK) {
        fprintf(stderr, "detect: %s (%s)\n", shoal_last_error(), shoal_status_str(rc));
    } else {
        for (int i = 0; i < shoal_results_count(res); i++) {
            const shoal_model_result *m = shoal_results_get(res, i);
            printf("%s (%s): %d detections, %d landmarks\n", m->model, m->task, m->n_detections,
                   m->n_landmarks);
        }
        char *json = shoal_results_to_json(res);
        printf("json: %s\n", json ? "ok" : "missing");
        shoal_free_string(json);
    }
    shoal_results_destroy(res);
    shoal_runtime_destroy(rt);
    shoal_image_free(&frame);
    return rc == SHOAL_OK ? 0 : 1;
}
