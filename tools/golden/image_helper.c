/* SPDX-License-Identifier: Apache-2.0
 * Helper of tools/golden/make_image_goldens.py, compiled by it at generation time with the system
 * libjpeg (Debian 12: libjpeg62-turbo-dev):
 *
 *   cc -O2 -o image_helper tools/golden/image_helper.c $(pkg-config --cflags --libs libjpeg)
 *
 *   image_helper jpeg LAYOUT WIDTH HEIGHT IN_RAW OUT_JPG
 *                                writes a JPEG of a layout Pillow's encoder cannot produce, from
 *                                IN_RAW = HEIGHT * WIDTH * components interleaved 8-bit samples
 *                                (row-major). Quality 90, the library's default Huffman tables, JFIF
 *                                header where the library writes one (YCbCr): the output is a
 *                                function of the input only.
 *                                LAYOUT (components; what is stored):
 *                                  ycck                      4; CMYK converted to YCCK (sampling
 *                                                            2 x 2, 1 x 1, 1 x 1, 2 x 2), Adobe marker
 *                                                            with transform 2
 *                                  cmyk_no_adobe             4; CMYK 1 x 1, no Adobe marker (Pillow
 *                                                            still reads the samples inverted)
 *                                  rgb                       3; RGB without YCbCr conversion (Adobe
 *                                                            transform 0), 4:4:4
 *                                  h1v2                      3; YCbCr 4:4:0 (luma 1 x 2, chroma 1 x 1)
 *                                  h4v1                      3; YCbCr 4:1:1 (luma 4 x 1, chroma 1 x 1)
 *                                  arith                     3; YCbCr 4:2:0, arithmetic coding
 *                                  h2v2_restart_progressive  3; YCbCr 4:2:0, progressive
 *                                                            (jpeg_simple_progression), a restart
 *                                                            marker after every MCU
 *                                The expected pixels are never this library's: the generator decodes
 *                                every file with Pillow.
 *   image_helper fnv1a64 FILE    prints the 64-bit FNV-1a hash of FILE's bytes as 16 hex digits (the
 *                                whole-buffer hashes of the goldens; Python is too slow for 20 MB).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#define JPEG_QUALITY 90

struct layout {
  char const* name;
  int components;
  J_COLOR_SPACE in_space;   /* what the raw samples are */
  J_COLOR_SPACE out_space;  /* what the file stores */
  int luma_h, luma_v;       /* sampling factors of component 0, the others 1 x 1 (0: the library's
                               defaults for out_space: YCCK 2 x 2, 1, 1, 2 x 2; CMYK and RGB 1 x 1) */
  int adobe;                /* write the Adobe APP14 marker */
  int arith, progressive, restart_interval;
};

static struct layout const layouts[] = {
    {"ycck", 4, JCS_CMYK, JCS_YCCK, 0, 0, 1, 0, 0, 0},
    {"cmyk_no_adobe", 4, JCS_CMYK, JCS_CMYK, 0, 0, 0, 0, 0, 0},
    {"rgb", 3, JCS_RGB, JCS_RGB, 0, 0, 1, 0, 0, 0},
    {"h1v2", 3, JCS_RGB, JCS_YCbCr, 1, 2, 0, 0, 0, 0},
    {"h4v1", 3, JCS_RGB, JCS_YCbCr, 4, 1, 0, 0, 0, 0},
    {"arith", 3, JCS_RGB, JCS_YCbCr, 2, 2, 0, 1, 0, 0},
    {"h2v2_restart_progressive", 3, JCS_RGB, JCS_YCbCr, 2, 2, 0, 0, 1, 1},
};

static int write_jpeg(char const* name, char const* width_s, char const* height_s, char const* in_path,
                      char const* out_path) {
  struct layout const* lay = NULL;
  for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; ++i)
    if (strcmp(layouts[i].name, name) == 0) lay = &layouts[i];
  if (lay == NULL) {
    fprintf(stderr, "unknown layout %s\n", name);
    return 2;
  }
  long const w = strtol(width_s, NULL, 10), h = strtol(height_s, NULL, 10);
  if (w <= 0 || h <= 0 || w > 4096 || h > 4096) {
    fprintf(stderr, "bad size %s x %s\n", width_s, height_s);
    return 2;
  }
  size_t const row = (size_t)w * (size_t)lay->components, n = row * (size_t)h;
  unsigned char* px = malloc(n + 1);
  FILE* in = fopen(in_path, "rb");
  if (px == NULL || in == NULL || fread(px, 1, n + 1, in) != n) {
    fprintf(stderr, "%s: cannot read exactly %zu bytes\n", in_path, n);
    if (in != NULL) fclose(in);
    free(px);
    return 1;
  }
  fclose(in);
  FILE* out = fopen(out_path, "wb");
  if (out == NULL) {
    fprintf(stderr, "%s: cannot open\n", out_path);
    free(px);
    return 1;
  }

  struct jpeg_compress_struct cinfo;
  struct jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);  /* errors exit the process */
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, out);
  cinfo.image_width = (JDIMENSION)w;
  cinfo.image_height = (JDIMENSION)h;
  cinfo.input_components = lay->components;
  cinfo.in_color_space = lay->in_space;
  jpeg_set_defaults(&cinfo);
  jpeg_set_colorspace(&cinfo, lay->out_space);
  jpeg_set_quality(&cinfo, JPEG_QUALITY, TRUE);
  if (lay->luma_h > 0)
    for (int c = 0; c < cinfo.num_components; ++c) {
      cinfo.comp_info[c].h_samp_factor = c == 0 ? lay->luma_h : 1;
      cinfo.comp_info[c].v_samp_factor = c == 0 ? lay->luma_v : 1;
    }
  cinfo.write_Adobe_marker = lay->adobe ? TRUE : FALSE;
  cinfo.arith_code = lay->arith ? TRUE : FALSE;
  cinfo.optimize_coding = FALSE;
  cinfo.restart_interval = (unsigned int)lay->restart_interval;
  cinfo.dct_method = JDCT_ISLOW;
  if (lay->progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW r = px + (size_t)cinfo.next_scanline * row;
    jpeg_write_scanlines(&cinfo, &r, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  free(px);
  if (fclose(out) != 0) {
    fprintf(stderr, "%s: cannot write\n", out_path);
    return 1;
  }
  return 0;
}

static int fnv1a64(char const* path) {
  FILE* f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "%s: cannot open\n", path);
    return 1;
  }
  uint64_t h = 0xCBF29CE484222325ull;
  unsigned char buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    for (size_t i = 0; i < n; ++i) h = (h ^ buf[i]) * 0x100000001B3ull;
  int const err = ferror(f);
  fclose(f);
  if (err) {
    fprintf(stderr, "%s: read error\n", path);
    return 1;
  }
  printf("%016llx\n", (unsigned long long)h);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 7 && strcmp(argv[1], "jpeg") == 0) return write_jpeg(argv[2], argv[3], argv[4], argv[5], argv[6]);
  if (argc == 3 && strcmp(argv[1], "fnv1a64") == 0) return fnv1a64(argv[2]);
  fprintf(stderr, "usage: %s jpeg LAYOUT WIDTH HEIGHT IN_RAW OUT_JPG | fnv1a64 FILE\n", argv[0]);
  return 2;
}
