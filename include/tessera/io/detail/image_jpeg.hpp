// SPDX-License-Identifier: Apache-2.0
// JPEG for io::decode_image through libjpeg-turbo (Debian's libjpeg62-turbo), set up as Pillow 11
// sets it up for Image.open(f).convert('RGB'), so that the pixels are Pillow's bit for bit:
//   - accurate integer IDCT (JDCT_ISLOW), fancy (triangle) chroma upsampling, block smoothing left
//     on: libjpeg's defaults, which Pillow does not change outside draft mode;
//   - the colour space libjpeg infers from the file (JFIF / Adobe APP14 / component ids);
//   - 1 component (Pillow mode "L"): libjpeg's gray -> RGB, which replicates the value as
//     Pillow's L -> RGB does; 3 components: RGB;
//   - 4 components (Pillow mode "CMYK", always read as "CMYK;I", i.e. with Adobe's inverted
//     polarity, Adobe marker or not): libjpeg's CMYK output (YCCK converted by libjpeg), inverted,
//     then Pillow's cmyk2rgb (libImaging/Convert.c);
//   - 2 components and other precisions are refused, as Pillow refuses them.
// Stricter than Pillow where Pillow would return garbage silently: libjpeg's warnings about
// corrupt entropy-coded data (bad Huffman or arithmetic codes, data ending inside a scan, missing
// restart markers, an inconsistent progression) are errors here; Pillow ignores them and decodes
// the damaged blocks as flat gray. A file cut short, or without its end-of-image marker, is an error
// in both. Progressive files are limited to jpeg_max_scans scans (thousands of tiny scans over a
// large frame make decoding quadratic; libjpeg-turbo's own tools offer the same cap).
//
// libjpeg reports errors through a callback that must not return. Each group of libjpeg calls runs
// inside guarded_call() (image_common.hpp), to which the callback jumps back with std::longjmp, and
// the steps hold no object with a destructor, as C++ requires of longjmp; the reason is then thrown
// as a tessera::error from ordinary C++ code.
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/io/detail/image_common.hpp>

#include <algorithm>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>  // jpeglib.h uses FILE and size_t without including their headers
#include <cstring>

#include <jerror.h>
#include <jpeglib.h>

namespace tessera::io::detail {

/// Most scans accepted in one file: progressive encoders write about 10.
inline constexpr int jpeg_max_scans = 1000;

/// One decode's libjpeg state. Lives in decode_jpeg's frame; the callbacks find it through
/// cinfo.client_data.
struct jpeg_session {
  jpeg_decompress_struct cinfo{};
  jpeg_error_mgr err{};
  jpeg_progress_mgr progress{};
  std::jmp_buf jump{};
  char reason[JMSG_LENGTH_MAX] = {};
  bool truncated = false;  // the reason is that the data ended early
  bool created = false;
};

/// libjpeg warnings that do not touch the pixels: an unknown JFIF revision or Adobe transform code,
/// a malformed ICC profile marker (metadata), junk bytes between markers that libjpeg skips.
[[nodiscard]] inline bool jpeg_benign_warning(int code) noexcept {
  return code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM || code == JWRN_BOGUS_ICC || code == JWRN_EXTRANEOUS_DATA;
}

[[noreturn]] inline void jpeg_fail(j_common_ptr c) noexcept {
  auto* s = static_cast<jpeg_session*>(c->client_data);
  (*c->err->format_message)(c, s->reason);
  s->truncated = c->err->msg_code == JWRN_JPEG_EOF || c->err->msg_code == JWRN_HIT_MARKER;
  std::longjmp(s->jump, 1);
}

extern "C" {
/// error_exit: every libjpeg error.
inline void tessera_jpeg_error_exit(j_common_ptr c) { jpeg_fail(c); }
/// emit_message: level -1 is a warning; corrupt-data warnings are errors here, the rest are dropped
/// (libjpeg's default prints them to stderr).
inline void tessera_jpeg_emit_message(j_common_ptr c, int level) {
  if (level < 0 && !jpeg_benign_warning(c->err->msg_code)) jpeg_fail(c);
}
/// progress_monitor: called before every unit of input libjpeg consumes, so also once per scan.
inline void tessera_jpeg_progress(j_common_ptr c) {
  auto* d = reinterpret_cast<j_decompress_ptr>(c);
  if (d->input_scan_number > jpeg_max_scans) {
    auto* s = static_cast<jpeg_session*>(c->client_data);
    std::snprintf(s->reason, sizeof s->reason, "more than %d scans", jpeg_max_scans);
    std::longjmp(s->jump, 1);
  }
}
}

/// Pillow's cmyk2rgb after its "CMYK;I" unpacking (which inverts every sample): with
/// c' = 255 - C and nk = 255 - (255 - K) = K, each channel is nk - MULDIV255(c', nk), where
/// MULDIV255(a, b) = ((a * b + 128) >> 8 + a * b + 128) >> 8.
inline void cmyk_inverted_to_rgb(std::uint8_t const* cmyk, std::uint8_t* rgb, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    int const nk = cmyk[4 * i + 3];
    for (std::size_t c = 0; c < 3; ++c) {
      int const t = (255 - cmyk[4 * i + c]) * nk + 128;
      rgb[3 * i + c] = static_cast<std::uint8_t>(nk - (((t >> 8) + t) >> 8));
    }
  }
}

/// JPEG -> RGB8 with Pillow's pixels (see the top of this file).
[[nodiscard]] inline raw_rgb decode_jpeg(image_input const& in) {
  std::string const& label = *in.label;
  jpeg_session s;
  struct destroy_guard {
    jpeg_session& s;
    ~destroy_guard() {
      if (s.created) jpeg_destroy_decompress(&s.cinfo);
    }
  } const guard{s};
  auto const fail = [&](char const* when) {
    if (s.truncated) TESSERA_FAIL(label, ": JPEG truncated ", when, " (libjpeg-turbo: ", s.reason, ")");
    TESSERA_FAIL(label, ": cannot decode this JPEG ", when, " (libjpeg-turbo: ", s.reason, ")");
  };

  // 1. The markers up to the first scan: frame size, components, colour space.
  s.cinfo.err = jpeg_std_error(&s.err);
  s.err.error_exit = tessera_jpeg_error_exit;
  s.err.emit_message = tessera_jpeg_emit_message;
  s.cinfo.client_data = &s;
  s.progress.progress_monitor = tessera_jpeg_progress;
  if (!guarded_call(s.jump, [&s, &in] {
        jpeg_create_decompress(&s.cinfo);
        s.created = true;
        s.cinfo.progress = &s.progress;
        jpeg_mem_src(&s.cinfo, in.data, static_cast<unsigned long>(in.size));
        (void)jpeg_read_header(&s.cinfo, TRUE);
      }))
    fail("(reading the markers before the first scan)");
  jpeg_decompress_struct& ci = s.cinfo;
  check_budget(in, "JPEG", ci.image_width, ci.image_height);
  int const comps = ci.num_components;
  TESSERA_CHECK(comps == 1 || comps == 3 || comps == 4, label, ": a JPEG with ", comps,
                " components (Pillow reads 1: gray, 3: RGB or YCbCr, 4: CMYK or YCCK)");
  // Huffman coding spends at least one bit on every block, so a file of n bytes holds at most 8n
  // blocks of its first component; a header claiming more is refused before anything is allocated
  // for it. (Arithmetic coding has no such bound; the pixel budget alone limits those files.)
  if (!ci.arith_code) {
    std::uint64_t const blocks = ((std::uint64_t{ci.image_width} + 7) / 8) * ((std::uint64_t{ci.image_height} + 7) / 8);
    TESSERA_CHECK(blocks <= 8 * static_cast<std::uint64_t>(in.size), label, ": JPEG truncated: the frame of ",
                  ci.image_width, " x ", ci.image_height, " pixels needs ", blocks, " coded blocks, more than ",
                  in.size, " bytes can hold");
  }
  ci.out_color_space = comps == 4 ? JCS_CMYK : JCS_EXT_RGB;  // JCS_EXT_RGB: 3 bytes a pixel in any build
  ci.dct_method = JDCT_ISLOW;
  ci.do_fancy_upsampling = TRUE;
  ci.do_block_smoothing = TRUE;

  auto const h = static_cast<index_t>(ci.image_height), w = static_cast<index_t>(ci.image_width);
  raw_rgb out = make_rgb(h, w);
  std::size_t const out_comps = comps == 4 ? 4 : 3;
  host_buffer<std::uint8_t> cmyk;  // 4-component files decode here first
  std::uint8_t* const target = comps == 4 ? (cmyk = host_buffer<std::uint8_t>(h * w * 4)).data() : out.pixels.data();
  std::size_t const row_bytes = static_cast<std::size_t>(w) * out_comps;

  // 2. The scans, straight into the output rows (a few at a time), then everything up to the
  //    end-of-image marker.
  if (!guarded_call(s.jump, [&ci] { (void)jpeg_start_decompress(&ci); })) fail("(decoding the scans)");
  TESSERA_CHECK(ci.output_width == ci.image_width && ci.output_height == ci.image_height &&
                    static_cast<std::size_t>(ci.output_components) == out_comps,
                label, ": libjpeg-turbo would write ", ci.output_width, " x ", ci.output_height, " x ",
                ci.output_components, " samples, tessera expected ", w, " x ", h, " x ", out_comps);  // before any row
  if (!guarded_call(s.jump, [&ci, target, row_bytes] {
        JSAMPROW batch[16];
        while (ci.output_scanline < ci.output_height) {
          JDIMENSION const n = std::min<JDIMENSION>(16, ci.output_height - ci.output_scanline);
          for (JDIMENSION i = 0; i < n; ++i) batch[i] = target + (ci.output_scanline + i) * row_bytes;
          (void)jpeg_read_scanlines(&ci, batch, n);
        }
        (void)jpeg_finish_decompress(&ci);
      }))
    fail("(decoding the scans)");
  if (comps == 4) cmyk_inverted_to_rgb(cmyk.data(), out.pixels.data(), static_cast<std::size_t>(h * w));
  return out;
}

}  // namespace tessera::io::detail
