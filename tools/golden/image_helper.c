/* SPDX-License-Identifier: Apache-2.0
 * Helper of tools/golden/make_image_goldens.py, compiled by it at generation time:
 *
 *   cc -O2 -o image_helper tools/golden/image_helper.c $(pkg-config --cflags --libs stb)
 *
 *   image_helper decode IN OUT   stb_image's decode of the image file IN: OUT = width, height, channels
 *                                (3 x uint32 little-endian), then height * width * channels bytes with
 *                                stb's own channel count at 8 bits (for JPEG: 1 = gray or 3 = RGB).
 *                                JPEG goldens start from these pixels (the decoder tessera uses) instead
 *                                of libjpeg-turbo's (Pillow's), so everything after decoding compares
 *                                exactly.
 *   image_helper fnv1a64 FILE    prints the 64-bit FNV-1a hash of FILE's bytes as 16 hex digits (the
 *                                whole-buffer hashes of the goldens; Python is too slow for 20 MB).
 *
 * Debian's libstb holds the stb_image implementation; this file only includes the declarations.
 */
#include <stb_image.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int put_u32(FILE* f, uint32_t v) {
  unsigned char b[4] = {(unsigned char)(v & 0xFF), (unsigned char)((v >> 8) & 0xFF), (unsigned char)((v >> 16) & 0xFF),
                        (unsigned char)(v >> 24)};
  return fwrite(b, 1, 4, f) == 4;
}

static int decode(char const* in, char const* out_path) {
  int w = 0, h = 0, c = 0;
  stbi_set_flip_vertically_on_load(0);
  unsigned char* px = stbi_load(in, &w, &h, &c, 0);
  if (px == NULL) {
    fprintf(stderr, "%s: stb_image: %s\n", in, stbi_failure_reason());
    return 1;
  }
  FILE* out = fopen(out_path, "wb");
  size_t const n = (size_t)w * (size_t)h * (size_t)c;
  int ok = out != NULL && put_u32(out, (uint32_t)w) && put_u32(out, (uint32_t)h) && put_u32(out, (uint32_t)c) &&
           fwrite(px, 1, n, out) == n;
  if (out != NULL && fclose(out) != 0) ok = 0;
  stbi_image_free(px);
  if (!ok) {
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
  if (argc == 4 && strcmp(argv[1], "decode") == 0) return decode(argv[2], argv[3]);
  if (argc == 3 && strcmp(argv[1], "fnv1a64") == 0) return fnv1a64(argv[2]);
  fprintf(stderr, "usage: %s decode IN OUT | fnv1a64 FILE\n", argv[0]);
  return 2;
}
