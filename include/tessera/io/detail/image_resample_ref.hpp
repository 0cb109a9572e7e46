// SPDX-License-Identifier: Apache-2.0
// io::resize_bicubic, reference backend: Pillow 11's ImagingResampleInner with its 8-bit passes
// (libImaging/Resample.c), loop for loop: horizontal pass over the source rows the vertical pass
// will read, then vertical pass; a pass whose size does not change is skipped. Single-threaded.
#pragma once

#include <tessera/backend/backend.hpp>
#include <tessera/backend/exec_ctx.hpp>
#include <tessera/core/error.hpp>
#include <tessera/core/tensor_view.hpp>
#include <tessera/io/detail/image_resample_coeffs.hpp>

#include <cstdint>

namespace tessera::io::detail {

template <>
struct resize_bicubic_impl<backend::reference> {
  static void run(tensor_view<std::uint8_t const, 3> in,  // [in_h, in_w, 3]
                  tensor_view<std::uint8_t, 3> out,       // [out_h, out_w, 3]
                  exec_ctx<backend::reference>& ctx) {
    int const ih = static_cast<int>(in.extent(0)), iw = static_cast<int>(in.extent(1));
    int const oh = static_cast<int>(out.extent(0)), ow = static_cast<int>(out.extent(1));
    bool const need_h = ow != iw, need_v = oh != ih;
    resample_coeffs const cx = pillow_bicubic_coeffs(iw, ow);
    resample_coeffs const cy = pillow_bicubic_coeffs(ih, oh);
    row_window const rows = need_h ? used_rows(cy) : row_window{0, ih};
    auto frame = ctx.scratch().open();
    // Only one size changes: the horizontal pass then covers every row (Pillow's window for an
    // unchanged height is [0, ih)) and writes straight into out.
    TESSERA_DEBUG_ASSERT(need_v || (rows.first == 0 && rows.last == ih), "row window [", rows.first, ", ", rows.last,
                         ") for an unchanged height ", ih);

    // Horizontal pass: source rows [rows.first, rows.last) -> tmp (or straight into out).
    std::uint8_t const* src = in.data();
    index_t src_stride = in.stride(0);
    if (need_h) {
      index_t const tmp_stride = need_v ? index_t{3} * ow : out.stride(0);
      std::uint8_t* tmp = need_v ? frame.alloc<std::uint8_t>(static_cast<std::size_t>(rows.last - rows.first) * 3u *
                                                             static_cast<std::size_t>(ow))
                                 : out.data();  // [rows, out_w, 3]
      for (int yy = 0; yy < rows.last - rows.first; ++yy) {
        std::uint8_t const* s = in.data() + (yy + rows.first) * in.stride(0);
        for (int xx = 0; xx < ow; ++xx) {
          int const xmin = cx.start[static_cast<std::size_t>(xx)], xmax = cx.count[static_cast<std::size_t>(xx)];
          std::int32_t const* k = cx.k.data() + static_cast<std::size_t>(xx) * static_cast<std::size_t>(cx.ksize);
          std::int32_t ss0 = 1 << (pillow_precision_bits - 1), ss1 = ss0, ss2 = ss0;
          for (int x = 0; x < xmax; ++x) {
            ss0 += s[(x + xmin) * 3 + 0] * k[x];
            ss1 += s[(x + xmin) * 3 + 1] * k[x];
            ss2 += s[(x + xmin) * 3 + 2] * k[x];
          }
          std::uint8_t* o = tmp + yy * tmp_stride + 3 * xx;
          o[0] = pillow_clip8(ss0);
          o[1] = pillow_clip8(ss1);
          o[2] = pillow_clip8(ss2);
        }
      }
      if (!need_v) return;
      src = tmp;
      src_stride = index_t{3} * ow;
    }

    // Vertical pass: src rows are offset by rows.first (Pillow shifts bounds_vert the same way).
    if (need_v) {
      for (int yy = 0; yy < oh; ++yy) {
        int const ymin = cy.start[static_cast<std::size_t>(yy)] - rows.first, ymax = cy.count[static_cast<std::size_t>(yy)];
        std::int32_t const* k = cy.k.data() + static_cast<std::size_t>(yy) * static_cast<std::size_t>(cy.ksize);
        std::uint8_t* o = out.data() + yy * out.stride(0);
        for (int xx = 0; xx < 3 * ow; ++xx) {
          std::int32_t ss = 1 << (pillow_precision_bits - 1);
          for (int y = 0; y < ymax; ++y) ss += src[(y + ymin) * src_stride + xx] * k[y];
          o[xx] = pillow_clip8(ss);
        }
      }
      return;
    }
    // Neither size changes: Pillow returns a copy.
    for (int yy = 0; yy < oh; ++yy)
      for (int xx = 0; xx < 3 * ow; ++xx) out.data()[yy * out.stride(0) + xx] = in.data()[yy * in.stride(0) + xx];
  }
};

}  // namespace tessera::io::detail
