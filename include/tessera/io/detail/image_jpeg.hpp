// SPDX-License-Identifier: Apache-2.0
// JPEG for io::decode_image: tessera walks the marker structure itself (segment lengths, one frame
// header of a kind stb_image decodes, scans, the end-of-image marker) and checks the budget, then
// stb_image decodes. stb does not notice a file cut short (it pads the entropy-coded data and
// returns an image), so the EOI check is what turns truncation into an error, as Pillow's
// "image file is truncated" does.
//
// stb's decoder is not libjpeg-turbo (Pillow's): the IDCT, chroma upsampling and YCbCr -> RGB
// rounding differ, so pixels may differ by a few levels (docs/inputs.md has the measurement).
// Gray JPEGs are replicated to RGB as Pillow's L -> RGB does; Adobe CMYK / YCCK JPEGs use stb's
// inverted-CMYK formula, which is algebraically Pillow's cmyk2rgb after its "CMYK;I" unpacking.
#pragma once

#include <tessera/core/error.hpp>
#include <tessera/io/detail/image_common.hpp>
#include <tessera/io/detail/image_stb.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace tessera::io::detail {

/// "0xFFD8" for marker code 0xD8.
[[nodiscard]] inline std::string marker_name(std::uint8_t m) {
  static constexpr char digits[] = "0123456789ABCDEF";
  return std::string("0xFF") + digits[m >> 4] + digits[m & 0x0F];
}

/// What the marker walk learned about a JPEG file.
struct jpeg_layout {
  std::uint32_t width = 0, height = 0;
  int components = 0;
  int scans = 0;
  int adobe_transform = -1;  // APP14 "Adobe" colour transform, -1 when absent
};

/// Most scans accepted: progressive files have about 10; thousands of tiny scans over a large
/// frame would make decoding quadratic (libjpeg-turbo offers the same kind of cap).
inline constexpr int jpeg_max_scans = 1000;

/// Walks SOI, the marker segments, each scan's entropy-coded data and EOI. Refuses: frame types
/// stb_image does not decode (lossless, hierarchical, arithmetic-coded, 12-bit), a frame whose height
/// is defined later by DNL, component counts other than 1, 3, 4, 4-component files without an
/// Adobe APP14 marker (stb would treat them as YCbCr, libjpeg as CMYK), a missing EOI (truncated).
[[nodiscard]] inline jpeg_layout parse_jpeg(image_input const& in) {
  std::string const& label = *in.label;
  std::uint8_t const* d = in.data;
  std::size_t const n = in.size;
  TESSERA_CHECK(n >= 4 && d[0] == 0xFF && d[1] == 0xD8, label, ": not a JPEG file (no SOI marker)");
  jpeg_layout j;
  bool seen_frame = false;
  std::size_t pos = 2;
  for (;;) {
    // A marker: 0xFF, optional 0xFF fill bytes, the marker code. Stray bytes before it are skipped,
    // as libjpeg (with a warning) and stb_image do.
    auto const* ff = pos < n ? static_cast<std::uint8_t const*>(std::memchr(d + pos, 0xFF, n - pos)) : nullptr;
    TESSERA_CHECK(ff != nullptr, label, ": JPEG truncated: no EOI marker (end of image)");
    pos = static_cast<std::size_t>(ff - d);
    while (pos < n && d[pos] == 0xFF) ++pos;
    TESSERA_CHECK(pos < n, label, ": JPEG truncated: no EOI marker (end of image)");
    std::uint8_t const m = d[pos++];
    if (m == 0xD9) break;                           // EOI: done; anything after it is ignored
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;  // TEM, stray RSTn: no payload
    TESSERA_CHECK(m != 0xD8 && m != 0x00, label, ": corrupt JPEG: unexpected marker ", marker_name(m), " at offset ", pos - 2);
    TESSERA_CHECK(n - pos >= 2, label, ": JPEG truncated inside the marker ", marker_name(m));
    std::uint32_t const len = u16be(d + pos);
    TESSERA_CHECK(len >= 2 && n - pos >= len, label, len < 2 ? ": corrupt JPEG: segment length " : ": JPEG truncated: segment of ",
                  len, " bytes at offset ", pos, " runs past the end of the file");
    std::uint8_t const* s = d + pos + 2;  // segment payload, len - 2 bytes
    std::uint32_t const plen = len - 2;
    bool const sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
    if (sof) {
      TESSERA_CHECK(m == 0xC0 || m == 0xC1 || m == 0xC2, label, ": JPEG frame type SOF", (m & 0x0F),
                    " (", (m == 0xC3 ? "lossless" : m >= 0xC9 ? "arithmetic-coded" : "hierarchical"),
                    ") is not supported by stb_image");
      TESSERA_CHECK(!seen_frame, label, ": corrupt JPEG: a second frame header (SOF) at offset ", pos - 2);
      TESSERA_CHECK(plen >= 6, label, ": corrupt JPEG: frame header of ", plen, " bytes");
      TESSERA_CHECK(s[0] == 8, label, ": ", int{s[0]}, "-bit JPEG is not supported by stb_image (8-bit only)");
      j.height = u16be(s + 1);
      j.width = u16be(s + 3);
      j.components = s[5];
      TESSERA_CHECK(j.height != 0, label, ": JPEG with the height defined by a later DNL marker is not supported");
      TESSERA_CHECK(j.components == 1 || j.components == 3 || j.components == 4, label, ": JPEG with ",
                    j.components, " components is not supported (1, 3 or 4)");
      TESSERA_CHECK(plen >= 6u + 3u * static_cast<std::uint32_t>(j.components), label,
                    ": corrupt JPEG: frame header too short for ", j.components, " components");
      check_budget(in, "JPEG", j.width, j.height);
      seen_frame = true;
    } else if (m == 0xCC) {
      TESSERA_FAIL(label, ": arithmetic-coded JPEG (DAC marker) is not supported by stb_image");
    } else if (m == 0xEE && plen >= 12 && std::memcmp(s, "Adobe\0", 6) == 0) {
      j.adobe_transform = s[11];  // stb's test ("Adobe", version high byte 0), so both agree
    }
    pos += len;
    if (m == 0xDA) {  // SOS: skip the entropy-coded data up to the next marker that is not RSTn
      TESSERA_CHECK(seen_frame, label, ": corrupt JPEG: scan (SOS) before the frame header (SOF)");
      TESSERA_CHECK(++j.scans <= jpeg_max_scans, label, ": JPEG has more than ", jpeg_max_scans, " scans");
      for (;;) {
        auto const* ff = static_cast<std::uint8_t const*>(std::memchr(d + pos, 0xFF, n - pos));
        TESSERA_CHECK(ff != nullptr && ff + 1 < d + n, label, ": JPEG truncated: no EOI marker (end of image)");
        pos = static_cast<std::size_t>(ff - d);
        std::uint8_t const next = d[pos + 1];
        if (next == 0x00 || (next >= 0xD0 && next <= 0xD7)) {
          pos += 2;  // stuffed 0xFF data byte or restart marker: still inside the scan
          continue;
        }
        break;  // 0xFF then a marker code (or fill bytes): the scan ends here
      }
    }
  }
  TESSERA_CHECK(seen_frame && j.scans > 0, label, ": corrupt JPEG: EOI before any ", seen_frame ? "scan" : "frame header");
  TESSERA_CHECK(j.components != 4 || j.adobe_transform == 0 || j.adobe_transform == 2, label,
                ": 4-component JPEG without an Adobe CMYK/YCCK marker (transform ", j.adobe_transform,
                ") is not supported: stb_image would read it as YCbCr, libjpeg as CMYK");
  return j;
}

/// JPEG -> RGB8 through stb_image (see the top of this file for how it differs from Pillow).
[[nodiscard]] inline raw_rgb decode_jpeg(image_input const& in) {
  jpeg_layout const j = parse_jpeg(in);
  auto const h = static_cast<index_t>(j.height), w = static_cast<index_t>(j.width);
  stb_cross_check(in, in.data, in.size, "JPEG", h, w);
  raw_rgb out = make_rgb(h, w);
  auto const px = stb_load_8(in, in.data, in.size, 0, "JPEG", h, w);
  stb_to_rgb(px.data.get(), px.channels, out);
  return out;
}

}  // namespace tessera::io::detail
