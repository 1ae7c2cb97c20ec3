/* slide_none.c: the slide reader of a build without OpenSlide and libvips
 * (configure --enable-device-build, for a GPU machine that lacks them):
 * opening a slide fails with one line, so patch-embed still embeds tiles
 * streams that carry their pixels. Only what patch-embed calls is here.
 * SPDX-License-Identifier: MIT */
#include "config.h"

#include <stddef.h>

#include "mm/slide.h"

mm_slide *mm_slide_open(const char *path, int *why)
{
    mm__set_error("%s: this build has no slide reader (configure "
                  "--enable-device-build leaves out OpenSlide and libvips)",
                  path);
    if (why) *why = MM_ERR;
    return NULL;
}

/* A handle never exists in this build: the rest cannot be reached. */
void mm_slide_close(mm_slide *s) { (void)s; }
const char *mm_slide_digest(mm_slide *s) { (void)s; return NULL; }

int mm_slide_read_region(mm_slide *s, int64_t x, int64_t y, int level,
                         int64_t w, int64_t h, uint8_t *rgb)
{
    (void)s, (void)x, (void)y, (void)level, (void)w, (void)h, (void)rgb;
    mm__set_error("no slide reader in this build");
    return -1;
}

int mm_slide_read_scaled(mm_slide *s, int64_t x, int64_t y, int64_t w0,
                         int64_t h0, int ow, int oh, uint8_t *rgb)
{
    (void)s, (void)x, (void)y, (void)w0, (void)h0, (void)ow, (void)oh, (void)rgb;
    mm__set_error("no slide reader in this build");
    return -1;
}
